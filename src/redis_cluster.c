/* Redis Cluster (SPEC §3.4): keys routed by CRC16 slot through a slot map read with
 * CLUSTER SLOTS from any reachable node; one pipeline per node, all written before any
 * is read (§3.5); redirections handled as the cluster specification says:
 *   MOVED       the slot lives elsewhere now: resend to the named node, refresh the map
 *               (at most once per request);
 *   ASK         this key is being migrated: ASKING + the command to the named node, same
 *               connection, back to back; the map is left alone;
 *   TRYAGAIN    (keys of a slot half-way through a migration) and CLUSTERDOWN: resend
 *   CLUSTERDOWN after a short pause;
 * at most 5 redirections per command. A node that cannot be reached (after the pipeline's
 * own reconnect) triggers a map refresh and one resend wherever the map says then.
 * Several cluster_address elements are independent clusters, chosen per user by jump hash
 * like static shards. TLS (§3.7): the seeds and every node the cluster names use
 * redis.tls (or TLS when the seed is a rediss:// address). One request opens at most
 * MAX_NEW_CONNECTIONS_PER_REQUEST new connections. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis_node.h"
#include "redis_pipeline.h"
#include "redis_reply.h"
#include "topology_impl.h"
#include "ustatus/buf.h"
#include "ustatus/clock.h"
#include "ustatus/hash.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"
#include "ustatus/redis_address.h"

#define NO_NODE UINT32_MAX
#define MAX_REDIRECTS 5
/* TRYAGAIN / CLUSTERDOWN: first pause, then each further one; at most MAX_REDIRECTS of
 * them per request, so a request waits at most about half a second for a busy cluster. */
#define PAUSE_FIRST_MS 50
#define PAUSE_NEXT_MS 100
/* A refresh asks every connected node, but opens at most this many new connections: a
 * dead host costs a connect timeout each time. */
#define REFRESH_MAX_CONNECTS 3
/* Nodes are created from what the cluster tells us; a bound keeps a confused (or hostile)
 * cluster from growing the table without end. */
#define MAX_NODES_PER_CLUSTER 1000
/* New connections one request (or health check) may open, all clusters together: a
 * healthy cluster needs one per master at most, and a slot map or redirections naming
 * hundreds of nodes (a confused or hostile cluster) must not make a worker open hundreds
 * of connections for one request. Commands for nodes beyond it fail (error 100). */
#define MAX_NEW_CONNECTIONS_PER_REQUEST 16

/* ---- topology ---- */

typedef struct cnode {
    us_redis_node node;
    size_t cluster;
    size_t group;              /* scratch during a round: its pipeline group, or SIZE_MAX */
} cnode;

typedef struct cluster {
    uint32_t *slots;           /* [US_CLUSTER_SLOTS] node id, NO_NODE when uncovered */
    size_t n_nodes;            /* nodes of this cluster in the topology's table */
    uint32_t template_node;    /* a seed: new nodes copy its credentials and timeouts */
    size_t cursor;             /* where the next refresh starts asking */
    size_t uncovered;          /* slots no master serves, in the current map */
    char error[256];           /* why the last refresh failed */
    bool error_logged;
} cluster;

typedef struct cmd_state {
    uint32_t node;             /* where it goes next; NO_NODE: where the map says */
    unsigned char redirects;
    bool asking;
    bool resent;               /* its one resend after a connection failure is used */
    bool final;
} cmd_state;

typedef struct cluster_topology {
    us_topology base;
    cluster *clusters;
    size_t n_clusters;
    cnode **nodes;             /* all clusters' nodes; ids index this; entries never move */
    size_t n_nodes, nodes_cap;
    /* per-request scratch, kept to avoid allocations on every request */
    cmd_state *state;
    size_t *cluster_of;
    size_t *idx;
    bool *asking;
    size_t cmd_cap;
    us_pipeline_group *groups;
    size_t groups_cap;
    us_connect_budget budget;  /* every node points here; reset by each request */
    us_redis_tls_slot tls;     /* redis.tls, for the seeds and every node named */
} cluster_topology;

/* Finds the node host:port of cluster c, creating it from the cluster's template when it
 * is new. NO_NODE when the table is full. */
