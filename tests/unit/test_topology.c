/* Unit tests for the parts of the topologies that need no server: the Redis Cluster
 * reply parsers (MOVED/ASK, CLUSTER SLOTS), the split of sentinel/cluster list elements,
 * and the grouping of a request's commands by shard.
 *
 * Replies are built the way a real connection builds them: raw RESP bytes fed to
 * hiredis's reader, so the parsers see exactly the redisReply trees a server produces. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "../../src/topology_private.h"
#include "ustatus/hash.h"

static redisReply *resp(const char *bytes)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;
    ck_assert_int_eq(redisReaderFeed(rd, bytes, strlen(bytes)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    redisReaderFree(rd);
    return reply;
}

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
    redisReply *r = resp(three_masters);
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
    freeReplyObject(r);
}
END_TEST

/* CLUSTER SLOTS documentation: a nil or empty endpoint means "the address you asked me
 * by"; "?" means the node does not know its preferred endpoint. Partial coverage is
 * allowed (cluster-require-full-coverage no). */
START_TEST(test_slots_endpoints)
{
    redisReply *r = resp("*3\r\n"
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
    freeReplyObject(r);
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
        redisReply *r = resp(bad[i]);
        us_slot_range *ranges = (us_slot_range *)1;
        size_t skipped;
        char err[200] = "";
        ck_assert_msg(us_cluster_slots_parse(r, "h", &ranges, &skipped, err, sizeof err) < 0,
                      "case %zu accepted", i);
        ck_assert_ptr_null(ranges);
        ck_assert_msg(err[0] != '\0', "case %zu: no reason given", i);
        freeReplyObject(r);
    }
}
END_TEST

/* ---- list elements and shard grouping ---- */

START_TEST(test_split_addresses)
{
    size_t n = 0;
    char **v = us_split_addresses(" 10.0.0.1:26379,10.0.0.2:26379 ,, redis://u:p@h:1/2 ,", &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(v[0], "10.0.0.1:26379");
    ck_assert_str_eq(v[1], "10.0.0.2:26379");
    ck_assert_str_eq(v[2], "redis://u:p@h:1/2");
    us_strv_free(v, n);
    v = us_split_addresses("", &n);
    ck_assert_uint_eq(n, 0);
    us_strv_free(v, n);
    v = us_split_addresses("[::1]:6379", &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(v[0], "[::1]:6379");
    us_strv_free(v, n);
}
END_TEST

START_TEST(test_group_by_shard)
{
    static const char *users[] = {"a", "b", "c", "d", "e", "f", "g", "h", "a", "b"};
    enum { N = sizeof users / sizeof users[0], SHARDS = 3 };
    us_redis_cmd cmds[N];
    memset(cmds, 0, sizeof cmds);
    for (size_t i = 0; i < N; i++) {
        cmds[i].shard_key = users[i];
        cmds[i].shard_key_len = strlen(users[i]);
    }
    us_pipeline_group groups[SHARDS];
    memset(groups, 0, sizeof groups);
    size_t idx[N];
    us_group_by_shard(cmds, N, groups, SHARDS, idx);
    size_t total = 0;
    for (size_t s = 0; s < SHARDS; s++) {
        for (size_t k = 0; k < groups[s].count; k++) {
            size_t i = groups[s].idx[k];
            ck_assert_uint_eq(us_shard_index(users[i], strlen(users[i]), SHARDS), s);
            if (k > 0) /* request order inside a shard */
                ck_assert_uint_gt(i, groups[s].idx[k - 1]);
        }
        total += groups[s].count;
    }
    ck_assert_uint_eq(total, N);
    /* one shard: everything, in order */
    us_group_by_shard(cmds, N, groups, 1, idx);
    ck_assert_uint_eq(groups[0].count, N);
    for (size_t i = 0; i < N; i++)
        ck_assert_uint_eq(groups[0].idx[i], i);
}
END_TEST

static Suite *topology_suite(void)
{
    Suite *s = suite_create("topology");
    TCase *tc = tcase_create("redirect");
    tcase_add_test(tc, test_redirect_moved_and_ask);
    tcase_add_test(tc, test_redirect_empty_host_and_ipv6);
    tcase_add_test(tc, test_redirect_rejects_the_rest);
    suite_add_tcase(s, tc);

    tc = tcase_create("cluster_slots");
    tcase_add_test(tc, test_slots_three_masters);
    tcase_add_test(tc, test_slots_endpoints);
    tcase_add_test(tc, test_slots_rejects_bad_maps);
    suite_add_tcase(s, tc);

    tc = tcase_create("shards");
    tcase_add_test(tc, test_split_addresses);
    tcase_add_test(tc, test_group_by_shard);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(topology_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
