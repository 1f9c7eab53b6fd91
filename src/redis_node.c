/* One connection to one Redis node, and pipelines over several nodes. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "topology_private.h"
#include "ustatus/buf.h"
#include "ustatus/clock.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
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

/* ---- reply objects ----
 * hiredis's own functions take two allocations per object (the object, then its string
 * or its element vector), and a get reads four objects per user. Here each object is
 * one allocation with its bytes or its vector behind it. The fields mean what they mean
 * in hiredis (strings stay NUL-terminated, an empty array has no vector), so code that
 * reads replies is unchanged; only freeing differs: us_reply_free. */

static void attach(const redisReadTask *task, redisReply *r)
{
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
}

static redisReply *new_reply(const redisReadTask *task, int type, size_t extra)
{
    redisReply *r = malloc(sizeof *r + extra);
    if (!r)
        return NULL; /* hiredis reports it as out of memory */
    *r = (redisReply){.type = type};
    attach(task, r);
    return r;
}

static void *reply_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = new_reply(task, task->type, len + 1);
    if (!r)
        return NULL;
    r->str = (char *)(r + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *reply_array(const redisReadTask *task, int elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    redisReply *r = new_reply(task, REDIS_REPLY_ARRAY, n * sizeof(redisReply *));
    if (!r)
        return NULL;
    if (n) {
        /* A reply cut short by an error is freed with the slots not yet filled. */
        r->element = (redisReply **)(r + 1);
        memset(r->element, 0, n * sizeof(redisReply *));
    }
    r->elements = n;
    return r;
}

static void *reply_integer(const redisReadTask *task, long long value)
{
    redisReply *r = new_reply(task, REDIS_REPLY_INTEGER, 0);
    if (r)
        r->integer = value;
    return r;
}

/* Every nil is this one object: a get of users with no state or no online time reads
 * many, and a nil has nothing of its own. Nothing writes into a reply, so sharing is
 * safe; us_reply_free knows not to free it. */
static redisReply nil_reply = {.type = REDIS_REPLY_NIL};

static void *reply_nil(const redisReadTask *task)
{
    attach(task, &nil_reply);
    return &nil_reply;
}

void us_reply_free(redisReply *r)
{
    if (!r || r == &nil_reply)
        return;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            us_reply_free(r->element[i]);
    free(r);
}

static void reply_free(void *r)
{
    us_reply_free(r);
}

static redisReplyObjectFunctions reply_functions = {
    .createString = reply_string,
    .createArray = reply_array,
    .createInteger = reply_integer,
    .createNil = reply_nil,
    .freeObject = reply_free,
};

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

/* AUTH and SELECT on a fresh connection. */
static int handshake(us_redis_node *node)
{
    const us_redis_address *a = &node->addr;
    redisReply *r = NULL;
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
    c->reader->fn = &reply_functions; /* before the first reply: AUTH's */
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
    if (node->ever_connected) {
        node->reconnects++;
        us_metrics_redis_reconnect();
    }
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

void us_redis_node_disconnect(us_redis_node *node)
{
    if (node->ctx) {
        redisFree(node->ctx);
        node->ctx = NULL;
    }
}

void us_redis_node_close(us_redis_node *node)
{
    us_redis_node_disconnect(node);
}

redisReply *us_redis_node_command(us_redis_node *node, const char *fmt, ...)
{
    if (us_redis_node_connect(node) < 0)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(node->ctx, fmt, ap);
    va_end(ap);
    if (!r) {
        note_failure(node, "command failed", node->ctx->errstr);
        us_redis_node_disconnect(node);
    }
    return r;
}

/* ---- pipelines ---- */

typedef enum { G_IDLE = 0, G_SENT, G_BROKEN, G_TIMEOUT, G_DONE } group_state;

static bool is_timeout(int saved_errno, const redisContext *c)
{
    return c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
}

static size_t pending_count(const us_pipeline_group *g, const us_redis_cmd *cmds)
{
    size_t n = 0;
    for (size_t k = 0; k < g->count; k++)
        n += cmds[g->idx[k]].reply == NULL;
    return n;
}

/* One exchange with every group marked in `run`: connect, queue the unanswered
 * commands, write to all, then read from all. Leaves each group's outcome in state[]. */
static void pipeline_round(us_pipeline_group *groups, size_t n_groups, us_redis_cmd *cmds,
                           group_state *state)
{
    for (size_t g = 0; g < n_groups; g++) {
        us_pipeline_group *grp = &groups[g];
        if (state[g] != G_IDLE)
            continue;
        if (pending_count(grp, cmds) == 0 || us_redis_node_connect(grp->node) < 0) {
            state[g] = G_DONE;
            continue;
        }
        for (size_t k = 0; k < grp->count; k++) {
            us_redis_cmd *cmd = &cmds[grp->idx[k]];
            if (cmd->reply)
                continue;
            if (grp->asking && grp->asking[k])
                redisAppendCommand(grp->node->ctx, "ASKING");
            redisAppendFormattedCommand(grp->node->ctx, cmd->cmd, cmd->cmd_len);
        }
        state[g] = G_SENT;
    }
    for (size_t g = 0; g < n_groups; g++) {
        if (state[g] != G_SENT)
            continue;
        redisContext *c = groups[g].node->ctx;
        int done = 0;
        while (!done) {
            if (redisBufferWrite(c, &done) != REDIS_OK) {
                state[g] = is_timeout(errno, c) ? G_TIMEOUT : G_BROKEN;
                if (state[g] == G_TIMEOUT)
                    groups[g].outcome = US_PIPE_TIMEOUT;
                note_failure(groups[g].node, "write failed", c->errstr);
                us_redis_node_disconnect(groups[g].node);
                break;
            }
        }
    }
    for (size_t g = 0; g < n_groups; g++) {
        if (state[g] != G_SENT)
            continue;
        us_pipeline_group *grp = &groups[g];
        redisContext *c = grp->node->ctx;
        state[g] = G_DONE;
        for (size_t k = 0; k < grp->count; k++) {
            us_redis_cmd *cmd = &cmds[grp->idx[k]];
            if (cmd->reply)
                continue;
            void *reply = NULL;
            int rc = redisGetReply(c, &reply);
            if (rc == REDIS_OK && grp->asking && grp->asking[k]) {
                /* ASKING's own +OK; an error here shows in the command's reply anyway */
                us_reply_free(reply);
                reply = NULL;
                rc = redisGetReply(c, &reply);
            }
            if (rc != REDIS_OK) {
                state[g] = is_timeout(errno, c) ? G_TIMEOUT : G_BROKEN;
                if (state[g] == G_TIMEOUT)
                    grp->outcome = US_PIPE_TIMEOUT;
                note_failure(grp->node, state[g] == G_TIMEOUT ? "timed out" : "connection lost",
                             c->errstr);
                us_redis_node_disconnect(grp->node);
                break;
            }
            cmd->reply = reply;
        }
    }
}

int us_pipeline_run(us_pipeline_group *groups, size_t n_groups, us_redis_cmd *cmds)
{
    group_state stack_state[16];
    group_state *state = n_groups <= 16 ? stack_state : us_xcalloc(n_groups, sizeof *state);
    memset(state, 0, n_groups * sizeof *state);
    for (size_t g = 0; g < n_groups; g++)
        groups[g].outcome = US_PIPE_OK;

    pipeline_round(groups, n_groups, cmds, state);
    /* A broken connection (not a timeout: retrying that would double the wait) gets one
     * reconnect and resend per request; every command we send is idempotent (§3.6). */
    bool retry = false;
    for (size_t g = 0; g < n_groups; g++) {
        if (state[g] == G_BROKEN) {
            state[g] = G_IDLE;
            groups[g].node->retry_at_ms = 0;
            retry = true;
        } else {
            state[g] = G_DONE;
        }
    }
    if (retry)
        pipeline_round(groups, n_groups, cmds, state);

    int rc = 0;
    for (size_t g = 0; g < n_groups; g++) {
        if (pending_count(&groups[g], cmds)) {
            rc = -1;
            if (groups[g].outcome != US_PIPE_TIMEOUT)
                groups[g].outcome = US_PIPE_FAILED;
        } else {
            groups[g].outcome = US_PIPE_OK;
        }
    }
    if (state != stack_state)
        free(state);
    return rc;
}
