/* Fixtures shared by the unit suites: the runner, byte-range literals, the environment
 * and temporary files for configuration tests, a JSON string as ustatus writes it, and a
 * capture of stderr for what the code logs. Header-only (static inline) so each suite
 * stays a single program built from its own file.
 *
 * Check runs each test in a forked child by default, so what a test changes (the
 * environment, stderr, a log level) dies with it; the helpers still undo their changes,
 * for CK_FORK=no runs under a debugger. */
#ifndef USTATUS_TESTS_UNIT_FIXTURES_H
#define USTATUS_TESTS_UNIT_FIXTURES_H

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "ustatus/buf.h"
#include "ustatus/config.h"
#include "ustatus/json.h"
#include "ustatus/jwt.h"

/* ---- runner ---- */

/* A string literal as the (pointer, length) pair the byte-range functions take; the
 * length comes from sizeof, so embedded NULs count. */
#define S(lit) (lit), (sizeof(lit) - 1)

/* The element count of an array, as the int tcase_add_loop_test wants. */
#define N_ELEMS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* A us_jwt_status equal to want, the names of both in the failure (test_jwt, test_jwks). */
#define ck_assert_status(got, want)                                                                \
    do {                                                                                           \
        us_jwt_status g_ = (got), w_ = (want);                                                     \
        ck_assert_msg(g_ == w_, "status %s, expected %s", us_jwt_status_text(g_),                  \
                      us_jwt_status_text(w_));                                                     \
    } while (0)

/* Runs every test of s (CK_NORMAL output) and frees it: the process exit status, 0 when
 * nothing failed. For a main() with work of its own around the run. */
static inline int us_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* main() of a suite built by suite_fn(). */
#define US_TEST_MAIN(suite_fn)                                                                     \
    int main(void)                                                                                 \
    {                                                                                              \
        return us_test_run(suite_fn());                                                            \
    }

/* ---- environment ---- */

extern char **environ;

/* Removes every USTATUS_* and CENTRIFUGO_* variable, so the runner's own environment
 * cannot leak overrides into a configuration a test loads. */
static inline void us_test_clear_env(void)
{
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "USTATUS_", 8) == 0 || strncmp(*e, "CENTRIFUGO_", 11) == 0) {
                size_t n = strcspn(*e, "=");
                if (n >= sizeof name)
                    n = sizeof name - 1;
                memcpy(name, *e, n);
                name[n] = '\0';
                break;
            }
        }
        if (!name[0])
            return;
        unsetenv(name);
    }
}

/* Sets name to value, or unsets it when value is NULL. */
static inline void us_test_env(const char *name, const char *value)
{
    int rc = value ? setenv(name, value, 1) : unsetenv(name);
    ck_assert_msg(rc == 0, "cannot set %s", name);
}

/* ---- temporary files ---- */

/* Writes text to a new temporary file whose name ends in suffix ("", ".conf", ".json")
 * and stores its path in path (at least 64 bytes). The caller unlinks it. */
static inline void us_test_write_temp(const char *suffix, const char *text, char *path,
                                      size_t path_len)
{
    int n = snprintf(path, path_len, "/tmp/ustatus_test_XXXXXX%s", suffix);
    ck_assert_msg(n > 0 && (size_t)n < path_len, "temporary path too long");
    int fd = mkstemps(path, (int)strlen(suffix));
    ck_assert_msg(fd >= 0, "mkstemps failed: %s", strerror(errno));
    size_t len = strlen(text);
    ck_assert_int_eq((long)write(fd, text, len), (long)len);
    close(fd);
}

/* A configuration loaded from libconfuse text made with fmt (the environment cleared of
 * USTATUS_/CENTRIFUGO_ variables first); fails the test when it is refused. The caller
 * frees it with us_config_free. */
static inline us_config *us_test_config(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline us_config *us_test_config(const char *fmt, ...)
{
    char text[4096], path[128], err[512] = "";
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ck_assert_msg(n > 0 && (size_t)n < sizeof text, "configuration text too long");
    us_test_clear_env();
    us_test_write_temp(".conf", text, path, sizeof path);
    us_config *c = us_config_load(path, err, sizeof err);
    unlink(path);
    ck_assert_msg(c != NULL, "config rejected: %s", err);
    return c;
}

/* ---- keys ---- */

/* A new key pair: EVP_PKEY_RSA with param = bits, or EVP_PKEY_EC with param = the curve's
 * NID. Aborts on failure (a test cannot go on without it); the caller frees it. */
static inline EVP_PKEY *us_test_gen_key(int type, int param)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(type, NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1)
        abort();
    if (type == EVP_PKEY_RSA && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, param) != 1)
        abort();
    if (type == EVP_PKEY_EC && EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, param) != 1)
        abort();
    if (EVP_PKEY_keygen(ctx, &k) != 1)
        abort();
    EVP_PKEY_CTX_free(ctx);
    return k;
}

/* ---- JSON ---- */

/* The JSON string literal us_json_put_str writes for [s, s+n), as a NUL-terminated copy
 * the caller frees. Asserts the writer kept the buffer's length and terminator in step. */
static inline char *us_test_json_str(const char *s, size_t n)
{
    us_buf b = US_BUF_INIT;
    us_json_put_str(&b, s, n);
    ck_assert_uint_eq(strlen(b.data), b.len);
    return us_buf_steal(&b, NULL);
}

/* ---- stderr capture ---- */

/* stderr redirected to one end of a datagram socket pair: every write(2) to stderr
 * becomes one datagram, so a test sees not only what was logged but in how many writes. */
typedef struct us_test_stderr {
    int saved;  /* the original stderr */
    int reader; /* our end of the pair */
} us_test_stderr;

static inline void us_test_stderr_begin(us_test_stderr *c)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_ge(dup2(sv[1], STDERR_FILENO), 0);
    close(sv[1]);
    c->reader = sv[0];
}

/* The next write made to stderr, NUL-terminated in buf: its length, or -1 when nothing
 * (more) was written. Does not wait. */
static inline long us_test_stderr_next(us_test_stderr *c, char *buf, size_t len)
{
    ssize_t n = recv(c->reader, buf, len - 1, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
        ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s", strerror(errno));
        buf[0] = '\0';
        return -1;
    }
    ck_assert_msg((size_t)n < len, "a write of %ld bytes does not fit the test's buffer", (long)n);
    buf[n] = '\0';
    return (long)n;
}

/* Puts the original stderr back. */
static inline void us_test_stderr_end(us_test_stderr *c)
{
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    close(c->reader);
    c->saved = c->reader = -1;
}

#endif
