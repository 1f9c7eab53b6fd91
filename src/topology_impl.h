/* What a topology implementation provides to the facade (topology.c): the base struct
 * with its vtable, and the three constructors. Types and constructors only: the helpers
 * the implementations share live below them (redis_pipeline.h, redis_node.h,
 * redis_reply.h), so that nothing below topology.c calls back into it. */
#ifndef USTATUS_TOPOLOGY_IMPL_H
#define USTATUS_TOPOLOGY_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "ustatus/buf.h"
#include "ustatus/config.h"
#include "ustatus/topology.h"

typedef struct us_topology_vt {
    /* us_topology_exec with n > 0, every cmds[i].reply NULL on entry */
    int (*exec)(us_topology *t, us_redis_cmd *cmds, size_t n);
    int (*ping)(us_topology *t, us_buf *report);  /* us_topology_ping */
    void (*free)(us_topology *t);                 /* us_topology_free, t not NULL */
} us_topology_vt;

/* The first member of every implementation's struct. */
struct us_topology {
    const us_topology_vt *vt;
    /* What decides where a key goes, for us_topology_affinity: the user ID over
     * n_shards shards (jump hash), then, for Redis Cluster, the key's slot. */
    size_t n_shards;
    bool by_slot;
};

/* Each builds its topology from a redis section, connecting to nothing, as
 * us_topology_create says: a new topology (freed through its vt->free), or NULL with a
 * reason in err. rc is not borrowed after returning. */

/* Static nodes: one address, or client-side shards over several (redis_shards.c). */
us_topology *us_topology_shards_create(const us_redis_config *rc, char *err, size_t err_len);
/* Sentinel-discovered masters, one per sentinel_address element (redis_sentinel.c). */
us_topology *us_topology_sentinel_create(const us_redis_config *rc, char *err, size_t err_len);
/* Redis Cluster, one per cluster_address element (redis_cluster.c). */
us_topology *us_topology_cluster_create(const us_redis_config *rc, char *err, size_t err_len);

#endif
