/* The static-nodes topology: one address, or client-side shards over several (Jump
 * Consistent Hash of FNV-1a 64 of the user ID, SPEC §3.2), each one node. */
#include <stdlib.h>

#include "redis_node.h"
#include "redis_pipeline.h"
#include "topology_impl.h"
#include "ustatus/buf.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"

typedef struct shards_topology {
    us_topology base;
    us_redis_node *nodes;
    size_t n_nodes;
    us_pipeline_group *groups;  /* one per node, reused across requests */
    size_t *idx;                /* scratch: command indices, grouped by node */
    size_t idx_cap;
    us_redis_tls_slot tls;      /* redis.tls, created when a node needs it */
} shards_topology;

static int shards_exec(us_topology *t, us_redis_cmd *cmds, size_t n)
{
    shards_topology *st = (shards_topology *)t;
    if (n > st->idx_cap) {
        free(st->idx);
        st->idx_cap = n < 64 ? 64 : n;
        st->idx = us_xmalloc(st->idx_cap * sizeof *st->idx);
    }
    us_group_by_shard(cmds, n, st->groups, st->n_nodes, st->idx);
    return us_pipeline_run(st->groups, st->n_nodes, cmds);
}

static int shards_ping(us_topology *t, us_buf *report)
{
    shards_topology *st = (shards_topology *)t;
    int rc = 0;
    if (report)
        us_buf_putc(report, '[');
    for (size_t i = 0; i < st->n_nodes; i++)
        if (us_ping_node(&st->nodes[i], report, i == 0) < 0)
            rc = -1;
    if (report)
        us_buf_putc(report, ']');
    return rc;
}

static void shards_free(us_topology *t)
{
    shards_topology *st = (shards_topology *)t;
    for (size_t i = 0; i < st->n_nodes; i++)
        us_redis_node_disconnect(&st->nodes[i]);
    free(st->nodes);
    free(st->groups);
    free(st->idx);
    us_redis_tls_free(st->tls.tls);
    free(st);
}

static const us_topology_vt shards_vt = {shards_exec, shards_ping, shards_free};

us_topology *us_topology_shards_create(const us_redis_config *rc, char *err, size_t err_len)
{
    if (rc->address_count == 0) {
        us_set_msg(err, err_len, "redis address: no address configured");
        return NULL;
    }
    shards_topology *st = us_xcalloc(1, sizeof *st);
    st->base.vt = &shards_vt;
    st->base.n_shards = rc->address_count;
    st->nodes = us_xcalloc(rc->address_count, sizeof *st->nodes);
    st->groups = us_xcalloc(rc->address_count, sizeof *st->groups);
    st->tls = (us_redis_tls_slot){&rc->tls, "redis tls", NULL};
    for (size_t i = 0; i < rc->address_count; i++) {
        char why[200];
        if (us_redis_node_init(&st->nodes[i], rc->address[i], rc, &st->tls, why, sizeof why) < 0) {
            us_set_msg(err, err_len, "redis address %zu: %s", i + 1, why);
            st->n_nodes = i;
            shards_free(&st->base);
            return NULL;
        }
        st->groups[i].node = &st->nodes[i];
    }
    st->n_nodes = rc->address_count;
    return &st->base;
}
