/* Unit tests for the comparison of secrets (src/secret.c). A comparison that says "equal"
 * once too often lets a request through without the key, so every way two byte strings
 * can differ is tried: content, length either way, empty sides, NUL bytes inside. Both
 * sides are heap blocks of their exact length (no terminator), so a read past either
 * length is reported by the sanitizer build. Constant time is not measured here. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "ustatus/secret.h"

/* A copy of [s, s+n) in the last n bytes of a heap block (freed through *block): the
 * byte after it is outside the block, also when n is 0. */
static const char *at_block_end(const char *s, size_t n, char **block)
{
    *block = malloc(n + 1);
    ck_assert_ptr_nonnull(*block);
    memcpy(*block + 1, s, n);
    return *block + 1;
}

/* us_secret_equal on copies that end where their heap blocks end. */
static int eq(const char *given, size_t given_len, const char *key, size_t key_len)
{
    char *gb, *kb;
    const char *g = at_block_end(given, given_len, &gb);
    const char *k = at_block_end(key, key_len, &kb);
    int r = us_secret_equal(g, given_len, k, key_len);
    free(gb);
    free(kb);
    return r;
}

#define EQ(a, b) ck_assert_msg(eq(S(a), S(b)) == 1, "%s != %s", #a, #b)
#define NE(a, b) ck_assert_msg(eq(S(a), S(b)) == 0, "%s == %s", #a, #b)

START_TEST(test_equal)
{
    EQ("secret", "secret");
    EQ("k", "k");
    EQ("\xff\x80\x01", "\xff\x80\x01");
    char long_key[4096];
    memset(long_key, 'q', sizeof long_key);
    ck_assert_int_eq(eq(long_key, sizeof long_key, long_key, sizeof long_key), 1);
}
END_TEST

START_TEST(test_unequal_same_length)
{
    NE("secret", "Secret"); /* first byte */
    NE("secret", "secreT"); /* last byte */
    NE("secret", "sec-et"); /* middle */
    NE("a", "b");
    NE("\x80", "\x00"); /* high bit only */
    NE("\x01", "\x00"); /* low bit only */
    char a[300], b[300];
    memset(a, 'x', sizeof a);
    memcpy(b, a, sizeof b);
    b[299] ^= 1;
    ck_assert_int_eq(eq(a, sizeof a, b, sizeof b), 0);
}
END_TEST

START_TEST(test_length_differences)
{
    NE("secre", "secret");   /* a prefix of the key */
    NE("secrets", "secret"); /* the key and more */
    NE("s", "secret");
    /* the key repeated: a comparison that wraps around the key must still see the length */
    NE("abab", "ab");
    NE("ab", "abab");
    NE("secretsecret", "secret");
}
END_TEST

START_TEST(test_empty)
{
    NE("", "secret");
    NE("", "\0");
    /* An empty key compared here as a C string's "", whose terminator is readable (as the
     * configured keys are): test_empty_key_not_read covers the byte-range contract. */
    ck_assert_int_eq(us_secret_equal(S("secret"), "", 0), 0);
    ck_assert_int_eq(us_secret_equal(S("\0"), "", 0), 0);
    /* two empty strings are equal: whether an empty key means "no key" is the caller's */
    EQ("", "");
}
END_TEST

/* The key is the byte range [key, key+key_len): with key_len 0 not one byte of it may be
 * read, whatever the client sent. */
START_TEST(test_empty_key_not_read)
{
    NE("secret", "");
    NE("\0", "");
}
END_TEST

/* NUL is a byte like the others: the comparison does not stop at it. */
START_TEST(test_nul_bytes_inside)
{
    EQ("a\0b", "a\0b");
    NE("a\0b", "a\0c");
    NE("a\0b", "a\0");
    NE("a", "a\0b");
    NE("a\0b", "a");
    NE("\0\0\0", "\0\0x");
    NE("ab\0", "ab");
}
END_TEST

static Suite *secret_suite(void)
{
    Suite *s = suite_create("secret");
    TCase *tc = tcase_create("equal");
    tcase_add_test(tc, test_equal);
    tcase_add_test(tc, test_unequal_same_length);
    tcase_add_test(tc, test_length_differences);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_empty_key_not_read);
    tcase_add_test(tc, test_nul_bytes_inside);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(secret_suite)
