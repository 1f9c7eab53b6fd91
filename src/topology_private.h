/* Internals shared by the topology implementations: one connection to one Redis node,
 * the multi-node pipeline that every implementation sends its work through, and the
 * pure parsers of Redis Cluster replies (unit-tested without a server). */
#ifndef USTATUS_TOPOLOGY_PRIVATE_H
#define USTATUS_TOPOLOGY_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "ustatus/buf.h"
#include "ustatus/redis_address.h"
#include "ustatus/topology.h"

/* ---- one node ---- */

typedef struct us_redis_node {
    us_redis_address addr;     /* URL values merged with the section's options */
    char name[300];            /* "host:port" for logs, never a password */
    redisContext *ctx;         /* NULL while disconnected */
    int64_t retry_at_ms;       /* no connect attempt before this (monotonic ms) */
    int64_t backoff_ms;        /* next back-off step; 0 after a good connect */
    bool connect_tried;        /* a connect was attempted in the current exec round */
    bool down_logged;          /* "unreachable" logged since the last good connect */
    unsigned long reconnects;  /* successful connects after the first */
    bool ever_connected;
    bool refused;              /* the last connect reached the node but AUTH, SELECT or
                                * ROLE failed: a configuration problem, not an outage */
    bool require_master;       /* a new connection must answer ROLE with "master" (Sentinel
                                * client guide, step 3): a demoted master that still accepts
                                * connections would otherwise serve stale reads */
} us_redis_node;

/* Fills node from an address string and the section's defaults (user, password, db,
 * timeouts), values in the URL winning. -1 with err set on a bad address. */
int us_redis_node_init(us_redis_node *node, const char *address, const us_redis_config *rc,
                       char *err, size_t err_len);

/* Points a TCP node at host:port, keeping its credentials, db and timeouts. Returns 1
 * when the address changed (the connection is dropped and the back-off forgotten: a new
 * address deserves a try now), 0 when it is the same. */
int us_redis_node_set_target(us_redis_node *node, const char *host, int port);

/* Connects unless connected or backing off: TCP or unix, timeouts, AUTH, SELECT.
 * Returns 0 when connected, -1 otherwise (logged; back-off advanced). */
int us_redis_node_connect(us_redis_node *node);

/* Drops the connection (keeps the back-off state). */
void us_redis_node_disconnect(us_redis_node *node);

/* Frees the connection; the node struct itself belongs to the caller. */
void us_redis_node_close(us_redis_node *node);

/* Frees a reply of any node's connection. Replies are laid out by redis_node.c, not by
 * hiredis, so freeReplyObject must never see one. NULL is allowed. */
void us_reply_free(redisReply *r);

/* Runs one command synchronously on a connected (or connectable) node; NULL on
 * transport failure (the connection is then dropped). For PING, ROLE, CLUSTER SLOTS. */
redisReply *us_redis_node_command(us_redis_node *node, const char *fmt, ...);

/* ---- pipelines over several nodes ---- */

typedef enum {
    US_PIPE_OK = 0,            /* every command of the group got a reply */
    US_PIPE_FAILED,            /* no connection, or it broke and the one resend failed too */
    US_PIPE_TIMEOUT            /* the node did not answer within io_timeout */
} us_pipe_outcome;

typedef struct us_pipeline_group {
    us_redis_node *node;
    size_t *idx;               /* indices into cmds */
    size_t count;
    const bool *asking;        /* NULL, or per k: send ASKING right before cmds[idx[k]] on
                                * the same connection (Redis Cluster ASK redirection); the
                                * ASKING reply is read and dropped */
    us_pipe_outcome outcome;   /* out: set by us_pipeline_run */
} us_pipeline_group;

/* Sends cmds[idx[k]] for each k in [0, count) to `node`... for every group, writing to all
 * groups before reading from any; a group whose connection breaks (not a timeout) is
 * reconnected and its unanswered commands resent once. Only commands with reply == NULL
 * are sent. Commands that end without a reply keep reply == NULL, and the group's
 * outcome says why. Returns 0 when all got replies, else -1. */
int us_pipeline_run(us_pipeline_group *groups, size_t n_groups, us_redis_cmd *cmds);

/* Client-side sharding: fills groups[s].idx / .count for every shard s in [0, n_shards)
 * with the indices of the commands whose shard_key hashes to s (us_shard_index), request
 * order kept inside a shard. `idx` must hold n entries; the groups point into it. Node
 * pointers are left alone. */
void us_group_by_shard(const us_redis_cmd *cmds, size_t n, us_pipeline_group *groups,
                       size_t n_shards, size_t *idx);

/* Health reports (us_topology_ping): appends one {"node":..,"ok":..,"error":..} entry
 * (a ',' before it unless first; nothing when report is NULL). us_ping_node PINGs the
 * node first (within its back-off: a node backing off is reported unreachable) and
 * returns 0 when it answered. */
void us_ping_report(us_buf *report, bool first, const char *name, const char *error);
int us_ping_node(us_redis_node *node, us_buf *report, bool first);

/* Splits a comma-separated list of addresses (a sentinel_address or cluster_address
 * element) into a new array of trimmed, non-empty strings; frees with us_strv_free. */
char **us_split_addresses(const char *s, size_t *count);
void us_strv_free(char **v, size_t n);

/* ---- Redis Cluster replies (pure functions) ---- */

#define US_CLUSTER_SLOTS 16384

typedef struct us_slot_range {
    unsigned start, end;       /* inclusive, start <= end < 16384 */
    char host[256];
    int port;
} us_slot_range;

/* Reads a CLUSTER SLOTS reply into the master of each slot range. An empty or nil
 * endpoint means "the host this reply came from" (asked_host); a range whose endpoint is
 * "?" (unknown to the node itself) is left out and counted in *skipped. Fails on anything
 * malformed: a range out of bounds or backwards, a bad port, two ranges overlapping, or no
 * usable range at all. Returns the number of ranges with a new array in *out (caller
 * frees), or -1 with a reason in err. */
int us_cluster_slots_parse(const redisReply *r, const char *asked_host, us_slot_range **out,
                           size_t *skipped, char *err, size_t err_len);

typedef struct us_redirect {
    bool ask;                  /* ASK (one command) rather than MOVED (the slot moved) */
    unsigned slot;
    char host[256];            /* "" when the node left it out: the replying node's host */
    int port;
} us_redirect;

/* Parses "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (the host may be
 * empty, or an IPv6 address without brackets). Returns 0, or -1 when the error is
 * anything else or malformed. */
int us_cluster_parse_redirect(const char *s, size_t len, us_redirect *out);

/* ---- implementations ---- */

typedef struct us_topology_vt {
    int (*exec)(us_topology *t, us_redis_cmd *cmds, size_t n);
    int (*ping)(us_topology *t, us_buf *report);
    size_t (*node_count)(const us_topology *t);
    void (*free)(us_topology *t);
} us_topology_vt;

struct us_topology {
    const us_topology_vt *vt;
    /* What decides where a key goes, for us_topology_affinity: the user ID over
     * n_shards shards (jump hash), then, for Redis Cluster, the key's slot. */
    size_t n_shards;
    bool by_slot;
};

us_topology *us_topology_static_create(const us_redis_config *rc, char *err, size_t err_len);
us_topology *us_topology_sentinel_create(const us_redis_config *rc, char *err, size_t err_len);
us_topology *us_topology_cluster_create(const us_redis_config *rc, char *err, size_t err_len);

#endif
