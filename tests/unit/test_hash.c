/* Unit tests for the hashes that decide where a user's key lives (SPEC §3.2, §3.4).
 * A wrong bit here silently sends users to the wrong shard or slot, and data written by
 * another client (Centrifugo, redis-cli, a cluster-aware client) would not be found, so
 * every function is pinned to published vectors or to an independent reference. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "ustatus/hash.h"

/* ---- FNV-1a 64 ---- */

/* Vectors from the FNV reference test suite (Landon Curt Noll, fnv_test.c / the IETF
 * draft "The FNV Non-Cryptographic Hash Algorithm"). */
START_TEST(test_fnv1a64_published_vectors)
{
    ck_assert_uint_eq(us_fnv1a64(S("")), 0xcbf29ce484222325ULL);
    ck_assert_uint_eq(us_fnv1a64(S("a")), 0xaf63dc4c8601ec8cULL);
    ck_assert_uint_eq(us_fnv1a64(S("b")), 0xaf63df4c8601f1a5ULL);
    ck_assert_uint_eq(us_fnv1a64(S("foo")), 0xdcb27518fed9d577ULL);
    ck_assert_uint_eq(us_fnv1a64(S("fooba")), 0xcac165afa2fef40aULL);
    ck_assert_uint_eq(us_fnv1a64(S("foobar")), 0x85944171f73967e8ULL);
    ck_assert_uint_eq(us_fnv1a64(S("chongo was here!\n")), 0x46810940eff5f915ULL);
}
END_TEST

/* User IDs are arbitrary bytes: a NUL or a high byte must be hashed, not end the input
 * or be sign-extended. */
START_TEST(test_fnv1a64_binary_input)
{
    ck_assert_uint_eq(us_fnv1a64("\0", 1), 0xaf63bd4c8601b7dfULL);
    ck_assert_uint_ne(us_fnv1a64("a\0b", 3), us_fnv1a64("a", 1));
    /* 0xff xor-ed as a signed char would flip the high 56 bits of the state too. */
    uint64_t expect = (0xcbf29ce484222325ULL ^ 0xffULL) * 0x100000001b3ULL;
    ck_assert_uint_eq(us_fnv1a64("\xff", 1), expect);
}
END_TEST

/* ---- jump consistent hash ---- */

/* Key 0's first LCG step gives key = 1, so j = 2^31 / 1: past every int32 bucket count,
 * whence bucket 0 for every n. */
START_TEST(test_jump_key_zero_is_bucket_zero)
{
    const int32_t ns[] = {1, 2, 3, 7, 10, 100, 1000, 65536, 1000000, INT32_MAX};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        ck_assert_int_eq(us_jump_hash(0, ns[i]), 0);
}
END_TEST

START_TEST(test_jump_one_bucket)
{
    const uint64_t keys[] = {0, 1, 42, 0xDEAD10CCULL, UINT64_MAX, 0x0123456789abcdefULL};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_int_eq(us_jump_hash(keys[i], 1), 0);
}
END_TEST

/* Published vectors: go-jump-consistent-hash (README "jump.Hash(256, 1024) // 520" and its
 * tests), rust jump-consistent-hash doc tests (hash(1, 60) == 55, hash(2, 60) == 46). */
START_TEST(test_jump_published_vectors)
{
    ck_assert_int_eq(us_jump_hash(1, 1), 0);
    ck_assert_int_eq(us_jump_hash(42, 57), 43);
    ck_assert_int_eq(us_jump_hash(0xDEAD10CCULL, 1), 0);
    ck_assert_int_eq(us_jump_hash(0xDEAD10CCULL, 666), 361);
    ck_assert_int_eq(us_jump_hash(256, 1024), 520);
    ck_assert_int_eq(us_jump_hash(1, 60), 55);
    ck_assert_int_eq(us_jump_hash(2, 60), 46);
}
END_TEST