static uint32_t node_for(cluster_topology *ct, size_t c, const char *host, int port)
{
    for (size_t i = 0; i < ct->n_nodes; i++) {
        const us_redis_address *a = &ct->nodes[i]->node.addr;
        if (ct->nodes[i]->cluster == c && a->kind == US_ADDR_TCP && a->port == port &&
            strcmp(a->host, host) == 0)
            return (uint32_t)i;
    }
    cluster *cl = &ct->clusters[c];
    if (cl->n_nodes >= MAX_NODES_PER_CLUSTER) {
        us_error("redis cluster %zu: more than %d nodes, ignoring %s:%d", c + 1,
                 MAX_NODES_PER_CLUSTER, host, port);
        return NO_NODE;
    }
    if (ct->n_nodes == ct->nodes_cap) {
        ct->nodes_cap = ct->nodes_cap ? ct->nodes_cap * 2 : 8;
        ct->nodes = us_xrealloc(ct->nodes, ct->nodes_cap * sizeof *ct->nodes);
    }
    cnode *cn = us_xcalloc(1, sizeof *cn);
    us_redis_node_init_like(&cn->node, &ct->nodes[cl->template_node]->node, host, port);
    cn->cluster = c;
    cn->group = SIZE_MAX;
    ct->nodes[ct->n_nodes] = cn;
    cl->n_nodes++;
    return (uint32_t)ct->n_nodes++;
}

/* Builds a new map from ranges and swaps it in; the old one stays if this fails. */
static int install_map(cluster_topology *ct, size_t c, const us_slot_range *ranges, size_t n,
                       size_t skipped, const char *from)
{
    cluster *cl = &ct->clusters[c];
    uint32_t *slots = us_xmalloc(US_CLUSTER_SLOTS * sizeof *slots);
    for (size_t s = 0; s < US_CLUSTER_SLOTS; s++)
        slots[s] = NO_NODE;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = node_for(ct, c, ranges[i].host, ranges[i].port);
        if (id == NO_NODE) {
            free(slots);
            us_set_msg(cl->error, sizeof cl->error, "slot map from %s names too many nodes", from);
            return -1;
        }
        for (unsigned s = ranges[i].start; s <= ranges[i].end; s++)
            slots[s] = id;
    }
    /* 1: master in the old map, 2: in the new one */
    unsigned char *role = us_xcalloc(ct->n_nodes, 1);
    size_t uncovered = 0, masters = 0;
    for (size_t s = 0; s < US_CLUSTER_SLOTS; s++) {
        if (cl->slots && cl->slots[s] != NO_NODE)
            role[cl->slots[s]] |= 1;
        if (slots[s] == NO_NODE) {
            uncovered++;
        } else if (!(role[slots[s]] & 2)) {
            role[slots[s]] |= 2;
            masters++;
        }
    }
    bool same_masters = true;
    for (size_t i = 0; i < ct->n_nodes; i++)
        same_masters &= role[i] == 0 || role[i] == 3;
    free(role);

    bool first = cl->slots == NULL;
    bool changed = first || memcmp(slots, cl->slots, US_CLUSTER_SLOTS * sizeof *slots) != 0;
    free(cl->slots);
    cl->slots = slots;
    /* Slots moving between the same masters (a reshard) is routine; a master coming or
     * going (a failover) is worth a line. */
    if (first || !same_masters)
        us_info("redis cluster %zu: slot map from %s: %zu masters, %zu of %d slots served",
                c + 1, from, masters, US_CLUSTER_SLOTS - uncovered, US_CLUSTER_SLOTS);
    else if (changed)
        us_debug("redis cluster %zu: slot map from %s changed", c + 1, from);
    if (uncovered && uncovered != cl->uncovered)
        us_warn("redis cluster %zu: %zu slots are served by no master%s", c + 1, uncovered,
                skipped ? " (some masters announce no endpoint: \"?\")" : "");
    cl->uncovered = uncovered;
    if (cl->error_logged)
        us_info("redis cluster %zu: slot map available again", c + 1);
    cl->error_logged = false;
    cl->error[0] = '\0';
    return 0;
}

/* Asks one node for the map; 0 when a valid map was installed. */
static int refresh_from(cluster_topology *ct, size_t c, uint32_t id)
{
    cluster *cl = &ct->clusters[c];
    us_redis_node *node = &ct->nodes[id]->node;
    const redisReply *r = us_redis_node_command(node, "CLUSTER SLOTS");
    if (!r) {
        us_set_msg(cl->error, sizeof cl->error, "%s: unreachable", node->name);
        return -1;
    }
    int rc = -1;
    if (r->type == REDIS_REPLY_ERROR) {
        us_set_msg(cl->error, sizeof cl->error, "%s: CLUSTER SLOTS: %.160s", node->name, r->str);
    } else {
        us_slot_range *ranges = NULL;
        size_t skipped = 0;
        char why[200];
        int n = us_cluster_slots_parse(r, node->addr.host, &ranges, &skipped, why, sizeof why);
        if (n < 0)
            us_set_msg(cl->error, sizeof cl->error, "%s: %s", node->name, why);
        else
            rc = install_map(ct, c, ranges, (size_t)n, skipped, node->name);
        free(ranges);
    }
    us_reply_free(r);
    return rc;
}

