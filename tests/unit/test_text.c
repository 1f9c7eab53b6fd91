/* Unit tests for the text rules (src/text.c): UTF-8 validity, what can be stored as a
 * user ID or state, hexadecimal digits. A UTF-8 check that lets an overlong or a
 * surrogate through stores bytes Centrifugo's Go code would refuse; one that reads past
 * its length reads another request's memory, so truncated sequences are also run from
 * heap blocks of their exact size (the sanitizer build reports any over-read). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "ustatus/text.h"

/* A heap copy of exactly n bytes, no terminator. */
static char *exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p, s, n);
    return p;
}

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

/* ---- sequence length ---- */

START_TEST(test_seq_len_each_width)
{
    ck_assert_uint_eq(us_utf8_seq_len((const unsigned char *)"a", 1), 1);
    ck_assert_uint_eq(us_utf8_seq_len((const unsigned char *)"\0", 1), 1);
    ck_assert_uint_eq(us_utf8_seq_len((const unsigned char *)"\x7f", 1), 1);
    ck_assert_uint_eq(us_utf8_seq_len((const unsigned char *)"\xc3\xa9", 2), 2);
    ck_assert_uint_eq(us_utf8_seq_len((const unsigned char *)"\xe4\xb8\xad", 3), 3);
    ck_assert_uint_eq(us_utf8_seq_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    /* Only the sequence at s counts, not what follows. */
    ck_assert_uint_eq(us_utf8_seq_len((const unsigned char *)"\xc3\xa9zz", 4), 2);
    ck_assert_uint_eq(us_utf8_seq_len((const unsigned char *)"a\xff", 2), 1);
}
END_TEST

START_TEST(test_seq_len_invalid_is_zero)
{
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        {"\x80", 1},             {"\xc0\x80", 2},     {"\xc1\xbf", 2},
        {"\xe0\x9f\xbf", 3},     {"\xed\xa0\x80", 3}, {"\xf0\x8f\xbf\xbf", 4},
        {"\xf4\x90\x80\x80", 4}, {"\xf5\x80\x80\x80", 4}, {"\xff", 1},
        {"\xc3" "a", 2},         {"\xe4\xb8" "a", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(us_utf8_seq_len((const unsigned char *)bad[i].s, bad[i].n) == 0,
                      "case %zu accepted", i);
}
END_TEST

/* n shorter than the sequence the lead byte announces: 0, and no byte past n is read. */
START_TEST(test_seq_len_respects_n)
{
    static const char *const full[] = {"\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80"};
    for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) {
        size_t len = strlen(full[i]);
        for (size_t n = 1; n < len; n++) {
            unsigned char *p = (unsigned char *)exact(full[i], n);
            ck_assert_msg(us_utf8_seq_len(p, n) == 0, "sequence %zu cut at %zu accepted", i, n);
            free(p);
        }
        char *p = exact(full[i], len);
        ck_assert_uint_eq(us_utf8_seq_len((unsigned char *)p, len), len);
        ck_assert_int_eq(us_utf8_valid(p, len), 1);
        free(p);
    }
}
END_TEST

/* ---- user IDs and states ---- */

START_TEST(test_text_check_reasons)
{
    ck_assert_ptr_null(us_text_check(S("a"), 10));
    ck_assert_ptr_null(us_text_check(S("caf\xc3\xa9"), 10));
    ck_assert_str_eq(us_text_check("", 0, 10), "is empty");
    ck_assert_str_eq(us_text_check(S("0123456789a"), 10), "is too long");
    ck_assert_ptr_null(us_text_check(S("0123456789"), 10)); /* max itself is allowed */
    ck_assert_str_eq(us_text_check(S("a\0b"), 10), "contains a NUL character");
    ck_assert_str_eq(us_text_check(S("\0"), 10), "contains a NUL character");
    ck_assert_str_eq(us_text_check(S("a\xff"), 10), "is not valid UTF-8");
    ck_assert_str_eq(us_text_check(S("\xc0\x80"), 10), "is not valid UTF-8");
    /* The limit is in bytes, not characters: four 3-byte characters are 12 bytes. */
    ck_assert_str_eq(us_text_check(S("\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad"), 10),
                     "is too long");
}
END_TEST

/* The length is explicit: the bytes after len are not looked at. */
START_TEST(test_text_check_uses_len)
{
    ck_assert_ptr_null(us_text_check("ab\0\xff", 2, 10));
    char *p = exact("abc", 3);
    ck_assert_ptr_null(us_text_check(p, 3, 3));
    free(p);
}
END_TEST

START_TEST(test_user_id_limit)
{
    char id[US_USER_ID_MAX_BYTES + 1];
    memset(id, 'u', sizeof id);
    ck_assert_int_eq(US_USER_ID_MAX_BYTES, 1024);
    ck_assert_ptr_null(us_user_id_check(id, US_USER_ID_MAX_BYTES));
    ck_assert_str_eq(us_user_id_check(id, US_USER_ID_MAX_BYTES + 1), "is too long");
    ck_assert_ptr_null(us_user_id_check(S("42")));
    ck_assert_str_eq(us_user_id_check("", 0), "is empty");
    ck_assert_str_eq(us_user_id_check(S("4\0002")), "contains a NUL character");
    ck_assert_str_eq(us_user_id_check(S("\xed\xa0\x80")), "is not valid UTF-8");
    /* A multi-byte character may end exactly at the limit. */
    id[US_USER_ID_MAX_BYTES - 2] = '\xc3';
    id[US_USER_ID_MAX_BYTES - 1] = '\xa9';
    ck_assert_ptr_null(us_user_id_check(id, US_USER_ID_MAX_BYTES));
}
END_TEST

/* ---- hexadecimal digits ---- */

START_TEST(test_hex_value)
{
    for (int c = 0; c < 256; c++) {
        int want = -1;
        if (c >= '0' && c <= '9')
            want = c - '0';
        else if (c >= 'a' && c <= 'f')
            want = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            want = c - 'A' + 10;
        ck_assert_msg(us_hex_value(c) == want, "us_hex_value(%d) = %d, want %d", c,
                      us_hex_value(c), want);
    }
    ck_assert_int_eq(us_hex_value(-1), -1); /* EOF */
    ck_assert_int_eq(us_hex_value('0' + 256), -1);
}
END_TEST

static Suite *text_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("utf8");
    tcase_add_test(tc, test_utf8_valid);
    tcase_add_test(tc, test_utf8_overlong);
    tcase_add_test(tc, test_utf8_surrogates_and_range);
    tcase_add_test(tc, test_utf8_truncated_and_stray);
    tcase_add_test(tc, test_seq_len_each_width);
    tcase_add_test(tc, test_seq_len_invalid_is_zero);
    tcase_add_test(tc, test_seq_len_respects_n);
    suite_add_tcase(s, tc);

    tc = tcase_create("check");
    tcase_add_test(tc, test_text_check_reasons);
    tcase_add_test(tc, test_text_check_uses_len);
    tcase_add_test(tc, test_user_id_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("hex");
    tcase_add_test(tc, test_hex_value);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(text_suite)
