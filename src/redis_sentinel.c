/* Sentinel-managed masters (SPEC §3.3): one master per shard, found by name through that
 * shard's sentinels, following the Sentinel client guide:
 *   1. ask the sentinels in turn, each with a short timeout; the first that answers goes
 *      to the front of the list, so the next discovery starts with it;
 *   2. SENTINEL get-master-addr-by-name; a nil reply (name unknown) means "try the next";
 *   3. connect to the address and confirm with ROLE that it is a master (the node's
 *      handshake does this on every new connection, so a master demoted behind our back
 *      is refused on reconnect, not silently read from).
 * The master is rediscovered after a connection error, a timeout, or a READONLY/LOADING
 * reply; a command that failed for one of those reasons is resent once to the master
 * found then (all our commands are idempotent, §3.6); writes the replicas did not
 * confirm (redis.wait_replicas) make it rediscover too, and are resent once when the
 * sentinels name another master. It is also rediscovered when the
 * sentinel that answered announces +switch-master (the guide's optional subscription):
 * after a SENTINEL FAILOVER the old master keeps accepting writes, and our connections
 * to it, for the seconds until the sentinels get round to demoting it, and those writes
 * are lost when it resyncs as a replica. The subscription is polled, without blocking,
 * at the start of every request. Shards are chosen by jump hash as static shards are.
 * TLS (§3.7): the sentinels use redis.sentinel_tls (or a rediss:// address), the masters
 * they name redis.tls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_node.h"
#include "redis_pipeline.h"
#include "redis_reply.h"
#include "topology_impl.h"
#include "ustatus/buf.h"
#include "ustatus/clock.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"
#include "ustatus/redis_address.h"

/* Discovery back-off after a failed discovery: every request during an outage must not
 * cost a sentinel round trip per worker. Short enough that a finished failover is picked
 * up within a second. */
#define DISCOVER_BACKOFF_FIRST_MS 100
#define DISCOVER_BACKOFF_MAX_MS 1000

typedef enum {
    FAIL_NONE = 0,
    FAIL_NO_SENTINEL,          /* no sentinel could be asked */
    FAIL_UNKNOWN_NAME,         /* every sentinel that answered replied nil */
    FAIL_NO_ANSWER,            /* sentinels answered with errors or garbage */
    FAIL_MASTER                /* the named master is unreachable or not a master */
} discover_failure;

typedef struct shard {
    us_redis_node *sentinels;  /* preference order: the last one that answered first */
    size_t n_sentinels;
    us_redis_node master;      /* address valid once have_master */
    bool have_master;
    bool stale;                /* rediscover before the next use */
    int64_t discover_after_ms; /* no discovery before this (after failed ones) */
    int64_t discover_backoff_ms;
    int64_t unconfirmed_after_ms; /* no discovery for unconfirmed writes before this */
    us_redis_node watch;       /* subscribed to +switch-master on the sentinel that
                                * answered; ctx NULL when there is none */
    discover_failure logged;   /* the failure already logged at error level */
    char error[200];           /* why the last discovery failed, for health reports */
} shard;

typedef struct sentinel_topology {
    us_topology base;
    char *master_name;
    shard *shards;
    size_t n_shards;
    us_pipeline_group *groups; /* one per shard */
    us_pipeline_group *run;    /* scratch: the groups sent in a round */
    size_t *run_shard;         /* scratch: the shard of each of them */
    size_t *idx;
    size_t idx_cap;
    us_redis_tls_slot tls;          /* the masters' (redis.tls) */
    us_redis_tls_slot sentinel_tls; /* the sentinels' (redis.sentinel_tls) */
} sentinel_topology;

static void discover_failed(shard *sh, size_t shard_no, discover_failure kind)
{
    int64_t now = us_clock_mono_ms();
    sh->discover_backoff_ms = sh->discover_backoff_ms ? sh->discover_backoff_ms * 2
                                                      : DISCOVER_BACKOFF_FIRST_MS;
    if (sh->discover_backoff_ms > DISCOVER_BACKOFF_MAX_MS)
        sh->discover_backoff_ms = DISCOVER_BACKOFF_MAX_MS;
    sh->discover_after_ms = now + sh->discover_backoff_ms;
    sh->stale = true;
    /* One error line per kind of outage; repeats of the same one are debug noise. */
    if (sh->logged != kind) {
        us_error("redis sentinel: shard %zu: %s", shard_no + 1, sh->error);
        sh->logged = kind;
    } else {
        us_debug("redis sentinel: shard %zu: %s (next discovery in %lld ms)", shard_no + 1,
                 sh->error, (long long)sh->discover_backoff_ms);
    }
}

