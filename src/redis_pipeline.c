/* Pipelines over several Redis nodes, and the grouping of commands by shard. */
#include "redis_pipeline.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis_conn.h"
#include "redis_reply.h"
#include "ustatus/clock.h"
#include "ustatus/hash.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"

typedef enum { G_IDLE = 0, G_SENT, G_BROKEN, G_TIMEOUT, G_REFUSED, G_DONE } group_state;

typedef struct group_run {
    group_state state;
    bool wait;                 /* WAIT follows the group's commands in this exchange */
    int64_t deadline_ms;       /* of the node's exchange: io_timeout from the first write */
} group_run;

static const us_reply_limits asking_limits = {
    .types = US_REPLY_T(REDIS_REPLY_STATUS), .max_bulk = 256, .max_bytes = 512};
static const us_reply_limits wait_limits = {
    .types = US_REPLY_T(REDIS_REPLY_INTEGER), .max_bulk = 256, .max_bytes = 512};

static bool is_write_done(const us_redis_cmd *cmd)
{
    return cmd->write && cmd->reply && cmd->reply->type != REDIS_REPLY_ERROR;
}

/* The group's writes that Redis ran lose their replies: without the replicas' word they
 * are not acknowledged (an error reply stays: nothing was written). */
static void drop_write_replies(const us_pipeline_group *grp, us_redis_cmd *cmds)
{
    for (size_t k = 0; k < grp->count; k++) {
        us_redis_cmd *cmd = &cmds[grp->idx[k]];
        if (is_write_done(cmd)) {
            us_reply_free(cmd->reply);
            cmd->reply = NULL;
        }
    }
}

static bool has_pending_write(const us_pipeline_group *g, const us_redis_cmd *cmds)
{
    for (size_t k = 0; k < g->count; k++)
        if (cmds[g->idx[k]].write && cmds[g->idx[k]].reply == NULL)
            return true;
    return false;
}

/* WAIT's answer: confirmed, or the writes are dropped (one warning per node until
 * replicas confirm again). */
static void take_wait(us_pipeline_group *grp, us_redis_cmd *cmds, const redisReply *r)
{
    us_redis_node *node = grp->node;
    bool ok = r->type == REDIS_REPLY_INTEGER && r->integer >= node->wait_replicas;
    if (ok) {
        if (node->unconfirmed_logged)
            us_info("redis %s: writes confirmed by %d replicas again", node->name,
                    node->wait_replicas);
        node->unconfirmed_logged = false;
        return;
    }
    drop_write_replies(grp, cmds);
    grp->outcome = US_PIPE_UNCONFIRMED;
    if (!node->unconfirmed_logged) {
        if (r->type == REDIS_REPLY_INTEGER)
            us_warn("redis %s: WAIT: %lld of %d replicas confirmed the writes within "
                    "%lld ms; unconfirmed writes are answered as failures (error 100)",
                    node->name, r->integer, node->wait_replicas,
                    (long long)node->wait_timeout_ms);
        else
            us_warn("redis %s: WAIT failed: %.120s; unconfirmed writes are answered as "
                    "failures (error 100)", node->name, r->str ? r->str : "?");
        node->unconfirmed_logged = true;
    }
}

static size_t pending_count(const us_pipeline_group *g, const us_redis_cmd *cmds)
{
    size_t n = 0;
    for (size_t k = 0; k < g->count; k++)
        n += cmds[g->idx[k]].reply == NULL;
    return n;
}

/* A reply outside its bounds, or data nobody asked for: the replies cannot be matched to
 * the commands any more, so none of the group's is kept; the node logs it ("bad reply",
 * detail) and backs off. */
static void refuse_group(us_pipeline_group *grp, us_redis_cmd *cmds, group_run *run,
                         const char *detail)
{
    for (size_t k = 0; k < grp->count; k++) {
        us_redis_cmd *cmd = &cmds[grp->idx[k]];
        us_reply_free(cmd->reply);
        cmd->reply = NULL;
    }
    run->state = G_REFUSED;
    grp->outcome = US_PIPE_REFUSED;
    us_redis_node_fail(grp->node, "bad reply", detail);
}

