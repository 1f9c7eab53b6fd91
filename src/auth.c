#include "ustatus/auth.h"

#include <string.h>
#include <strings.h>

#include "ustatus/secret.h"
#include "ustatus/text.h"

/* The decoded value of query parameter `name` into out (NUL-terminated) and its length
 * into out_len_ret; false when absent, too long, or decoding to a NUL byte (which would
 * make the value look shorter than it is). */
static bool query_param(const char *query, const char *name, char *out, size_t out_len,
                        size_t *out_len_ret)
{
    size_t name_len = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *end = p + strcspn(p, "&");
        if ((size_t)(end - p) > name_len && strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            size_t o = 0;
            for (const char *q = p + name_len + 1; q < end; q++) {
                int c = (unsigned char)*q;
                if (c == '+') {
                    c = ' ';
                } else if (c == '%' && end - q > 2 && us_hex_value(q[1]) >= 0 &&
                           us_hex_value(q[2]) >= 0) {
                    c = us_hex_value(q[1]) * 16 + us_hex_value(q[2]);
                    q += 2;
                }
                if (c == '\0' || o + 1 >= out_len)
                    return false;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            *out_len_ret = o;
            return true;
        }
        p = *end ? end + 1 : end;
    }
    return false;
}

bool us_auth_api_key(const us_http_request *req, const char *key, bool insecure)
{
    size_t key_len = key ? strlen(key) : 0;
    if (insecure)
        return true;
    if (key_len == 0)
        return false;
    if (req->x_api_key && *req->x_api_key)
        return us_secret_equal(req->x_api_key, strlen(req->x_api_key), key, key_len);
    if (req->authorization && *req->authorization) {
        const char *p = req->authorization;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *f1 = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        size_t f1_len = (size_t)(p - f1);
        while (*p == ' ' || *p == '\t')
            p++;
        const char *f2 = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        size_t f2_len = (size_t)(p - f2);
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p || f2_len == 0 || f1_len != 6 || strncasecmp(f1, "apikey", 6) != 0)
            return false;
        return us_secret_equal(f2, f2_len, key, key_len);
    }
    char given[1024];
    size_t given_len;
    if (req->query && query_param(req->query, "api_key", given, sizeof given, &given_len) &&
        given_len)
        return us_secret_equal(given, given_len, key, key_len);
    return false;
}

bool us_auth_header_key(const us_http_request *req, const char *key)
{
    size_t key_len = key ? strlen(key) : 0;
    if (!req->x_api_key || key_len == 0)
        return false;
    return us_secret_equal(req->x_api_key, strlen(req->x_api_key), key, key_len);
}

bool us_auth_bearer(const char *h, const char **tok, size_t *tok_len)
{
    if (!h)
        return false;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return false;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strcspn(h, " \t");
    const char *after = h + n;
    while (*after == ' ' || *after == '\t')
        after++;
    if (n == 0 || *after)
        return false;
    *tok = h;
    *tok_len = n;
    return true;
}
