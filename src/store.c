/* User status semantics on top of a topology (SPEC §2). */
#include "ustatus/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "ustatus/buf.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
#include "ustatus/topology.h"

/* The update of a group of users, each atomic inside Redis (the whole call is).
 * Timestamps only move forward (a host with a clock behind the others cannot lower
 * them), and each key's expiry is extended on every write. One call carries the users
 * of one node (of one slot on a Redis Cluster), so Redis runs the script once per group
 * rather than once per user.
 *   KEYS   the users' keys
 *   ARGV[1] now   ARGV[2] expire seconds
 *   ARGV[3] fields to set: "a" active, "o" online, or both
 *   ARGV[4] state: "k" keep, "s" set to ARGV[5], "d" delete
 * Every key exists after its writes (a field was set, or was already newer), so the
 * EXPIRE needs no EXISTS before it. */
static const char update_script[] =
    "local now = ARGV[1]\n"
    "local t = tonumber(now)\n"
    "for k = 1, #KEYS do\n"
    "  local key = KEYS[k]\n"
    "  for i = 1, #ARGV[3] do\n"
    "    local f = ARGV[3]:sub(i, i) == 'a' and 'active' or 'online'\n"
    "    local cur = tonumber(redis.call('hget', key, f))\n"
    "    if cur == nil or cur < t then redis.call('hset', key, f, now) end\n"
    "  end\n"
    "  if ARGV[4] == 's' then redis.call('hset', key, 'state', ARGV[5])\n"
    "  elseif ARGV[4] == 'd' then redis.call('hdel', key, 'state') end\n"
    "  redis.call('expire', key, ARGV[2])\n"
    "end\n"
    "return #KEYS\n";

/* Users in one script call at most: Redis runs nothing else while a script runs, and
 * 100 users take it about 0.15 ms. */
#define KEYS_PER_SCRIPT 100

/* One command of a request's plan: where its RESP text and its first key are in the
 * arena, and the first operation it serves. */
typedef struct plan_cmd {
    size_t off, len;
    size_t key_off, key_len;
    size_t first_op;
} plan_cmd;

struct us_store {
    us_topology *topology;
    char *prefix;              /* "<redis.prefix>.user_status." */
    size_t prefix_len;
    int64_t expire_interval_s;
    char script_sha[41];
    /* Per-request scratch, kept between requests so a request allocates nothing in the
     * common case. */
    us_buf arena;              /* the RESP text of every command of a request */
    us_buf key;                /* one key, to compute its affinity */
    size_t cap;                /* capacity of the arrays below, in operations */
    size_t *cmd_of;            /* operation -> command */
    uint64_t *affinity;        /* operation -> us_topology_affinity */
    size_t *order;             /* a run of writes, sorted by affinity */
    plan_cmd *plan;
    us_redis_cmd *cmds;
    size_t held;               /* cmds[0..held) keep the replies the last statuses borrow */
};

/* SHA1 of the script, computed here rather than asked of Redis: EVALSHA must work on the
 * first request of a fresh worker without a SCRIPT LOAD round trip. */
static void sha1_hex(const char *data, size_t len, char out[41]);

static void release_replies(us_store *s)
{
    us_redis_cmds_clear(s->cmds, s->held);
    s->held = 0;
}

us_store *us_store_create(const us_config *cfg, char *err, size_t err_len)
{
    const us_redis_config *rc = us_config_store_redis(cfg);
    us_topology *t = us_topology_create(rc, err, err_len);
    if (!t)
        return NULL;
    us_store *s = us_xcalloc(1, sizeof *s);
    s->topology = t;
    size_t plen = strlen(rc->prefix);
    s->prefix = us_xmalloc(plen + sizeof ".user_status.");
    memcpy(s->prefix, rc->prefix, plen);
    memcpy(s->prefix + plen, ".user_status.", sizeof ".user_status.");
    s->prefix_len = plen + sizeof ".user_status." - 1;
    s->expire_interval_s = cfg->user_status.expire_interval_s;
    sha1_hex(update_script, sizeof update_script - 1, s->script_sha);
    return s;
}

void us_store_free(us_store *s)
{
    if (!s)
        return;
    release_replies(s);
    us_topology_free(s->topology);
    free(s->prefix);
    us_buf_free(&s->arena);
    us_buf_free(&s->key);
    free(s->cmd_of);
    free(s->affinity);
    free(s->order);
    free(s->plan);
    free(s->cmds);
    free(s);
}

int us_store_ping(us_store *s, us_buf *report)
{
    return us_topology_ping(s->topology, report);
}

void us_store_ops_clear(us_store *s, us_op *ops, size_t n)
{
    release_replies(s);
    for (size_t i = 0; i < n; i++) {
        memset(&ops[i].status, 0, sizeof ops[i].status);
        ops[i].failed = false;
    }
}

/* ---- RESP, written straight into the request's arena ---- */

static void put_len_line(us_buf *b, char kind, size_t n)
{
    us_buf_putc(b, kind);
    us_buf_put_i64(b, (int64_t)n);
    us_buf_append(b, "\r\n", 2);
}