/* Expected values computed independently in Python from the algorithm exactly as printed
 * in Lamping & Veach 2014, Figure 1 (64-bit wrap-around of the LCG emulated with a mask,
 * the division done in IEEE double as in the C++ original):
 *     b, j = -1, 0
 *     while j < n:
 *         b = j; key = (key * 2862933555777941757 + 1) & (2**64 - 1)
 *         j = int(float(b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
 *     return b
 * The large bucket counts exercise the double arithmetic far from small n. */
START_TEST(test_jump_reference_values)
{
    static const struct {
        uint64_t key;
        int32_t n[8];
        int32_t b[8];
    } v[] = {
        {1ULL, {1, 2, 3, 5, 10, 100, 1000, INT32_MAX}, {0, 0, 0, 0, 6, 55, 549, 262355607}},
        {2ULL, {1, 2, 3, 5, 10, 100, 1000, INT32_MAX}, {0, 0, 0, 3, 6, 62, 338, 736532115}},
        {0xdeadbeefULL, {1, 2, 3, 5, 10, 100, 1000, INT32_MAX},
         {0, 1, 2, 3, 5, 87, 285, 1452406526}},
        {UINT64_MAX, {1, 2, 3, 5, 10, 100, 1000, INT32_MAX}, {0, 1, 2, 2, 9, 92, 313, 699554662}},
        {123456789ULL, {1, 2, 3, 5, 10, 100, 1000, INT32_MAX},
         {0, 0, 0, 0, 7, 34, 294, 1234790967}},
        {0x0123456789abcdefULL, {1, 2, 3, 5, 10, 100, 1000, INT32_MAX},
         {0, 0, 0, 0, 0, 57, 194, 1651575352}},
        {16045690984833335023ULL, {255, 255, 255, 255, 255, 255, 255, 255},
         {237, 237, 237, 237, 237, 237, 237, 237}},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        for (size_t k = 0; k < 8; k++)
            ck_assert_msg(us_jump_hash(v[i].key, v[i].n[k]) == v[i].b[k],
                          "jump(%#llx, %d) = %d, want %d", (unsigned long long)v[i].key,
                          (int)v[i].n[k], (int)us_jump_hash(v[i].key, v[i].n[k]), (int)v[i].b[k]);
}
END_TEST

/* The property that makes adding a shard cheap: growing from n to n+1 buckets moves a key
 * only into the new bucket n, never between old buckets. */
START_TEST(test_jump_monotonic)
{
    uint64_t key = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 10000; i++) {
        key = key * 6364136223846793005ULL + 1442695040888963407ULL;
        int32_t prev = us_jump_hash(key, 1);
        ck_assert_int_eq(prev, 0);
        for (int32_t n = 2; n <= 64; n++) {
            int32_t b = us_jump_hash(key, n);
            ck_assert_int_ge(b, 0);
            ck_assert_int_lt(b, n);
            if (b != prev)
                ck_assert_msg(b == n - 1, "key %#llx moved from %d to %d when growing to %d",
                              (unsigned long long)key, (int)prev, (int)b, (int)n);
            prev = b;
        }
    }
}
END_TEST

/* Roughly uniform: 100000 keys over 10 buckets, each within 5% of the mean (the standard
 * deviation of a bucket count is ~95, so 500 is > 5 sigma). */
START_TEST(test_jump_uniform)
{
    enum { KEYS = 100000, BUCKETS = 10 };
    int count[BUCKETS] = {0};
    char user[32];
    for (int i = 0; i < KEYS; i++) {
        int len = snprintf(user, sizeof user, "user%d", i);
        count[us_jump_hash(us_fnv1a64(user, (size_t)len), BUCKETS)]++;
    }
    for (int b = 0; b < BUCKETS; b++)
        ck_assert_msg(count[b] > KEYS / BUCKETS - 500 && count[b] < KEYS / BUCKETS + 500,
                      "bucket %d has %d keys", b, count[b]);
}
END_TEST

