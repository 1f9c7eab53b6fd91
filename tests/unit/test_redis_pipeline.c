/* Unit tests for redis_pipeline: the grouping of a request's commands by client-side
 * shard, and what a pipeline does when there is nothing to send or nobody to send it
 * to (no server needed: the node is a unix socket that does not exist). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "fixtures.h"
#include "../../src/redis_pipeline.h"
#include "../../src/redis_reply.h"
#include "ustatus/hash.h"

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

/* The node pointers (and what else the caller set) are the caller's; an empty request
 * leaves every group empty. */
START_TEST(test_group_by_shard_keeps_nodes_and_handles_none)
{
    us_redis_node nodes[4];
    us_pipeline_group groups[4];
    memset(groups, 0, sizeof groups);
    for (size_t s = 0; s < 4; s++) {
        groups[s].node = &nodes[s];
        groups[s].count = 99;
    }
    size_t idx[1];
    us_group_by_shard(NULL, 0, groups, 4, idx);
    for (size_t s = 0; s < 4; s++) {
        ck_assert_ptr_eq(groups[s].node, &nodes[s]);
        ck_assert_uint_eq(groups[s].count, 0);
    }
}
END_TEST

static us_redis_config config(void)
{
    return (us_redis_config){.user = "", .password = "", .connect_timeout_ms = 200,
                             .io_timeout_ms = 200};
}

static const char ping[] = "*1\r\n$4\r\nPING\r\n";

START_TEST(test_run_unreachable_node)
{
    us_redis_config rc = config();
    us_redis_node node;
    char err[200];
    ck_assert_int_eq(us_redis_node_init(&node, "unix:///nonexistent/ustatus-test.sock", &rc,
                                        NULL, err, sizeof err), 0);
    us_redis_cmd cmds[2] = {
        {.cmd = ping, .cmd_len = sizeof ping - 1, .shard_key = "u", .shard_key_len = 1},
        {.cmd = ping, .cmd_len = sizeof ping - 1, .shard_key = "v", .shard_key_len = 1},
    };
    size_t idx[2] = {0, 1};
    us_pipeline_group g = {.node = &node, .idx = idx, .count = 2};
    us_test_stderr cap;
    char line[512];
    us_test_stderr_begin(&cap);
    int run = us_pipeline_run(&g, 1, cmds);
    long first = us_test_stderr_next(&cap, line, sizeof line);
    char rest[512];
    long more = us_test_stderr_next(&cap, rest, sizeof rest);
    us_test_stderr_end(&cap);
    ck_assert_int_eq(run, -1);
    ck_assert_int_eq(g.outcome, US_PIPE_FAILED);
    ck_assert_ptr_null(cmds[0].reply);
    ck_assert_ptr_null(cmds[1].reply);
    ck_assert_ptr_null(node.conn);
    /* one error line for the outage, naming the node */
    ck_assert_int_gt(first, 0);
    ck_assert_msg(strstr(line, "error: redis unix:/nonexistent/ustatus-test.sock: cannot connect"),
                  "%s", line);
    ck_assert_int_eq(more, -1);

    /* the failure started a back-off: the next request does not try again at once, and
     * says nothing more at the default level */
    ck_assert(node.retry_at_ms > 0);
    ck_assert_int_eq(node.backoff_ms, 100);
    us_test_stderr_begin(&cap);
    run = us_pipeline_run(&g, 1, cmds);
    more = us_test_stderr_next(&cap, line, sizeof line);
    us_test_stderr_end(&cap);
    ck_assert_int_eq(run, -1);
    ck_assert_int_eq(g.outcome, US_PIPE_FAILED);
    ck_assert_int_eq(node.backoff_ms, 100);
    ck_assert_int_eq(more, -1);
    us_redis_node_disconnect(&node);
}
END_TEST

/* Only commands without a reply are sent: a group with nothing pending succeeds without
 * connecting, and leaves the replies it was given alone. */
START_TEST(test_run_nothing_pending)
{
    us_redis_config rc = config();
    us_redis_node node;
    char err[200];
    ck_assert_int_eq(us_redis_node_init(&node, "unix:///nonexistent/ustatus-test.sock", &rc,
                                        NULL, err, sizeof err), 0);
    redisReader *rd = us_reply_reader_create();
    void *reply = NULL;
    ck_assert_int_eq(redisReaderFeed(rd, "+PONG\r\n", 7), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    redisReaderFree(rd);
    us_redis_cmd cmd = {.cmd = ping, .cmd_len = sizeof ping - 1, .reply = reply};
    size_t idx[1] = {0};
    us_pipeline_group g = {.node = &node, .idx = idx, .count = 1, .outcome = US_PIPE_FAILED};
    ck_assert_int_eq(us_pipeline_run(&g, 1, &cmd), 0);
    ck_assert_int_eq(g.outcome, US_PIPE_OK);
    ck_assert_ptr_eq(cmd.reply, reply);
    ck_assert_int_eq(node.retry_at_ms, 0); /* never tried */
    ck_assert_ptr_null(node.conn);
    /* no groups at all */
    ck_assert_int_eq(us_pipeline_run(NULL, 0, NULL), 0);
    us_redis_cmds_clear(&cmd, 1);
    ck_assert_ptr_null(cmd.reply);
}
END_TEST

static Suite *redis_pipeline_suite(void)
{
    Suite *s = suite_create("redis_pipeline");
    TCase *tc = tcase_create("shards");
    tcase_add_test(tc, test_group_by_shard);
    tcase_add_test(tc, test_group_by_shard_keeps_nodes_and_handles_none);
    suite_add_tcase(s, tc);

    tc = tcase_create("run");
    tcase_add_test(tc, test_run_unreachable_node);
    tcase_add_test(tc, test_run_nothing_pending);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(redis_pipeline_suite)