/* A transport or protocol failure of the group's connection (what: "write failed", ...):
 * how it ends, logged and backed off by the node. */
static void group_failed(us_pipeline_group *grp, us_redis_cmd *cmds, group_run *run,
                         const char *what)
{
    us_redis_conn *c = grp->node->conn;
    /* Writes whose WAIT was not read are not confirmed, whatever ends the exchange: a
     * broken connection resends them (idempotent, §3.6) with their own WAIT, a timeout
     * leaves them unanswered. */
    if (run->wait)
        drop_write_replies(grp, cmds);
    switch (us_redis_conn_failure(c)) {
    case US_CONN_TIMEOUT:
        run->state = G_TIMEOUT;
        grp->outcome = US_PIPE_TIMEOUT;
        what = "timed out";
        break;
    case US_CONN_PROTOCOL:
        refuse_group(grp, cmds, run, us_redis_conn_error(c));
        return;
    default:
        run->state = G_BROKEN;
        break;
    }
    us_redis_node_fail(grp->node, what, us_redis_conn_error(c));
}

/* Reads the replies of one group, in order, up to its deadline. */
static void read_group(us_pipeline_group *grp, us_redis_cmd *cmds, group_run *run)
{
    us_redis_conn *c = grp->node->conn;
    size_t total = 0;
    for (size_t k = 0; k < grp->count; k++) {
        us_redis_cmd *cmd = &cmds[grp->idx[k]];
        if (cmd->reply)
            continue;
        const redisReply *reply = NULL;
        size_t bytes = 0;
        if (grp->asking && grp->asking[k]) {
            /* ASKING's own +OK; an error here shows in the command's reply anyway */
            if (us_redis_conn_read(c, &asking_limits, run->deadline_ms, &reply, NULL) < 0) {
                group_failed(grp, cmds, run, "connection lost");
                return;
            }
            us_reply_free(reply);
        }
        us_reply_limits derived;
        const us_reply_limits *limits =
            cmd->limits ? cmd->limits : us_reply_limits_for(cmd->cmd, cmd->cmd_len, &derived);
        if (us_redis_conn_read(c, limits, run->deadline_ms, &reply, &bytes) < 0) {
            group_failed(grp, cmds, run, "connection lost");
            return;
        }
        cmd->reply = reply;
        total += bytes;
        if (total > US_REPLY_MAX_EXCHANGE_BYTES) {
            refuse_group(grp, cmds, run, "replies over the exchange's bound");
            return;
        }
    }
    if (run->wait) {
        const redisReply *reply = NULL;
        if (us_redis_conn_read(c, &wait_limits, run->deadline_ms, &reply, NULL) < 0) {
            group_failed(grp, cmds, run, "connection lost");
            return;
        }
        take_wait(grp, cmds, reply);
        us_reply_free(reply);
    }
    if (us_redis_conn_has_unread(c)) {
        /* a reply nobody asked for came with ours: which is which is anyone's guess */
        refuse_group(grp, cmds, run, "sent data nobody asked for");
        return;
    }
    run->state = G_DONE;
}

/* One exchange with every group marked idle in `run`: connect, queue the unanswered
 * commands, write to all, then read from all. Leaves each group's end in run[]. */
