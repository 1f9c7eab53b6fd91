/* Redis address strings (SPEC §3.1):
 *   host:port   tcp://host:port   [::1]:6379   unix:///path/to.sock   unix:/path/to.sock
 *   redis://[user[:password]@]host[:port][/db][?connect_timeout=1s&io_timeout=4s]
 *   rediss://...  the same, over TLS (SPEC §3.7)
 * A missing port means 6379. User and password in a URL are percent-decoded. */
#ifndef USTATUS_REDIS_ADDRESS_H
#define USTATUS_REDIS_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { US_ADDR_TCP = 0, US_ADDR_UNIX = 1 } us_addr_kind;

typedef struct us_redis_address {
    us_addr_kind kind;
    char host[256];            /* TCP: host name or IP literal (no brackets) */
    int port;                  /* TCP: 1..65535 */
    char path[108];            /* UNIX: socket path */
    /* Values given in the URL; the "unset" markers let the section's options apply. */
    char user[256];            /* "" = unset */
    char password[256];        /* "" = unset */
    int db;                    /* -1 = unset */
    int64_t connect_timeout_ms;/* -1 = unset */
    int64_t io_timeout_ms;     /* -1 = unset */
    bool tls;                  /* rediss://: TLS whatever the section's tls.enabled says */
} us_redis_address;

/* Parses `s` into `out`. Returns 0, or -1 with a reason in `err` (e.g.
 * "invalid port \"70000\""). Never allocates. */
int us_redis_address_parse(const char *s, us_redis_address *out, char *err, size_t err_len);

/* Writes "host:port" or "unix:/path" (never a password) for log lines. */
void us_redis_address_format(const us_redis_address *a, char *buf, size_t len);

/* Splits a comma-separated list of addresses (a sentinel_address or cluster_address
 * element: "10.0.0.1:26379, 10.0.0.2:26379") into a new array of *count trimmed,
 * non-empty strings, without parsing them. The array is allocated even when *count is
 * 0; the caller frees it with us_redis_address_split_free. */
char **us_redis_address_split(const char *s, size_t *count);

/* Frees what us_redis_address_split returned (v with its n strings). NULL is allowed. */
void us_redis_address_split_free(char **v, size_t n);

#endif