/* "host:port, host:port" of the shard's sentinels, for log lines. */
static void list_sentinels(const shard *sh, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sh->n_sentinels && o < len; i++) {
        /* skip the "sentinel " every name starts with */
        const char *name = sh->sentinels[i].name + strlen("sentinel ");
        int w = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* Moves sentinel i to the front, keeping the order of the others (client guide). */
static void promote_sentinel(shard *sh, size_t i)
{
    if (i == 0)
        return;
    us_redis_node chosen = sh->sentinels[i];
    memmove(&sh->sentinels[1], &sh->sentinels[0], i * sizeof chosen);
    sh->sentinels[0] = chosen;
}

/* Subscribes to +switch-master on the sentinel at the front of the list (the one that
 * just answered), unless already subscribed there. Best effort: without it, a switch is
 * still noticed when the old master drops our connection or refuses a write. */
static void watch_start(shard *sh, size_t shard_no)
{
    const us_redis_node *front = &sh->sentinels[0];
    if (sh->watch.conn && strcmp(sh->watch.name, front->name) == 0)
        return;
    us_redis_node_disconnect(&sh->watch);
    sh->watch = *front;
    sh->watch.conn = NULL;
    sh->watch.retry_at_ms = 0;
    sh->watch.backoff_ms = 0;
    if (us_redis_node_connect(&sh->watch) < 0)
        return;
    /* Not us_redis_node_command: messages may follow the confirmation at once, and
     * here they are no unasked data. */
    us_redis_conn *c = sh->watch.conn;
    us_redis_conn_append_fmt(c, NULL, "SUBSCRIBE +switch-master");
    int64_t deadline = us_clock_mono_ms() + sh->watch.addr.io_timeout_ms;
    const redisReply *r = NULL;
    if (us_redis_conn_flush(c, deadline) < 0 ||
        us_redis_conn_read(c, &us_reply_limits_push, deadline, &r, NULL) < 0 ||
        r->type != REDIS_REPLY_ARRAY) {
        us_warn("redis %s: SUBSCRIBE +switch-master failed: %s", sh->watch.name,
                r && r->type == REDIS_REPLY_ERROR ? r->str : us_redis_conn_error(c));
        us_redis_node_disconnect(&sh->watch);
    } else {
        us_debug("redis sentinel: shard %zu: watching +switch-master on %s", shard_no + 1,
                 sh->watch.name + strlen("sentinel "));
    }
    us_reply_free(r);
}

/* Reads what the subscription has delivered, if anything, without waiting. A switch of
 * our master (or the loss of the subscription) makes the shard rediscover now. */
static void watch_check(const sentinel_topology *st, shard *sh, size_t shard_no)
{
    us_redis_conn *c = sh->watch.conn;
    if (!c)
        return;
    size_t name_len = strlen(st->master_name);
    bool lost = false;
    for (;;) {
        const redisReply *r = NULL;
        int got = us_redis_conn_poll(c, &us_reply_limits_push, &r);
        if (got < 0)
            lost = true;
        if (got <= 0)
            break;
        if (us_sentinel_is_switch_master(r, st->master_name, name_len)) {
            us_info("redis %s: +switch-master %s", sh->watch.name, r->element[2]->str);
            sh->stale = true;
            sh->discover_after_ms = 0;
        }
        us_reply_free(r);
    }
    if (lost) {
        us_debug("redis sentinel: shard %zu: lost the +switch-master subscription: %s",
                 shard_no + 1, us_redis_conn_error(c));
        us_redis_node_disconnect(&sh->watch);
        sh->stale = true;
    }
}

/* The three steps of the client guide. Returns 0 with the shard's master connected, -1
 * otherwise (logged; discovery backs off). `force` ignores the discovery back-off. */
static int discover(sentinel_topology *st, size_t shard_no, bool force)
{
    shard *sh = &st->shards[shard_no];
    if (!force && us_clock_mono_ms() < sh->discover_after_ms) {
        us_debug("redis sentinel: shard %zu: discovery backing off", shard_no + 1);
        return -1;
    }
    size_t reachable = 0, unknown = 0;
    char host[256];
    int port = 0;
    bool found = false;
    for (size_t i = 0; i < sh->n_sentinels && !found; i++) {
        us_redis_node *s = &sh->sentinels[i];
        const redisReply *r = us_redis_node_command(s, "SENTINEL get-master-addr-by-name %s",
                                                    st->master_name);
        if (!r && !s->refused)
            continue;
        reachable++;
        if (!r)
            continue; /* it answered, with a refusal: logged by the node */
        if (r->type == REDIS_REPLY_NIL) {
            unknown++;
            us_debug("redis %s: master name \"%s\" unknown", s->name, st->master_name);
        } else if (r->type == REDIS_REPLY_ERROR) {
            us_warn("redis %s: SENTINEL get-master-addr-by-name: %s", s->name, r->str);
        } else if (us_sentinel_master_addr_parse(r, host, sizeof host, &port) < 0) {
            us_warn("redis %s: unexpected reply to SENTINEL get-master-addr-by-name", s->name);
        } else {
            found = true;
            promote_sentinel(sh, i);
        }
        us_reply_free(r);
    }
    /* A sentinel connection is kept only for the length of a discovery: an idle one per
     * worker would break unnoticed, and discoveries are rare. */
    for (size_t i = 0; i < sh->n_sentinels; i++)
        us_redis_node_disconnect(&sh->sentinels[i]);

    char names[400];
    if (!found) {
        list_sentinels(sh, names, sizeof names);
        discover_failure kind;
        if (reachable == 0) {
            kind = FAIL_NO_SENTINEL;
            us_set_msg(sh->error, sizeof sh->error, "no sentinel reachable for master \"%s\" "
                     "(tried %s)", st->master_name, names);
        } else if (unknown == reachable) {
            kind = FAIL_UNKNOWN_NAME;
            us_set_msg(sh->error, sizeof sh->error, "master name \"%s\" unknown to the "
                     "sentinels (%zu of them answered nil)", st->master_name, unknown);
        } else {
            kind = FAIL_NO_ANSWER;
            us_set_msg(sh->error, sizeof sh->error, "no sentinel gave an address for master "
                     "\"%s\" (asked %s)", st->master_name, names);
        }
        discover_failed(sh, shard_no, kind);
        return -1;
    }

    char old[300];
    snprintf(old, sizeof old, "%s", sh->have_master ? sh->master.name : "");
    bool moved = us_redis_node_set_target(&sh->master, host, port) || !sh->have_master;
    sh->have_master = true;
    if (us_redis_node_connect(&sh->master) < 0) {
        us_set_msg(sh->error, sizeof sh->error, "master \"%s\" at %s (named by %s) is not "
                 "usable", st->master_name, sh->master.name, sh->sentinels[0].name);
        discover_failed(sh, shard_no, FAIL_MASTER);
        return -1;
    }
    if (moved)
        us_info("redis sentinel: shard %zu: master \"%s\" is %s%s%s", shard_no + 1,
                st->master_name, sh->master.name, old[0] ? ", was " : "", old);
    else if (sh->logged != FAIL_NONE)
        us_info("redis sentinel: shard %zu: master \"%s\" is usable again at %s",
                shard_no + 1, st->master_name, sh->master.name);
    watch_start(sh, shard_no);
    sh->stale = false;
    sh->logged = FAIL_NONE;
    sh->error[0] = '\0';
    sh->discover_after_ms = 0;
    sh->discover_backoff_ms = 0;
    return 0;
}

static int ensure_master(sentinel_topology *st, size_t shard_no)
{
    shard *sh = &st->shards[shard_no];
    watch_check(st, sh, shard_no);
    if (sh->have_master && !sh->stale)
        return 0;
    return discover(st, shard_no, false);
}

static bool is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

static int sentinel_exec(us_topology *t, us_redis_cmd *cmds, size_t n)
{
    sentinel_topology *st = (sentinel_topology *)t;
    if (n > st->idx_cap) {
        free(st->idx);
        st->idx_cap = n < 64 ? 64 : n;
        st->idx = us_xmalloc(st->idx_cap * sizeof *st->idx);
    }
    us_group_by_shard(cmds, n, st->groups, st->n_shards, st->idx);

    size_t n_run = 0;
    for (size_t s = 0; s < st->n_shards; s++)
        if (st->groups[s].count && ensure_master(st, s) == 0) {
            st->run_shard[n_run] = s;
            st->run[n_run++] = st->groups[s];
        }
    us_pipeline_run(st->run, n_run, cmds);

    /* Shards that lost their master under us: rediscover, resend what failed once. */
    size_t n_retry = 0;
    for (size_t g = 0; g < n_run; g++) {
        us_pipeline_group *grp = &st->run[g];
        size_t s = st->run_shard[g];
        shard *sh = &st->shards[s];
        bool demoted = false;
        for (size_t k = 0; k < grp->count; k++) {
            us_redis_cmd *c = &cmds[grp->idx[k]];
            /* READONLY: a write reached a demoted master; LOADING: it restarted. */
            if (is_error(c->reply, "READONLY") || is_error(c->reply, "LOADING")) {
                if (!demoted)
                    us_info("redis %s: %.60s: rediscovering the master", grp->node->name,
                            c->reply->str);
                us_reply_free(c->reply);
                c->reply = NULL;
                demoted = true;
            }
        }
        if (grp->outcome == US_PIPE_TIMEOUT || grp->outcome == US_PIPE_REFUSED) {
            /* Not resent: a second wait of io_timeout would double the request's, and a
             * node that sent a bad reply gets no second chance in this request. */
            sh->stale = true;
            continue;
        }
        if (!demoted && grp->outcome == US_PIPE_OK)
            continue;
        if (!demoted && grp->outcome == US_PIPE_UNCONFIRMED) {
            /* The replicas did not confirm (wait_replicas): the master may have lost
             * its replica to a promotion the sentinels have not announced yet. Resent
             * once, only to a different master: to the same one it would wait again.
             * While a replica is down, every write is unconfirmed: the sentinels are
             * asked at most every DISCOVER_BACKOFF_FIRST_MS for it. */
            int64_t now = us_clock_mono_ms();
            if (now < sh->unconfirmed_after_ms)
                continue;
            sh->unconfirmed_after_ms = now + DISCOVER_BACKOFF_FIRST_MS;
            char was[sizeof sh->master.name];
            memcpy(was, sh->master.name, sizeof was);
            if (discover(st, s, true) == 0 && strcmp(was, sh->master.name) != 0) {
                st->run_shard[n_retry] = s;
                st->run[n_retry++] = *grp;
            }
            continue;
        }
        us_redis_node_disconnect(&sh->master);
        sh->stale = true;
        if (discover(st, s, true) == 0) {
            st->run_shard[n_retry] = s;
            st->run[n_retry++] = *grp;
        }
    }
    if (n_retry)
        us_pipeline_run(st->run, n_retry, cmds);
    for (size_t g = 0; g < n_retry; g++)
        if (st->run[g].outcome != US_PIPE_OK)
            st->shards[st->run_shard[g]].stale = true;

    for (size_t i = 0; i < n; i++)
        if (!cmds[i].reply)
            return -1;
    return 0;
}

static int sentinel_ping(us_topology *t, us_buf *report)
{
    sentinel_topology *st = (sentinel_topology *)t;
    int rc = 0;
    if (report)
        us_buf_putc(report, '[');
    for (size_t s = 0; s < st->n_shards; s++) {
        shard *sh = &st->shards[s];
        watch_check(st, sh, s);
        if (!sh->have_master || sh->stale) {
            /* The back-offs hold for health checks too: /health needs no key, and must
             * not become a way to storm a dead node (§3.6). A back-off is 1 s at most,
             * so the answer is never older than that. */
            if (discover(st, s, false) < 0) {
                char name[300];
                snprintf(name, sizeof name, "sentinel master \"%s\" shard %zu", st->master_name,
                         s + 1);
                us_ping_report(report, s == 0, name, sh->error);
                rc = -1;
                continue;
            }
        }
        if (us_ping_node(&sh->master, report, s == 0) < 0) {
            sh->stale = true;
            rc = -1;
        }
    }
    if (report)
        us_buf_putc(report, ']');
    return rc;
}

static void sentinel_free(us_topology *t)
{
    sentinel_topology *st = (sentinel_topology *)t;
    for (size_t s = 0; s < st->n_shards; s++) {
        shard *sh = &st->shards[s];
        for (size_t i = 0; i < sh->n_sentinels; i++)
            us_redis_node_disconnect(&sh->sentinels[i]);
        free(sh->sentinels);
        us_redis_node_disconnect(&sh->master);
        us_redis_node_disconnect(&sh->watch);
    }
    free(st->shards);
    free(st->groups);
    free(st->run);
    free(st->run_shard);
    free(st->idx);
    free(st->master_name);
    us_redis_tls_free(st->tls.tls);
    us_redis_tls_free(st->sentinel_tls.tls);
    free(st);
}

static const us_topology_vt sentinel_vt = {sentinel_exec, sentinel_ping, sentinel_free};

us_topology *us_topology_sentinel_create(const us_redis_config *rc, char *err, size_t err_len)
{
    if (!rc->sentinel_master_name || !rc->sentinel_master_name[0]) {
        us_set_msg(err, err_len, "redis sentinel_master_name: required with sentinel_address");
        return NULL;
    }
    sentinel_topology *st = us_xcalloc(1, sizeof *st);
    st->base.vt = &sentinel_vt;
    st->base.n_shards = rc->sentinel_address_count;
    st->master_name = us_xstrdup(rc->sentinel_master_name);
    st->shards = us_xcalloc(rc->sentinel_address_count, sizeof *st->shards);
    st->groups = us_xcalloc(rc->sentinel_address_count, sizeof *st->groups);
    st->run = us_xcalloc(rc->sentinel_address_count, sizeof *st->run);
    st->run_shard = us_xcalloc(rc->sentinel_address_count, sizeof *st->run_shard);
    st->tls = (us_redis_tls_slot){&rc->tls, "redis tls", NULL};
    st->sentinel_tls = (us_redis_tls_slot){&rc->sentinel_tls, "redis sentinel_tls", NULL};

    /* Sentinels: their own credentials, db 0, and the short connect timeout for replies
     * too, so that a hung sentinel costs little before the next one is asked. */
    us_redis_config src = *rc;
    src.user = rc->sentinel_user ? rc->sentinel_user : "";
    src.password = rc->sentinel_password ? rc->sentinel_password : "";
    src.db = 0;
    src.io_timeout_ms = rc->connect_timeout_ms;
    src.client_name = ""; /* for the data nodes */
    src.wait_replicas = 0;

    for (size_t s = 0; s < rc->sentinel_address_count; s++) {
        shard *sh = &st->shards[s];
        size_t count = 0;
        char **addrs = us_redis_address_split(rc->sentinel_address[s], &count);
        st->n_shards = s + 1;
        if (count == 0) {
            us_redis_address_split_free(addrs, count);
            us_set_msg(err, err_len, "redis sentinel_address %zu: no sentinel address", s + 1);
            goto fail;
        }
        sh->sentinels = us_xcalloc(count, sizeof *sh->sentinels);
        for (size_t i = 0; i < count; i++) {
            char why[200];
            us_redis_node *node = &sh->sentinels[i];
            if (us_redis_node_init(node, addrs[i], &src, &st->sentinel_tls, why, sizeof why) < 0) {
                us_set_msg(err, err_len, "redis sentinel_address %zu: %s", s + 1, why);
                us_redis_address_split_free(addrs, count);
                goto fail;
            }
            sh->n_sentinels = i + 1;
            node->addr.db = 0;
            char plain[300];
            snprintf(plain, sizeof plain, "%s", node->name);
            us_set_msg(node->name, sizeof node->name, "sentinel %s", plain);
        }
        us_redis_address_split_free(addrs, count);
        /* The master: the section's user, password, db and timeouts; its address comes
         * from the sentinels. */
        char why[200];
        if (us_redis_node_init(&sh->master, "127.0.0.1:6379", rc, &st->tls, why, sizeof why) < 0) {
            us_set_msg(err, err_len, "redis: %s", why);
            goto fail;
        }
        /* no address until the first discovery, so that any address found is news */
        sh->master.addr.host[0] = '\0';
        sh->master.addr.port = 0;
        snprintf(sh->master.name, sizeof sh->master.name, "(master \"%s\" not discovered)",
                 st->master_name);
        sh->master.require_master = true;
        st->groups[s].node = &sh->master;
    }
    return &st->base;
fail:
    sentinel_free(&st->base);
    return NULL;
}
