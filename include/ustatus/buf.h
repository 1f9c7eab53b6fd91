/* A growable byte buffer for building responses, with JSON writers that produce exactly
 * the bytes ustatus promises (no spaces, RFC 8259 escaping).
 *
 * Out-of-memory policy (whole code base): allocation failure aborts the process
 * (us_xmalloc & co.). A FastCGI worker that cannot allocate cannot answer anyway; the
 * supervisor or the web server starts a fresh one. */
#ifndef USTATUS_BUF_H
#define USTATUS_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

void *us_xmalloc(size_t n);
void *us_xcalloc(size_t n, size_t size);
void *us_xrealloc(void *p, size_t n);
char *us_xstrdup(const char *s);
char *us_xstrndup(const char *s, size_t n);

typedef struct us_buf {
    char *data;   /* always NUL-terminated after any append (when cap > 0) */
    size_t len;
    size_t cap;
} us_buf;

#define US_BUF_INIT {NULL, 0, 0}

/* The slow part of us_buf_reserve: makes room for extra more bytes and the NUL. */
void us_buf_grow(us_buf *b, size_t extra);

/* Inline because the response and RESP writers append a few bytes at a time, hundreds
 * of times per request: the calls cost more than the copies, and with a constant n the
 * compiler turns the memcpy into a few moves. */
static inline void us_buf_reserve(us_buf *b, size_t extra)
{
    if (b->len + extra + 1 > b->cap)
        us_buf_grow(b, extra);
}

static inline void us_buf_append(us_buf *b, const void *p, size_t n)
{
    us_buf_reserve(b, n);
    if (n) /* p may be NULL then, which memcpy does not allow */
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static inline void us_buf_putc(us_buf *b, char c)
{
    us_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void us_buf_puts(us_buf *b, const char *s);
void us_buf_printf(us_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void us_buf_put_i64(us_buf *b, int64_t v);
/* Appends a JSON string literal (with the quotes) for the bytes [s, s+n). Sequences
 * of valid UTF-8 are copied as they are, each byte of an invalid sequence becomes U+FFFD
 * (as Go's encoder does); control characters, '"' and '\\' are escaped; U+2028/U+2029
 * are escaped too so the output is safe as JavaScript. */
void us_buf_put_json_str(us_buf *b, const char *s, size_t n);
void us_buf_reset(us_buf *b);  /* len = 0, keeps the memory */
void us_buf_free(us_buf *b);   /* frees and re-initialises */
/* Hands the data over to the caller (who frees it); the buffer is re-initialised. */
char *us_buf_steal(us_buf *b, size_t *len);

/* 0 when [s, s+n) is exactly one JSON value as RFC 8259 (and Go's encoding/json) define
 * it, with optional surrounding whitespace, at most max_depth nested arrays/objects and
 * at most max_values values in all (0 = no limit); -1 with a reason in why otherwise.
 * json-c alone is laxer (single quotes, NaN, raw control characters in strings), and the
 * value count bounds the memory json-c will take, so requests are checked with this
 * first. */
int us_json_check(const char *s, size_t n, unsigned max_depth, size_t max_values, char *why,
                  size_t why_len);

/* The value of a hexadecimal digit (either case), or -1. */
int us_hex_value(int c);

/* The one truncating setter for a message buffer (errors, names): a message cut short is
 * better than a message missing. buf may be NULL (then nothing is written). */
void us_set_msg(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* us_set_msg, then returns -1: for "return us_fail(err, err_len, ...)". */
int us_fail(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Why [s, s+len) cannot be stored as a user ID or state ("is empty", "is too long", "contains
 * a NUL character", "is not valid UTF-8"), or NULL when it can: 1..max bytes of UTF-8. */
const char *us_text_check(const char *s, size_t len, size_t max);

/* 1 when the secret a client sent equals the configured one. Constant-time in the content
 * of both: the time depends only on the length of what the client sent. */
int us_secret_equal(const char *given, size_t given_len, const char *key, size_t key_len);

/* 1 when [s, s+n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF), else 0. */
int us_utf8_valid(const char *s, size_t n);

#endif
