/* Unit tests for the clocks (src/clock.c). Time-outs and back-offs are computed from the
 * monotonic clock, stored timestamps from the wall clock in whole seconds: a monotonic
 * reading that goes back, or two units of one clock that disagree (a wrong factor, a
 * wrong clock id), make a time-out fire early or late, so each pair of readings is
 * bracketed by the other unit. */
#include <check.h>
#include <stdint.h>
#include <time.h>

#include "fixtures.h"
#include "ustatus/clock.h"

enum { READS = 50000 };

START_TEST(test_mono_never_goes_back)
{
    int64_t prev_ns = us_clock_mono_ns(), prev_ms = us_clock_mono_ms();
    for (int i = 0; i < READS; i++) {
        int64_t ns = us_clock_mono_ns(), ms = us_clock_mono_ms();
        ck_assert_msg(ns >= prev_ns, "mono_ns went back: %lld after %lld", (long long)ns,
                      (long long)prev_ns);
        ck_assert_msg(ms >= prev_ms, "mono_ms went back: %lld after %lld", (long long)ms,
                      (long long)prev_ms);
        prev_ns = ns;
        prev_ms = ms;
    }
}
END_TEST

/* Read ms, ns, ms: the ns reading in milliseconds lies between the two. */
START_TEST(test_mono_ns_and_ms_agree)
{
    for (int i = 0; i < 5000; i++) {
        int64_t ms1 = us_clock_mono_ms();
        int64_t ns = us_clock_mono_ns();
        int64_t ms2 = us_clock_mono_ms();
        ck_assert_msg(ms1 <= ns / 1000000 && ns / 1000000 <= ms2, "%lld ms, %lld ns, %lld ms",
                      (long long)ms1, (long long)ns, (long long)ms2);
    }
}
END_TEST

/* Read s, ms, s: the ms reading in seconds lies between the two. Done over a whole
 * second boundary and 20 ms past it, where a seconds clock that lags the other (time(2)
 * reads the kernel's coarse clock, updated once a tick) shows as s2 < ms / 1000. */
START_TEST(test_wall_ms_and_s_agree)
{
    int64_t start_s = us_clock_wall_ms() / 1000;
    long reads = 0;
    for (;;) {
        int64_t s1 = us_clock_wall_s();
        int64_t ms = us_clock_wall_ms();
        int64_t s2 = us_clock_wall_s();
        reads++;
        ck_assert_msg(s1 <= ms / 1000 && ms / 1000 <= s2,
                      "read %ld: %lld s, then %lld ms, then %lld s", reads, (long long)s1,
                      (long long)ms, (long long)s2);
        if (ms / 1000 > start_s && ms % 1000 >= 20)
            break;
    }
}
END_TEST

/* The wall clock counts from the Unix epoch (as time(2) does), not from boot. */
START_TEST(test_wall_is_unix_time)
{
    int64_t t1 = (int64_t)time(NULL);
    int64_t s = us_clock_wall_s();
    int64_t t2 = (int64_t)time(NULL);
    ck_assert(t1 <= s && s <= t2);
    ck_assert_int_gt(s, 1577836800); /* after 2020-01-01 */
}
END_TEST

/* A sleep of 30 ms shows as at least 30 ms on the monotonic clock, in both units, and
 * not as hours (a unit mistake of 1000 shows here). */
START_TEST(test_mono_measures_a_sleep)
{
    int64_t ns0 = us_clock_mono_ns(), ms0 = us_clock_mono_ms();
    struct timespec d = {0, 30 * 1000000L};
    while (nanosleep(&d, &d) != 0)
        ;
    int64_t dns = us_clock_mono_ns() - ns0, dms = us_clock_mono_ms() - ms0;
    ck_assert_int_ge(dns, 30 * 1000000LL);
    ck_assert_int_ge(dms, 29); /* the ms readings are truncated: 29.x may show as 29 */
    ck_assert_int_lt(dns, 10LL * 1000000000LL);
    ck_assert_int_lt(dms, 10000);
}
END_TEST

static Suite *clock_suite(void)
{
    Suite *s = suite_create("clock");
    TCase *tc = tcase_create("clock");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_mono_never_goes_back);
    tcase_add_test(tc, test_mono_ns_and_ms_agree);
    tcase_add_test(tc, test_wall_ms_and_s_agree);
    tcase_add_test(tc, test_wall_is_unix_time);
    tcase_add_test(tc, test_mono_measures_a_sleep);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(clock_suite)
