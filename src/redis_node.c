/* One Redis node: settings, connect and handshake, back-off, synchronous commands. */
#include "redis_node.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

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

int us_redis_node_init(us_redis_node *node, const char *address, const us_redis_config *rc,
                       us_redis_tls_slot *tls, char *err, size_t err_len)
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
    if (rc->client_name && strlen(rc->client_name) >= sizeof node->client_name) {
        us_set_msg(err, err_len, "client_name longer than %zu bytes",
                   sizeof node->client_name - 1);
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
    snprintf(node->client_name, sizeof node->client_name, "%s",
             rc->client_name ? rc->client_name : "");
    node->wait_replicas = rc->wait_replicas;
    node->wait_timeout_ms = rc->wait_timeout_ms;
    if (a->tls || (tls && tls->cfg && tls->cfg->enabled)) {
        if (!tls || !tls->cfg) {
            us_set_msg(err, err_len, "TLS is not available here");
            return -1;
        }
        if (!tls->tls) {
            tls->tls = us_redis_tls_create(tls->cfg, tls->what, err, err_len);
            if (!tls->tls)
                return -1;
            if (tls->cfg->insecure_skip_verify)
                us_warn("%s: insecure_skip_verify: the Redis certificate is not checked; "
                        "anyone on the path can play that Redis", tls->what);
        }
        node->tls = tls->tls;
        a->tls = true;
    }
    us_redis_address_format(a, node->name, sizeof node->name);
    return 0;
}

