/* Pipelines over several Redis nodes (SPEC §3.5, §3.6): one pipeline per node, written to
 * every node before reading from any, one reconnect and resend after a broken
 * connection; and the grouping of a request's commands by client-side shard. Every
 * topology sends its work through here. */
#ifndef USTATUS_REDIS_PIPELINE_H
#define USTATUS_REDIS_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "redis_node.h"
#include "ustatus/topology.h"

typedef enum {
    US_PIPE_OK = 0,            /* every command of the group got a reply */
    US_PIPE_FAILED,            /* no connection, or it broke and the one resend failed too */
    US_PIPE_TIMEOUT,           /* the node did not answer within io_timeout */
    US_PIPE_REFUSED,           /* the node sent a reply outside its bounds, or data nobody
                                * asked for (SPEC §3.8): connection closed, not resent */
    US_PIPE_UNCONFIRMED        /* the node ran the writes, but fewer replicas than its
                                * wait_replicas confirmed them within wait_timeout: their
                                * replies are dropped, the connection kept */
} us_pipe_outcome;

typedef struct us_pipeline_group {
    us_redis_node *node;       /* borrowed */
    size_t *idx;               /* indices into cmds; borrowed */
    size_t count;
    const bool *asking;        /* NULL, or per k: send ASKING right before cmds[idx[k]] on
                                * the same connection (Redis Cluster ASK redirection); the
                                * ASKING reply is read and dropped */
    us_pipe_outcome outcome;   /* out: set by us_pipeline_run */
} us_pipeline_group;

/* Sends cmds[idx[k]] for each k in [0, count) to `node`... for every group, writing to all
 * groups before reading from any, each node's exchange within one deadline of its
 * io_timeout; a group whose connection breaks (not a timeout, not a bad reply) is
 * reconnected and its unanswered commands resent once, within the same deadline. Each
 * reply is checked against its command's bounds (us_redis_cmd.limits), and the replies
 * of one exchange together against US_REPLY_MAX_EXCHANGE_BYTES; a group whose node broke
 * them keeps no reply. Only commands with reply == NULL
 * are sent; each reply received is stored in its command (which then owns it: freed by
 * us_redis_cmds_clear). Commands that end without a reply keep reply == NULL, and the
 * group's outcome says why (node failures are logged and back off, as redis_node.h
 * says). When the node has wait_replicas and the group sends a write (us_redis_cmd.write),
 * WAIT wait_replicas wait_timeout follows the group's commands in the same exchange; if
 * fewer replicas confirm, the writes that succeeded lose their replies (error replies,
 * such as MOVED or READONLY, are kept: nothing was written) and the outcome is
 * US_PIPE_UNCONFIRMED. Returns 0 when all got replies, else -1. */
int us_pipeline_run(us_pipeline_group *groups, size_t n_groups, us_redis_cmd *cmds);

/* Client-side sharding: fills groups[s].idx / .count for every shard s in [0, n_shards)
 * with the indices of the commands whose shard_key hashes to s (us_shard_index), request
 * order kept inside a shard. `idx` must hold n entries; the groups point into it. Node
 * pointers, asking and outcome are left alone. */
void us_group_by_shard(const us_redis_cmd *cmds, size_t n, us_pipeline_group *groups,
                       size_t n_shards, size_t *idx);

#endif