static void put_bulk(us_buf *b, const char *p, size_t n)
{
    put_len_line(b, '$', n);
    us_buf_append(b, p, n);
    us_buf_append(b, "\r\n", 2);
}

#define PUT_LITERAL(b, lit) us_buf_append((b), (lit), sizeof(lit) - 1)

/* The key of op as a bulk string; returns the offset of its bytes in the arena. */
static size_t put_key(us_store *s, const us_op *op)
{
    us_buf *b = &s->arena;
    put_len_line(b, '$', s->prefix_len + op->user_len);
    size_t off = b->len;
    us_buf_append(b, s->prefix, s->prefix_len);
    us_buf_append(b, op->user, op->user_len);
    us_buf_append(b, "\r\n", 2);
    return off;
}

static void reserve_ops(us_store *s, size_t n)
{
    if (n <= s->cap)
        return;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n)
        cap *= 2;
    s->cmd_of = us_xrealloc(s->cmd_of, cap * sizeof *s->cmd_of);
    s->affinity = us_xrealloc(s->affinity, cap * sizeof *s->affinity);
    s->order = us_xrealloc(s->order, cap * sizeof *s->order);
    s->plan = us_xrealloc(s->plan, cap * sizeof *s->plan);
    s->cmds = us_xrealloc(s->cmds, cap * sizeof *s->cmds);
    s->cap = cap;
}

/* Writes sharing one script call must set the same fields and state. */
static bool same_write(const us_op *a, const us_op *b)
{
    return b->kind == US_OP_WRITE && a->fields == b->fields && a->state_mode == b->state_mode &&
           (a->state_mode != US_STATE_SET ||
            (a->state_len == b->state_len && memcmp(a->state, b->state, a->state_len) == 0));
}

static const uint64_t *sort_affinity;