void us_redis_node_init_like(us_redis_node *node, const us_redis_node *model, const char *host,
                             int port)
{
    memset(node, 0, sizeof *node);
    node->addr = model->addr;
    node->tls = model->tls;
    node->budget = model->budget;
    memcpy(node->client_name, model->client_name, sizeof node->client_name);
    node->wait_replicas = model->wait_replicas;
    node->wait_timeout_ms = model->wait_timeout_ms;
    node->require_master = model->require_master;
    node->addr.host[0] = '\0';
    us_redis_node_set_target(node, host, port);
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

/* AUTH, SELECT, CLIENT SETNAME and (require_master) ROLE on a fresh connection, sent
 * together and read in order before deadline_ms. Over TLS a PING stands in when there is
 * nothing else to say: a server that refuses our certificate says so only after its side
 * of the handshake, at the first read, and that belongs to connecting, not to a request. */
static int handshake(us_redis_node *node, int64_t deadline_ms)
{
    const us_redis_address *a = &node->addr;
    us_redis_conn *c = node->conn;
    us_reply_limits limits[5];
    const char *step[5];
    size_t n = 0;
    if (a->password[0]) {
        if (a->user[0])
            us_redis_conn_append_fmt(c, &limits[n], "AUTH %s %s", a->user, a->password);
        else
            us_redis_conn_append_fmt(c, &limits[n], "AUTH %s", a->password);
        step[n++] = "AUTH failed";
    }
    if (a->db > 0) {
        us_redis_conn_append_fmt(c, &limits[n], "SELECT %d", a->db);
        step[n++] = "SELECT failed";
    }
    if (node->client_name[0]) {
        us_redis_conn_append_fmt(c, &limits[n], "CLIENT SETNAME %s", node->client_name);
        step[n++] = "CLIENT SETNAME failed";
    }
    if (node->require_master) {
        us_redis_conn_append_fmt(c, &limits[n], "ROLE");
        step[n++] = "ROLE failed";
    }
    if (n == 0 && us_redis_conn_is_tls(c)) {
        us_redis_conn_append_fmt(c, &limits[n], "PING");
        step[n++] = "PING failed";
    }
    if (n == 0)
        return 0;
    if (us_redis_conn_flush(c, deadline_ms) < 0) {
        note_failure(node, "cannot connect", us_redis_conn_error(c));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *r = NULL;
        if (us_redis_conn_read(c, &limits[i], deadline_ms, &r, NULL) < 0) {
            note_failure(node, "cannot connect", us_redis_conn_error(c));
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            note_failure(node, step[i], r->str);
            node->refused = true;
            us_reply_free(r);
            return -1;
        }
        if (strcmp(step[i], "ROLE failed") == 0) {
            const redisReply *role = r->type == REDIS_REPLY_ARRAY && r->elements > 0
                                         ? r->element[0] : NULL;
            if (!role || role->type != REDIS_REPLY_STRING || strcmp(role->str, "master") != 0) {
                char detail[64];
                snprintf(detail, sizeof detail, "ROLE is %s",
                         role && role->type == REDIS_REPLY_STRING ? role->str : "unreadable");
                note_failure(node, "not a master", detail);
                node->refused = true;
                us_reply_free(r);
                return -1;
            }
        }
        us_reply_free(r);
    }
    if (us_redis_conn_has_unread(c)) {
        note_failure(node, "cannot connect", "sent data nobody asked for");
        return -1;
    }
    return 0;
}

/* A connection kept from an earlier request: still good, or replaced. */
static void check_kept(us_redis_node *node)
{
    if (us_redis_conn_check_idle(node->conn) == 0)
        return;
    /* Found before any command was lost, but a lost connection all the same: it counts
     * in ustatus_redis_errors_total like any other (README, Metrics). */
    us_metrics_redis_error();
    if (us_redis_conn_failure(node->conn) == US_CONN_CLOSED)
        us_debug("redis %s: %s; reconnecting", node->name, us_redis_conn_error(node->conn));
    else
        us_warn("redis %s: %s; connection closed", node->name, us_redis_conn_error(node->conn));
    us_redis_node_disconnect(node);
}

int us_redis_node_connect(us_redis_node *node)
{
    if (node->conn) {
        check_kept(node);
        if (node->conn)
            return 0;
    }
    if (us_clock_mono_ms() < node->retry_at_ms) {
        us_debug("redis %s: backing off", node->name);
        return -1;
    }
    if (node->budget) {
        if (node->budget->left <= 0) {
            node->budget->refused++;
            us_debug("redis %s: not connecting: this request opened its %s", node->name,
                     "share of new connections");
            return -1;
        }
        node->budget->left--;
    }
    const us_redis_address *a = &node->addr;
    int64_t deadline = us_clock_mono_ms() + a->connect_timeout_ms;
    us_conn_failure failure;
    char why[200];
    node->refused = false;
    node->conn = us_redis_conn_open(a, node->tls, deadline, &failure, why, sizeof why);
    if (!node->conn) {
        note_failure(node, "cannot connect", why);
        return -1;
    }
    if (handshake(node, deadline) < 0) {
        us_redis_node_disconnect(node);
        return -1;
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
}

void us_redis_node_fail(us_redis_node *node, const char *what, const char *detail)
{
    note_failure(node, what, detail);
    us_redis_node_disconnect(node);
}

void us_redis_node_disconnect(us_redis_node *node)
{
    if (node->conn) {
        us_redis_conn_close(node->conn);
        node->conn = NULL;
    }
}

const redisReply *us_redis_node_command(us_redis_node *node, const char *fmt, ...)
{
    if (us_redis_node_connect(node) < 0)
        return NULL;
    us_reply_limits limits;
    va_list ap;
    va_start(ap, fmt);
    us_redis_conn_append_vfmt(node->conn, &limits, fmt, ap);
    va_end(ap);
    int64_t deadline = us_clock_mono_ms() + node->addr.io_timeout_ms;
    const redisReply *r = NULL;
    if (us_redis_conn_flush(node->conn, deadline) < 0 ||
        us_redis_conn_read(node->conn, &limits, deadline, &r, NULL) < 0) {
        us_redis_node_fail(node, "command failed", us_redis_conn_error(node->conn));
        return NULL;
    }
    if (us_redis_conn_has_unread(node->conn)) {
        us_reply_free(r);
        us_redis_node_fail(node, "command failed", "sent data nobody asked for");
        return NULL;
    }
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
