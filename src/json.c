#include "ustatus/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ustatus/buf.h"
#include "ustatus/msg.h"
#include "ustatus/text.h"

/* ---- writing ---- */

void us_json_put_str(us_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case 6 bytes per input byte, plus quotes. */
    us_buf_reserve(b, n * 6 + 2);
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t len = us_utf8_seq_len((const unsigned char *)s + i, n - i);
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
    char stack[256]; /* '{' or '[' per open container */
    unsigned depth = 0;
    size_t values = 0;
    const char *err = NULL;
    size_t i = skip_ws(s, n, 0);
    if (max_depth > sizeof stack)
        max_depth = sizeof stack;
    if (i >= n) {
        us_set_msg(why, why_len, "empty body");
        return -1;
    }

value:
    i = skip_ws(s, n, i);
    if (i >= n) {
        err = "truncated JSON";
        goto fail;
    }
    if (max_values && ++values > max_values) {
        us_set_msg(why, why_len, "more than %zu JSON values", max_values);
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
    if (strcmp(err, "truncated JSON") == 0)
        us_set_msg(why, why_len, "%s", err);
    else
        us_set_msg(why, why_len, "invalid JSON at byte %zu: %s", i, err);
    return -1;
}

/* ---- parsing ---- */

int us_json_parse(const char *s, size_t len, size_t max_values, json_object **out, char *why,
                  size_t why_len)
{
    *out = NULL;
    if (us_json_check(s, len, US_JSON_MAX_DEPTH, max_values, why, why_len) < 0)
        return -1;
    json_tokener *tok = json_tokener_new_ex(US_JSON_MAX_DEPTH + 1);
    if (!tok)
        abort();
    json_object *obj = json_tokener_parse_ex(tok, s, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        /* A bare number at the very end may still continue: end the input. */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
    }
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        /* us_json_check accepted it: only an allocation failure gets here. */
        json_object_put(obj);
        return us_fail(why, why_len, "invalid JSON: %s", json_tokener_error_desc(jerr));
    }
    *out = obj;
    return 0;
}

json_object *us_json_parse_object(const char *s, size_t len, size_t max_values, const char *what,
                                  char *why, size_t why_len)
{
    json_object *obj;
    if (us_json_parse(s, len, max_values, &obj, why, why_len) < 0)
        return NULL;
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        us_set_msg(why, why_len, "%s must be a JSON object", what);
        json_object_put(obj);
        return NULL;
    }
    return obj;
}
