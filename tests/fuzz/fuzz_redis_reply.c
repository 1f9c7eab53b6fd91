/* libFuzzer target: the Redis reply layer without I/O (src/redis_reply.h): RESP bytes
 * through a reader made as every node connection makes it (us_reply_reader_create),
 * fed whole or in small chunks, then each reply through the parsers the topologies use:
 * CLUSTER SLOTS (us_cluster_slots_parse), the Sentinel master address and +switch-master
 * messages, and, for error and status replies, MOVED/ASK (us_cluster_parse_redirect).
 * The raw input is also given to us_cluster_parse_redirect as an error string.
 *
 * Input: one flags byte, then RESP.
 *   flags bits 0-2  feeding chunk size: 1 2 3 5 8 16 64, or all at once
 *         bit 3     guarded, as a node connection reads: the next byte is a length L, the
 *                   L bytes after it a command (RESP, as redisFormatCommand writes it);
 *                   the reader checks each reply against us_reply_limits_for(command)
 *                   (bit 4: against us_reply_limits_push instead)
 * In guarded mode every reply handed out must be within those limits.
 * Checked besides the sanitizers: a slot map that parses is in bounds, ordered within
 * each range, without overlaps, with ports in 1..65535 and every host exactly one the reply
 * named (or the asked host); a redirect names a slot below 16384 and a port in range; a
 * master address has a non-empty host and a port in range. Nothing that parses held a NUL
 * byte: a host cut short at an embedded NUL would send us to another node. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "fuzz_common.h"
#include "redis_reply.h"

#define MAX_REPLIES 256

static void check_redirect(const char *s, size_t len)
{
    us_redirect rd;
    memset(&rd, 0x5A, sizeof rd);
    if (us_cluster_parse_redirect(s, len, &rd) == 0) {
        if (memchr(s, '\0', len))
            abort(); /* accepted with a NUL inside: the host was cut short */
        if (rd.slot >= US_CLUSTER_SLOTS || rd.port < 1 || rd.port > 65535)
            abort();
        if (!memchr(rd.host, '\0', sizeof rd.host))
            abort();
    }
}

static int is_string(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
           r->type == REDIS_REPLY_ERROR;
}

/* Whether host is, byte for byte, an endpoint host the CLUSTER SLOTS reply r names. */
static int named_in_reply(const redisReply *r, const char *host)
{
    size_t n = strlen(host);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        if (range->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t j = 2; j < range->elements; j++) {
            const redisReply *node = range->element[j];
            if (node->type == REDIS_REPLY_ARRAY && node->elements >= 1 &&
                is_string(node->element[0]) && node->element[0]->len == n &&
                memcmp(node->element[0]->str, host, n) == 0)
                return 1;
        }
    }
    return 0;
}

static void check_reply(const redisReply *r)
{
    us_slot_range *ranges = NULL;
    size_t skipped = 0;
    char err[256];
    err[0] = '\0';
    int n = us_cluster_slots_parse(r, "10.0.0.9", &ranges, &skipped, err, sizeof err);
    if (n >= 0) {
        static unsigned char seen[US_CLUSTER_SLOTS];
        memset(seen, 0, sizeof seen);
        if (n == 0 || !ranges)
            abort(); /* "no usable range at all" is a failure */
        for (int i = 0; i < n; i++) {
            const us_slot_range *g = &ranges[i];
            if (g->start > g->end || g->end >= US_CLUSTER_SLOTS)
                abort();
            if (g->port < 1 || g->port > 65535 || !memchr(g->host, '\0', sizeof g->host))
                abort();
            if (strcmp(g->host, "10.0.0.9") != 0 && !named_in_reply(r, g->host))
                abort(); /* a host the reply did not name (cut at a NUL?) */
            for (unsigned s = g->start; s <= g->end; s++) {
                if (seen[s])
                    abort(); /* overlapping ranges accepted */
                seen[s] = 1;
            }
        }
        free(ranges);
    } else {
        if (ranges)
            abort();
        if (!memchr(err, '\0', sizeof err) || !err[0])
            abort();
    }

    char host[64];
    int port = -7;
    if (us_sentinel_master_addr_parse(r, host, sizeof host, &port) == 0) {
        if (port < 1 || port > 65535 || !memchr(host, '\0', sizeof host) || !host[0])
            abort();
        if (memchr(r->element[0]->str, '\0', r->element[0]->len) ||
            memchr(r->element[1]->str, '\0', r->element[1]->len))
            abort(); /* accepted with a NUL inside: the address was cut short */
    } else if (port != -7) {
        abort(); /* "host and *port are left alone" */
    }
    (void)us_sentinel_is_switch_master(r, "mymaster", 8);

    if ((r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS) && r->str)
        check_redirect(r->str, r->len);
}

/* Whether r (at array depth `depth`, the reply itself being 0) is within l. */
static void check_limits(const redisReply *r, const us_reply_limits *l, unsigned depth)
{
    if (depth == 0 && r->type != REDIS_REPLY_ERROR && !(l->types & US_REPLY_T(r->type)))
        abort(); /* a type the command cannot be answered with */
    if ((r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
         r->type == REDIS_REPLY_ERROR) &&
        r->len > l->max_bulk)
        abort(); /* a string over max_bulk */
    if (r->type == REDIS_REPLY_ARRAY) {
        if (depth + 1 > l->max_depth)
            abort(); /* nested deeper than max_depth */
        if (r->elements > (depth == 0 ? l->max_elements : l->max_nested))
            abort(); /* more elements than allowed */
        for (size_t i = 0; i < r->elements; i++)
            check_limits(r->element[i], l, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t chunks[] = {1, 2, 3, 5, 8, 16, 64, SIZE_MAX};
    if (size < 1)
        return 0;
    size_t chunk = chunks[data[0] & 7];
    int guarded = (data[0] & 8) != 0, push = (data[0] & 16) != 0;
    data++;
    size--;

    us_reply_limits limits;
    us_reply_guard guard;
    memset(&guard, 0, sizeof guard);
    if (guarded) {
        if (size < 1)
            return 0;
        size_t cmd_len = data[0] < size - 1 ? data[0] : size - 1;
        char *cmd = fuzz_dup_exact(data + 1, cmd_len);
        guard.limits = push ? &us_reply_limits_push : us_reply_limits_for(cmd, cmd_len, &limits);
        free(cmd);
        if (!guard.limits)
            abort();
        data += 1 + cmd_len;
        size -= 1 + cmd_len;
    }

    /* The whole input as an error string, in an exact-size buffer. */
    char *copy = fuzz_dup_exact(data, size);
    check_redirect(copy, size);
    free(copy);

    redisReader *rd = us_reply_reader_create();
    if (!rd)
        abort();
    if (guarded)
        rd->privdata = &guard;
    size_t off = 0, replies = 0;
    int failed = 0;
    while (off < size && !failed && replies < MAX_REPLIES) {
        size_t k = size - off < chunk ? size - off : chunk;
        if (redisReaderFeed(rd, (const char *)data + off, k) != REDIS_OK)
            break;
        off += k;
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK) {
                failed = 1;
                break;
            }
            if (!reply)
                break;
            if (guarded)
                check_limits(reply, guard.limits, 0);
            check_reply(reply);
            us_reply_free(reply);
            if (++replies >= MAX_REPLIES)
                break;
        }
    }
    redisReaderFree(rd);
    return 0;
}
