/* User status semantics on top of a topology (SPEC §2). */
#include "ustatus/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "ustatus/log.h"
#include "ustatus/topology.h"

/* The update of one user, atomic inside Redis. Timestamps only move forward (a host
 * with a clock behind the others cannot lower them), and the key's expiry is extended
 * on every write.
 *   KEYS[1] key   ARGV[1] now   ARGV[2] expire seconds
 *   ARGV[3] fields to set: "a" active, "o" online, or both
 *   ARGV[4] state: "k" keep, "s" set to ARGV[5], "d" delete */
static const char update_script[] =
    "local key, now = KEYS[1], ARGV[1]\n"
    "local t = tonumber(now)\n"
    "for i = 1, #ARGV[3] do\n"
    "  local f = ARGV[3]:sub(i, i) == 'a' and 'active' or 'online'\n"
    "  local cur = tonumber(redis.call('hget', key, f))\n"
    "  if cur == nil or cur < t then redis.call('hset', key, f, now) end\n"
    "end\n"
    "if ARGV[4] == 's' then redis.call('hset', key, 'state', ARGV[5])\n"
    "elseif ARGV[4] == 'd' then redis.call('hdel', key, 'state') end\n"
    "if redis.call('exists', key) == 1 then redis.call('expire', key, ARGV[2]) end\n"
    "return 1\n";

struct us_store {
    us_topology *topology;
    char *prefix;              /* "<redis.prefix>.user_status." */
    size_t prefix_len;
    int64_t expire_interval_s;
    char script_sha[41];
};

/* SHA1 of the script, computed here rather than asked of Redis: EVALSHA must work on the
 * first request of a fresh worker without a SCRIPT LOAD round trip. */
static void sha1_hex(const char *data, size_t len, char out[41]);

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
    us_topology_free(s->topology);
    free(s->prefix);
    free(s);
}

int us_store_ping(us_store *s, us_buf *report)
{
    return us_topology_ping(s->topology, report);
}

void us_store_ops_clear(us_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ops[i].status.state);
        memset(&ops[i].status, 0, sizeof ops[i].status);
        ops[i].failed = false;
    }
}

/* Per-exec scratch: the keys and formatted commands of every op. */
typedef struct exec_scratch {
    char **keys;
    size_t *key_lens;
    char **cmd_bufs;
    us_redis_cmd *cmds;
} exec_scratch;

static int format_op(const us_store *s, const us_op *op, const char *key, size_t key_len,
                     const char *now, const char *expire, bool use_eval, char **out)
{
    const char *argv[10];
    size_t argvlen[10];
    int argc = 0;
#define ARG(p, l) (argv[argc] = (p), argvlen[argc] = (l), argc++)
    switch (op->kind) {
    case US_OP_GET:
        ARG("HMGET", 5);
        ARG(key, key_len);
        ARG("active", 6);
        ARG("online", 6);
        ARG("state", 5);
        break;
    case US_OP_DELETE:
        ARG("DEL", 3);
        ARG(key, key_len);
        break;
    case US_OP_WRITE: {
        const char *fields = (op->fields & US_FIELD_ACTIVE)
                                 ? ((op->fields & US_FIELD_ONLINE) ? "ao" : "a")
                                 : "o";
        const char *mode = op->state_mode == US_STATE_SET     ? "s"
                           : op->state_mode == US_STATE_CLEAR ? "d"
                                                              : "k";
        if (use_eval) {
            ARG("EVAL", 4);
            ARG(update_script, sizeof update_script - 1);
        } else {
            ARG("EVALSHA", 7);
            ARG(s->script_sha, 40);
        }
        ARG("1", 1);
        ARG(key, key_len);
        ARG(now, strlen(now));
        ARG(expire, strlen(expire));
        ARG(fields, strlen(fields));
        ARG(mode, 1);
        if (op->state_mode == US_STATE_SET)
            ARG(op->state, op->state_len);
        break;
    }
    }
#undef ARG
    return redisFormatCommandArgv(out, argc, argv, argvlen);
}

