/* Redis replies without I/O: the reply objects every node connection builds, and the pure
 * parsers of Cluster and Sentinel replies. */
#include "redis_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustatus/mem.h"
#include "ustatus/msg.h"

/* ---- reply objects ----
 * hiredis's own functions take two allocations per object (the object, then its string
 * or its element vector), and a get reads four objects per user. Here each object is
 * one allocation with its bytes or its vector behind it. The fields mean what they mean
 * in hiredis (strings stay NUL-terminated, an empty array has no vector), so code that
 * reads replies is unchanged; only freeing differs: us_reply_free. */

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
    if (n > US_REPLY_MAX_ELEMENTS)
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
    if ((size_t)(he - h) >= sizeof out->host || memchr(h, ' ', (size_t)(he - h)))
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
        r->element[0]->len == 0 || r->element[0]->len >= host_len)
        return -1;
    char *end;
    long p = strtol(r->element[1]->str, &end, 10);
    if (*end || p < 1 || p > 65535)
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
