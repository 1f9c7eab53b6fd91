/* Topology dispatch, and the static-nodes topology: one address, or client-side shards
 * over several (Jump Consistent Hash of FNV-1a 64 of the user ID, SPEC §3.2). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topology_private.h"
#include "ustatus/buf.h"
#include "ustatus/hash.h"
#include "ustatus/json.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"

us_topology *us_topology_create(const us_redis_config *rc, char *err, size_t err_len)
{
    /* Precedence (§3): cluster_address, then sentinel_address, then address. */
    if (rc->cluster_address_count > 0)
        return us_topology_cluster_create(rc, err, err_len);
    if (rc->sentinel_address_count > 0)
        return us_topology_sentinel_create(rc, err, err_len);
    return us_topology_static_create(rc, err, err_len);
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

size_t us_topology_node_count(const us_topology *t)
{
    return t->vt->node_count(t);
}

void us_topology_free(us_topology *t)
{
    if (t)
        t->vt->free(t);
}

/* ---- helpers shared by the implementations ---- */

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

char **us_split_addresses(const char *s, size_t *count)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = us_xcalloc(cap, sizeof *v);
    size_t n = 0;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a)
            v[n++] = us_xstrndup(a, (size_t)(b - a));
        if (!*end)
            break;
        p = end + 1;
    }
    *count = n;
    return v;
}

void us_strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

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
    redisReply *r = us_redis_node_command(node, "PING");
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

/* ---- static nodes ---- */

typedef struct static_topology {
    us_topology base;
    us_redis_node *nodes;
    size_t n_nodes;
    us_pipeline_group *groups;  /* one per node, reused across requests */
    size_t *idx;                /* scratch: command indices, grouped by node */
    size_t idx_cap;
} static_topology;

static int static_exec(us_topology *t, us_redis_cmd *cmds, size_t n)
{
    static_topology *st = (static_topology *)t;
    if (n > st->idx_cap) {
        free(st->idx);
        st->idx_cap = n < 64 ? 64 : n;
        st->idx = us_xmalloc(st->idx_cap * sizeof *st->idx);
    }
    us_group_by_shard(cmds, n, st->groups, st->n_nodes, st->idx);
    return us_pipeline_run(st->groups, st->n_nodes, cmds);
}

static int static_ping(us_topology *t, us_buf *report)
{
    static_topology *st = (static_topology *)t;
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

static size_t static_node_count(const us_topology *t)
{
    return ((const static_topology *)t)->n_nodes;
}

static void static_free(us_topology *t)
{
    static_topology *st = (static_topology *)t;
    for (size_t i = 0; i < st->n_nodes; i++)
        us_redis_node_close(&st->nodes[i]);
    free(st->nodes);
    free(st->groups);
    free(st->idx);
    free(st);
}

static const us_topology_vt static_vt = {static_exec, static_ping, static_node_count, static_free};

us_topology *us_topology_static_create(const us_redis_config *rc, char *err, size_t err_len)
{
    if (rc->address_count == 0) {
        us_set_msg(err, err_len, "redis address: no address configured");
        return NULL;
    }
    static_topology *st = us_xcalloc(1, sizeof *st);
    st->base.vt = &static_vt;
    st->base.n_shards = rc->address_count;
    st->nodes = us_xcalloc(rc->address_count, sizeof *st->nodes);
    st->groups = us_xcalloc(rc->address_count, sizeof *st->groups);
    for (size_t i = 0; i < rc->address_count; i++) {
        char why[200];
        if (us_redis_node_init(&st->nodes[i], rc->address[i], rc, why, sizeof why) < 0) {
            us_set_msg(err, err_len, "redis address %zu: %s", i + 1, why);
            st->n_nodes = i;
            static_free(&st->base);
            return NULL;
        }
        st->groups[i].node = &st->nodes[i];
    }
    st->n_nodes = rc->address_count;
    return &st->base;
}
