/* Unit tests for us_buf and the JSON/UTF-8 helpers. Every response byte ustatus sends
 * goes through these writers, and SDKs compare against Centrifugo's exact output, so the
 * expected strings here are byte-exact. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ustatus/buf.h"
#include "ustatus/json.h"
#include "ustatus/mem.h"
#include "ustatus/text.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* The JSON literal us_json_put_str writes for [s, s+n), as a fresh string. */
static char *json_str(const char *s, size_t n)
{
    us_buf b = US_BUF_INIT;
    us_json_put_str(&b, s, n);
    ck_assert_uint_eq(strlen(b.data), b.len);
    return us_buf_steal(&b, NULL);
}

#define ck_assert_json_str(input, expect)                                                      \
    do {                                                                                       \
        char *got_ = json_str(S(input));                                                       \
        ck_assert_str_eq(got_, expect);                                                        \
        free(got_);                                                                            \
    } while (0)

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

/* ---- JSON strings ---- */

START_TEST(test_json_plain)
{
    ck_assert_json_str("", "\"\"");
    ck_assert_json_str("42", "\"42\"");
    ck_assert_json_str("hello world", "\"hello world\"");
    /* '/' needs no escaping and Centrifugo does not escape it. */
    ck_assert_json_str("a/b", "\"a/b\"");
}
END_TEST

START_TEST(test_json_quotes_backslash)
{
    ck_assert_json_str("say \"hi\"", "\"say \\\"hi\\\"\"");
    ck_assert_json_str("C:\\dir", "\"C:\\\\dir\"");
    ck_assert_json_str("\\\"", "\"\\\\\\\"\"");
}
END_TEST

START_TEST(test_json_control_chars)
{
    ck_assert_json_str("a\nb", "\"a\\nb\"");
    ck_assert_json_str("\t", "\"\\t\"");
    ck_assert_json_str("\r", "\"\\r\"");
    ck_assert_json_str("\b\f", "\"\\b\\f\"");
    ck_assert_json_str("\x01", "\"\\u0001\"");
    ck_assert_json_str("\x1f", "\"\\u001f\"");
    ck_assert_json_str("\x1b[0m", "\"\\u001b[0m\"");
    /* NUL is data inside a JSON string. */
    char *got = json_str("a\0b", 3);
    ck_assert_str_eq(got, "\"a\\u0000b\"");
    free(got);
}
END_TEST

/* RFC 8259 only requires escaping below 0x20: DEL and UTF-8 pass through unchanged. */
START_TEST(test_json_passthrough)
{
    ck_assert_json_str("\x7f", "\"\x7f\"");
    ck_assert_json_str("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    ck_assert_json_str("\xe4\xb8\xad\xe6\x96\x87", "\"\xe4\xb8\xad\xe6\x96\x87\"");
    ck_assert_json_str("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");
    /* U+2027 and U+202A are neighbours of the two escaped separators and must not be. */
    ck_assert_json_str("\xe2\x80\xa7\xe2\x80\xaa", "\"\xe2\x80\xa7\xe2\x80\xaa\"");
}
END_TEST

/* U+2028/U+2029 are legal in JSON but end a line in JavaScript before ES2019. */
START_TEST(test_json_line_separators)
{
    ck_assert_json_str("\xe2\x80\xa8", "\"\\u2028\"");
    ck_assert_json_str("\xe2\x80\xa9", "\"\\u2029\"");
    ck_assert_json_str("a\xe2\x80\xa8" "b\xe2\x80\xa9" "c", "\"a\\u2028b\\u2029c\"");
    /* A sequence cut short at the end of the input is not read past: each of its bytes
     * is invalid UTF-8 and becomes U+FFFD. */
    ck_assert_json_str("x\xe2\x80", "\"x\xef\xbf\xbd\xef\xbf\xbd\"");
}
END_TEST

/* Values written by someone else (a state put in Redis by hand) may not be UTF-8; the
 * answer must stay valid JSON, as Go's encoder keeps it: U+FFFD per invalid byte. */
START_TEST(test_json_invalid_utf8_replaced)
{
    ck_assert_json_str("\xff\xfe", "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    ck_assert_json_str("a\xc0\x80" "b", "\"a\xef\xbf\xbd\xef\xbf\xbd" "b\"");
    ck_assert_json_str("\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    ck_assert_json_str("ok\xc3\xa9\x80", "\"ok\xc3\xa9\xef\xbf\xbd\"");
}
END_TEST

/* The worst case (every byte escaped to six) must fit what was reserved, also when
 * appended to existing content. */
