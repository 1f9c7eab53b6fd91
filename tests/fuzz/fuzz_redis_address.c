/* libFuzzer target: Redis addresses and URLs (us_redis_address_parse, _format) and the
 * comma-separated address lists of sentinel_address / cluster_address
 * (us_redis_address_split), each element of a list parsed too.
 *
 * Input: the text (an embedded NUL ends it, as in a C string from a configuration).
 * Checked besides the sanitizers: a parsed address is NUL-terminated in every field, a
 * TCP port is 1..65535, a formatted address never shows the password, and the splitter's
 * elements are non-empty and trimmed. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ustatus/redis_address.h"

static void check_field(const char *f, size_t cap)
{
    if (!memchr(f, '\0', cap))
        abort();
}

static void parse_one(const char *s)
{
    us_redis_address a;
    char err[256];
    memset(&a, 0x5A, sizeof a);
    memset(err, 'x', sizeof err);
    err[0] = '\0';
    if (us_redis_address_parse(s, &a, err, sizeof err) == 0) {
        check_field(a.host, sizeof a.host);
        check_field(a.path, sizeof a.path);
        check_field(a.user, sizeof a.user);
        check_field(a.password, sizeof a.password);
        if (a.kind == US_ADDR_TCP && (a.port < 1 || a.port > 65535))
            abort();
        if (a.kind != US_ADDR_TCP && a.kind != US_ADDR_UNIX)
            abort();
        char out[512];
        us_redis_address_format(&a, out, sizeof out);
        check_field(out, sizeof out);
        /* Unless the same characters are also the host or the path. */
        if (strlen(a.password) >= 8 && strstr(out, a.password) && !strstr(a.host, a.password) &&
            !strstr(a.path, a.password))
            abort();
    } else {
        if (!memchr(err, '\0', sizeof err) || err[0] == '\0')
            abort(); /* a failure without a reason */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup_str(data, size);
    parse_one(s);

    size_t n = 0;
    char **v = us_redis_address_split(s, &n);
    if (!v)
        abort();
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]);
        if (len == 0 || isspace((unsigned char)v[i][0]) || isspace((unsigned char)v[i][len - 1]))
            abort();
        if (strchr(v[i], ','))
            abort();
        parse_one(v[i]);
    }
    us_redis_address_split_free(v, n);
    free(s);
    return 0;
}
