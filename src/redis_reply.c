/* Redis replies without I/O: the reply objects every node connection builds, and the pure
 * parsers of Cluster and Sentinel replies. */
#include "redis_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ustatus/mem.h"
#include "ustatus/msg.h"

/* ---- reply objects ----
 * hiredis's own functions take two allocations per object (the object, then its string
 * or its element vector), and a get reads four objects per user. Here each object is
 * one allocation with its bytes or its vector behind it. The fields mean what they mean
 * in hiredis (strings stay NUL-terminated, an empty array has no vector), so code that
 * reads replies is unchanged; only freeing differs: us_reply_free. */

/* ---- limits ---- */

static unsigned depth_of(const redisReadTask *task)
{
    unsigned d = 0;
    for (const redisReadTask *p = task->parent; p; p = p->parent)
        d++;
    return d;
}

static const char *type_name(int type)
{
    switch (type) {
    case REDIS_REPLY_STRING: return "a bulk string";
    case REDIS_REPLY_ARRAY: return "an array";
    case REDIS_REPLY_INTEGER: return "an integer";
    case REDIS_REPLY_NIL: return "a nil";
    case REDIS_REPLY_STATUS: return "a status";
    default: return "an error";
    }
}

/* Whether an object of `type` with n elements (array) or n bytes (string), taking `bytes`
 * of memory, may be part of the reply being read. A refusal is written in the guard. */
static bool admit(const redisReadTask *task, int type, size_t n, size_t bytes)
{
    us_reply_guard *g = task->privdata;
    if (!g || !g->limits)
        return type != REDIS_REPLY_ARRAY || n <= US_REPLY_MAX_ELEMENTS;
    const us_reply_limits *l = g->limits;
    unsigned depth = depth_of(task);
    if (depth == 0 && type != REDIS_REPLY_ERROR && !(l->types & US_REPLY_T(type))) {
        us_set_msg(g->why, sizeof g->why, "unexpected reply: %s", type_name(type));
        return false;
    }
    if (type == REDIS_REPLY_ARRAY) {
        size_t max = depth == 0 ? l->max_elements : l->max_nested;
        if (depth + 1 > l->max_depth) {
            us_set_msg(g->why, sizeof g->why, "arrays nested %u deep, at most %u expected",
                       depth + 1, l->max_depth);
            return false;
        }
        if (n > max || n > US_REPLY_MAX_ELEMENTS) {
            us_set_msg(g->why, sizeof g->why, "an array of %zu elements, at most %zu expected",
                       n, max);
            return false;
        }
    } else if (type != REDIS_REPLY_INTEGER && type != REDIS_REPLY_NIL && n > l->max_bulk) {
        us_set_msg(g->why, sizeof g->why, "a string of %zu bytes, at most %zu expected", n,
                   l->max_bulk);
        return false;
    }
    g->bytes += bytes;
    if (g->bytes > l->max_bytes) {
        us_set_msg(g->why, sizeof g->why, "a reply over %zu bytes", l->max_bytes);
        return false;
    }
    return true;
}

static bool name_is(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* Reads "<c><digits>\r\n" at *p (before end); the value, or -1. */
static long long read_len(const char **p, const char *end, char c)
{
    const char *q = *p;
    if (q >= end || *q != c)
        return -1;
    q++;
    long long v = 0;
    const char *digits = q;
    while (q < end && *q >= '0' && *q <= '9' && q - digits < 12)
        v = v * 10 + (*q++ - '0');
    if (q == digits || end - q < 2 || q[0] != '\r' || q[1] != '\n')
        return -1;
    *p = q + 2;
    return v;
}

/* The next argument of a command at *p: its bytes in *arg, *arg_len; false at the end. */
static bool next_arg(const char **p, const char *end, const char **arg, size_t *arg_len)
{
    long long l = read_len(p, end, '$');
    if (l < 0 || end - *p < l + 2)
        return false;
    *arg = *p;
    *arg_len = (size_t)l;
    *p += l + 2;
    return true;
}

#define ANY_TYPE (US_REPLY_T(REDIS_REPLY_STRING) | US_REPLY_T(REDIS_REPLY_ARRAY) | \
                  US_REPLY_T(REDIS_REPLY_INTEGER) | US_REPLY_T(REDIS_REPLY_NIL) | \
                  US_REPLY_T(REDIS_REPLY_STATUS))
