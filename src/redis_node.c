/* One connection to one Redis node. */
#include "redis_node.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "redis_reply.h"
#include "ustatus/buf.h"
#include "ustatus/clock.h"
#include "ustatus/json.h"
#include "ustatus/log.h"
#include "ustatus/metrics.h"
#include "ustatus/msg.h"

/* Back-off between connect attempts to a node that refused: first 100 ms, doubling,
 * never more than 1 s, so a Redis that comes back is used again within a second. */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 1000

static struct timeval ms_to_tv(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

int us_redis_node_init(us_redis_node *node, const char *address, const us_redis_config *rc,
                       char *err, size_t err_len)
{
    memset(node, 0, sizeof *node);
    if (us_redis_address_parse(address, &node->addr, err, err_len) < 0)
        return -1;
    us_redis_address *a = &node->addr;
    /* Cutting a credential short would only show later as a puzzling AUTH failure. */
    if ((!a->user[0] && rc->user && strlen(rc->user) >= sizeof a->user) ||
        (!a->password[0] && rc->password && strlen(rc->password) >= sizeof a->password)) {
        us_set_msg(err, err_len, "user or password longer than %zu bytes", sizeof a->user - 1);
        return -1;
    }
    if (!a->user[0] && rc->user)
        snprintf(a->user, sizeof a->user, "%s", rc->user);
    if (!a->password[0] && rc->password)
        snprintf(a->password, sizeof a->password, "%s", rc->password);
    if (a->db < 0)
        a->db = rc->db;
    if (a->connect_timeout_ms < 0)
        a->connect_timeout_ms = rc->connect_timeout_ms;
    if (a->io_timeout_ms < 0)
        a->io_timeout_ms = rc->io_timeout_ms;
    us_redis_address_format(a, node->name, sizeof node->name);
    return 0;
}

int us_redis_node_set_target(us_redis_node *node, const char *host, int port)
{
    us_redis_address *a = &node->addr;
    if (a->kind == US_ADDR_TCP && a->port == port && strcmp(a->host, host) == 0)
        return 0;
    us_redis_node_disconnect(node);
    a->kind = US_ADDR_TCP;
    snprintf(a->host, sizeof a->host, "%s", host);
    a->port = port;
    a->path[0] = '\0';
    us_redis_address_format(a, node->name, sizeof node->name);
    node->retry_at_ms = 0;
    node->backoff_ms = 0;
    node->down_logged = false;
    return 1;
}

static void note_failure(us_redis_node *node, const char *what, const char *detail)
{
    us_metrics_redis_error();
    int64_t now = us_clock_mono_ms();
    node->backoff_ms = node->backoff_ms ? node->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (node->backoff_ms > BACKOFF_MAX_MS)
        node->backoff_ms = BACKOFF_MAX_MS;
    node->retry_at_ms = now + node->backoff_ms;
    /* One error line per outage; the retries behind it are debug noise. */
    if (!node->down_logged) {
        us_error("redis %s: %s: %s", node->name, what, detail);
        node->down_logged = true;
    } else {
        us_debug("redis %s: %s: %s (next try in %lld ms)", node->name, what, detail,
                 (long long)node->backoff_ms);
    }
}

/* AUTH, SELECT and (require_master) ROLE on a fresh connection. */
static int handshake(us_redis_node *node)
{
    const us_redis_address *a = &node->addr;
    const redisReply *r = NULL;
    if (a->password[0]) {
        if (a->user[0])
            r = redisCommand(node->ctx, "AUTH %s %s", a->user, a->password);
        else
            r = redisCommand(node->ctx, "AUTH %s", a->password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            note_failure(node, "AUTH failed",
                         r ? r->str : node->ctx->errstr);
            goto fail;
        }
        us_reply_free(r);
    }
    if (a->db > 0) {
        r = redisCommand(node->ctx, "SELECT %d", a->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            note_failure(node, "SELECT failed", r ? r->str : node->ctx->errstr);
            goto fail;
        }
        us_reply_free(r);
    }
    if (node->require_master) {
        r = redisCommand(node->ctx, "ROLE");
        if (!r || r->type == REDIS_REPLY_ERROR) {
            note_failure(node, "ROLE failed", r ? r->str : node->ctx->errstr);
            goto fail;
        }
        const redisReply *role = r->type == REDIS_REPLY_ARRAY && r->elements > 0
                                     ? r->element[0] : NULL;
        if (!role || role->type != REDIS_REPLY_STRING || strcmp(role->str, "master") != 0) {
            char detail[64];
            snprintf(detail, sizeof detail, "ROLE is %s",
                     role && role->type == REDIS_REPLY_STRING ? role->str : "unreadable");
            note_failure(node, "not a master", detail);
            goto fail;
        }
        us_reply_free(r);
    }
    return 0;
fail:
    if (r)
        us_reply_free(r);
    return -1;
}

int us_redis_node_connect(us_redis_node *node)
{
    if (node->ctx)
        return 0;
    if (us_clock_mono_ms() < node->retry_at_ms) {
        us_debug("redis %s: backing off", node->name);
        return -1;
    }
    const us_redis_address *a = &node->addr;
    struct timeval ctv = ms_to_tv(a->connect_timeout_ms);
    redisContext *c = a->kind == US_ADDR_UNIX ? redisConnectUnixWithTimeout(a->path, ctv)
                                              : redisConnectWithTimeout(a->host, a->port, ctv);
    if (!c) {
        note_failure(node, "cannot connect", "out of memory");
        return -1;
    }
    if (c->err) {
        note_failure(node, "cannot connect", c->errstr);
        redisFree(c);
        return -1;
    }
    node->ctx = c;
    us_reply_reader_use(c->reader); /* before the first reply: AUTH's */
    if (redisSetTimeout(c, ms_to_tv(a->io_timeout_ms)) != REDIS_OK) {
        note_failure(node, "cannot set timeout", c->errstr);
        goto fail;
    }
    if (a->kind == US_ADDR_TCP)
        redisEnableKeepAlive(c);
    node->refused = false;
    if (handshake(node) < 0) {
        node->refused = true;
        goto fail;
    }
    if (node->ever_connected)
        us_metrics_redis_reconnect();
    if (node->down_logged)
        us_info("redis %s: connected again", node->name);
    node->ever_connected = true;
    node->down_logged = false;
    node->backoff_ms = 0;
    node->retry_at_ms = 0;
    return 0;
fail:
    redisFree(node->ctx);
    node->ctx = NULL;
    return -1;
}

void us_redis_node_fail(us_redis_node *node, const char *what, const char *detail)
{
    note_failure(node, what, detail);
    us_redis_node_disconnect(node);
}

void us_redis_node_disconnect(us_redis_node *node)
{
    if (node->ctx) {
        redisFree(node->ctx);
        node->ctx = NULL;
    }
}

const redisReply *us_redis_node_command(us_redis_node *node, const char *fmt, ...)
{
    if (us_redis_node_connect(node) < 0)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    const redisReply *r = redisvCommand(node->ctx, fmt, ap);
    va_end(ap);
    if (!r)
        us_redis_node_fail(node, "command failed", node->ctx->errstr);
    return r;
}

/* ---- health reports ---- */

void us_ping_report(us_buf *report, bool first, const char *name, const char *error)
{
    if (!report)
        return;
    if (!first)
        us_buf_putc(report, ',');
    us_buf_puts(report, "{\"node\":");
    us_json_put_str(report, name, strlen(name));
    us_buf_puts(report, error ? ",\"ok\":false,\"error\":" : ",\"ok\":true");
    if (error)
        us_json_put_str(report, error, strlen(error));
    us_buf_putc(report, '}');
}

int us_ping_node(us_redis_node *node, us_buf *report, bool first)
{
    /* The back-off holds for health checks too: /health needs no key, and must not
     * become a way to storm a dead node (§3.6). A back-off is 1 s at most, so the
     * answer is never older than that. */
    const redisReply *r = us_redis_node_command(node, "PING");
    const char *error = NULL;
    if (!r)
        error = "unreachable";
    else if (r->type == REDIS_REPLY_ERROR)
        error = r->str;
    us_ping_report(report, first, node->name, error);
    if (r)
        us_reply_free(r);
    return error ? -1 : 0;
}
