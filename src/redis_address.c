#include "ustatus/redis_address.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ustatus/duration.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"
#include "ustatus/text.h"

/* Percent-decodes [s, s+n) into dst (NUL-terminated). -1 if malformed or too long. */
static int pct_decode(const char *s, size_t n, char *dst, size_t dst_len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = us_hex_value((unsigned char)s[i + 1]);
            int lo = us_hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            if (c == 0)
                return -1;
            i += 2;
        }
        if (o + 1 >= dst_len)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

static int parse_port(const char *s, size_t n, int *port)
{
    if (n == 0 || n > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

/* host[:port] or [v6][:port] in [s, s+n). */
static int parse_hostport(const char *s, size_t n, us_redis_address *out, char *err, size_t err_len)
{
    char tmp[300];
    const char *host = s;
    size_t host_len;
    const char *port = NULL;
    size_t port_len = 0;

    if (n == 0)
        return us_fail(err, err_len, "missing host");
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return us_fail(err, err_len, "unterminated IPv6 literal");
        host = s + 1;
        host_len = (size_t)(close - host);
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest > 0) {
            if (close[1] != ':')
                return us_fail(err, err_len, "unexpected text after IPv6 literal");
            port = close + 2;
            port_len = rest - 1;
        }
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':') {
                if (colon)
                    return us_fail(err, err_len, "IPv6 address must be in brackets");
                colon = s + i;
            }
        if (colon) {
            host_len = (size_t)(colon - s);
            port = colon + 1;
            port_len = n - host_len - 1;
        } else {
            host_len = n;
        }
    }
    if (host_len == 0)
        return us_fail(err, err_len, "missing host");
    if (host_len >= sizeof out->host)
        return us_fail(err, err_len, "host name too long");
    for (size_t i = 0; i < host_len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c == '/' || c == '@' || c == '?' || c == '#' || c >= 0x7f)
            return us_fail(err, err_len, "invalid character in host");
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = 6379;
    if (port && parse_port(port, port_len, &out->port) < 0) {
        size_t l = port_len < sizeof tmp - 1 ? port_len : sizeof tmp - 1;
        memcpy(tmp, port, l);
        tmp[l] = '\0';
        return us_fail(err, err_len, "invalid port \"%s\"", tmp);
    }
    return 0;
}

static int parse_query(const char *q, us_redis_address *out, char *err, size_t err_len)
{
    char buf[512];
    if (strlen(q) >= sizeof buf)
        return us_fail(err, err_len, "query string too long");
    strcpy(buf, q);
    char *save = NULL;
    for (char *kv = strtok_r(buf, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return us_fail(err, err_len, "query parameter \"%s\" has no value", kv);
        *eq = '\0';
        const char *v = eq + 1;
        int64_t ms;
        if (strcmp(kv, "connect_timeout") == 0 || strcmp(kv, "dial_timeout") == 0) {
            if (us_duration_parse_ms(v, &ms) < 0)
                return us_fail(err, err_len, "invalid connect_timeout \"%s\"", v);
            out->connect_timeout_ms = ms;
        } else if (strcmp(kv, "io_timeout") == 0) {
            if (us_duration_parse_ms(v, &ms) < 0)
                return us_fail(err, err_len, "invalid io_timeout \"%s\"", v);
            out->io_timeout_ms = ms;
        } else if (strcmp(kv, "db") == 0) {
            char *end;
            errno = 0;
            long db = strtol(v, &end, 10);
            if (errno || *v == '\0' || *end || db < 0 || db > 1000000)
                return us_fail(err, err_len, "invalid db \"%s\"", v);
            out->db = (int)db;
        } else {
            return us_fail(err, err_len, "unknown query parameter \"%s\"", kv);
        }
    }
    return 0;
}

int us_redis_address_parse(const char *s, us_redis_address *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    out->db = -1;
    out->connect_timeout_ms = -1;
    out->io_timeout_ms = -1;
    if (!s || !*s)
        return us_fail(err, err_len, "empty address");

    if (strncasecmp(s, "unix:", 5) == 0) {
        const char *p = s + 5;
        if (strncmp(p, "//", 2) == 0)
            p += 2;
        if (*p != '/')
            return us_fail(err, err_len, "unix socket path must be absolute");
        if (strlen(p) >= sizeof out->path)
            return us_fail(err, err_len, "unix socket path too long");
        out->kind = US_ADDR_UNIX;
        strcpy(out->path, p);
        return 0;
    }
    if (strncasecmp(s, "tcp://", 6) == 0)
        return parse_hostport(s + 6, strlen(s + 6), out, err, err_len);
    bool tls = strncasecmp(s, "rediss://", 9) == 0;
    if (tls || strncasecmp(s, "redis://", 8) == 0) {
        const char *p = s + (tls ? 9 : 8);
        out->tls = tls;
        /* The last '@' of the whole string ends the userinfo: nothing after it (host,
         * port, db, query) can hold one, and a password may hold '@', '/' or '?' raw.
         * Looking only up to the first '/' or '?' would take part of such a password
         * for the host and port, and quote it back in an error line. */
        const char *at = strrchr(p, '@');
        const char *end = (at ? at + 1 : p) + strcspn(at ? at + 1 : p, "/?");
        if (at) {
            const char *colon = memchr(p, ':', (size_t)(at - p));
            size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
            if (pct_decode(p, ulen, out->user, sizeof out->user) < 0)
                return us_fail(err, err_len, "invalid user in redis URL");
            if (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), out->password,
                                    sizeof out->password) < 0)
                return us_fail(err, err_len, "invalid password in redis URL");
            p = at + 1;
        }
        if (parse_hostport(p, (size_t)(end - p), out, err, err_len) < 0)
            return -1;
        p = end;
        if (*p == '/') {
            p++;
            const char *dend = p + strcspn(p, "?");
            if (dend > p) {
                char db[16];
                size_t l = (size_t)(dend - p);
                if (l >= sizeof db)
                    return us_fail(err, err_len, "invalid db in redis URL");
                memcpy(db, p, l);
                db[l] = '\0';
                char *e;
                errno = 0;
                long v = strtol(db, &e, 10);
                if (errno || *e || v < 0 || v > 1000000 || !isdigit((unsigned char)db[0]))
                    return us_fail(err, err_len, "invalid db \"%s\"", db);
                out->db = (int)v;
            }
            p = dend;
        }
        if (*p == '?' && p[1])
            return parse_query(p + 1, out, err, err_len);
        return 0;
    }
    if (strstr(s, "://"))
        return us_fail(err, err_len, "unsupported address scheme");
    return parse_hostport(s, strlen(s), out, err, err_len);
}

void us_redis_address_format(const us_redis_address *a, char *buf, size_t len)
{
    if (a->kind == US_ADDR_UNIX)
        snprintf(buf, len, "unix:%s", a->path);
    else if (strchr(a->host, ':'))
        snprintf(buf, len, "[%s]:%d", a->host, a->port);
    else
        snprintf(buf, len, "%s:%d", a->host, a->port);
}

char **us_redis_address_split(const char *s, size_t *count)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = us_xcalloc(cap, sizeof *v);
    size_t n = 0;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a)
            v[n++] = us_xstrndup(a, (size_t)(b - a));
        if (!*end)
            break;
        p = end + 1;
    }
    *count = n;
    return v;
}

void us_redis_address_split_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
