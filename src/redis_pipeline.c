/* Pipelines over several Redis nodes, and the grouping of commands by shard. */
#include "redis_pipeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis_reply.h"
#include "ustatus/hash.h"
#include "ustatus/mem.h"

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
                us_redis_node_fail(groups[g].node, "write failed", c->errstr);
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
                us_redis_node_fail(grp->node,
                                   state[g] == G_TIMEOUT ? "timed out" : "connection lost",
                                   c->errstr);
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