/* Sizes of the objects redis_reply.c builds, for max_bytes. */
#define OBJ sizeof(redisReply)
#define STR_OBJ(n) (OBJ + (n) + 1)

const us_reply_limits us_reply_limits_push = {
    .types = US_REPLY_T(REDIS_REPLY_ARRAY), .max_depth = 1, .max_elements = 3,
    .max_bulk = US_REPLY_MAX_BULK, .max_bytes = 4 * OBJ + 3 * STR_OBJ(US_REPLY_MAX_BULK)};

const us_reply_limits *us_reply_limits_for(const char *cmd, size_t len, us_reply_limits *out)
{
    /* Unknown: a small reply of any shape. */
    *out = (us_reply_limits){.types = ANY_TYPE, .max_depth = 2, .max_elements = 1024,
                             .max_nested = 1024, .max_bulk = US_REPLY_MAX_BULK,
                             .max_bytes = 1024 * 1024};
    const char *p = cmd, *end = cmd + len;
    long long argc = read_len(&p, end, '*');
    const char *name, *sub = NULL;
    size_t name_len, sub_len = 0;
    if (argc < 1 || !next_arg(&p, end, &name, &name_len))
        return out;
    if (argc >= 2 && !next_arg(&p, end, &sub, &sub_len))
        sub = NULL;
    const size_t big = US_REPLY_MAX_BULK;
    if (name_is(name, name_len, "HMGET") || name_is(name, name_len, "MGET")) {
        size_t n = (size_t)argc - (name_is(name, name_len, "HMGET") ? 2 : 1);
        *out = (us_reply_limits){.types = US_REPLY_T(REDIS_REPLY_ARRAY), .max_depth = 1,
                                 .max_elements = n, .max_bulk = big,
                                 .max_bytes = OBJ + n * (sizeof(redisReply *) + STR_OBJ(big))};
    } else if (name_is(name, name_len, "EVALSHA") || name_is(name, name_len, "EVAL") ||
               name_is(name, name_len, "DEL") || name_is(name, name_len, "UNLINK") ||
               name_is(name, name_len, "EXISTS") || name_is(name, name_len, "EXPIRE") ||
               name_is(name, name_len, "WAIT")) {
        *out = (us_reply_limits){.types = US_REPLY_T(REDIS_REPLY_INTEGER), .max_bulk = big,
                                 .max_bytes = STR_OBJ(big)};
    } else if (name_is(name, name_len, "GET")) {
        *out = (us_reply_limits){.types = US_REPLY_T(REDIS_REPLY_STRING) |
                                          US_REPLY_T(REDIS_REPLY_NIL),
                                 .max_bulk = big, .max_bytes = STR_OBJ(big)};
    } else if (name_is(name, name_len, "AUTH") || name_is(name, name_len, "SELECT") ||
               name_is(name, name_len, "ASKING") || name_is(name, name_len, "PING") ||
               (name_is(name, name_len, "CLIENT") && sub && name_is(sub, sub_len, "SETNAME"))) {
        *out = (us_reply_limits){.types = US_REPLY_T(REDIS_REPLY_STATUS), .max_bulk = big,
                                 .max_bytes = STR_OBJ(big)};
    } else if (name_is(name, name_len, "ROLE")) {
        /* ["master", offset, [[ip, port, offset], ...]] or a replica's / sentinel's */
        *out = (us_reply_limits){.types = US_REPLY_T(REDIS_REPLY_ARRAY), .max_depth = 3,
                                 .max_elements = 5, .max_nested = 4096, .max_bulk = big,
                                 .max_bytes = 4 * 1024 * 1024};
    } else if (name_is(name, name_len, "CLUSTER") && sub && name_is(sub, sub_len, "SLOTS")) {
        /* [[start, end, [host, port, id, {metadata}], replicas...], ...] */
        *out = (us_reply_limits){.types = US_REPLY_T(REDIS_REPLY_ARRAY), .max_depth = 4,
                                 .max_elements = US_CLUSTER_SLOTS, .max_nested = 1024,
                                 .max_bulk = big, .max_bytes = 16 * 1024 * 1024};
    } else if (name_is(name, name_len, "SENTINEL") && sub &&
               name_is(sub, sub_len, "get-master-addr-by-name")) {
        *out = (us_reply_limits){.types = US_REPLY_T(REDIS_REPLY_ARRAY) |
                                          US_REPLY_T(REDIS_REPLY_NIL),
                                 .max_depth = 1, .max_elements = 2, .max_bulk = big,
                                 .max_bytes = 3 * OBJ + 2 * STR_OBJ(big)};
    } else if (name_is(name, name_len, "SUBSCRIBE")) {
        *out = us_reply_limits_push;
    }
    return out;
}

