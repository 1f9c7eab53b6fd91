/* Text rules: UTF-8 validity, what can be stored as a user ID, hexadecimal digits.
 * Pure functions over byte ranges (not NUL-terminated); nothing allocates. */
#ifndef USTATUS_TEXT_H
#define USTATUS_TEXT_H

#include <stddef.h>

/* The longest user ID, in bytes (SPEC §1.3). */
#define US_USER_ID_MAX_BYTES 1024

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there are not one
 * (no overlongs, no surrogates, nothing above U+10FFFF). n >= 1. */
size_t us_utf8_seq_len(const unsigned char *s, size_t n);

/* 1 when [s, s+n) is valid UTF-8, else 0. */
int us_utf8_valid(const char *s, size_t n);

/* Why [s, s+len) cannot be stored as a user ID or state ("is empty", "is too long",
 * "contains a NUL character", "is not valid UTF-8"), or NULL when it can: 1..max bytes
 * of UTF-8 without NUL. The reason is a static string. */
const char *us_text_check(const char *s, size_t len, size_t max);

/* us_text_check with the user ID limit: NULL when [s, s+len) is a valid user ID. */
const char *us_user_id_check(const char *s, size_t len);

/* The value of a hexadecimal digit (either case), or -1. */
int us_hex_value(int c);

#endif
