/* A growable byte buffer: bytes in, bytes out. It knows no format: JSON goes through
 * json.h, RESP through the store. Memory comes from mem.h (allocation failure aborts). */
#ifndef USTATUS_BUF_H
#define USTATUS_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* Fixed text without a strlen: for string literals only. */
#define US_BUF_LITERAL(b, lit) us_buf_append((b), (lit), sizeof(lit) - 1)

void us_buf_puts(us_buf *b, const char *s);
void us_buf_printf(us_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The decimal digits of v (with '-' when negative). */
void us_buf_put_i64(us_buf *b, int64_t v);
void us_buf_reset(us_buf *b);  /* len = 0, keeps the memory */
void us_buf_free(us_buf *b);   /* frees and re-initialises */
/* Hands the data over to the caller (who frees it); the buffer is re-initialised. */
char *us_buf_steal(us_buf *b, size_t *len);

#endif