START_TEST(test_json_worst_case_size)
{
    enum { N = 5000 };
    char *in = malloc(N);
    memset(in, 0x01, N);
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "prefix:");
    us_json_put_str(&b, in, N);
    ck_assert_uint_eq(b.len, 7 + 2 + 6 * (size_t)N);
    ck_assert_uint_eq(strlen(b.data), b.len);
    ck_assert_mem_eq(b.data + 7, "\"\\u0001\\u0001", 13);
    ck_assert_mem_eq(b.data + b.len - 7, "\\u0001\"", 7);
    us_buf_free(&b);
    free(in);
}
END_TEST

START_TEST(test_json_appends)
{
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "{\"user\":");
    us_json_put_str(&b, S("4\"2"));
    us_buf_putc(&b, '}');
    ck_assert_str_eq(b.data, "{\"user\":\"4\\\"2\"}");
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

START_TEST(test_xstrndup)
{
    char *p = us_xstrndup("abcdef", 3);
    ck_assert_str_eq(p, "abc");
    free(p);
    p = us_xstrdup("");
    ck_assert_str_eq(p, "");
    free(p);
}
END_TEST

/* ---- UTF-8 validation ---- */

#define VALID(lit) ck_assert_msg(us_utf8_valid(S(lit)) == 1, "rejected valid %s", #lit)
#define INVALID(lit) ck_assert_msg(us_utf8_valid(S(lit)) == 0, "accepted invalid %s", #lit)

START_TEST(test_utf8_valid)
{
    VALID("");
    VALID("plain ascii 42");
    VALID("\x7f");
    VALID("\xc2\x80");              /* U+0080, smallest 2-byte */
    VALID("caf\xc3\xa9");
    VALID("\xdf\xbf");              /* U+07FF */
    VALID("\xe0\xa0\x80");          /* U+0800, smallest 3-byte */
    VALID("\xe4\xb8\xad\xe6\x96\x87");
    VALID("\xed\x9f\xbf");          /* U+D7FF, just below the surrogates */
    VALID("\xee\x80\x80");          /* U+E000, just above */
    VALID("\xef\xbf\xbf");          /* U+FFFF */
    VALID("\xf0\x90\x80\x80");      /* U+10000, smallest 4-byte */
    VALID("\xf0\x9f\x98\x80");
    VALID("\xf4\x8f\xbf\xbf");      /* U+10FFFF, the last code point */
    /* NUL is valid UTF-8; rejecting it is a separate rule of the API. */
    ck_assert_int_eq(us_utf8_valid("a\0b", 3), 1);
}
END_TEST

START_TEST(test_utf8_overlong)
{
    INVALID("\xc0\x80");            /* NUL in two bytes: the classic filter bypass */
    INVALID("\xc0\xaf");            /* '/' */
    INVALID("\xc1\xbf");
    INVALID("\xe0\x80\x80");
    INVALID("\xe0\x9f\xbf");        /* U+07FF in three bytes */
    INVALID("\xf0\x80\x80\x80");
    INVALID("\xf0\x8f\xbf\xbf");    /* U+FFFF in four bytes */
}
END_TEST

START_TEST(test_utf8_surrogates_and_range)
{
    INVALID("\xed\xa0\x80");        /* U+D800 */
    INVALID("\xed\xbf\xbf");        /* U+DFFF */
    INVALID("\xed\xa0\xbd\xed\xb8\x80"); /* CESU-8 pair for U+1F600 */
    INVALID("\xf4\x90\x80\x80");    /* U+110000 */
    INVALID("\xf5\x80\x80\x80");
    INVALID("\xf7\xbf\xbf\xbf");
    INVALID("\xf8\x88\x80\x80\x80"); /* old 5-byte form */
    INVALID("\xfe");
    INVALID("\xff");
}
END_TEST

START_TEST(test_utf8_truncated_and_stray)
{
    INVALID("\xc3");
    INVALID("\xe4\xb8");
    INVALID("\xf0\x9f\x98");
    INVALID("abc\xf0\x9f");
    /* A lead byte followed by something that is not a continuation. */
    INVALID("\xc3" "a");
    INVALID("\xe4\xb8" "a");
    INVALID("\xf0\x9f\x98" "a");
    INVALID("\xe4\xc3\xa9");
    /* Continuation bytes with no lead. */
    INVALID("\x80");
    INVALID("\xbf");
    INVALID("a\x80z");
    INVALID("\xc3\xa9\xa9");
    /* The length is explicit: a sequence cut by n is truncated even if bytes follow. */
    ck_assert_int_eq(us_utf8_valid("\xc3\xa9", 1), 0);
    ck_assert_int_eq(us_utf8_valid("\xf0\x9f\x98\x80", 3), 0);
    ck_assert_int_eq(us_utf8_valid("ab\xff", 2), 1);
}
END_TEST

