#include "ustatus/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustatus/mem.h"

void us_buf_grow(us_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2)
            us_oom();
        cap *= 2;
    }
    b->data = us_xrealloc(b->data, cap);
    b->cap = cap;
}

void us_buf_puts(us_buf *b, const char *s)
{
    us_buf_append(b, s, strlen(s));
}

void us_buf_printf(us_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    us_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void us_buf_put_i64(us_buf *b, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    /* Called twice per status in a get: straight into the buffer, without
     * us_buf_append's call and memcpy of a few bytes. */
    size_t n = (size_t)(tmp + sizeof tmp - p);
    us_buf_reserve(b, n);
    char *o = b->data + b->len;
    for (size_t i = 0; i < n; i++)
        o[i] = p[i];
    b->len += n;
    b->data[b->len] = '\0';
}

void us_buf_reset(us_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void us_buf_free(us_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *us_buf_steal(us_buf *b, size_t *len)
{
    if (!b->data) {
        us_buf_reserve(b, 0);
        b->data[0] = '\0';
    }
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
