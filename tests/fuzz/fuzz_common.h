/* Shared by the libFuzzer targets of tests/fuzz (built by tests/fuzz/run, never by make):
 * the application every request-level target serves, and the helpers they share.
 *
 * The application is the real one, built from a real configuration whose store is a
 * Redis at a unix socket path that does not exist: every connection attempt fails at
 * once (error 100), so a run needs no network and no server, and what gets fuzzed is the
 * parsing, validation, routing and envelope code above the store. No mock of anything.
 *
 * Header-only (static functions) so each target is one translation unit plus the
 * library's objects. */
#ifndef USTATUS_TESTS_FUZZ_COMMON_H
#define USTATUS_TESTS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ustatus/app.h"
#include "ustatus/buf.h"
#include "ustatus/config.h"
#include "ustatus/jwt.h"

#define FUZZ_API_KEY "fuzz-api-key"
/* The RPC proxy takes the same key, so that one X-API-Key bit reaches both. */
#define FUZZ_PROXY_KEY   FUZZ_API_KEY
#define FUZZ_HMAC_SECRET "fuzz-hmac-secret"
#define FUZZ_ORIGIN      "https://app.example"
#define FUZZ_NOW_S       1700000000

/* Every endpoint family switched on: the server API with a key and a state_regex, the
 * client endpoints with an HMAC key and an allowed origin, the RPC proxy. */
static const char fuzz_app_config[] =
    "http_api { key = \"" FUZZ_API_KEY "\" max_body_bytes = 262144 }\n"
    "user_status {\n"
    "  state_regex = \"^[a-z ]{0,32}$\"\n"
    "  max_users_per_request = 1000\n"
    "  redis {\n"
    "    address = {\"unix:///nonexistent/ustatus-fuzz/redis.sock\"}\n"
    "    connect_timeout = \"50ms\" io_timeout = \"50ms\"\n"
    "  }\n"
    "}\n"
    "client {\n"
    "  allowed_origins = {\"" FUZZ_ORIGIN "\"}\n"
    "  min_update_interval = \"0s\"\n"
    "  token { hmac_secret_key = \"" FUZZ_HMAC_SECRET "\" }\n"
    "}\n"
    "centrifugo_proxy { key = \"" FUZZ_PROXY_KEY "\" }\n"
    "log { level = \"error\" }\n";

/* Writes text to a new temporary file named ...<suffix>; returns its malloc'd path. */
static inline char *fuzz_temp_file(const char *text, size_t len, const char *suffix)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    size_t n = strlen(dir) + 64;
    char *path = malloc(n);
    if (!path)
        abort();
    snprintf(path, n, "%s/ustatus-fuzz-XXXXXX%s", dir, suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) {
        perror("fuzz: mkstemps");
        abort();
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w <= 0) {
            perror("fuzz: write");
            abort();
        }
        off += (size_t)w;
    }
    close(fd);
    return path;
}

static us_config *fuzz_cfg;

/* The application of the request-level targets, built once per process. */
static inline us_app *fuzz_app_open(void)
{
    char err[512] = "";
    char *path = fuzz_temp_file(fuzz_app_config, sizeof fuzz_app_config - 1, ".conf");
    fuzz_cfg = us_config_load(path, err, sizeof err);
    unlink(path);
    free(path);
    if (!fuzz_cfg) {
        fprintf(stderr, "fuzz: configuration: %s\n", err);
        abort();
    }
    us_app *app = us_app_create(fuzz_cfg, err, sizeof err);
    if (!app) {
        fprintf(stderr, "fuzz: app: %s\n", err);
        abort();
    }
    return app;
}

/* Appends to out the compact JWS of header and payload (JSON texts, as given) signed
 * with HMAC-SHA-<bits> under key. */
static inline void fuzz_sign_hs(us_buf *out, const char *header, size_t header_len,
                                const char *payload, size_t payload_len, int bits, const char *key,
                                size_t key_len)
{
    const EVP_MD *md = bits == 384 ? EVP_sha384() : bits == 512 ? EVP_sha512() : EVP_sha256();
    size_t start = out->len;
    us_b64url_encode(header, header_len, out);
    us_buf_putc(out, '.');
    us_b64url_encode(payload, payload_len, out);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (!HMAC(md, key, (int)key_len, (const unsigned char *)out->data + start, out->len - start,
              mac, &mac_len))
        abort();
    us_buf_putc(out, '.');
    us_b64url_encode(mac, mac_len, out);
}

/* "Bearer <a good HS256 token of user fuzz-user>" for the client endpoints. */
static inline char *fuzz_bearer(void)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static const char payload[] = "{\"sub\":\"fuzz-user\",\"exp\":4000000000}";
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "Bearer ");
    fuzz_sign_hs(&b, header, sizeof header - 1, payload, sizeof payload - 1, 256, FUZZ_HMAC_SECRET,
                 strlen(FUZZ_HMAC_SECRET));
    size_t len;
    return us_buf_steal(&b, &len);
}

/* An exact-size heap copy of data (no NUL after it: ASan catches a read past the end). */
static inline char *fuzz_dup_exact(const uint8_t *data, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (!p)
        abort();
    if (n)
        memcpy(p, data, n);
    return p;
}

/* A NUL-terminated heap copy of the n bytes at data (an embedded NUL ends the string). */
static inline char *fuzz_dup_str(const uint8_t *data, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        abort();
    if (n)
        memcpy(p, data, n);
    p[n] = '\0';
    return p;
}

#endif
