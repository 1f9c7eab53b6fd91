/* Unit tests for redis_reply: the reply objects a node connection builds (fed raw RESP
 * through us_reply_reader_create, the reader every connection uses), and the pure
 * parsers of Redis Cluster and Sentinel replies.
 *
 * Replies are built the way a real connection builds them, so the parsers see exactly
 * the redisReply trees a server produces, and freeing them exercises us_reply_free on
 * the layout it was written for. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "fixtures.h"
#include "../../src/redis_reply.h"
#include "ustatus/buf.h"

/* One complete reply from len bytes; the reader must not hold anything back. */
static const redisReply *resp_n(const char *bytes, size_t len)
{
    redisReader *rd = us_reply_reader_create();
    ck_assert_ptr_nonnull(rd);
    void *reply = NULL;
    ck_assert_int_eq(redisReaderFeed(rd, bytes, len), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    void *more = NULL;
    ck_assert_int_eq(redisReaderGetReply(rd, &more), REDIS_OK);
    ck_assert_ptr_null(more);
    redisReaderFree(rd);
    return reply;
}

static const redisReply *resp(const char *bytes)
{
    return resp_n(bytes, strlen(bytes));
}

/* ---- the RESP reader and the reply objects ---- */

START_TEST(test_scalars)
{
    const redisReply *r = resp(":-42\r\n");
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, -42);
    us_reply_free(r);

    r = resp(":9223372036854775807\r\n");
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert(r->integer == INT64_MAX);
    us_reply_free(r);

    r = resp("+OK\r\n");
    ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
    ck_assert_uint_eq(r->len, 2);
    ck_assert_str_eq(r->str, "OK");
    us_reply_free(r);

    r = resp("-NOSCRIPT No matching script\r\n");
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    ck_assert_str_eq(r->str, "NOSCRIPT No matching script");
    ck_assert_uint_eq(r->len, strlen("NOSCRIPT No matching script"));
    us_reply_free(r);

    /* bulk strings: any bytes, NUL-terminated after len all the same */
    static const char binary[] = "$5\r\na\0b\r\n\r\n";
    r = resp_n(binary, sizeof binary - 1);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(r->len, 5);
    ck_assert_int_eq(memcmp(r->str, "a\0b\r\n", 5), 0);
    ck_assert_int_eq(r->str[5], '\0');
    us_reply_free(r);

    r = resp("$0\r\n\r\n");
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(r->len, 0);
    ck_assert_str_eq(r->str, "");
    us_reply_free(r);
}
END_TEST

/* An HMGET of an absent key: every nil is the one shared object, never freed. */
START_TEST(test_shared_nil)
{
    const redisReply *a = resp("$-1\r\n");
    const redisReply *b = resp("*-1\r\n");
    ck_assert_int_eq(a->type, REDIS_REPLY_NIL);
    ck_assert_ptr_eq(a, b);
    us_reply_free(a);
    us_reply_free(b);
    us_reply_free(NULL);

    const redisReply *r = resp("*3\r\n$-1\r\n$-1\r\n$1\r\nx\r\n");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 3);
    ck_assert_ptr_eq(r->element[0], a);
    ck_assert_ptr_eq(r->element[1], a);
    ck_assert_int_eq(r->element[2]->type, REDIS_REPLY_STRING);
    us_reply_free(r);
    /* still there for the next reply */
    ck_assert_int_eq(a->type, REDIS_REPLY_NIL);
    ck_assert_ptr_null(a->str);
}
END_TEST