/* Reads a new slot map from any reachable node of cluster c: connected nodes first (no
 * connect cost), then a few others. A failed refresh keeps the old map. */
static int refresh(cluster_topology *ct, size_t c)
{
    cluster *cl = &ct->clusters[c];
    size_t tried = 0, connects = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < ct->n_nodes; k++) {
            uint32_t id = (uint32_t)((cl->cursor + k) % ct->n_nodes);
            cnode *cn = ct->nodes[id];
            if (cn->cluster != c || (pass == 0) != (cn->node.conn != NULL))
                continue;
            if (pass == 1) {
                if (us_clock_mono_ms() < cn->node.retry_at_ms)
                    continue;
                if (connects++ == REFRESH_MAX_CONNECTS)
                    break;
            }
            tried++;
            if (refresh_from(ct, c, id) == 0) {
                cl->cursor = id;
                return 0;
            }
        }
    }
    cl->cursor++;
    if (tried == 0)
        us_set_msg(cl->error, sizeof cl->error,
                   "no node to ask for the slot map (all backing off)");
    if (!cl->error_logged) {
        us_error("redis cluster %zu: cannot read the slot map (%s); %s", c + 1, cl->error,
                 cl->slots ? "keeping the old one" : "no map yet");
        cl->error_logged = true;
    } else {
        us_debug("redis cluster %zu: cannot read the slot map (%s)", c + 1, cl->error);
    }
    return -1;
}

static void pause_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static bool is_error(const redisReply *r, const char *prefix)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

static void reserve_scratch(cluster_topology *ct, size_t n)
{
    if (n > ct->cmd_cap) {
        ct->cmd_cap = n < 64 ? 64 : n;
        free(ct->state);
        free(ct->cluster_of);
        free(ct->idx);
        free(ct->asking);
        ct->state = us_xmalloc(ct->cmd_cap * sizeof *ct->state);
        ct->cluster_of = us_xmalloc(ct->cmd_cap * sizeof *ct->cluster_of);
        ct->idx = us_xmalloc(ct->cmd_cap * sizeof *ct->idx);
        ct->asking = us_xmalloc(ct->cmd_cap * sizeof *ct->asking);
    }
}

/* Gives every pending command a node; those the map cannot place end here. */
static void route(cluster_topology *ct, us_redis_cmd *cmds, size_t n, bool *refreshed)
{
    size_t unserved = 0;
    unsigned unserved_slot = 0;
    for (size_t i = 0; i < n; i++) {
        cmd_state *s = &ct->state[i];
        if (s->final || s->node != NO_NODE)
            continue;
        size_t c = ct->cluster_of[i];
        cluster *cl = &ct->clusters[c];
        unsigned slot = us_cluster_slot(cmds[i].slot_key, cmds[i].slot_key_len);
        if ((!cl->slots || cl->slots[slot] == NO_NODE) && !refreshed[c]) {
            refresh(ct, c);
            refreshed[c] = true;
        }
        if (!cl->slots || cl->slots[slot] == NO_NODE) {
            if (cl->slots && unserved++ == 0)
                unserved_slot = slot;
            s->final = true;
            continue;
        }
        s->node = cl->slots[slot];
    }
    if (unserved)
        us_error("redis cluster: %zu keys in slots no master serves (slot %u...)", unserved,
                 unserved_slot);
}

/* One pipeline per node for every pending command, in request order within a node. */
static size_t build_groups(cluster_topology *ct, size_t n)
{
    if (ct->groups_cap < ct->n_nodes) {
        ct->groups_cap = ct->n_nodes;
        free(ct->groups);
        ct->groups = us_xmalloc(ct->groups_cap * sizeof *ct->groups);
    }
    size_t n_groups = 0;
    for (size_t i = 0; i < n; i++) {
        if (ct->state[i].final)
            continue;
        cnode *cn = ct->nodes[ct->state[i].node];
        if (cn->group == SIZE_MAX) {
            cn->group = n_groups;
            ct->groups[n_groups] = (us_pipeline_group){.node = &cn->node};
            n_groups++;
        }
        ct->groups[cn->group].count++;
    }
    size_t off = 0;
    for (size_t g = 0; g < n_groups; g++) {
        ct->groups[g].idx = ct->idx + off;
        ct->groups[g].asking = ct->asking + off;
        off += ct->groups[g].count;
        ct->groups[g].count = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (ct->state[i].final)
            continue;
        us_pipeline_group *g = &ct->groups[ct->nodes[ct->state[i].node]->group];
        size_t k = g->count++;
        g->idx[k] = i;
        ct->asking[(size_t)(g->idx - ct->idx) + k] = ct->state[i].asking;
    }
    for (size_t i = 0; i < n; i++)
        if (!ct->state[i].final)
            ct->nodes[ct->state[i].node]->group = SIZE_MAX;
    return n_groups;
}