static bool reply_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

static int64_t parse_ts(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 19)
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9')
            return 0;
        int d = r->str[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return 0; /* not a time anyone wrote on purpose: unknown */
        v = v * 10 + d;
    }
    return v;
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
    op->status.active = parse_ts(r->element[0]);
    op->status.online = parse_ts(r->element[1]);
    const redisReply *st = r->element[2];
    if (st->type == REDIS_REPLY_STRING) {
        op->status.state = us_xstrndup(st->str, st->len);
        op->status.state_len = st->len;
    }
}

int us_store_exec(us_store *s, us_op *ops, size_t n, int64_t now_s)
{
    if (n == 0)
        return 0;
    char now[24], expire[24];
    snprintf(now, sizeof now, "%lld", (long long)now_s);
    snprintf(expire, sizeof expire, "%lld", (long long)s->expire_interval_s);

    us_store_ops_clear(ops, n);
    char **keys = us_xmalloc(n * sizeof *keys);
    size_t *key_lens = us_xmalloc(n * sizeof *key_lens);
    char **bufs = us_xcalloc(n, sizeof *bufs);
    us_redis_cmd *cmds = us_xcalloc(n, sizeof *cmds);
    for (size_t i = 0; i < n; i++) {
        key_lens[i] = s->prefix_len + ops[i].user_len;
        keys[i] = us_xmalloc(key_lens[i] + 1);
        memcpy(keys[i], s->prefix, s->prefix_len);
        memcpy(keys[i] + s->prefix_len, ops[i].user, ops[i].user_len);
        keys[i][key_lens[i]] = '\0';
        int len = format_op(s, &ops[i], keys[i], key_lens[i], now, expire, false, &bufs[i]);
        if (len < 0)
            abort(); /* only on allocation failure: our OOM policy */
        cmds[i].cmd = bufs[i];
        cmds[i].cmd_len = (size_t)len;
        cmds[i].shard_key = ops[i].user;
        cmds[i].shard_key_len = ops[i].user_len;
        cmds[i].slot_key = keys[i];
        cmds[i].slot_key_len = key_lens[i];
    }

    us_topology_exec(s->topology, cmds, n);

    /* NOSCRIPT: a node lost its script cache (restart, SCRIPT FLUSH, failover). Run the
     * whole request again with EVAL, which also loads the script for the next EVALSHA.
     * All of it, in order, not only the updates that failed: a get or delete behind an
     * update in the same request must still see that update. Every command is
     * idempotent, so what already ran once ends in the same state. */
    bool noscript = false;
    for (size_t i = 0; i < n && !noscript; i++)
        noscript = reply_is_error(cmds[i].reply, "NOSCRIPT");
    if (noscript) {
        us_debug("redis: NOSCRIPT, sending the script with the request again");
        for (size_t i = 0; i < n; i++) {
            if (ops[i].kind != US_OP_WRITE)
                continue;
            redisFreeCommand(bufs[i]);
            int len = format_op(s, &ops[i], keys[i], key_lens[i], now, expire, true, &bufs[i]);
            if (len < 0)
                abort();
            cmds[i].cmd = bufs[i];
            cmds[i].cmd_len = (size_t)len;
        }
        us_topology_exec(s->topology, cmds, n);
    }

    int rc = 0;
    bool logged = false;
    for (size_t i = 0; i < n; i++) {
        take_result(&ops[i], cmds[i].reply, &logged);
        if (ops[i].failed)
            rc = -1;
    }
    us_redis_cmds_clear(cmds, n);
    for (size_t i = 0; i < n; i++) {
        redisFreeCommand(bufs[i]);
        free(keys[i]);
    }
    free(cmds);
    free(bufs);
    free(key_lens);
    free(keys);
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
