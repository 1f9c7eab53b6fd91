/* The topology facade: picks the implementation a redis section asks for, and forwards
 * to its vtable. The implementations (redis_shards.c, redis_sentinel.c,
 * redis_cluster.c) and what they share live below; none of them calls back up here. */
#include "ustatus/topology.h"

#include "redis_reply.h"
#include "topology_impl.h"
#include "ustatus/hash.h"

us_topology *us_topology_create(const us_redis_config *rc, char *err, size_t err_len)
{
    /* Precedence (§3): cluster_address, then sentinel_address, then address. */
    if (rc->cluster_address_count > 0)
        return us_topology_cluster_create(rc, err, err_len);
    if (rc->sentinel_address_count > 0)
        return us_topology_sentinel_create(rc, err, err_len);
    return us_topology_shards_create(rc, err, err_len);
}

int us_topology_exec(us_topology *t, us_redis_cmd *cmds, size_t n)
{
    us_redis_cmds_clear(cmds, n);
    if (n == 0)
        return 0;
    return t->vt->exec(t, cmds, n);
}

void us_redis_cmds_clear(us_redis_cmd *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cmds[i].reply) {
            us_reply_free(cmds[i].reply);
            cmds[i].reply = NULL;
        }
}

int us_topology_ping(us_topology *t, us_buf *report)
{
    return t->vt->ping(t, report);
}

uint64_t us_topology_affinity(const us_topology *t, const char *user, size_t user_len,
                              const char *key, size_t key_len)
{
    uint64_t shard = us_shard_index(user, user_len, t->n_shards);
    return t->by_slot ? shard << 14 | us_cluster_slot(key, key_len) : shard;
}

void us_topology_free(us_topology *t)
{
    if (t)
        t->vt->free(t);
}
