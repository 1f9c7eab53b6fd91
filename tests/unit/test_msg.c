/* Unit tests for the one truncating message setter (src/msg.c). Every err/why buffer in
 * the code base is filled through it, so its rules are the rules of all of them: a long
 * message is cut and still terminated, nothing is written outside the buffer, a NULL
 * buffer or a zero length writes nothing, and us_fail returns -1. */
#include <check.h>
#include <stdarg.h>
#include <string.h>

#include "fixtures.h"
#include "ustatus/msg.h"

START_TEST(test_formats)
{
    char buf[64];
    us_set_msg(buf, sizeof buf, "%s: %d (%zu)", "port", -1, (size_t)42);
    ck_assert_str_eq(buf, "port: -1 (42)");
    /* a second message replaces the first */
    us_set_msg(buf, sizeof buf, "x");
    ck_assert_str_eq(buf, "x");
    ck_assert_int_eq(buf[1], '\0');
}
END_TEST

/* The buffer is the first 8 bytes of a larger array: the bytes past it must stay. */
START_TEST(test_truncates_inside_the_buffer)
{
    char area[16];
    memset(area, '#', sizeof area);
    us_set_msg(area, 8, "%s", "0123456789");
    ck_assert_str_eq(area, "0123456");
    for (size_t i = 8; i < sizeof area; i++)
        ck_assert_int_eq(area[i], '#');
    /* exactly len - 1 characters fit whole */
    memset(area, '#', sizeof area);
    us_set_msg(area, 8, "abcdefg");
    ck_assert_str_eq(area, "abcdefg");
    ck_assert_int_eq(area[8], '#');
    /* a buffer of one byte holds the terminator only */
    memset(area, '#', sizeof area);
    us_set_msg(area, 1, "abc");
    ck_assert_int_eq(area[0], '\0');
    ck_assert_int_eq(area[1], '#');
}
END_TEST

START_TEST(test_null_buffer_and_zero_length)
{
    us_set_msg(NULL, 0, "nothing %d", 1);
    us_set_msg(NULL, 128, "nothing %d", 2); /* a length with no buffer: still nothing */
    ck_assert_int_eq(us_fail(NULL, 64, "x"), -1);
    char area[8];
    memset(area, '#', sizeof area);
    us_set_msg(area, 0, "abc");
    for (size_t i = 0; i < sizeof area; i++)
        ck_assert_int_eq(area[i], '#');
    ck_assert_int_eq(us_fail(area, 0, "abc"), -1);
    for (size_t i = 0; i < sizeof area; i++)
        ck_assert_int_eq(area[i], '#');
}
END_TEST

START_TEST(test_fail_returns_minus_one)
{
    char buf[32] = "";
    ck_assert_int_eq(us_fail(buf, sizeof buf, "%s must be %d", "workers", 4), -1);
    ck_assert_str_eq(buf, "workers must be 4");
    char small[5];
    ck_assert_int_eq(us_fail(small, sizeof small, "%s", "truncated"), -1);
    ck_assert_str_eq(small, "trun");
}
END_TEST

/* The va_list form, as a module's own variadic error helper calls it. */
static void wrapper(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void wrapper(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    us_vset_msg(buf, len, fmt, ap);
    va_end(ap);
}

START_TEST(test_vset_msg)
{
    char area[12];
    memset(area, '#', sizeof area);
    wrapper(area, 6, "%d-%s", 12, "abcdef");
    ck_assert_str_eq(area, "12-ab");
    ck_assert_int_eq(area[6], '#');
    wrapper(NULL, 6, "%d", 1);
    wrapper(area, 0, "%d", 1);
    ck_assert_str_eq(area, "12-ab");
}
END_TEST

static Suite *msg_suite(void)
{
    Suite *s = suite_create("msg");
    TCase *tc = tcase_create("set");
    tcase_add_test(tc, test_formats);
    tcase_add_test(tc, test_truncates_inside_the_buffer);
    tcase_add_test(tc, test_null_buffer_and_zero_length);
    tcase_add_test(tc, test_fail_returns_minus_one);
    tcase_add_test(tc, test_vset_msg);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(msg_suite)
