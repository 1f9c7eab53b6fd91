/* The Redis deployment behind the store (SPEC §3): where each command goes and how it
 * gets there. The store formats commands; a topology routes them to nodes, sends one
 * pipeline per node (written to every node before reading from any), reconnects and
 * retries once after a connection failure, and hands back one reply per command.
 *
 * Implementations (behind the vtable of src/topology_impl.h): static nodes (one address,
 * or client-side shards over several: redis_shards.c), Sentinel-discovered masters
 * (redis_sentinel.c) and Redis Cluster slot routing (redis_cluster.c). */
#ifndef USTATUS_TOPOLOGY_H
#define USTATUS_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "ustatus/buf.h"
#include "ustatus/config.h"

typedef struct us_redis_cmd {
    /* in: set by the caller, borrowed for the duration of us_topology_exec */
    const char *cmd;           /* RESP-encoded command (redisFormatCommand & co.) */
    size_t cmd_len;
    const char *shard_key;     /* what client-side sharding hashes: the user ID */
    size_t shard_key_len;
    const char *slot_key;      /* what Redis Cluster hashes: the Redis key */
    size_t slot_key_len;
    bool write;                /* changes data: confirmed by WAIT when the node's
                                * wait_replicas asks for it */
    const struct us_reply_limits *limits; /* what the reply may be (src/redis_reply.h);
                                * NULL (the usual): the bounds of the command's name, as
                                * us_reply_limits_for gives them. A reply outside them is
                                * a protocol error: reply stays NULL (SPEC §3.8) */
    /* out: set by us_topology_exec */
    const redisReply *reply;   /* owned by this struct, read-only to everyone else: freed
                                * only by us_redis_cmds_clear / us_topology_exec (never
                                * freeReplyObject: the layout is not hiredis's); NULL when
                                * the command failed in transport; an error reply is still
                                * a reply */
} us_redis_cmd;

typedef struct us_topology us_topology;

/* Builds the topology for a redis section: Redis Cluster when cluster_address is set,
 * else Sentinel when sentinel_address is set, else the nodes of address (SPEC §3).
 * Connects to nothing yet (connections are opened lazily by the first us_topology_exec),
 * so an unreachable address is no error here. Borrows nothing from rc after returning.
 * Returns a new topology (us_topology_free), or NULL with a reason in err (no address,
 * a bad address, no sentinel_master_name). */
us_topology *us_topology_create(const us_redis_config *rc, char *err, size_t err_len);

/* Runs every command, about one network round trip for the whole array (SPEC §3.5).
 * Replies already present in cmds[] are freed first. Returns 0 when every command got
 * a reply (possibly an error reply), -1 when at least one has reply == NULL; the
 * reason is logged once per failing node. */
int us_topology_exec(us_topology *t, us_redis_cmd *cmds, size_t n);

/* Frees every reply in cmds[0..n) and sets it to NULL. */
void us_redis_cmds_clear(us_redis_cmd *cmds, size_t n);

/* PINGs every node (shard, master). Returns 0 when all answered, -1 otherwise; in
 * both cases appends a JSON array of {"node":"host:port","ok":bool,"error":"..."} to
 * report when report is not NULL. */
int us_topology_ping(us_topology *t, us_buf *report);

/* Commands whose keys have the same affinity always go to the same node, and may be
 * sent as one multi-key command (a Redis Cluster requires one slot: the slot is part of
 * the affinity there). user is what client-side sharding hashes, key the Redis key. */
uint64_t us_topology_affinity(const us_topology *t, const char *user, size_t user_len,
                              const char *key, size_t key_len);

/* Closes every connection and frees t. NULL is allowed. Replies still held in commands
 * are not the topology's: clear them with us_redis_cmds_clear, before or after. */
void us_topology_free(us_topology *t);

#endif
