/* Go's time.ParseDuration, without negative values. */
#include "ustatus/duration.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static uint64_t duration_unit_ns(const char *u, size_t n)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"ns", 1ULL},
        {"us", 1000ULL},
        {"\xc2\xb5s", 1000ULL}, /* U+00B5 MICRO SIGN */
        {"\xce\xbcs", 1000ULL}, /* U+03BC GREEK SMALL LETTER MU */
        {"ms", 1000000ULL},
        {"s", 1000000000ULL},
        {"m", 60ULL * 1000000000ULL},
        {"h", 3600ULL * 1000000000ULL},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strlen(units[i].name) == n && memcmp(units[i].name, u, n) == 0)
            return units[i].ns;
    return 0;
}

int us_duration_parse_ms(const char *s, int64_t *out_ms)
{
    /* Go counts in int64 nanoseconds; 1<<63 is the bound its parser checks against. */
    const uint64_t limit = 1ULL << 63;
    uint64_t total_ns = 0;

    if (!s)
        return -1;
    if (*s == '+')
        s++;
    else if (*s == '-')
        return -1; /* a negative timeout or expiry has no meaning here, even "-0" */
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    if (*s == '\0')
        return -1;

    while (*s) {
        uint64_t whole = 0, frac = 0;
        double scale = 1.0;
        bool pre = false, post = false, frac_overflow = false;

        while (*s >= '0' && *s <= '9') {
            if (whole > limit / 10)
                return -1;
            whole = whole * 10 + (uint64_t)(*s - '0');
            if (whole > limit)
                return -1;
            pre = true;
            s++;
        }
        if (*s == '.') {
            s++;
            /* Digits past what fits in 63 bits cannot change the result: skip them. */
            while (*s >= '0' && *s <= '9') {
                post = true;
                if (!frac_overflow) {
                    if (frac > (limit - 1) / 10) {
                        frac_overflow = true;
                    } else {
                        uint64_t next = frac * 10 + (uint64_t)(*s - '0');
                        if (next > limit) {
                            frac_overflow = true;
                        } else {
                            frac = next;
                            scale *= 10.0;
                        }
                    }
                }
                s++;
            }
        }
        if (!pre && !post)
            return -1;

        const char *unit = s;
        while (*s && *s != '.' && !(*s >= '0' && *s <= '9'))
            s++;
        uint64_t unit_ns = duration_unit_ns(unit, (size_t)(s - unit));
        if (unit_ns == 0)
            return -1; /* missing ("12") or unknown ("1x") unit */

        if (whole > limit / unit_ns)
            return -1;
        whole *= unit_ns;
        if (frac > 0) {
            /* frac < scale, so this is below unit_ns and cannot overflow the cast. */
            whole += (uint64_t)((double)frac * ((double)unit_ns / scale));
            if (whole > limit)
                return -1;
        }
        total_ns += whole;
        if (total_ns > limit)
            return -1;
    }
    if (total_ns > (uint64_t)INT64_MAX)
        return -1;
    *out_ms = (int64_t)(total_ns / 1000000ULL);
    return 0;
}