/* Also roughly uniform when growing: about 1/(n+1) of the keys move to the new bucket. */
START_TEST(test_jump_moves_about_one_nth)
{
    enum { KEYS = 100000 };
    int moved = 0;
    char user[32];
    for (int i = 0; i < KEYS; i++) {
        int len = snprintf(user, sizeof user, "u:%d", i);
        uint64_t h = us_fnv1a64(user, (size_t)len);
        if (us_jump_hash(h, 4) != us_jump_hash(h, 5))
            moved++;
    }
    /* Expected KEYS / 5 = 20000, sd ~126. */
    ck_assert_int_gt(moved, 19000);
    ck_assert_int_lt(moved, 21000);
}
END_TEST

/* ---- shard index ---- */

START_TEST(test_shard_index_single_shard)
{
    ck_assert_uint_eq(us_shard_index(S("42"), 1), 0);
    ck_assert_uint_eq(us_shard_index(S(""), 1), 0);
    ck_assert_uint_eq(us_shard_index(S("user1000"), 1), 0);
    char user[16];
    for (int i = 0; i < 1000; i++) {
        int len = snprintf(user, sizeof user, "%d", i);
        ck_assert_uint_eq(us_shard_index(user, (size_t)len, 1), 0);
    }
}
END_TEST

/* Jump of FNV-1a of the raw user bytes, as Centrifugo's shard selection; values from the
 * same Python reference. A different composition (e.g. hashing with a prefix, or
 * modulo instead of jump) would place users on other shards than Centrifugo does. */
START_TEST(test_shard_index_reference_values)
{
    ck_assert_uint_eq(us_shard_index(S("42"), 2), 1);
    ck_assert_uint_eq(us_shard_index(S("42"), 3), 1);
    ck_assert_uint_eq(us_shard_index(S("42"), 4), 1);
    ck_assert_uint_eq(us_shard_index(S("42"), 10), 4);
    ck_assert_uint_eq(us_shard_index(S("user1000"), 2), 0);
    ck_assert_uint_eq(us_shard_index(S("user1000"), 3), 2);
    ck_assert_uint_eq(us_shard_index(S("user1000"), 4), 3);
    ck_assert_uint_eq(us_shard_index(S("user1000"), 10), 8);
    ck_assert_uint_eq(us_shard_index(S("alice"), 3), 0);
    ck_assert_uint_eq(us_shard_index(S("alice"), 4), 3);
    ck_assert_uint_eq(us_shard_index(S("bob"), 3), 2);
    ck_assert_uint_eq(us_shard_index(S("bob"), 10), 2);
    ck_assert_uint_eq(us_shard_index(S("foobar"), 100), 33);
}
END_TEST

START_TEST(test_shard_index_in_range)
{
    char user[32];
    for (size_t shards = 1; shards <= 17; shards++)
        for (int i = 0; i < 2000; i++) {
            int len = snprintf(user, sizeof user, "id-%d", i);
            size_t s = us_shard_index(user, (size_t)len, shards);
            ck_assert_uint_lt(s, shards);
            ck_assert_uint_eq(s, (size_t)us_jump_hash(us_fnv1a64(user, (size_t)len),
                                                      (int32_t)shards));
        }
}
END_TEST

/* ---- CRC16 and cluster slots ---- */

/* The check value of CRC-16/XMODEM, quoted in the Redis Cluster specification. */
START_TEST(test_crc16_check_value)
{
    ck_assert_uint_eq(us_crc16(S("123456789")), 0x31C3);
    ck_assert_uint_eq(us_crc16(S("")), 0);
}
END_TEST

START_TEST(test_crc16_high_bytes)
{
    /* Bytes >= 0x80 and NUL, computed with the bitwise XMODEM reference in Python. */
    ck_assert_uint_eq(us_crc16("\xff", 1), 0x1EF0);
    ck_assert_uint_eq(us_crc16("\x80\x00", 2), 0x1B98);
}
END_TEST

