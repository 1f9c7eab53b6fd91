/* Unit tests for us_buf: bytes in, bytes out. Every response byte ustatus sends goes
 * through this buffer, so content, termination and ownership are checked after each kind
 * of append. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "ustatus/buf.h"

/* ---- appending ---- */

START_TEST(test_append_and_terminate)
{
    us_buf b = US_BUF_INIT;
    us_buf_append(&b, "abc", 3);
    ck_assert_uint_eq(b.len, 3);
    ck_assert_str_eq(b.data, "abc");
    us_buf_puts(&b, "de");
    us_buf_putc(&b, 'f');
    ck_assert_uint_eq(b.len, 6);
    ck_assert_str_eq(b.data, "abcdef");
    /* Embedded NULs are data, not terminators. */
    us_buf_append(&b, "\0g", 2);
    ck_assert_uint_eq(b.len, 8);
    ck_assert_mem_eq(b.data, "abcdef\0g", 9);
    us_buf_free(&b);
}
END_TEST

/* A zero-length append on a fresh buffer still gives a NUL-terminated string, so callers
 * can hand data to string functions whatever was written. */
START_TEST(test_empty_append_terminates)
{
    us_buf b = US_BUF_INIT;
    us_buf_append(&b, "", 0);
    ck_assert_ptr_nonnull(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    us_buf_free(&b);
}
END_TEST

/* Growth across many reallocations must keep every byte. */
START_TEST(test_growth_keeps_content)
{
    us_buf b = US_BUF_INIT;
    for (int i = 0; i < 100000; i++)
        us_buf_putc(&b, (char)('a' + i % 26));
    ck_assert_uint_eq(b.len, 100000);
    ck_assert_uint_gt(b.cap, b.len);
    for (int i = 0; i < 100000; i++)
        ck_assert_int_eq(b.data[i], 'a' + i % 26);
    ck_assert_int_eq(b.data[b.len], '\0');
    us_buf_free(&b);
}
END_TEST

START_TEST(test_reserve_then_write)
{
    us_buf b = US_BUF_INIT;
    us_buf_reserve(&b, 1000);
    ck_assert_uint_ge(b.cap, 1001);
    ck_assert_uint_eq(b.len, 0);
    char *before = b.data;
    /* What was reserved must be usable without another reallocation. */
    for (int i = 0; i < 1000; i++)
        us_buf_putc(&b, 'x');
    ck_assert_ptr_eq(b.data, before);
    ck_assert_uint_eq(b.len, 1000);
    us_buf_free(&b);
}
END_TEST

START_TEST(test_printf)
{
    us_buf b = US_BUF_INIT;
    us_buf_printf(&b, "%s=%d", "n", 42);
    ck_assert_str_eq(b.data, "n=42");
    us_buf_printf(&b, ";%05.1f;%x", 3.14159, 255u);
    ck_assert_str_eq(b.data, "n=42;003.1;ff");
    ck_assert_uint_eq(b.len, strlen("n=42;003.1;ff"));
    /* An empty expansion changes nothing. */
    us_buf_printf(&b, "%s", "");
    ck_assert_uint_eq(b.len, 13);
    /* Longer than the initial capacity: the second vsnprintf must get the right size. */
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    us_buf_printf(&b, "[%s]", big);
    ck_assert_uint_eq(b.len, 13 + 1001);
    ck_assert_int_eq(b.data[13], '[');
    ck_assert_int_eq(b.data[b.len - 1], ']');
    ck_assert_int_eq(b.data[b.len], '\0');
    us_buf_free(&b);
}
END_TEST

START_TEST(test_put_i64)
{
    us_buf b = US_BUF_INIT;
    us_buf_put_i64(&b, 0);
    us_buf_putc(&b, ' ');
    us_buf_put_i64(&b, -1);
    us_buf_putc(&b, ' ');
    us_buf_put_i64(&b, 1627107289);
    us_buf_putc(&b, ' ');
    us_buf_put_i64(&b, -1627107289);
    us_buf_putc(&b, ' ');
    us_buf_put_i64(&b, INT64_MAX);
    us_buf_putc(&b, ' ');
    /* Negating INT64_MIN as a signed value overflows; the digits must still be right. */
    us_buf_put_i64(&b, INT64_MIN);
    ck_assert_str_eq(b.data, "0 -1 1627107289 -1627107289 9223372036854775807 "
                             "-9223372036854775808");
    us_buf_free(&b);
}
END_TEST

/* US_BUF_LITERAL takes the length from sizeof: no terminator copied, embedded NULs kept. */
START_TEST(test_literal)
{
    us_buf b = US_BUF_INIT;
    US_BUF_LITERAL(&b, "ab");
    US_BUF_LITERAL(&b, "c\0d");
    ck_assert_uint_eq(b.len, 5);
    ck_assert_mem_eq(b.data, "abc\0d", 6);
    us_buf_free(&b);
}
END_TEST

/* ---- ownership ---- */

START_TEST(test_reset_keeps_memory)
{
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "some content");
    char *data = b.data;
    size_t cap = b.cap;
    us_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_str_eq(b.data, "");
    us_buf_puts(&b, "new");
    ck_assert_str_eq(b.data, "new");
    us_buf_free(&b);
    /* Resetting a buffer that never allocated is allowed (responses are reset first). */
    us_buf fresh = US_BUF_INIT;
    us_buf_reset(&fresh);
    ck_assert_uint_eq(fresh.len, 0);
}
END_TEST

START_TEST(test_free_reinitialises)
{
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "abc");
    us_buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
    /* Usable again, and a second free is harmless. */
    us_buf_puts(&b, "again");
    ck_assert_str_eq(b.data, "again");
    us_buf_free(&b);
    us_buf_free(&b);
}
END_TEST

START_TEST(test_steal)
{
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "hand over");
    size_t len = 0;
    char *p = us_buf_steal(&b, &len);
    ck_assert_uint_eq(len, 9);
    ck_assert_str_eq(p, "hand over");
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
    /* The buffer no longer owns p: writing to it must not touch the stolen memory. */
    us_buf_puts(&b, "other");
    ck_assert_ptr_ne(b.data, p);
    ck_assert_str_eq(p, "hand over");
    free(p);
    us_buf_free(&b);
}
END_TEST

/* Stealing an empty buffer yields an empty string the caller can free, never NULL. */
START_TEST(test_steal_empty)
{
    us_buf b = US_BUF_INIT;
    size_t len = 99;
    char *p = us_buf_steal(&b, &len);
    ck_assert_ptr_nonnull(p);
    /* Byte check rather than a string compare: an unterminated result would be read out
     * of bounds by the failure message itself. */
    char first = p[0];
    free(p);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(first, '\0');
    p = us_buf_steal(&b, NULL);
    ck_assert_ptr_nonnull(p);
    free(p);
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("append");
    tcase_add_test(tc, test_append_and_terminate);
    tcase_add_test(tc, test_empty_append_terminates);
    tcase_add_test(tc, test_growth_keeps_content);
    tcase_add_test(tc, test_reserve_then_write);
    tcase_add_test(tc, test_printf);
    tcase_add_test(tc, test_put_i64);
    tcase_add_test(tc, test_literal);
    suite_add_tcase(s, tc);

    tc = tcase_create("ownership");
    tcase_add_test(tc, test_reset_keeps_memory);
    tcase_add_test(tc, test_free_reinitialises);
    tcase_add_test(tc, test_steal);
    tcase_add_test(tc, test_steal_empty);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(buf_suite)
