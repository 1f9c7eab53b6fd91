/* Unit tests for Go-syntax durations (src/duration.c), as Centrifugo's configuration
 * writes them: every time-out and the status expiry go through us_duration_parse_ms, so
 * the accepted forms, the rejected ones, the units and the overflow bounds of Go's
 * time.ParseDuration are pinned here. A rejected value leaves the output untouched. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "fixtures.h"
#include "ustatus/duration.h"

static const struct {
    const char *text;
    int64_t ms;
} valid_durations[] = {
    {"90s", 90000},
    {"1h30m", 5400000},
    {"500ms", 500},
    {"1.5h", 5400000},
    {"0", 0},
    {"720h", 2592000000LL},
    {"24h", 86400000},
    {"30m", 1800000},
    {"0s", 0},
    {"+5s", 5000},
    {".5s", 500},
    {"1.s", 1000},
    {"2h45m30.5s", 9930500},
    {"1500us", 1},
    {"1500\xc2\xb5s", 1},
    {"1500\xce\xbcs", 1},
    {"999999ns", 0},
    {"1000000ns", 1},
    {"1.0000000000000000000000001s", 1000},
    {"9223372036854775807ns", 9223372036854LL},
    {"2562047h", 9223369200000LL},
    /* each unit once */
    {"1ns", 0},
    {"1us", 0},
    {"1ms", 1},
    {"1s", 1000},
    {"1m", 60000},
    {"1h", 3600000},
    /* units may repeat and come in any order, as in Go */
    {"1s1s", 2000},
    {"1m1h", 3660000},
    {"001s", 1000},
    {"0h0m0s", 0},
};

static const char *const invalid_durations[] = {
    "", "12", "-1s", "-0", "1x", "h", "1h-1m", " 1s", "1s ", ".s", "1..5s", "1e3s", "s1",
    "9223372036854775808ns", "2562048h", "99999999999999999999s", "106751991167301d",
    "1S", "1H", "1sec", "1 s", "1d", "+", "-5m", "1s-", "1s+1s", "1,5s", "0x10s",
};

START_TEST(test_duration_valid)
{
    int64_t ms = -42;
    ck_assert_msg(us_duration_parse_ms(valid_durations[_i].text, &ms) == 0, "\"%s\" rejected",
                  valid_durations[_i].text);
    ck_assert_msg(ms == valid_durations[_i].ms, "\"%s\": %lld, want %lld", valid_durations[_i].text,
                  (long long)ms, (long long)valid_durations[_i].ms);
}
END_TEST

START_TEST(test_duration_invalid)
{
    int64_t ms = -42;
    ck_assert_msg(us_duration_parse_ms(invalid_durations[_i], &ms) == -1, "\"%s\" accepted",
                  invalid_durations[_i]);
    ck_assert_int_eq(ms, -42); /* untouched on failure */
}
END_TEST

START_TEST(test_duration_null)
{
    int64_t ms;
    ck_assert_int_eq(us_duration_parse_ms(NULL, &ms), -1);
}
END_TEST

static Suite *duration_suite(void)
{
    Suite *s = suite_create("duration");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_duration_valid, 0, N_ELEMS(valid_durations));
    tcase_add_loop_test(tc, test_duration_invalid, 0, N_ELEMS(invalid_durations));
    tcase_add_test(tc, test_duration_null);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(duration_suite)
