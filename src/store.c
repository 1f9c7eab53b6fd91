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

/* ---- the value of a key (README, "Data in Redis") ----
 *
 * One string per user: "v2:<active>:<online>" without a state, "v2:<active>:<online>:<state>"
 * with one. <active> and <online> are decimal Unix seconds, or empty when unknown; the
 * state is the rest of the value, any bytes. A string is the cheapest thing for Redis to
 * serve in bulk: one MGET per node (per slot on a Redis Cluster) answers a whole request.
 * "v2" is the version marker: 0.1.0 kept a hash with the fields active, online and state
 * ("v1"). Such a hash is still read (MGET answers nil for it; see us_store_exec), and the
 * next write of that user replaces it with a v2 string. Any other value (another type, a
 * string without the marker or with non-digits where a time goes) reads as unknown and is
 * replaced by the next write. */
#define VALUE_MARKER "v2:"

/* The update of a group of users, each atomic inside Redis (the whole call is).
 * Timestamps only move forward (a host with a clock behind the others cannot lower
 * them), and each key's expiry is extended on every write (SET ... EX). One call carries
 * the users of one node (of one slot on a Redis Cluster), so Redis runs the script once
 * per group rather than once per user.
 *   KEYS   the users' keys
 *   ARGV[1] now   ARGV[2] expire seconds
 *   ARGV[3] fields to set: "a" active, "o" online, or both ("ao")
 *   ARGV[4] state: "k" keep, "s" set to ARGV[5], "d" delete
 * ts() keeps a stored time only when store.c would read it as one (1..19 digits, a
 * positive int64), so the script and the reader never disagree about what is known.
 * Redis's Lua costs per instruction: the functions are local, and the fields of a v2
 * value are found with one match. */
static const char update_script[] =
    "local call, pcall, match = redis.call, redis.pcall, string.match\n"
    "local tonumber, type = tonumber, type\n"
    "local now, ex, mode = ARGV[1], ARGV[2], ARGV[4]\n"
    "local t = tonumber(now)\n"
    "local seta, seto = ARGV[3] ~= 'o', ARGV[3] ~= 'a'\n"
    "local function ts(v)\n"
    "  local n = tonumber(v)\n"
    "  if n and n > 0 and (#v < 19 or (#v == 19 and v <= '9223372036854775807')) then\n"
    "    return v, n\n"
    "  end\n"
    "  return '', nil\n"
    "end\n"
    "for k = 1, #KEYS do\n"
    "  local key = KEYS[k]\n"
    "  local a, o, st, na, no = '', '', nil, nil, nil\n"
    "  local v = pcall('get', key)\n"
    "  if type(v) == 'string' then\n"
    "    local x, y, rest = match(v, '^v2:(%d*):(%d*)(.*)$')\n"
    "    if x and (rest == '' or match(rest, '^:')) then\n"
    "      a, na = ts(x)\n"
    "      o, no = ts(y)\n"
    "      if rest ~= '' then st = rest:sub(2) end\n"
    "    end\n"
    "  elseif v and call('type', key).ok == 'hash' then\n"
    "    local h = call('hmget', key, 'active', 'online', 'state')\n"
    "    if h[1] and not match(h[1], '%D') then a, na = ts(h[1]) end\n"
    "    if h[2] and not match(h[2], '%D') then o, no = ts(h[2]) end\n"
    "    st = h[3] or nil\n"
    "  end\n"
    "  if seta and (not na or na < t) then a = now end\n"
    "  if seto and (not no or no < t) then o = now end\n"
    "  if mode == 's' then st = ARGV[5] elseif mode == 'd' then st = nil end\n"
    "  if st then\n"
    "    call('set', key, 'v2:' .. a .. ':' .. o .. ':' .. st, 'ex', ex)\n"
    "  else\n"
    "    call('set', key, 'v2:' .. a .. ':' .. o, 'ex', ex)\n"
    "  end\n"
    "end\n"
    "return #KEYS\n";

/* Users in one script call at most: Redis runs nothing else while a script runs, and
 * 100 users take it about 0.25 ms. */
#define KEYS_PER_SCRIPT 100

/* Keys in one MGET or DEL at most: large enough that the per-command cost vanishes
 * (a bulk read costs Redis about 0.1 us per user), small enough that one command keeps
 * Redis busy for well under a millisecond. */
#define KEYS_PER_READ 1000

/* One command of a request's plan: where its RESP text and its first key are in the
 * arena, the first operation it serves and how many keys it carries. */