static int by_affinity(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    if (sort_affinity[a] != sort_affinity[b])
        return sort_affinity[a] < sort_affinity[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* One script call for ops order[from, to) (same affinity, same parameters). */
static void put_update(us_store *s, const us_op *ops, size_t from, size_t to, bool use_eval,
                       const char *now, const char *expire, plan_cmd *pc)
{
    us_buf *b = &s->arena;
    const us_op *op = &ops[s->order[from]];
    size_t k = to - from;
    const char *fields = (op->fields & US_FIELD_ACTIVE)
                             ? ((op->fields & US_FIELD_ONLINE) ? "ao" : "a")
                             : "o";
    const char *mode = op->state_mode == US_STATE_SET     ? "s"
                       : op->state_mode == US_STATE_CLEAR ? "d"
                                                          : "k";
    pc->off = b->len;
    put_len_line(b, '*', 3 + k + 4 + (op->state_mode == US_STATE_SET));
    if (use_eval) {
        PUT_LITERAL(b, "$4\r\nEVAL\r\n");
        put_bulk(b, update_script, sizeof update_script - 1);
    } else {
        PUT_LITERAL(b, "$7\r\nEVALSHA\r\n");
        put_bulk(b, s->script_sha, 40);
    }
    char numkeys[24];
    int nl = snprintf(numkeys, sizeof numkeys, "%zu", k);
    put_bulk(b, numkeys, (size_t)nl);
    for (size_t i = from; i < to; i++) {
        size_t key_off = put_key(s, &ops[s->order[i]]);
        if (i == from)
            pc->key_off = key_off;
        s->cmd_of[s->order[i]] = (size_t)(pc - s->plan);
    }
    pc->key_len = s->prefix_len + op->user_len;
    pc->first_op = s->order[from];
    put_bulk(b, now, strlen(now));
    put_bulk(b, expire, strlen(expire));
    put_bulk(b, fields, strlen(fields));
    put_bulk(b, mode, 1);
    if (op->state_mode == US_STATE_SET)
        put_bulk(b, op->state, op->state_len);
    pc->len = b->len - pc->off;
}

/* Plans ops[0..n): one command per get or delete, one script call per group of writes
 * that go to the same place with the same parameters. Order is kept where it matters:
 * only consecutive writes (a run) are grouped, so a get or delete after a write of the
 * same user in the same request still sees it. Returns the number of commands. */
static size_t plan_request(us_store *s, const us_op *ops, size_t n, int64_t now_s,
                           bool use_eval)
{
    char now[24], expire[24];
    snprintf(now, sizeof now, "%lld", (long long)now_s);
    snprintf(expire, sizeof expire, "%lld", (long long)s->expire_interval_s);
    us_buf_reset(&s->arena);
    size_t ncmd = 0;
    for (size_t i = 0; i < n;) {
        const us_op *op = &ops[i];
        if (op->kind != US_OP_WRITE) {
            plan_cmd *pc = &s->plan[ncmd];
            pc->off = s->arena.len;
            if (op->kind == US_OP_GET)
                PUT_LITERAL(&s->arena, "*5\r\n$5\r\nHMGET\r\n");
            else
                PUT_LITERAL(&s->arena, "*2\r\n$3\r\nDEL\r\n");
            pc->key_off = put_key(s, op);
            pc->key_len = s->prefix_len + op->user_len;
            if (op->kind == US_OP_GET)
                PUT_LITERAL(&s->arena, "$6\r\nactive\r\n$6\r\nonline\r\n$5\r\nstate\r\n");
            pc->len = s->arena.len - pc->off;
            pc->first_op = i;
            s->cmd_of[i] = ncmd++;
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && same_write(op, &ops[j]))
            j++;
        for (size_t k = i; k < j; k++) {
            us_buf_reset(&s->key);
            us_buf_append(&s->key, s->prefix, s->prefix_len);
            us_buf_append(&s->key, ops[k].user, ops[k].user_len);
            s->affinity[k] = us_topology_affinity(s->topology, ops[k].user, ops[k].user_len,
                                                  s->key.data, s->key.len);
            s->order[k - i] = k;
        }
        sort_affinity = s->affinity;
        qsort(s->order, j - i, sizeof *s->order, by_affinity);
        for (size_t from = 0; from < j - i;) {
            size_t to = from + 1;
            while (to < j - i && to - from < KEYS_PER_SCRIPT &&
                   s->affinity[s->order[to]] == s->affinity[s->order[from]])
                to++;
            put_update(s, ops, from, to, use_eval, now, expire, &s->plan[ncmd++]);
            from = to;
        }
        i = j;
    }
    /* Pointers last: the arena may have moved while it grew. */
    for (size_t c = 0; c < ncmd; c++) {
        const plan_cmd *pc = &s->plan[c];
        const us_op *first = &ops[pc->first_op];
        s->cmds[c] = (us_redis_cmd){
            .cmd = s->arena.data + pc->off,
            .cmd_len = pc->len,
            .shard_key = first->user,
            .shard_key_len = first->user_len,
            .slot_key = s->arena.data + pc->key_off,
            .slot_key_len = pc->key_len,
        };
    }
    return ncmd;
}

static bool reply_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* The timestamp of a reply as the digits to print, borrowed. Unknown (NULL) unless it is
 * 1..19 ASCII digits whose value fits int64 and is not 0: a value that does not fit is
 * not a time anyone wrote on purpose. The digits go into the JSON as they are, so the
 * leading zeros JSON forbids are skipped rather than the value parsed and printed. */
static void take_ts(const redisReply *r, const char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 19)
        return;
    const char *p = r->str;
    size_t n = r->len;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return;
    /* Same length, digits only: byte order is numeric order. */
    if (n == 19 && memcmp(p, "9223372036854775807", 19) > 0)
        return;
    while (n && *p == '0') {
        p++;
        n--;
    }
    if (n == 0)
        return;
    *out = p;
    *out_len = n;
}

static void take_result(us_op *op, const redisReply *r, bool *logged)
{
    if (!r) {
        op->failed = true;
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (!*logged) {
            us_error("redis error: %s", r->str);
            *logged = true;
        }
        op->failed = true;
        return;
    }
    if (op->kind != US_OP_GET)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        if (!*logged) {
            us_error("redis: unexpected reply type %d to HMGET", r->type);
            *logged = true;
        }
        op->failed = true;
        return;
    }
    take_ts(r->element[0], &op->status.active, &op->status.active_len);
    take_ts(r->element[1], &op->status.online, &op->status.online_len);
    const redisReply *st = r->element[2];
    if (st->type == REDIS_REPLY_STRING) {
        op->status.state = st->str;
        op->status.state_len = st->len;
    }
}

int us_store_exec(us_store *s, us_op *ops, size_t n, int64_t now_s)
{
    us_store_ops_clear(s, ops, n);
    if (n == 0)
        return 0;
    reserve_ops(s, n);
    size_t ncmd = plan_request(s, ops, n, now_s, false);
    us_topology_exec(s->topology, s->cmds, ncmd);

    /* NOSCRIPT: a node lost its script cache (restart, SCRIPT FLUSH, failover). Run the
     * whole request again with EVAL, which also loads the script for the next EVALSHA.
     * All of it, in order, not only the updates that failed: a get or delete behind an
     * update in the same request must still see that update. Every command is
     * idempotent, so what already ran once ends in the same state. */
    bool noscript = false;
    for (size_t c = 0; c < ncmd && !noscript; c++)
        noscript = reply_is_error(s->cmds[c].reply, "NOSCRIPT");
    if (noscript) {
        us_debug("redis: NOSCRIPT, sending the script with the request again");
        us_redis_cmds_clear(s->cmds, ncmd);
        ncmd = plan_request(s, ops, n, now_s, true);
        us_topology_exec(s->topology, s->cmds, ncmd);
    }

    int rc = 0;
    bool logged = false;
    for (size_t i = 0; i < n; i++) {
        take_result(&ops[i], s->cmds[s->cmd_of[i]].reply, &logged);
        if (ops[i].failed)
            rc = -1;
    }
    s->held = ncmd; /* the statuses borrow from these replies */
    return rc;
}

static void sha1_hex(const char *data, size_t len, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20)
        abort(); /* libcrypto fails here only without memory */
    for (unsigned i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}