/* Decides the fate of each command of a round. Returns true when one asked for a pause. */
static bool take_replies(cluster_topology *ct, us_redis_cmd *cmds, size_t n_groups,
                         bool *want_refresh)
{
    bool pause = false;
    for (size_t g = 0; g < n_groups; g++) {
        const us_pipeline_group *grp = &ct->groups[g];
        for (size_t k = 0; k < grp->count; k++) {
            size_t i = grp->idx[k];
            cmd_state *s = &ct->state[i];
            size_t c = ct->cluster_of[i];
            const redisReply *r = cmds[i].reply;
            if (!r) {
                /* A timeout is not resent (it would double the wait), nor a command whose
                 * node sent a bad reply, nor a write its replicas did not confirm (they
                 * would not confirm it again in time); a failed node gets a map refresh
                 * and one resend wherever the map says then. */
                want_refresh[c] = true;
                if (grp->outcome == US_PIPE_TIMEOUT || grp->outcome == US_PIPE_REFUSED ||
                    grp->outcome == US_PIPE_UNCONFIRMED || s->resent) {
                    s->final = true;
                } else {
                    s->resent = true;
                    s->node = NO_NODE;
                    s->asking = false;
                }
                continue;
            }
            us_redirect rd;
            bool redirect = r->type == REDIS_REPLY_ERROR &&
                            us_cluster_parse_redirect(r->str, r->len, &rd) == 0;
            bool busy = is_error(r, "TRYAGAIN") || is_error(r, "CLUSTERDOWN");
            if (!redirect && !busy) {
                s->final = true;
                continue;
            }
            if (s->redirects >= MAX_REDIRECTS) {
                us_debug("redis cluster %zu: giving up after %d redirections: %.80s", c + 1,
                         MAX_REDIRECTS, r->str);
                s->final = true; /* the last error reply is the command's reply */
                continue;
            }
            s->redirects++;
            uint32_t to = NO_NODE;
            if (redirect) {
                const char *host = rd.host[0] ? rd.host : grp->node->addr.host;
                to = node_for(ct, c, host, rd.port);
                if (to == NO_NODE) {
                    s->final = true;
                    continue;
                }
                if (!rd.ask)
                    want_refresh[c] = true;
            } else {
                pause = true;
            }
            us_reply_free(r);
            cmds[i].reply = NULL;
            s->node = to;
            s->asking = redirect && rd.ask;
        }
    }
    return pause;
}

static int cluster_exec(us_topology *t, us_redis_cmd *cmds, size_t n)
{
    cluster_topology *ct = (cluster_topology *)t;
    reserve_scratch(ct, n);
    ct->budget = (us_connect_budget){.left = MAX_NEW_CONNECTIONS_PER_REQUEST};
    for (size_t i = 0; i < n; i++) {
        ct->state[i] = (cmd_state){.node = NO_NODE};
        ct->cluster_of[i] = ct->n_clusters > 1 ? us_shard_index(cmds[i].shard_key,
                                                                cmds[i].shard_key_len,
                                                                ct->n_clusters)
                                               : 0;
    }
    bool *refreshed = us_xcalloc(2 * ct->n_clusters, sizeof *refreshed);
    bool *want_refresh = refreshed + ct->n_clusters;
    int pauses = 0;

    /* Every round either ends commands or spends one of their bounded redirections or
     * resends, so this ends after at most MAX_REDIRECTS + 2 rounds. */
    for (;;) {
        route(ct, cmds, n, refreshed);
        size_t n_groups = build_groups(ct, n);
        if (n_groups == 0)
            break;
        us_pipeline_run(ct->groups, n_groups, cmds);
        bool pause = take_replies(ct, cmds, n_groups, want_refresh);
        for (size_t c = 0; c < ct->n_clusters; c++) {
            if (want_refresh[c] && !refreshed[c]) {
                refresh(ct, c);
                refreshed[c] = true;
            }
            want_refresh[c] = false;
        }
        if (pause)
            pause_ms(pauses++ == 0 ? PAUSE_FIRST_MS : PAUSE_NEXT_MS);
    }
    free(refreshed);
    if (ct->budget.refused)
        us_error("redis cluster: this request would open more than %d new connections; "
                 "%zu connects refused (a slot map naming too many nodes?)",
                 MAX_NEW_CONNECTIONS_PER_REQUEST, ct->budget.refused);
    for (size_t i = 0; i < n; i++)
        if (!cmds[i].reply)
            return -1;
    return 0;
}

