#include "ustatus/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
    static const char msg[] = "ustatus: out of memory\n";
    fwrite(msg, 1, sizeof msg - 1, stderr);
    abort();
}

void *us_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *us_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *us_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

char *us_xstrndup(const char *s, size_t n)
{
    char *p = us_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *us_xstrdup(const char *s)
{
    return us_xstrndup(s, strlen(s));
}

void us_buf_grow(us_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2)
            oom();
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

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there are not one
 * (no overlongs, no surrogates, nothing above U+10FFFF). n >= 1. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void us_buf_put_json_str(us_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case 6 bytes per input byte, plus quotes. */
    us_buf_reserve(b, n * 6 + 2);
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t len = utf8_seq_len((const unsigned char *)s + i, n - i);
            if (len == 0) {
                /* Not UTF-8 (a value another writer put in Redis): U+FFFD, as Go does,
                 * so the response stays valid JSON. */
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
            } else if (len == 3 && c == 0xe2 && (unsigned char)s[i + 1] == 0x80 &&
                       ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
                memcpy(o, (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
                o += 6;
            } else {
                memcpy(o, s + i, len);
                o += len;
            }
            i += len ? len - 1 : 0;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
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

int us_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void us_set_msg(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

int us_fail(char *buf, size_t len, const char *fmt, ...)
{
    if (buf && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *us_text_check(const char *s, size_t len, size_t max)
{
    if (len == 0)
        return "is empty";
    if (len > max)
        return "is too long";
    if (memchr(s, '\0', len))
        return "contains a NUL character";
    if (!us_utf8_valid(s, len))
        return "is not valid UTF-8";
    return NULL;
}

int us_secret_equal(const char *given, size_t given_len, const char *key, size_t key_len)
{
    volatile unsigned char diff = (unsigned char)(given_len != key_len);
    for (size_t i = 0; i < given_len; i++)
        diff |= (unsigned char)given[i] ^ (unsigned char)key[key_len ? i % key_len : 0];
    return diff == 0;
}

int us_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq_len(s + i, n - i);
        if (len == 0)
            return 0;
        i += len;
    }
    return 1;
}

/* ---- strict JSON syntax check ---- */

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string starting at s[*i] == '"'; leaves *i after the closing quote. */
static const char *check_string(const char *s, size_t n, size_t *i)
{
    size_t k = *i + 1;
    while (k < n) {
        unsigned char c = (unsigned char)s[k];
        if (c == '"') {
            *i = k + 1;
            return NULL;
        }
        if (c < 0x20)
            return "control character in a string";
        if (c == '\\') {
            if (k + 1 >= n)
                break;
            char e = s[k + 1];
            if (e == 'u') {
                if (k + 5 >= n)
                    break;
                for (int h = 2; h < 6; h++)
                    if (!is_hex(s[k + h]))
                        return "bad \\u escape";
                k += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0')
                return "bad escape in a string";
            k += 2;
            continue;
        }
        k++;
    }
    return "truncated JSON";
}

static const char *check_number(const char *s, size_t n, size_t *i)
{
    size_t k = *i;
    if (k < n && s[k] == '-')
        k++;
    if (k >= n || s[k] < '0' || s[k] > '9')
        return "bad number";
    if (s[k] == '0')
        k++;
    else
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
    if (k < n && s[k] == '.') {
        k++;
        if (k >= n || s[k] < '0' || s[k] > '9')
            return "bad number";
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        if (k >= n || s[k] < '0' || s[k] > '9')
            return "bad number";
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
    }
    *i = k;
    return NULL;
}

int us_json_check(const char *s, size_t n, unsigned max_depth, size_t max_values, char *why,
                  size_t why_len)
{
    char stack[256];          /* '{' or '[' per open container */
    unsigned depth = 0;
    size_t values = 0;
    const char *err = NULL;
    size_t i = skip_ws(s, n, 0);
    if (max_depth > sizeof stack)
        max_depth = sizeof stack;
    if (i >= n) {
        if (why && why_len)
            snprintf(why, why_len, "empty body");
        return -1;
    }

value:
    i = skip_ws(s, n, i);
    if (i >= n) {
        err = "truncated JSON";
        goto fail;
    }
    if (max_values && ++values > max_values) {
        if (why && why_len)
            snprintf(why, why_len, "more than %zu JSON values", max_values);
        return -1;
    }
    switch (s[i]) {
    case '{':
    case '[':
        if (depth >= max_depth) {
            err = "JSON nested too deeply";
            goto fail;
        }
        stack[depth++] = s[i++];
        i = skip_ws(s, n, i);
        if (i < n && s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
            depth--;
            i++;
            goto after_value;
        }
        if (stack[depth - 1] == '{')
            goto key;
        goto value;
    case '"':
        if ((err = check_string(s, n, &i)))
            goto fail;
        goto after_value;
    case 't':
    case 'f':
    case 'n': {
        const char *lit = s[i] == 't' ? "true" : s[i] == 'f' ? "false" : "null";
        size_t l = strlen(lit);
        if (n - i < l || memcmp(s + i, lit, l) != 0) {
            err = "invalid literal";
            goto fail;
        }
        i += l;
        goto after_value;
    }
    default:
        if ((err = check_number(s, n, &i)))
            goto fail;
        goto after_value;
    }

key:
    i = skip_ws(s, n, i);
    if (i >= n || s[i] != '"') {
        err = i >= n ? "truncated JSON" : "object key is not a string";
        goto fail;
    }
    if ((err = check_string(s, n, &i)))
        goto fail;
    i = skip_ws(s, n, i);
    if (i >= n || s[i] != ':') {
        err = i >= n ? "truncated JSON" : "missing ':' after an object key";
        goto fail;
    }
    i++;
    goto value;

after_value:
    i = skip_ws(s, n, i);
    if (depth == 0) {
        if (i < n) {
            err = "unexpected data after the JSON value";
            goto fail;
        }
        return 0;
    }
    if (i >= n) {
        err = "truncated JSON";
        goto fail;
    }
    if (s[i] == ',') {
        i++;
        if (stack[depth - 1] == '{')
            goto key;
        goto value;
    }
    if (s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
        depth--;
        i++;
        goto after_value;
    }
    err = stack[depth - 1] == '{' ? "expected ',' or '}'" : "expected ',' or ']'";

fail:
    /* Running out of input says everything; elsewhere the position helps. */
    if (why && why_len && strcmp(err, "truncated JSON") == 0)
        snprintf(why, why_len, "%s", err);
    else if (why && why_len)
        snprintf(why, why_len, "invalid JSON at byte %zu: %s", i, err);
    return -1;
}