static void pipeline_round(us_pipeline_group *groups, size_t n_groups, us_redis_cmd *cmds,
                           group_run *run, bool first)
{
    for (size_t g = 0; g < n_groups; g++) {
        us_pipeline_group *grp = &groups[g];
        if (run[g].state != G_IDLE)
            continue;
        if (pending_count(grp, cmds) == 0 || us_redis_node_connect(grp->node) < 0) {
            run[g].state = G_DONE;
            continue;
        }
        us_redis_conn *c = grp->node->conn;
        run[g].wait = grp->node->wait_replicas > 0 && has_pending_write(grp, cmds);
        for (size_t k = 0; k < grp->count; k++) {
            const us_redis_cmd *cmd = &cmds[grp->idx[k]];
            if (cmd->reply)
                continue;
            if (grp->asking && grp->asking[k])
                us_redis_conn_append(c, "*1\r\n$6\r\nASKING\r\n", 16);
            us_redis_conn_append(c, cmd->cmd, cmd->cmd_len);
        }
        if (run[g].wait) {
            /* Redis answers once that many replicas hold everything this connection
             * wrote, or when the timeout ends; README "Writes confirmed by replicas" */
            char n[24], ms[24], wait[96];
            int nl = snprintf(n, sizeof n, "%d", grp->node->wait_replicas);
            int ml = snprintf(ms, sizeof ms, "%lld", (long long)grp->node->wait_timeout_ms);
            int wl = snprintf(wait, sizeof wait, "*3\r\n$4\r\nWAIT\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n",
                              nl, n, ml, ms);
            us_redis_conn_append(c, wait, (size_t)wl);
        }
        /* One deadline for the whole exchange with the node, not one per read (§3.8);
         * the resend after a broken connection keeps it. */
        if (first)
            run[g].deadline_ms = us_clock_mono_ms() + grp->node->addr.io_timeout_ms;
        run[g].state = G_SENT;
    }
    for (size_t g = 0; g < n_groups; g++) {
        if (run[g].state != G_SENT)
            continue;
        if (us_redis_conn_flush(groups[g].node->conn, run[g].deadline_ms) < 0)
            group_failed(&groups[g], cmds, &run[g], "write failed");
    }
    for (size_t g = 0; g < n_groups; g++)
        if (run[g].state == G_SENT)
            read_group(&groups[g], cmds, &run[g]);
}

int us_pipeline_run(us_pipeline_group *groups, size_t n_groups, us_redis_cmd *cmds)
{
    group_run stack_run[16];
    group_run *run = n_groups <= 16 ? stack_run : us_xcalloc(n_groups, sizeof *run);
    memset(run, 0, n_groups * sizeof *run);
    for (size_t g = 0; g < n_groups; g++)
        groups[g].outcome = US_PIPE_OK;

    pipeline_round(groups, n_groups, cmds, run, true);
    /* A broken connection (not a timeout: retrying that would double the wait; not a bad
     * reply: a node that sent one gets no second chance in this request) gets one
     * reconnect and resend per request; every command we send is idempotent (§3.6). */
    bool retry = false;
    for (size_t g = 0; g < n_groups; g++) {
        if (run[g].state == G_BROKEN) {
            run[g].state = G_IDLE;
            groups[g].node->retry_at_ms = 0;
            retry = true;
        } else {
            run[g].state = G_DONE;
        }
    }
    if (retry)
        pipeline_round(groups, n_groups, cmds, run, false);

    int rc = 0;
    for (size_t g = 0; g < n_groups; g++) {
        if (pending_count(&groups[g], cmds)) {
            rc = -1;
            if (groups[g].outcome == US_PIPE_OK)
                groups[g].outcome = US_PIPE_FAILED;
        } else {
            groups[g].outcome = US_PIPE_OK;
        }
    }
    if (run != stack_run)
        free(run);
    return rc;
}

/* ---- client-side shards ---- */

void us_group_by_shard(const us_redis_cmd *cmds, size_t n, us_pipeline_group *groups,
                       size_t n_shards, size_t *idx)
{
    if (n_shards == 1) {
        for (size_t i = 0; i < n; i++)
            idx[i] = i;
        groups[0].idx = idx;
        groups[0].count = n;
        return;
    }
    /* Counting sort of command indices by shard, keeping request order inside a shard. */
    size_t *shard_of = us_xmalloc((n ? n : 1) * sizeof *shard_of);
    size_t *start = us_xcalloc(n_shards + 1, sizeof *start);
    for (size_t i = 0; i < n; i++) {
        shard_of[i] = us_shard_index(cmds[i].shard_key, cmds[i].shard_key_len, n_shards);
        start[shard_of[i] + 1]++;
    }
    for (size_t s = 0; s < n_shards; s++)
        start[s + 1] += start[s];
    for (size_t s = 0; s < n_shards; s++) {
        groups[s].idx = idx + start[s];
        groups[s].count = 0;
    }
    for (size_t i = 0; i < n; i++) {
        us_pipeline_group *g = &groups[shard_of[i]];
        g->idx[g->count++] = i;
    }
    free(start);
    free(shard_of);
}
