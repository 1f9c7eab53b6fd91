/* Unit tests for the client side's minimum write interval (throttle.h) without a Redis
 * server.
 *
 * The store points at 127.0.0.1:1, where nothing listens, so every write fails. That is
 * enough to test the half of the contract that matters most: a failed write records
 * nothing, so the next call tries again. It is observable because a skip answers 0
 * without touching the store: had the failure been recorded, the same call a moment
 * later would be skipped and answer 0 instead of -1. A write that succeeds needs a real
 * Redis (the integration tests have one); this suite does not fake a store. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "ustatus/config.h"
#include "ustatus/store.h"
#include "ustatus/throttle.h"

static us_config *cfg;
static us_store *store;
static us_throttle *throttle;

static void teardown(void)
{
    us_throttle_free(throttle);
    us_store_free(store);
    us_config_free(cfg);
    throttle = NULL;
    store = NULL;
    cfg = NULL;
}

static void open_store(void)
{
    char err[512] = "";
    cfg = us_test_config("user_status { redis { address = {\"127.0.0.1:1\"} "
                         "connect_timeout = \"200ms\" } }\nlog { level = \"error\" }\n");
    store = us_store_create(cfg, err, sizeof err);
    ck_assert_msg(store != NULL, "store: %s", err);
}

/* A fixed wall clock in the middle of a second, so "the same second" holds for +100ms. */
#define NOW_MS INT64_C(1700000000500)

static const us_write update_away = {
    .user = "42",
    .user_len = 2,
    .fields = US_FIELD_ACTIVE | US_FIELD_ONLINE,
    .state_mode = US_STATE_SET,
    .state = "away",
    .state_len = 4,
};

static const us_write online_only = {
    .user = "42",
    .user_len = 2,
    .fields = US_FIELD_ONLINE,
    .state_mode = US_STATE_KEEP,
};

static const us_write clear_state = {
    .user = "43",
    .user_len = 2,
    .fields = US_FIELD_ACTIVE | US_FIELD_ONLINE,
    .state_mode = US_STATE_CLEAR,
};

/* With a table (the default 1s, and an operator's longer interval): a failure is not
 * recorded, so the same write at the same instant and a moment later still goes to the
 * store, and fails again. */
START_TEST(test_failure_records_nothing)
{
    static const int64_t intervals[] = {1000, 60000};
    open_store();
    throttle = us_throttle_create(intervals[_i]);
    const us_write *writes[] = {&update_away, &online_only, &clear_state};
    for (int i = 0; i < N_ELEMS(writes); i++) {
        ck_assert_int_eq(us_throttle_write(throttle, store, writes[i], NOW_MS), -1);
        ck_assert_int_eq(us_throttle_write(throttle, store, writes[i], NOW_MS), -1);
        ck_assert_int_eq(us_throttle_write(throttle, store, writes[i], NOW_MS + 100), -1);
    }
}
END_TEST

/* With min_interval 0 no table is kept: every call is written (and fails here). */
START_TEST(test_zero_interval_never_skips)
{
    open_store();
    throttle = us_throttle_create(0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(us_throttle_write(throttle, store, &update_away, NOW_MS), -1);
    ck_assert_int_eq(us_throttle_write(throttle, store, &online_only, NOW_MS), -1);
}
END_TEST

/* Many distinct users failing: nothing is kept for any of them (and nothing leaks:
 * ASan's leak check runs at the end of the test's process). */
START_TEST(test_many_users_failing)
{
    open_store();
    throttle = us_throttle_create(1000);
    char user[32];
    for (int i = 0; i < 50; i++) {
        int n = snprintf(user, sizeof user, "user-%d", i);
        us_write w = {.user = user,
                      .user_len = (size_t)n,
                      .fields = US_FIELD_ACTIVE,
                      .state_mode = US_STATE_SET,
                      .state = user,
                      .state_len = (size_t)n};
        ck_assert_int_eq(us_throttle_write(throttle, store, &w, NOW_MS), -1);
    }
    for (int i = 0; i < 50; i += 7) {
        int n = snprintf(user, sizeof user, "user-%d", i);
        us_write w = {.user = user,
                      .user_len = (size_t)n,
                      .fields = US_FIELD_ACTIVE,
                      .state_mode = US_STATE_SET,
                      .state = user,
                      .state_len = (size_t)n};
        ck_assert_int_eq(us_throttle_write(throttle, store, &w, NOW_MS), -1);
    }
}
END_TEST

START_TEST(test_create_free)
{
    static const int64_t intervals[] = {0, 1, 1000, 60000, -5};
    for (int i = 0; i < N_ELEMS(intervals); i++) {
        us_throttle *t = us_throttle_create(intervals[i]);
        ck_assert_ptr_nonnull(t);
        us_throttle_free(t);
    }
    us_throttle_free(NULL);
}
END_TEST

static Suite *throttle_suite(void)
{
    Suite *s = suite_create("throttle");
    TCase *tc = tcase_create("redis_down");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, test_failure_records_nothing, 0, 2);
    tcase_add_test(tc, test_zero_interval_never_skips);
    tcase_add_test(tc, test_many_users_failing);
    suite_add_tcase(s, tc);

    tc = tcase_create("life");
    tcase_add_test(tc, test_create_free);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(throttle_suite)