static int cluster_ping(us_topology *t, us_buf *report)
{
    cluster_topology *ct = (cluster_topology *)t;
    int rc = 0;
    bool first = true;
    ct->budget = (us_connect_budget){.left = MAX_NEW_CONNECTIONS_PER_REQUEST};
    if (report)
        us_buf_putc(report, '[');
    for (size_t c = 0; c < ct->n_clusters; c++) {
        cluster *cl = &ct->clusters[c];
        /* The truth now: a health check reads the map again rather than trust it. */
        if (refresh(ct, c) < 0 && !cl->slots) {
            char name[32];
            snprintf(name, sizeof name, "cluster %zu", c + 1);
            us_ping_report(report, first, name, cl->error);
            first = false;
            rc = -1;
            continue;
        }
        bool *master = us_xcalloc(ct->n_nodes, sizeof *master);
        for (size_t s = 0; s < US_CLUSTER_SLOTS; s++)
            if (cl->slots[s] != NO_NODE)
                master[cl->slots[s]] = true;
        for (uint32_t id = 0; id < ct->n_nodes; id++) {
            if (!master[id])
                continue;
            if (us_ping_node(&ct->nodes[id]->node, report, first) < 0)
                rc = -1;
            first = false;
        }
        free(master);
    }
    if (report)
        us_buf_putc(report, ']');
    return rc;
}

static void cluster_free(us_topology *t)
{
    cluster_topology *ct = (cluster_topology *)t;
    for (size_t i = 0; i < ct->n_nodes; i++) {
        us_redis_node_disconnect(&ct->nodes[i]->node);
        free(ct->nodes[i]);
    }
    for (size_t c = 0; c < ct->n_clusters; c++)
        free(ct->clusters[c].slots);
    free(ct->clusters);
    free(ct->nodes);
    free(ct->state);
    free(ct->cluster_of);
    free(ct->idx);
    free(ct->asking);
    free(ct->groups);
    us_redis_tls_free(ct->tls.tls);
    free(ct);
}

static const us_topology_vt cluster_vt = {cluster_exec, cluster_ping, cluster_free};

us_topology *us_topology_cluster_create(const us_redis_config *rc, char *err, size_t err_len)
{
    cluster_topology *ct = us_xcalloc(1, sizeof *ct);
    ct->base.vt = &cluster_vt;
    ct->base.n_shards = rc->cluster_address_count;
    ct->base.by_slot = true;
    ct->clusters = us_xcalloc(rc->cluster_address_count, sizeof *ct->clusters);
    ct->n_clusters = rc->cluster_address_count;
    ct->tls = (us_redis_tls_slot){&rc->tls, "redis tls", NULL};
    for (size_t c = 0; c < rc->cluster_address_count; c++) {
        size_t count = 0;
        char **seeds = us_redis_address_split(rc->cluster_address[c], &count);
        if (count == 0) {
            us_set_msg(err, err_len, "redis cluster_address %zu: no seed address", c + 1);
            us_redis_address_split_free(seeds, count);
            goto fail;
        }
        for (size_t i = 0; i < count; i++) {
            cnode *cn = us_xcalloc(1, sizeof *cn);
            char why[200];
            if (us_redis_node_init(&cn->node, seeds[i], rc, &ct->tls, why, sizeof why) < 0) {
                us_set_msg(err, err_len, "redis cluster_address %zu: %s", c + 1, why);
                free(cn);
                us_redis_address_split_free(seeds, count);
                goto fail;
            }
            cn->cluster = c;
            cn->group = SIZE_MAX;
            cn->node.budget = &ct->budget;
            if (ct->n_nodes == ct->nodes_cap) {
                ct->nodes_cap = ct->nodes_cap ? ct->nodes_cap * 2 : 8;
                ct->nodes = us_xrealloc(ct->nodes, ct->nodes_cap * sizeof *ct->nodes);
            }
            if (i == 0)
                ct->clusters[c].template_node = (uint32_t)ct->n_nodes;
            ct->nodes[ct->n_nodes++] = cn;
            ct->clusters[c].n_nodes++;
        }
        us_redis_address_split_free(seeds, count);
        ct->clusters[c].cursor = ct->clusters[c].template_node;
    }
    return &ct->base;
fail:
    cluster_free(&ct->base);
    return NULL;
}