/* ---- reply objects (continued) ---- */

static void attach(const redisReadTask *task, redisReply *r)
{
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
}

static redisReply *new_reply(const redisReadTask *task, int type, size_t extra)
{
    redisReply *r = malloc(sizeof *r + extra);
    if (!r)
        return NULL; /* hiredis reports it as out of memory */
    *r = (redisReply){.type = type};
    attach(task, r);
    return r;
}

static void *reply_string(const redisReadTask *task, char *str, size_t len)
{
    if (!admit(task, task->type, len, sizeof(redisReply) + len + 1))
        return NULL;
    redisReply *r = new_reply(task, task->type, len + 1);
    if (!r)
        return NULL;
    r->str = (char *)(r + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *reply_array(const redisReadTask *task, int elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    if (!admit(task, REDIS_REPLY_ARRAY, n, sizeof(redisReply) + n * sizeof(redisReply *)))
        return NULL;
    redisReply *r = new_reply(task, REDIS_REPLY_ARRAY, n * sizeof(redisReply *));
    if (!r)
        return NULL;
    if (n) {
        /* A reply cut short by an error is freed with the slots not yet filled. */
        r->element = (redisReply **)(r + 1);
        memset(r->element, 0, n * sizeof(redisReply *));
    }
    r->elements = n;
    return r;
}

static void *reply_integer(const redisReadTask *task, long long value)
{
    if (!admit(task, REDIS_REPLY_INTEGER, 0, sizeof(redisReply)))
        return NULL;
    redisReply *r = new_reply(task, REDIS_REPLY_INTEGER, 0);
    if (r)
        r->integer = value;
    return r;
}

/* Every nil is this one object: a get of users with no state or no online time reads
 * many, and a nil has nothing of its own. Nothing writes into a reply, so sharing is
 * safe; us_reply_free knows not to free it. */
static redisReply nil_reply = {.type = REDIS_REPLY_NIL};

static void *reply_nil(const redisReadTask *task)
{
    if (!admit(task, REDIS_REPLY_NIL, 0, 0))
        return NULL;
    attach(task, &nil_reply);
    return &nil_reply;
}

void us_reply_free(const redisReply *r)
{
    if (!r || r == &nil_reply)
        return;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            us_reply_free(r->element[i]);
    free((void *)r); /* handed out const so that readers cannot free it; we may */
}

static void reply_free(void *r)
{
    us_reply_free(r);
}

static redisReplyObjectFunctions reply_functions = {
    .createString = reply_string,
    .createArray = reply_array,
    .createInteger = reply_integer,
    .createNil = reply_nil,
    .freeObject = reply_free,
};

void us_reply_reader_use(redisReader *rd)
{
    rd->fn = &reply_functions;
}

redisReader *us_reply_reader_create(void)
{
    return redisReaderCreateWithFunctions(&reply_functions);
}

/* ---- Redis Cluster replies ---- */

static int parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    if (len == 0 || len > 10)
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int us_cluster_parse_redirect(const char *s, size_t len, us_redirect *out)
{
    memset(out, 0, sizeof *out);
    size_t skip;
    if (len > 6 && memcmp(s, "MOVED ", 6) == 0) {
        skip = 6;
    } else if (len > 4 && memcmp(s, "ASK ", 4) == 0) {
        skip = 4;
        out->ask = true;
    } else {
        return -1;
    }
    const char *p = s + skip, *end = s + len;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    unsigned long v;
    if (!sp || parse_uint(p, (size_t)(sp - p), US_CLUSTER_SLOTS - 1, &v) < 0)
        return -1;
    out->slot = (unsigned)v;
    p = sp + 1;
    /* host:port, where the host may itself hold colons (IPv6, no brackets) */
    const char *colon = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon || parse_uint(colon + 1, (size_t)(end - colon - 1), 65535, &v) < 0 || v == 0)
        return -1;
    out->port = (int)v;
    const char *h = p, *he = colon;
    if (he - h >= 2 && *h == '[' && he[-1] == ']') {
        h++;
        he--;
    }
    if ((size_t)(he - h) >= sizeof out->host || memchr(h, ' ', (size_t)(he - h)) ||
        memchr(h, '\0', (size_t)(he - h)))
        return -1;
    memcpy(out->host, h, (size_t)(he - h));
    out->host[he - h] = '\0';
    return 0;
}

int us_cluster_slots_parse(const redisReply *r, const char *asked_host, us_slot_range **out,
                           size_t *skipped, char *err, size_t err_len)
{
    *out = NULL;
    *skipped = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return us_fail(err, err_len, "CLUSTER SLOTS: not an array");
    us_slot_range *ranges = us_xcalloc(r->elements ? r->elements : 1, sizeof *ranges);
    unsigned char seen[US_CLUSTER_SLOTS / 8];
    memset(seen, 0, sizeof seen);
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2) {
            us_fail(err, err_len, "CLUSTER SLOTS: malformed entry %zu", i + 1);
            goto fail;
        }
        long long start = e->element[0]->integer, stop = e->element[1]->integer;
        if (start < 0 || stop >= US_CLUSTER_SLOTS || start > stop) {
            us_fail(err, err_len, "CLUSTER SLOTS: bad slot range %lld-%lld", start, stop);
            goto fail;
        }
        const redisReply *master = e->element[2];
        const redisReply *ep = master->element[0], *port = master->element[1];
        if ((ep->type != REDIS_REPLY_STRING && ep->type != REDIS_REPLY_NIL) ||
            port->type != REDIS_REPLY_INTEGER || port->integer < 1 || port->integer > 65535) {
            us_fail(err, err_len, "CLUSTER SLOTS: bad master address for slots %lld-%lld",
                    start, stop);
            goto fail;
        }
        /* nil or "": the node does not know its own address: the one we asked it by.
         * "?": its preferred endpoint is not configured; nowhere to go for these slots. */
        const char *host = ep->type == REDIS_REPLY_STRING ? ep->str : "";
        /* A NUL inside would cut the host short: another node than the one named. */
        if (ep->type == REDIS_REPLY_STRING && memchr(ep->str, '\0', ep->len)) {
            us_fail(err, err_len, "CLUSTER SLOTS: host with a NUL byte for slots %lld-%lld",
                    start, stop);
            goto fail;
        }
        if (strcmp(host, "?") == 0) {
            (*skipped) += (size_t)(stop - start + 1);
            continue;
        }
        if (!host[0])
            host = asked_host ? asked_host : "";
        if (!host[0] || strlen(host) >= sizeof ranges[n].host) {
            us_fail(err, err_len, "CLUSTER SLOTS: no usable host for slots %lld-%lld", start, stop);
            goto fail;
        }
        for (long long s = start; s <= stop; s++) {
            if (seen[s / 8] & (1u << (s % 8))) {
                us_fail(err, err_len, "CLUSTER SLOTS: slot %lld listed twice", s);
                goto fail;
            }
            seen[s / 8] |= (unsigned char)(1u << (s % 8));
        }
        ranges[n].start = (unsigned)start;
        ranges[n].end = (unsigned)stop;
        snprintf(ranges[n].host, sizeof ranges[n].host, "%s", host);
        ranges[n].port = (int)port->integer;
        n++;
    }
    if (n == 0) {
        us_fail(err, err_len, "CLUSTER SLOTS: no slot is served by a reachable master");
        goto fail;
    }
    *out = ranges;
    return (int)n;
fail:
    free(ranges);
    return -1;
}

/* ---- Sentinel replies ---- */

int us_sentinel_master_addr_parse(const redisReply *r, char *host, size_t host_len, int *port)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[0]->len == 0 || r->element[0]->len >= host_len ||
        memchr(r->element[0]->str, '\0', r->element[0]->len))
        return -1;
    /* Not strtol: it stops at a NUL and takes " 6379" and "+6379". */
    unsigned long p;
    if (parse_uint(r->element[1]->str, r->element[1]->len, 65535, &p) < 0 || p == 0)
        return -1;
    memcpy(host, r->element[0]->str, r->element[0]->len + 1);
    *port = (int)p;
    return 0;
}

bool us_sentinel_is_switch_master(const redisReply *r, const char *name, size_t name_len)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
           r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->len > name_len &&
           memcmp(r->element[2]->str, name, name_len) == 0 && r->element[2]->str[name_len] == ' ';
}