/* Slots as `CLUSTER KEYSLOT` reports them. */
START_TEST(test_cluster_slot_known_values)
{
    ck_assert_uint_eq(us_cluster_slot(S("foo")), 12182);
    ck_assert_uint_eq(us_cluster_slot(S("bar")), 5061);
    ck_assert_uint_eq(us_cluster_slot(S("hello")), 866);
    ck_assert_uint_eq(us_cluster_slot(S("123456789")), 12739);
    ck_assert_uint_eq(us_cluster_slot(S("user1000")), 3443);
    ck_assert_uint_eq(us_cluster_slot(S("centrifugo.user_status.42")), 13515);
}
END_TEST

START_TEST(test_cluster_slot_hash_tags)
{
    unsigned a = us_cluster_slot(S("{user1000}.following"));
    unsigned b = us_cluster_slot(S("{user1000}.followers"));
    ck_assert_uint_eq(a, b);
    ck_assert_uint_eq(a, us_cluster_slot(S("user1000")));
    /* An empty tag "{}" does not count: the whole key is hashed. */
    ck_assert_uint_eq(us_cluster_slot(S("foo{}{bar}")), us_crc16(S("foo{}{bar}")) & 16383u);
    ck_assert_uint_eq(us_cluster_slot(S("foo{}{bar}")), 8363);
    /* The tag runs from the first '{' to the first '}' after it. */
    ck_assert_uint_eq(us_cluster_slot(S("foo{{bar}}zap")), us_cluster_slot(S("{bar")));
    ck_assert_uint_eq(us_cluster_slot(S("foo{{bar}}zap")), 4015);
    /* Only the first tag counts. */
    ck_assert_uint_eq(us_cluster_slot(S("foo{bar}{zap}")), us_cluster_slot(S("bar")));
    ck_assert_uint_eq(us_cluster_slot(S("foo{bar}{zap}")), 5061);
    /* An unclosed '{' is not a tag. */
    ck_assert_uint_eq(us_cluster_slot(S("foo{bar")), us_crc16(S("foo{bar")) & 16383u);
    ck_assert_uint_eq(us_cluster_slot(S("}foo{")), us_crc16(S("}foo{")) & 16383u);
}
END_TEST

/* The key length is explicit: a '}' just past it must not close a tag. */
START_TEST(test_cluster_slot_respects_length)
{
    const char key[] = "a{bar}";
    ck_assert_uint_eq(us_cluster_slot(key, 5), us_crc16(key, 5) & 16383u);
    ck_assert_uint_eq(us_cluster_slot(key, 6), 5061);
    ck_assert_uint_lt(us_cluster_slot(S("\xff\xfe\xfd")), 16384);
}
END_TEST

static Suite *hash_suite(void)
{
    Suite *s = suite_create("hash");
    TCase *tc = tcase_create("fnv1a64");
    tcase_add_test(tc, test_fnv1a64_published_vectors);
    tcase_add_test(tc, test_fnv1a64_binary_input);
    suite_add_tcase(s, tc);

    tc = tcase_create("jump");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_jump_key_zero_is_bucket_zero);
    tcase_add_test(tc, test_jump_one_bucket);
    tcase_add_test(tc, test_jump_published_vectors);
    tcase_add_test(tc, test_jump_reference_values);
    tcase_add_test(tc, test_jump_monotonic);
    tcase_add_test(tc, test_jump_uniform);
    tcase_add_test(tc, test_jump_moves_about_one_nth);
    suite_add_tcase(s, tc);

    tc = tcase_create("shard");
    tcase_add_test(tc, test_shard_index_single_shard);
    tcase_add_test(tc, test_shard_index_reference_values);
    tcase_add_test(tc, test_shard_index_in_range);
    suite_add_tcase(s, tc);

    tc = tcase_create("cluster");
    tcase_add_test(tc, test_crc16_check_value);
    tcase_add_test(tc, test_crc16_high_bytes);
    tcase_add_test(tc, test_cluster_slot_known_values);
    tcase_add_test(tc, test_cluster_slot_hash_tags);
    tcase_add_test(tc, test_cluster_slot_respects_length);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(hash_suite)