typedef struct plan_cmd {
    size_t off, len;
    size_t key_off, key_len;
    size_t first_op;
    size_t nkeys;
} plan_cmd;

/* No element: the operation's command is a single-key GET, its reply the value itself. */
#define NO_ELEMENT SIZE_MAX
/* Read in place, both ways: HMGET (its command) then GET (the next command). */
#define PAIRED (SIZE_MAX - 1)

struct us_store {
    us_topology *topology;
    char *prefix;              /* "<redis.prefix>.user_status." */
    size_t prefix_len;
    int64_t expire_interval_s;
    char script_sha[41];
    size_t keys_per_read;      /* KEYS_PER_READ, or 1 where the topology routes by key */
    /* Per-request scratch, kept between requests so a request allocates nothing in the
     * common case. */
    us_buf arena;              /* the RESP text of the commands of one round trip */
    us_buf key;                /* one key, to compute its affinity */
    size_t cap;                /* capacity of the arrays below, in operations */
    size_t *cmd_of;            /* operation -> command */
    size_t *elem_of;           /* get -> its element of an MGET reply, NO_ELEMENT, PAIRED */
    bool *paired;              /* get -> the same user is written later in the request */
    uint64_t *affinity;        /* operation -> us_topology_affinity */
    size_t *order;             /* a run of operations, sorted by affinity */
    size_t *missing;           /* gets MGET answered nil for: absent, or a 0.1.0 hash */
    plan_cmd *plan;
    us_redis_cmd *cmds;
    size_t held;               /* cmds[0..held) keep the replies the last statuses borrow */
    us_redis_cmd *more;        /* the commands of the 0.1.0 read, 2 per operation */
    size_t held_more;          /* more[0..held_more) keep replies statuses borrow */
};

/* SHA1 of the script, computed here rather than asked of Redis: EVALSHA must work on the
 * first request of a fresh worker without a SCRIPT LOAD round trip. */
static void sha1_hex(const char *data, size_t len, char out[41]);

static void release_replies(us_store *s)
{
    us_redis_cmds_clear(s->cmds, s->held);
    s->held = 0;
    us_redis_cmds_clear(s->more, s->held_more);
    s->held_more = 0;
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
    /* A topology that routes by key (a Redis Cluster: the slot is part of the affinity)
     * gets one GET or DEL per key: users rarely share a slot, and a multi-key command on
     * a slot half-way through a migration is answered TRYAGAIN until the migration ends,
     * where single keys follow ASK. Scripts still take the users of one slot together. */
    s->keys_per_read = us_topology_affinity(t, "u", 1, "a", 1) ==
                               us_topology_affinity(t, "u", 1, "b", 1)
                           ? KEYS_PER_READ
                           : 1;
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
    free(s->elem_of);
    free(s->paired);
    free(s->affinity);
    free(s->order);
    free(s->missing);
    free(s->plan);
    free(s->cmds);
    free(s->more);
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
    s->elem_of = us_xrealloc(s->elem_of, cap * sizeof *s->elem_of);
    s->paired = us_xrealloc(s->paired, cap * sizeof *s->paired);
    s->affinity = us_xrealloc(s->affinity, cap * sizeof *s->affinity);
    s->order = us_xrealloc(s->order, cap * sizeof *s->order);
    s->missing = us_xrealloc(s->missing, cap * sizeof *s->missing);
    /* Up to two commands per operation: a paired read, the 0.1.0 read. */
    s->plan = us_xrealloc(s->plan, 2 * cap * sizeof *s->plan);
    s->cmds = us_xrealloc(s->cmds, 2 * cap * sizeof *s->cmds);
    s->more = us_xrealloc(s->more, 2 * cap * sizeof *s->more);
    s->cap = cap;
}

/* Writes sharing one script call must set the same fields and state. */
static bool same_write(const us_op *a, const us_op *b)
{
    return b->kind == US_OP_WRITE && a->fields == b->fields && a->state_mode == b->state_mode &&
           (a->state_mode != US_STATE_SET ||
            (a->state_len == b->state_len && memcmp(a->state, b->state, a->state_len) == 0));
}

/* Operations that may share one command: gets with gets, deletes with deletes, writes
 * with the same parameters. */
static bool same_run(const us_op *a, const us_op *b)
{
    return a->kind == b->kind && (a->kind != US_OP_WRITE || same_write(a, b));
}

static const uint64_t *sort_affinity;