/* ---- strict JSON check: what Go's encoding/json accepts, nothing more ---- */

static int json_ok(const char *s)
{
    char why[128] = "";
    return us_json_check(s, strlen(s), 32, 0, why, sizeof why) == 0;
}

START_TEST(test_json_check_valid)
{
    static const char *const valid[] = {
        "{}", "[]", " {\"a\":1} ", "\n\t{\"users\":[\"1\",\"2\"]}\r\n", "null", "true",
        "false", "0", "-0", "12.5e-3", "1E+2", "\"s\"", "\"\\u00e9\\n\\\"\\/\"",
        "{\"a\":{\"b\":[1,[2,{}]]}}", "[null,true,false,\"x\",-1.0]", "\"\xc3\xa9\"",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        ck_assert_msg(json_ok(valid[i]), "rejected valid JSON %s", valid[i]);
}
END_TEST

START_TEST(test_json_check_invalid)
{
    static const char *const invalid[] = {
        "", "   ", "{", "[", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":1,}", "[1,]", "[1 2]",
        "{'a':1}", "{a:1}", "NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1", "1e",
        "\"tab\there\"", "\"nl\nhere\"", "\"\\x41\"", "\"\\u12\"", "\"open", "tru", "nul",
        "{} {}", "{}x", "[1]]", "{\"a\" 1}", "{1:2}", "/* c */ {}", "{\"a\":1}//",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        ck_assert_msg(!json_ok(invalid[i]), "accepted invalid JSON %s", invalid[i]);
}
END_TEST

START_TEST(test_json_check_depth_and_reasons)
{
    char deep[80];
    char why[128];
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    deep[66] = '\0';
    ck_assert_int_eq(us_json_check(deep, 66, 32, 0, why, sizeof why), -1);
    ck_assert_str_eq(why, "invalid JSON at byte 32: JSON nested too deeply");
    ck_assert_int_eq(us_json_check(deep + 1, 64, 32, 0, why, sizeof why), 0);
    ck_assert_int_eq(us_json_check("", 0, 32, 0, why, sizeof why), -1);
    ck_assert_str_eq(why, "empty body");
    ck_assert_int_eq(us_json_check("{\"a\":[1", 7, 32, 0, why, sizeof why), -1);
    ck_assert_str_eq(why, "truncated JSON");
    ck_assert_int_eq(us_json_check("{\"a\":1}x", 8, 32, 0, why, sizeof why), -1);
    ck_assert_str_eq(why, "invalid JSON at byte 7: unexpected data after the JSON value");
    /* every value counts, containers and keys' values alike; keys do not */
    ck_assert_int_eq(us_json_check("{\"a\":[1,2]}", 11, 32, 4, why, sizeof why), 0);
    ck_assert_int_eq(us_json_check("{\"a\":[1,2,3]}", 13, 32, 4, why, sizeof why), -1);
    ck_assert_str_eq(why, "more than 4 JSON values");
    /* the length is respected: what follows is not looked at */
    ck_assert_int_eq(us_json_check("{}garbage", 2, 32, 0, why, sizeof why), 0);
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
    suite_add_tcase(s, tc);

    tc = tcase_create("json");
    tcase_add_test(tc, test_json_plain);
    tcase_add_test(tc, test_json_quotes_backslash);
    tcase_add_test(tc, test_json_control_chars);
    tcase_add_test(tc, test_json_passthrough);
    tcase_add_test(tc, test_json_line_separators);
    tcase_add_test(tc, test_json_invalid_utf8_replaced);
    tcase_add_test(tc, test_json_worst_case_size);
    tcase_add_test(tc, test_json_appends);
    suite_add_tcase(s, tc);

    tc = tcase_create("ownership");
    tcase_add_test(tc, test_reset_keeps_memory);
    tcase_add_test(tc, test_free_reinitialises);
    tcase_add_test(tc, test_steal);
    tcase_add_test(tc, test_steal_empty);
    tcase_add_test(tc, test_xstrndup);
    suite_add_tcase(s, tc);

    tc = tcase_create("utf8");
    tcase_add_test(tc, test_utf8_valid);
    tcase_add_test(tc, test_utf8_overlong);
    tcase_add_test(tc, test_utf8_surrogates_and_range);
    tcase_add_test(tc, test_utf8_truncated_and_stray);
    suite_add_tcase(s, tc);

    tc = tcase_create("json_check");
    tcase_add_test(tc, test_json_check_valid);
    tcase_add_test(tc, test_json_check_invalid);
    tcase_add_test(tc, test_json_check_depth_and_reasons);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(buf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