START_TEST(test_nested_arrays)
{
    const redisReply *r = resp("*4\r\n"
                               "*2\r\n:1\r\n*2\r\n+in\r\n$-1\r\n"
                               "*0\r\n"
                               "-ERR x\r\n"
                               "*1\r\n*1\r\n*1\r\n$4\r\ndeep\r\n");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 4);

    const redisReply *e = r->element[0];
    ck_assert_int_eq(e->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(e->elements, 2);
    ck_assert_int_eq(e->element[0]->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(e->element[0]->integer, 1);
    ck_assert_int_eq(e->element[1]->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(e->element[1]->element[0]->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(e->element[1]->element[0]->str, "in");
    ck_assert_int_eq(e->element[1]->element[1]->type, REDIS_REPLY_NIL);

    /* an empty array has no vector, as in hiredis */
    ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->element[1]->elements, 0);
    ck_assert_ptr_null(r->element[1]->element);

    /* an error inside an array is an element, not the reply's failure */
    ck_assert_int_eq(r->element[2]->type, REDIS_REPLY_ERROR);
    ck_assert_str_eq(r->element[2]->str, "ERR x");

    const redisReply *d = r->element[3]->element[0]->element[0]->element[0];
    ck_assert_int_eq(d->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(d->str, "deep");
    us_reply_free(r);
}
END_TEST

/* A reply arriving in pieces is the same reply. */
START_TEST(test_reply_in_pieces)
{
    static const char bytes[] = "*2\r\n$5\r\nhello\r\n*1\r\n:7\r\n";
    redisReader *rd = us_reply_reader_create();
    void *reply = NULL;
    for (size_t i = 0; i < sizeof bytes - 1; i++) {
        ck_assert_ptr_null(reply);
        ck_assert_int_eq(redisReaderFeed(rd, bytes + i, 1), REDIS_OK);
        ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    }
    ck_assert_ptr_nonnull(reply);
    const redisReply *r = reply;
    ck_assert_str_eq(r->element[0]->str, "hello");
    ck_assert_int_eq(r->element[1]->element[0]->integer, 7);
    us_reply_free(r);
    redisReaderFree(rd);
}
END_TEST

/* A protocol error part-way through an array: the reader frees the half-built tree
 * (elements already read, the shared nil, slots never filled) through our freeObject.
 * Run under valgrind or ASan, a leak or a bad free shows here. */
START_TEST(test_protocol_error_frees_partial_reply)
{
    static const char *bad[] = {
        "*3\r\n:1\r\n!oops\r\n",
        "*3\r\n$-1\r\n*2\r\n$2\r\nab\r\n?\r\n",
        "*2\r\n*4\r\n+a\r\n$-1\r\n:x\r\n",
        /* deeper than hiredis's reader goes (7 levels), under elements already read */
        "*2\r\n$1\r\na\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redisReader *rd = us_reply_reader_create();
        void *reply = NULL;
        ck_assert_int_eq(redisReaderFeed(rd, bad[i], strlen(bad[i])), REDIS_OK);
        ck_assert_msg(redisReaderGetReply(rd, &reply) == REDIS_ERR, "case %zu accepted", i);
        ck_assert_ptr_null(reply);
        ck_assert_int_eq(rd->err, REDIS_ERR_PROTOCOL);
        redisReaderFree(rd);
    }
    /* the shared nil survives it */
    const redisReply *nil = resp("$-1\r\n");
    ck_assert_int_eq(nil->type, REDIS_REPLY_NIL);
}
END_TEST

/* A connection closed in the middle of a reply: the reader is freed with a half-built
 * tree pending. */
START_TEST(test_free_reader_with_partial_reply)
{
    static const char bytes[] = "*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n";
    redisReader *rd = us_reply_reader_create();
    void *reply = NULL;
    ck_assert_int_eq(redisReaderFeed(rd, bytes, sizeof bytes - 1), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    ck_assert_ptr_null(reply);
    redisReaderFree(rd);
}
END_TEST

/* SPEC §3.8: an array header longer than any answer of ours fails the reader before
 * anything is allocated for it, nested or not; the longest allowed one is read. */
START_TEST(test_array_header_bounded)
{
    static const char *bad[] = {
        "*65537\r\n",
        "*2147483647\r\n",
        "*100000000\r\n",
        "*1\r\n*1\r\n*1\r\n*1000000\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redisReader *rd = us_reply_reader_create();
        void *reply = NULL;
        ck_assert_int_eq(redisReaderFeed(rd, bad[i], strlen(bad[i])), REDIS_OK);
        ck_assert_msg(redisReaderGetReply(rd, &reply) == REDIS_ERR, "case %zu accepted", i);
        ck_assert_ptr_null(reply);
        redisReaderFree(rd);
    }
    enum { N = US_REPLY_MAX_ELEMENTS };
    us_buf b = US_BUF_INIT;
    us_buf_printf(&b, "*%d\r\n", N);
    for (int i = 0; i < N; i++)
        us_buf_puts(&b, ":7\r\n");
    const redisReply *r = resp_n(b.data, b.len);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, N);
    ck_assert_int_eq(r->element[N - 1]->integer, 7);
    us_reply_free(r);
    us_buf_free(&b);
}
END_TEST

#define REDIRECT(lit, out) us_cluster_parse_redirect((lit), sizeof(lit) - 1, (out))

/* ---- MOVED / ASK ---- */

START_TEST(test_redirect_moved_and_ask)
{
    us_redirect r;
    ck_assert_int_eq(REDIRECT("MOVED 3999 127.0.0.1:6381", &r), 0);
    ck_assert(!r.ask);
    ck_assert_uint_eq(r.slot, 3999);
    ck_assert_str_eq(r.host, "127.0.0.1");
    ck_assert_int_eq(r.port, 6381);

    ck_assert_int_eq(REDIRECT("ASK 0 redis-7.example.com:7000", &r), 0);
    ck_assert(r.ask);
    ck_assert_uint_eq(r.slot, 0);
    ck_assert_str_eq(r.host, "redis-7.example.com");
    ck_assert_int_eq(r.port, 7000);

    ck_assert_int_eq(REDIRECT("MOVED 16383 10.0.0.1:1", &r), 0);
    ck_assert_uint_eq(r.slot, 16383);
}
END_TEST

/* The cluster spec: an empty host means "the node that sent the redirection"; Redis
 * prints IPv6 addresses without brackets. */
START_TEST(test_redirect_empty_host_and_ipv6)
{
    us_redirect r;
    ck_assert_int_eq(REDIRECT("MOVED 12 :6380", &r), 0);
    ck_assert_str_eq(r.host, "");
    ck_assert_int_eq(r.port, 6380);
    ck_assert_int_eq(REDIRECT("ASK 12 ::1:6380", &r), 0);
    ck_assert_str_eq(r.host, "::1");
    ck_assert_int_eq(r.port, 6380);
    ck_assert_int_eq(REDIRECT("MOVED 12 2001:db8::7:7001", &r), 0);
    ck_assert_str_eq(r.host, "2001:db8::7");
    ck_assert_int_eq(r.port, 7001);
    ck_assert_int_eq(REDIRECT("MOVED 12 [::1]:6380", &r), 0);
    ck_assert_str_eq(r.host, "::1");
}
END_TEST

START_TEST(test_redirect_rejects_the_rest)
{
    us_redirect r;
    const char *bad[] = {
        "MOVED", "MOVED ", "MOVED 3999", "MOVED 3999 ", "MOVED 3999 127.0.0.1",
        "MOVED 16384 127.0.0.1:6379", "MOVED -1 127.0.0.1:6379", "MOVED x 127.0.0.1:6379",
        "MOVED 1 127.0.0.1:0", "MOVED 1 127.0.0.1:65536", "MOVED 1 127.0.0.1:63a",
        "MOVED 1 127.0.0.1:", "ASK 1 a b:1", "moved 1 127.0.0.1:6379",
        "ERR unknown command", "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down", "MOVEDX 1 127.0.0.1:6379", "NOSCRIPT x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(us_cluster_parse_redirect(bad[i], strlen(bad[i]), &r) < 0, "%s", bad[i]);
    /* the length is honoured: no reading past it */
    ck_assert_int_eq(us_cluster_parse_redirect("MOVED 1 h:6379", 12, &r), 0);
    ck_assert_int_eq(r.port, 63);
}
END_TEST

/* ---- CLUSTER SLOTS ---- */

/* What a 7.0 node answers for a 3-master cluster with one replica each (ids shortened). */
static const char three_masters[] =
    "*3\r\n"
    "*4\r\n:0\r\n:5460\r\n"
    "*3\r\n$9\r\n127.0.0.1\r\n:30001\r\n$2\r\nm1\r\n"
    "*3\r\n$9\r\n127.0.0.1\r\n:30004\r\n$2\r\nr1\r\n"
    "*4\r\n:5461\r\n:10922\r\n"
    "*3\r\n$9\r\n127.0.0.1\r\n:30002\r\n$2\r\nm2\r\n"
    "*3\r\n$9\r\n127.0.0.1\r\n:30005\r\n$2\r\nr2\r\n"
    "*4\r\n:10923\r\n:16383\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:30003\r\n$2\r\nm3\r\n*0\r\n" /* 7.0: empty metadata */
    "*3\r\n$9\r\n127.0.0.1\r\n:30006\r\n$2\r\nr3\r\n";

START_TEST(test_slots_three_masters)
{
    const redisReply *r = resp(three_masters);
    us_slot_range *ranges = NULL;
    size_t skipped = 99;
    char err[200];
    int n = us_cluster_slots_parse(r, "seed.example", &ranges, &skipped, err, sizeof err);
    ck_assert_msg(n == 3, "%s", err);
    ck_assert_uint_eq(skipped, 0);
    ck_assert_uint_eq(ranges[0].start, 0);
    ck_assert_uint_eq(ranges[0].end, 5460);
    ck_assert_str_eq(ranges[0].host, "127.0.0.1");
    ck_assert_int_eq(ranges[0].port, 30001);
    ck_assert_uint_eq(ranges[1].start, 5461);
    ck_assert_int_eq(ranges[1].port, 30002);
    ck_assert_uint_eq(ranges[2].end, 16383);
    ck_assert_int_eq(ranges[2].port, 30003);
    free(ranges);
    us_reply_free(r);
}
END_TEST

/* CLUSTER SLOTS documentation: a nil or empty endpoint means "the address you asked me
 * by"; "?" means the node does not know its preferred endpoint. Partial coverage is
 * allowed (cluster-require-full-coverage no). */
START_TEST(test_slots_endpoints)
{
    const redisReply *r = resp("*3\r\n"
                         "*3\r\n:0\r\n:99\r\n*2\r\n$-1\r\n:7000\r\n"
                         "*3\r\n:100\r\n:199\r\n*2\r\n$0\r\n\r\n:7001\r\n"
                         "*3\r\n:200\r\n:299\r\n*2\r\n$1\r\n?\r\n:7002\r\n");
    us_slot_range *ranges = NULL;
    size_t skipped = 0;
    char err[200];
    int n = us_cluster_slots_parse(r, "10.1.2.3", &ranges, &skipped, err, sizeof err);
    ck_assert_msg(n == 2, "%s", err);
    ck_assert_str_eq(ranges[0].host, "10.1.2.3");
    ck_assert_int_eq(ranges[0].port, 7000);
    ck_assert_str_eq(ranges[1].host, "10.1.2.3");
    ck_assert_int_eq(ranges[1].port, 7001);
    ck_assert_uint_eq(skipped, 100);
    free(ranges);
    /* nobody to substitute: a unix-socket seed has no host */
    n = us_cluster_slots_parse(r, "", &ranges, &skipped, err, sizeof err);
    ck_assert_int_eq(n, -1);
    ck_assert_ptr_null(ranges);
    us_reply_free(r);
}
END_TEST

/* Build, validate, swap: anything doubtful is refused as a whole, so the caller keeps
 * its old map. */
START_TEST(test_slots_rejects_bad_maps)
{
    const char *bad[] = {
        /* not an array / empty: a node with no slots assigned */
        "+OK\r\n",
        "*0\r\n",
        /* overlapping ranges */
        "*2\r\n*3\r\n:0\r\n:100\r\n*2\r\n$1\r\na\r\n:1\r\n"
        "*3\r\n:100\r\n:200\r\n*2\r\n$1\r\nb\r\n:2\r\n",
        /* backwards, out of bounds */
        "*1\r\n*3\r\n:10\r\n:9\r\n*2\r\n$1\r\na\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n",
        "*1\r\n*3\r\n:-1\r\n:5\r\n*2\r\n$1\r\na\r\n:1\r\n",
        /* bad ports, missing master, wrong types */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\na\r\n:0\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\na\r\n:65536\r\n",
        "*1\r\n*2\r\n:0\r\n:5\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n$1\r\na\r\n",
        "*1\r\n*3\r\n$1\r\n0\r\n:5\r\n*2\r\n$1\r\na\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\na\r\n$4\r\n6379\r\n",
        "*1\r\n:5\r\n",
        /* only unknown endpoints: nothing usable */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\n?\r\n:1\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const redisReply *r = resp(bad[i]);
        us_slot_range *ranges = (us_slot_range *)1;
        size_t skipped;
        char err[200] = "";
        ck_assert_msg(us_cluster_slots_parse(r, "h", &ranges, &skipped, err, sizeof err) < 0,
                      "case %zu accepted", i);
        ck_assert_ptr_null(ranges);
        ck_assert_msg(err[0] != '\0', "case %zu: no reason given", i);
        us_reply_free(r);
    }
}
END_TEST

/* ---- Sentinel replies ---- */

START_TEST(test_sentinel_master_addr)
{
    char host[256] = "unchanged";
    int port = -1;
    const redisReply *r = resp("*2\r\n$8\r\n10.0.0.7\r\n$4\r\n6380\r\n");
    ck_assert_int_eq(us_sentinel_master_addr_parse(r, host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "10.0.0.7");
    ck_assert_int_eq(port, 6380);
    us_reply_free(r);

    r = resp("*2\r\n$3\r\n::1\r\n$5\r\n65535\r\n");
    ck_assert_int_eq(us_sentinel_master_addr_parse(r, host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_int_eq(port, 65535);
    us_reply_free(r);

    /* the host must fit, NUL included */
    r = resp("*2\r\n$8\r\n10.0.0.7\r\n$4\r\n6380\r\n");
    ck_assert_int_eq(us_sentinel_master_addr_parse(r, host, 9, &port), 0);
    ck_assert_int_eq(us_sentinel_master_addr_parse(r, host, 8, &port), -1);
    us_reply_free(r);

    const char *bad[] = {
        "*-1\r\n",                                   /* master name unknown */
        "$-1\r\n",
        "-ERR unknown command\r\n",
        "*1\r\n$8\r\n10.0.0.7\r\n",
        "*3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\n2\r\n",
        "*2\r\n$0\r\n\r\n$4\r\n6379\r\n",            /* empty host */
        "*2\r\n$1\r\nh\r\n:6379\r\n",                /* port as an integer reply */
        "*2\r\n$1\r\nh\r\n$1\r\n0\r\n",
        "*2\r\n$1\r\nh\r\n$5\r\n65536\r\n",
        "*2\r\n$1\r\nh\r\n$4\r\n63x9\r\n",
        "*2\r\n$1\r\nh\r\n$0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(host, "unchanged");
        port = -1;
        r = resp(bad[i]);
        ck_assert_msg(us_sentinel_master_addr_parse(r, host, sizeof host, &port) < 0,
                      "case %zu accepted", i);
        ck_assert_str_eq(host, "unchanged");
        ck_assert_int_eq(port, -1);
        us_reply_free(r);
    }
}
END_TEST

START_TEST(test_sentinel_switch_master)
{
    const redisReply *r = resp("*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n"
                               "$38\r\nmymaster 127.0.0.1 6379 127.0.0.1 6380\r\n");
    ck_assert(us_sentinel_is_switch_master(r, "mymaster", 8));
    ck_assert(!us_sentinel_is_switch_master(r, "mymaste", 7));   /* a prefix is not a name */
    ck_assert(!us_sentinel_is_switch_master(r, "other", 5));
    us_reply_free(r);

    /* the subscription's own confirmation, and other shapes */
    r = resp("*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n");
    ck_assert(!us_sentinel_is_switch_master(r, "mymaster", 8));
    us_reply_free(r);
    r = resp("*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$8\r\nmymaster\r\n");
    ck_assert(!us_sentinel_is_switch_master(r, "mymaster", 8));
    us_reply_free(r);
    r = resp("$8\r\nmymaster\r\n");
    ck_assert(!us_sentinel_is_switch_master(r, "mymaster", 8));
    us_reply_free(r);
}
END_TEST


/* ---- bounds of a reply (SPEC §3.8) ---- */

/* Feeds bytes to a reader guarded by the limits of cmd. Returns the reply (the caller
 * frees it), or NULL with the refusal in why. */
static const redisReply *guarded(const char *cmd, const char *bytes, size_t len, char *why,
                                 size_t why_len)
{
    us_reply_limits limits;
    us_reply_limits_for(cmd, strlen(cmd), &limits);
    us_reply_guard guard = {.limits = &limits};
    redisReader *rd = us_reply_reader_create();
    rd->privdata = &guard;
    void *reply = NULL;
    ck_assert_int_eq(redisReaderFeed(rd, bytes, len), REDIS_OK);
    int rc = redisReaderGetReply(rd, &reply);
    snprintf(why, why_len, "%s", guard.why);
    redisReaderFree(rd);
    if (rc != REDIS_OK)
        return NULL;
    ck_assert_ptr_nonnull(reply);
    return reply;
}

static const char evalsha[] = "*5\r\n$7\r\nEVALSHA\r\n$40\r\n"
                              "0123456789012345678901234567890123456789\r\n$1\r\n1\r\n"
                              "$3\r\nk.1\r\n$2\r\n10\r\n";
static const char mget2[] = "*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n";
static const char hmget3[] = "*5\r\n$5\r\nHMGET\r\n$1\r\nk\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";

START_TEST(test_limits_for_commands)
{
    us_reply_limits l;
    us_reply_limits_for(evalsha, strlen(evalsha), &l);
    ck_assert_uint_eq(l.types, US_REPLY_T(REDIS_REPLY_INTEGER));
    ck_assert_uint_eq(l.max_depth, 0);
    us_reply_limits_for(mget2, strlen(mget2), &l);
    ck_assert_uint_eq(l.types, US_REPLY_T(REDIS_REPLY_ARRAY));
    ck_assert_uint_eq(l.max_elements, 2);
    ck_assert_uint_eq(l.max_depth, 1);
    us_reply_limits_for(hmget3, strlen(hmget3), &l);
    ck_assert_uint_eq(l.max_elements, 3);
    const char slots[] = "*2\r\n$7\r\ncluster\r\n$5\r\nslots\r\n";
    us_reply_limits_for(slots, strlen(slots), &l);
    ck_assert_uint_eq(l.max_elements, US_CLUSTER_SLOTS);
    ck_assert_uint_eq(l.max_depth, 4);
    /* bytes that are not a command get the small default, never something larger */
    us_reply_limits_for("garbage", 7, &l);
    ck_assert_uint_le(l.max_elements, 1024);
    ck_assert_uint_le(l.max_bytes, 1024 * 1024);
    us_reply_limits_for("*1\r\n$99\r\nPING\r\n", 15, &l);
    ck_assert_uint_le(l.max_elements, 1024);
}
END_TEST

START_TEST(test_limits_refuse_before_allocating)
{
    char why[96];
    const redisReply *r;
    /* the right shapes pass */
    r = guarded(evalsha, ":1\r\n", 4, why, sizeof why);
    ck_assert_int_eq(r->integer, 1);
    us_reply_free(r);
    r = guarded(evalsha, "-NOSCRIPT x\r\n", 13, why, sizeof why);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    us_reply_free(r);
    r = guarded(mget2, "*2\r\n$1\r\nx\r\n$-1\r\n", 16, why, sizeof why);
    ck_assert_uint_eq(r->elements, 2);
    us_reply_free(r);
    /* a reply of another command's type */
    ck_assert_ptr_null(guarded(evalsha, "$2\r\nOK\r\n", 8, why, sizeof why));
    ck_assert_str_eq(why, "unexpected reply: a bulk string");
    ck_assert_ptr_null(guarded(mget2, ":1\r\n", 4, why, sizeof why));
    ck_assert_str_eq(why, "unexpected reply: an integer");
    /* more elements than keys asked for, and huge headers */
    ck_assert_ptr_null(guarded(mget2, "*3\r\n", 4, why, sizeof why));
    ck_assert_str_eq(why, "an array of 3 elements, at most 2 expected");
    ck_assert_ptr_null(guarded(mget2, "*2147483647\r\n", 13, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "2147483647"));
    /* nesting where the command returns a flat array */
    ck_assert_ptr_null(guarded(mget2, "*1\r\n*1\r\n", 8, why, sizeof why));
    ck_assert_str_eq(why, "arrays nested 2 deep, at most 1 expected");
    /* a string longer than the bound, once it is all there */
    size_t big = US_REPLY_MAX_BULK + 1;
    char *bytes = malloc(big + 32);
    int n = snprintf(bytes, 32, "*1\r\n$%zu\r\n", big);
    memset(bytes + n, 'x', big);
    memcpy(bytes + n + big, "\r\n", 2);
    ck_assert_ptr_null(guarded("*2\r\n$4\r\nMGET\r\n$1\r\na\r\n", bytes, (size_t)n + big + 2,
                               why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "a string of 65537 bytes"));
    free(bytes);
}
END_TEST

static Suite *redis_reply_suite(void)
{
    Suite *s = suite_create("redis_reply");
    TCase *tc = tcase_create("reader");
    tcase_add_test(tc, test_scalars);
    tcase_add_test(tc, test_shared_nil);
    tcase_add_test(tc, test_nested_arrays);
    tcase_add_test(tc, test_reply_in_pieces);
    tcase_add_test(tc, test_protocol_error_frees_partial_reply);
    tcase_add_test(tc, test_free_reader_with_partial_reply);
    tcase_add_test(tc, test_array_header_bounded);
    tcase_add_test(tc, test_limits_for_commands);
    tcase_add_test(tc, test_limits_refuse_before_allocating);
    suite_add_tcase(s, tc);

    tc = tcase_create("redirect");
    tcase_add_test(tc, test_redirect_moved_and_ask);
    tcase_add_test(tc, test_redirect_empty_host_and_ipv6);
    tcase_add_test(tc, test_redirect_rejects_the_rest);
    suite_add_tcase(s, tc);

    tc = tcase_create("cluster_slots");
    tcase_add_test(tc, test_slots_three_masters);
    tcase_add_test(tc, test_slots_endpoints);
    tcase_add_test(tc, test_slots_rejects_bad_maps);
    suite_add_tcase(s, tc);

    tc = tcase_create("sentinel");
    tcase_add_test(tc, test_sentinel_master_addr);
    tcase_add_test(tc, test_sentinel_switch_master);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(redis_reply_suite)