static int by_affinity(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    if (sort_affinity[a] != sort_affinity[b])
        return sort_affinity[a] < sort_affinity[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* The keys of ops order[from, to) into the arena, recording which command serves each
 * operation (pc) and its element of the reply. */
static void put_keys(us_store *s, const us_op *ops, size_t from, size_t to, plan_cmd *pc)
{
    size_t k = to - from;
    for (size_t i = from; i < to; i++) {
        size_t o = s->order[i];
        size_t key_off = put_key(s, &ops[o]);
        if (i == from)
            pc->key_off = key_off;
        s->cmd_of[o] = (size_t)(pc - s->plan);
        s->elem_of[o] = k == 1 ? NO_ELEMENT : i - from;
    }
    const us_op *first = &ops[s->order[from]];
    pc->key_len = s->prefix_len + first->user_len;
    pc->first_op = s->order[from];
    pc->nkeys = k;
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
    put_keys(s, ops, from, to, pc);
    put_bulk(b, now, strlen(now));
    put_bulk(b, expire, strlen(expire));
    put_bulk(b, fields, strlen(fields));
    put_bulk(b, mode, 1);
    if (op->state_mode == US_STATE_SET)
        put_bulk(b, op->state, op->state_len);
    pc->len = b->len - pc->off;
}

/* One read or delete of ops order[from, to) (same affinity): GET for one key, MGET or
 * DEL for several. */
static void put_read_or_delete(us_store *s, const us_op *ops, size_t from, size_t to,
                               plan_cmd *pc)
{
    us_buf *b = &s->arena;
    size_t k = to - from;
    pc->off = b->len;
    put_len_line(b, '*', 1 + k);
    if (ops[s->order[from]].kind == US_OP_DELETE)
        PUT_LITERAL(b, "$3\r\nDEL\r\n");
    else if (k == 1)
        PUT_LITERAL(b, "$3\r\nGET\r\n");
    else
        PUT_LITERAL(b, "$4\r\nMGET\r\n");
    put_keys(s, ops, from, to, pc);
    pc->len = b->len - pc->off;
}

/* The read of one user both ways, in place: HMGET key active online state, then GET
 * key (two commands, plan[0] and plan[1]); see take_pair. */
static void put_pair(us_store *s, const us_op *ops, size_t o, plan_cmd *pc)
{
    const us_op *op = &ops[o];
    for (int which = 0; which < 2; which++, pc++) {
        pc->off = s->arena.len;
        if (which == 0)
            PUT_LITERAL(&s->arena, "*5\r\n$5\r\nHMGET\r\n");
        else
            PUT_LITERAL(&s->arena, "*2\r\n$3\r\nGET\r\n");
        pc->key_off = put_key(s, op);
        if (which == 0)
            PUT_LITERAL(&s->arena, "$6\r\nactive\r\n$6\r\nonline\r\n$5\r\nstate\r\n");
        pc->key_len = s->prefix_len + op->user_len;
        pc->first_op = o;
        pc->nkeys = 1;
        pc->len = s->arena.len - pc->off;
    }
}

static const us_op *sort_ops;

static int by_user(const void *x, const void *y)
{
    const us_op *a = &sort_ops[*(const size_t *)x], *b = &sort_ops[*(const size_t *)y];
    size_t n = a->user_len < b->user_len ? a->user_len : b->user_len;
    int c = memcmp(a->user, b->user, n);
    if (c == 0 && a->user_len != b->user_len)
        c = a->user_len < b->user_len ? -1 : 1;
    if (c == 0)
        c = (a < b) ? -1 : (a > b);
    return c;
}

/* Marks the gets that a later write or delete of the same request touches. The read of
 * a key MGET answers nil for comes after the whole request (read_missing), too late for
 * these: they are read in place instead (put_pair). Only batches mix them, so the
 * common request does none of this. */
static void mark_paired(us_store *s, const us_op *ops, size_t n)
{
    bool get_seen = false, mixed = false;
    for (size_t i = 0; i < n; i++) {
        s->paired[i] = false;
        if (ops[i].kind == US_OP_GET)
            get_seen = true;
        else if (get_seen)
            mixed = true;
    }
    if (!mixed)
        return;
    for (size_t i = 0; i < n; i++)
        s->order[i] = i;
    sort_ops = ops;
    qsort(s->order, n, sizeof *s->order, by_user);
    for (size_t from = 0; from < n;) {
        size_t to = from + 1;
        while (to < n && ops[s->order[to]].user_len == ops[s->order[from]].user_len &&
               memcmp(ops[s->order[to]].user, ops[s->order[from]].user,
                      ops[s->order[from]].user_len) == 0)
            to++;
        /* the same user, in request order: gets before its last write or delete */
        size_t last_write = SIZE_MAX;
        for (size_t k = to; k-- > from;) {
            size_t o = s->order[k];
            if (ops[o].kind != US_OP_GET && last_write == SIZE_MAX)
                last_write = o;
            else if (ops[o].kind == US_OP_GET && last_write != SIZE_MAX)
                s->paired[o] = true;
        }
        from = to;
    }
}

/* The us_redis_cmd of each planned command; last, because the arena may have moved while
 * it grew. */
static void point_cmds(us_store *s, const us_op *ops, us_redis_cmd *cmds, size_t ncmd)
{
    for (size_t c = 0; c < ncmd; c++) {
        const plan_cmd *pc = &s->plan[c];
        const us_op *first = &ops[pc->first_op];
        cmds[c] = (us_redis_cmd){
            .cmd = s->arena.data + pc->off,
            .cmd_len = pc->len,
            .shard_key = first->user,
            .shard_key_len = first->user_len,
            .slot_key = s->arena.data + pc->key_off,
            .slot_key_len = pc->key_len,
            .write = first->kind != US_OP_GET,
        };
    }
}

/* Plans ops[0..n): one command per group of consecutive operations of the same kind (and
 * parameters, for writes) that go to the same place: a script call per group of writes,
 * an MGET per group of gets, a DEL per group of deletes. Order is kept where it matters:
 * only consecutive operations (a run) are grouped, so a get or delete after a write of
 * the same user in the same request still sees it. Returns the number of commands. */
static size_t plan_request(us_store *s, const us_op *ops, size_t n, int64_t now_s,
                           bool use_eval)
{
    char now[24], expire[24];
    snprintf(now, sizeof now, "%lld", (long long)now_s);
    snprintf(expire, sizeof expire, "%lld", (long long)s->expire_interval_s);
    us_buf_reset(&s->arena);
    mark_paired(s, ops, n);
    size_t ncmd = 0;
    for (size_t i = 0; i < n;) {
        const us_op *op = &ops[i];
        size_t j = i + 1;
        while (j < n && same_run(op, &ops[j]))
            j++;
        size_t m = 0; /* the run's operations to group, in s->order[0..m) */
        for (size_t k = i; k < j; k++) {
            if (op->kind == US_OP_GET && s->paired[k]) {
                s->cmd_of[k] = ncmd;
                s->elem_of[k] = PAIRED;
                put_pair(s, ops, k, &s->plan[ncmd]);
                ncmd += 2;
                continue;
            }
            if (j - i > 1) {
                us_buf_reset(&s->key);
                us_buf_append(&s->key, s->prefix, s->prefix_len);
                us_buf_append(&s->key, ops[k].user, ops[k].user_len);
                s->affinity[k] = us_topology_affinity(s->topology, ops[k].user,
                                                      ops[k].user_len, s->key.data,
                                                      s->key.len);
            }
            s->order[m++] = k;
        }
        if (m > 1) {
            sort_affinity = s->affinity;
            qsort(s->order, m, sizeof *s->order, by_affinity);
        }
        size_t max = op->kind == US_OP_WRITE ? KEYS_PER_SCRIPT : s->keys_per_read;
        for (size_t from = 0; from < m;) {
            size_t to = from + 1;
            while (to < m && to - from < max &&
                   s->affinity[s->order[to]] == s->affinity[s->order[from]])
                to++;
            if (op->kind == US_OP_WRITE)
                put_update(s, ops, from, to, use_eval, now, expire, &s->plan[ncmd++]);
            else
                put_read_or_delete(s, ops, from, to, &s->plan[ncmd++]);
            from = to;
        }
        i = j;
    }
    point_cmds(s, ops, s->cmds, ncmd);
    return ncmd;
}

static bool reply_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* A timestamp as the digits to print, borrowed. Unknown (NULL) unless it is 1..19 ASCII
 * digits whose value fits int64 and is not 0: a value that does not fit is not a time
 * anyone wrote on purpose. The digits go into the JSON as they are, so the leading zeros
 * JSON forbids are skipped rather than the value parsed and printed. */
static void take_ts(const char *p, size_t n, const char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (n == 0 || n > 19)
        return;
    /* Same length, digits only (checked by the caller): byte order is numeric order. */
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

static bool all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* A field of a 0.1.0 hash (an HMGET element), as take_ts. */
static void take_ts_reply(const redisReply *r, const char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (r && r->type == REDIS_REPLY_STRING && all_digits(r->str, r->len))
        take_ts(r->str, r->len, out, out_len);
}

/* Reads a v2 value (see VALUE_MARKER) into op's status, borrowing its bytes. A value
 * that is not one leaves the status unknown: the update script reads it the same way,
 * and its next write replaces it. */
static void take_value(us_op *op, const char *p, size_t n)
{
    const size_t ml = sizeof VALUE_MARKER - 1;
    if (n < ml || memcmp(p, VALUE_MARKER, ml) != 0)
        return;
    p += ml;
    n -= ml;
    const char *sep = memchr(p, ':', n);
    if (!sep)
        return;
    const char *active = p, *online = sep + 1;
    size_t active_len = (size_t)(sep - p);
    size_t rest = n - active_len - 1;
    const char *state = memchr(online, ':', rest);
    size_t online_len = state ? (size_t)(state - online) : rest;
    if (!all_digits(active, active_len) || !all_digits(online, online_len))
        return;
    take_ts(active, active_len, &op->status.active, &op->status.active_len);
    take_ts(online, online_len, &op->status.online, &op->status.online_len);
    if (state) {
        op->status.state = state + 1;
        op->status.state_len = rest - online_len - 1;
    }
}

static void fail_op(us_op *op, const char *what, const redisReply *r, bool *logged)
{
    if (!*logged) {
        if (r && r->type == REDIS_REPLY_ERROR)
            us_error("redis error: %s", r->str);
        else if (r)
            us_error("redis: unexpected reply type %d to %s", r->type, what);
        *logged = true;
    }
    op->failed = true;
}

/* The status of op from its paired read (put_pair): h the HMGET reply, v the GET reply.
 * Whichever type the key had answers: a string read by the GET (the later of the two:
 * the key may have been converted in between), else the fields of a hash. Both failing
 * with WRONGTYPE (a list, a set...) or nil: unknown. */
static void take_pair(us_op *op, const redisReply *h, const redisReply *v, bool *logged)
{
    if (!h || !v) {
        op->failed = true;
    } else if (v->type == REDIS_REPLY_STRING) {
        take_value(op, v->str, v->len);
    } else if (h->type == REDIS_REPLY_ARRAY && h->elements == 3) {
        take_ts_reply(h->element[0], &op->status.active, &op->status.active_len);
        take_ts_reply(h->element[1], &op->status.online, &op->status.online_len);
        const redisReply *st = h->element[2];
        if (st->type == REDIS_REPLY_STRING) {
            op->status.state = st->str;
            op->status.state_len = st->len;
        }
    } else if (h->type == REDIS_REPLY_ERROR && !reply_is_error(h, "WRONGTYPE")) {
        fail_op(op, "HMGET", h, logged);
    } else if (v->type == REDIS_REPLY_ERROR && !reply_is_error(v, "WRONGTYPE")) {
        fail_op(op, "GET", v, logged);
    } else if (h->type != REDIS_REPLY_ERROR && h->type != REDIS_REPLY_ARRAY) {
        fail_op(op, "HMGET", h, logged);
    } else if (v->type != REDIS_REPLY_ERROR && v->type != REDIS_REPLY_NIL) {
        fail_op(op, "GET", v, logged);
    }
}

/* Reads the reply of ops[i]'s command. Returns true when the op is a get whose key MGET
 * (or GET) answered nil: absent, or not a string (a 0.1.0 hash). */
static bool take_result(us_store *s, us_op *ops, size_t i, bool *logged)
{
    us_op *op = &ops[i];
    size_t c = s->cmd_of[i];
    const redisReply *r = s->cmds[c].reply;
    if (op->kind == US_OP_GET && s->elem_of[i] == PAIRED) {
        take_pair(op, r, s->cmds[c + 1].reply, logged);
        return false;
    }
    if (!r) {
        op->failed = true;
        return false;
    }
    /* a single-key GET of a key that is not a string: a 0.1.0 hash, most likely */
    if (op->kind == US_OP_GET && reply_is_error(r, "WRONGTYPE"))
        return true;
    if (r->type == REDIS_REPLY_ERROR) {
        fail_op(op, "", r, logged);
        return false;
    }
    if (op->kind != US_OP_GET)
        return false;
    if (s->elem_of[i] != NO_ELEMENT) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != s->plan[c].nkeys) {
            fail_op(op, "MGET", r, logged);
            return false;
        }
        r = r->element[s->elem_of[i]];
    }
    if (r->type == REDIS_REPLY_NIL)
        return true;
    if (r->type != REDIS_REPLY_STRING) {
        fail_op(op, "GET", r, logged);
        return false;
    }
    take_value(op, r->str, r->len);
    return false;
}

/* ---- keys MGET answered nil for ---- */

/* A get's key is absent, or holds something else than a string: a hash written by 0.1.0
 * most likely. One EXISTS per group of such keys (the keys of one MGET: same node, same
 * slot) tells the two apart cheaply, since absent users are common and 0.1.0 hashes
 * rare; only in a group where something exists, each key is read both ways, HMGET then
 * GET in one pipeline: whichever type the key has at that moment answers (a GET that
 * finds a string wins: it is the later read, after a concurrent write converted it).
 * Returns 0, or -1 when an operation failed. */
static int read_missing(us_store *s, us_op *ops, size_t nmissing, bool *logged)
{
    int rc = 0;
    /* EXISTS per group: the missing ops sorted by their MGET, one command each. */
    for (size_t m = 0; m < nmissing; m++)
        s->order[m] = s->missing[m];
    size_t *cmd_of = s->cmd_of;
    for (size_t m = 1; m < nmissing; m++) { /* insertion sort: already nearly in order */
        size_t v = s->order[m], k = m;
        while (k > 0 && cmd_of[s->order[k - 1]] > cmd_of[v]) {
            s->order[k] = s->order[k - 1];
            k--;
        }
        s->order[k] = v;
    }
    us_buf_reset(&s->arena);
    size_t ngroups = 0;
    for (size_t from = 0; from < nmissing;) {
        size_t to = from + 1;
        while (to < nmissing && cmd_of[s->order[to]] == cmd_of[s->order[from]])
            to++;
        plan_cmd *pc = &s->plan[ngroups++];
        pc->off = s->arena.len;
        put_len_line(&s->arena, '*', 1 + (to - from));
        PUT_LITERAL(&s->arena, "$6\r\nEXISTS\r\n");
        for (size_t i = from; i < to; i++) {
            size_t key_off = put_key(s, &ops[s->order[i]]);
            if (i == from)
                pc->key_off = key_off;
        }
        pc->key_len = s->prefix_len + ops[s->order[from]].user_len;
        pc->first_op = s->order[from];
        pc->nkeys = to - from;
        pc->len = s->arena.len - pc->off;
        from = to;
    }
    point_cmds(s, ops, s->more, ngroups);
    us_topology_exec(s->topology, s->more, ngroups);

    /* The ops of the groups where something exists, in s->missing. */
    size_t nlegacy = 0, g = 0;
    for (size_t from = 0; from < nmissing; g++) {
        size_t to = from + s->plan[g].nkeys;
        const redisReply *r = s->more[g].reply;
        for (size_t i = from; i < to; i++) {
            us_op *op = &ops[s->order[i]];
            if (!r || r->type != REDIS_REPLY_INTEGER) {
                if (r)
                    fail_op(op, "EXISTS", r, logged);
                else
                    op->failed = true;
                rc = -1;
            } else if (r->integer > 0) {
                s->missing[nlegacy++] = s->order[i];
            }
        }
        from = to;
    }
    us_redis_cmds_clear(s->more, ngroups);
    if (nlegacy == 0)
        return rc;

    us_buf_reset(&s->arena);
    for (size_t m = 0; m < nlegacy; m++)
        put_pair(s, ops, s->missing[m], &s->plan[2 * m]);
    point_cmds(s, ops, s->more, 2 * nlegacy);
    us_topology_exec(s->topology, s->more, 2 * nlegacy);
    s->held_more = 2 * nlegacy; /* the statuses borrow from these replies */
    for (size_t m = 0; m < nlegacy; m++) {
        us_op *op = &ops[s->missing[m]];
        take_pair(op, s->more[2 * m].reply, s->more[2 * m + 1].reply, logged);
        if (op->failed)
            rc = -1;
    }
    return rc;
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
    size_t nmissing = 0;
    for (size_t i = 0; i < n; i++) {
        if (take_result(s, ops, i, &logged))
            s->missing[nmissing++] = i;
        if (ops[i].failed)
            rc = -1;
    }
    s->held = ncmd; /* the statuses borrow from these replies */
    if (nmissing && read_missing(s, ops, nmissing, &logged) != 0)
        rc = -1;
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
