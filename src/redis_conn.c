/* One transport connection to a Redis server: socket, TLS, deadlines, bounded replies.
 *
 * Why our own socket rather than hiredis's redisContext: Debian 12's hiredis 0.14 has no
 * TLS; its blocking I/O sets SO_RCVTIMEO, a timeout that starts again on every read (a
 * Redis dripping a byte at a time held a request 13 s with io_timeout = 1s); and it gives
 * no way to see bytes that arrive while nothing was asked. Here the socket is
 * non-blocking and every wait is a poll() up to one deadline for the whole exchange;
 * hiredis is kept for what it does well: redisReader parses RESP (fed from our buffers,
 * plain or decrypted) and redisFormatCommand writes it. */
#include "redis_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ustatus/buf.h"
#include "ustatus/clock.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"

/* A line or string header may take this much beyond the longest string allowed. */
#define LINE_SLACK 64
#define READ_CHUNK 16384

struct us_redis_tls {
    SSL_CTX *ctx;
    bool verify;
    char server_name[256];
};

struct us_redis_conn {
    int fd;
    SSL *ssl;                  /* NULL: plain TCP or unix socket */
    redisReader *reader;
    us_buf out;                /* queued commands */
    size_t out_pos;            /* written so far */
    us_reply_guard guard;      /* the reader's privdata: the bounds of the reply it reads */
    us_conn_failure failure;
    char error[200];
};

/* ---- TLS settings ---- */

/* The reason of the last OpenSSL error, "" when there is none. */
static const char *openssl_reason(void)
{
    unsigned long code = ERR_peek_last_error();
    if (!code)
        return "";
    const char *r = ERR_reason_error_string(code);
    return r ? r : "unknown OpenSSL error";
}

static int load_ca(SSL_CTX *ctx, const char *pem, const char *what, char *err, size_t err_len)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    X509 *x;
    while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(store, x);
        X509_free(x);
        n++;
    }
    BIO_free(bio);
    ERR_clear_error(); /* the end of the PEM text reads as an error */
    if (n == 0)
        return us_fail(err, err_len, "%s: server_ca_pem holds no PEM certificate", what);
    return 0;
}

static int load_client_cert(SSL_CTX *ctx, const char *cert_pem, const char *key_pem,
                            const char *what, char *err, size_t err_len)
{
    int rc = -1;
    BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *leaf = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    if (!leaf) {
        us_set_msg(err, err_len, "%s: cert_pem holds no PEM certificate", what);
        goto done;
    }
    if (!key) {
        us_set_msg(err, err_len, "%s: key_pem holds no PEM private key", what);
        goto done;
    }
    if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
        us_set_msg(err, err_len, "%s: cert_pem: %s", what, openssl_reason());
        goto done;
    }
    /* The rest of cert_pem: intermediates to send along. */
    X509 *x;
    while ((x = PEM_read_bio_X509(cb, NULL, NULL, NULL)) != NULL)
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1)
            X509_free(x);
    ERR_clear_error();
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        us_set_msg(err, err_len, "%s: key_pem does not match cert_pem", what);
        goto done;
    }
    rc = 0;
done:
    X509_free(leaf);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    ERR_clear_error();
    return rc;
}

us_redis_tls *us_redis_tls_create(const us_tls_config *cfg, const char *what, char *err,
                                  size_t err_len)
{
    const char *cert = cfg->cert_pem ? cfg->cert_pem : "";
    const char *key = cfg->key_pem ? cfg->key_pem : "";
    const char *ca = cfg->server_ca_pem ? cfg->server_ca_pem : "";
    const char *name = cfg->server_name ? cfg->server_name : "";
    if (!cert[0] != !key[0]) {
        us_set_msg(err, err_len, "%s: a client certificate needs both cert_pem and key_pem",
                   what);
        return NULL;
    }
    if (strlen(name) >= sizeof ((us_redis_tls *)0)->server_name) {
        us_set_msg(err, err_len, "%s: server_name too long", what);
        return NULL;
    }
    us_redis_tls *t = us_xcalloc(1, sizeof *t);
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        us_set_msg(err, err_len, "%s: cannot create a TLS context: %s", what, openssl_reason());
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (ca[0] ? load_ca(t->ctx, ca, what, err, err_len) < 0
              : SSL_CTX_set_default_verify_paths(t->ctx) != 1 &&
                    us_fail(err, err_len, "%s: cannot load the system CAs", what) < 0)
        goto fail;
    if (cert[0] && load_client_cert(t->ctx, cert, key, what, err, err_len) < 0)
        goto fail;
    t->verify = !cfg->insecure_skip_verify;
    SSL_CTX_set_verify(t->ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    snprintf(t->server_name, sizeof t->server_name, "%s", name);
    ERR_clear_error();
    return t;
fail:
    us_redis_tls_free(t);
    ERR_clear_error();
    return NULL;
}

void us_redis_tls_free(us_redis_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- failures and waiting ---- */

__attribute__((format(printf, 3, 4)))
static int fail(us_redis_conn *c, us_conn_failure kind, const char *fmt, ...)
{
    c->failure = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* Waits until fd is ready for events, or the deadline. */
static int wait_fd(us_redis_conn *c, short events, int64_t deadline_ms, const char *what)
{
    for (;;) {
        int64_t left = deadline_ms - us_clock_mono_ms();
        if (left <= 0)
            return fail(c, US_CONN_TIMEOUT, "%s timed out", what);
        struct pollfd p = {.fd = c->fd, .events = events};
        int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return 0; /* POLLERR and POLLHUP too: the next read or write says what */
        if (n < 0 && errno != EINTR)
            return fail(c, US_CONN_IO, "poll: %s", strerror(errno));
    }
}

/* A failed SSL_* call (its SSL_get_error value e) as a failure of c. */
static int fail_ssl(us_redis_conn *c, int e, const char *what)
{
    if (e == SSL_ERROR_ZERO_RETURN)
        return fail(c, US_CONN_CLOSED, "connection closed by the server");
    if (e == SSL_ERROR_SYSCALL && !ERR_peek_last_error()) {
        if (errno == 0 || errno == EPIPE || errno == ECONNRESET)
            return fail(c, US_CONN_CLOSED, "connection closed by the server");
        return fail(c, US_CONN_IO, "%s: %s", what, strerror(errno));
    }
    return fail(c, US_CONN_TLS, "TLS %s failed: %s", what, openssl_reason());
}

/* ---- connecting ---- */

static void tune_tcp(int fd)
{
    int on = 1, idle = 15, intvl = 5, cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* connect(2) on a non-blocking socket, waiting for it up to the deadline. */
static int connect_fd(us_redis_conn *c, const struct sockaddr *sa, socklen_t len,
                      int64_t deadline_ms)
{
    if (connect(c->fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return fail(c, errno == ECONNREFUSED ? US_CONN_CLOSED : US_CONN_IO, "%s",
                    strerror(errno));
    if (wait_fd(c, POLLOUT, deadline_ms, "connect") < 0)
        return -1;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        soerr = errno;
    if (soerr)
        return fail(c, soerr == ECONNREFUSED ? US_CONN_CLOSED : US_CONN_IO, "%s",
                    strerror(soerr));
    return 0;
}

static int open_tcp(us_redis_conn *c, const char *host, int port, int64_t deadline_ms)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return fail(c, US_CONN_IO, "cannot resolve %s: %s", host, gai_strerror(rc));
    fail(c, US_CONN_IO, "no address for %s", host);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            fail(c, US_CONN_IO, "socket: %s", strerror(errno));
            continue;
        }
        if (connect_fd(c, ai->ai_addr, ai->ai_addrlen, deadline_ms) == 0) {
            freeaddrinfo(res);
            tune_tcp(c->fd);
            return 0;
        }
        close(c->fd);
        c->fd = -1;
        if (c->failure == US_CONN_TIMEOUT)
            break;
    }
    freeaddrinfo(res);
    return -1;
}

static int open_unix(us_redis_conn *c, const char *path, int64_t deadline_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return fail(c, US_CONN_IO, "socket: %s", strerror(errno));
    return connect_fd(c, (const struct sockaddr *)&sa, sizeof sa, deadline_ms);
}

static bool is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* The TLS handshake, with the certificate checked against server_name or host. */
static int start_tls(us_redis_conn *c, const us_redis_tls *t, const char *host,
                     int64_t deadline_ms)
{
    ERR_clear_error();
    c->ssl = SSL_new(t->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        return fail(c, US_CONN_TLS, "TLS setup failed: %s", openssl_reason());
    const char *name = t->server_name[0] ? t->server_name : host;
    if (name[0]) {
        bool ip = is_ip_literal(name);
        /* SNI carries host names only (RFC 6066); an IP is checked against the
         * certificate's IP addresses, a name against its DNS names. */
        if (!ip)
            SSL_set_tlsext_host_name(c->ssl, name);
        if (t->verify &&
            (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name)
                : SSL_set1_host(c->ssl, name)) != 1)
            return fail(c, US_CONN_TLS, "TLS setup failed: cannot check the name \"%s\"", name);
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ms,
                        "TLS handshake") < 0)
                return -1;
            continue;
        }
        long vr = SSL_get_verify_result(c->ssl);
        if (t->verify && vr != X509_V_OK)
            return fail(c, US_CONN_TLS, "TLS certificate verification failed: %s",
                        X509_verify_cert_error_string(vr));
        fail_ssl(c, e, "handshake");
        if (c->failure != US_CONN_TLS)
            return fail(c, US_CONN_TLS, "TLS handshake failed: %s", c->error);
        return -1;
    }
}

us_redis_conn *us_redis_conn_open(const us_redis_address *a, const us_redis_tls *tls,
                                  int64_t deadline_ms, us_conn_failure *failure, char *err,
                                  size_t err_len)
{
    us_redis_conn *c = us_xcalloc(1, sizeof *c);
    c->fd = -1;
    int rc = a->kind == US_ADDR_UNIX ? open_unix(c, a->path, deadline_ms)
                                     : open_tcp(c, a->host, a->port, deadline_ms);
    if (rc == 0 && tls)
        rc = start_tls(c, tls, a->kind == US_ADDR_UNIX ? "" : a->host, deadline_ms);
    if (rc == 0) {
        c->failure = US_CONN_OK;
        c->error[0] = '\0';
        c->reader = us_reply_reader_create();
        if (!c->reader)
            abort(); /* out of memory: the house rule (mem.h) */
        c->reader->privdata = &c->guard;
        return c;
    }
    *failure = c->failure;
    us_set_msg(err, err_len, "%s", c->error);
    us_redis_conn_close(c);
    return NULL;
}

void us_redis_conn_close(us_redis_conn *c)
{
    if (!c)
        return;
    if (c->ssl) {
        /* close_notify when the connection is still good; never waits */
        if (c->failure == US_CONN_OK)
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    if (c->fd >= 0)
        close(c->fd);
    if (c->reader)
        redisReaderFree(c->reader);
    us_buf_free(&c->out);
    free(c);
}

bool us_redis_conn_is_tls(const us_redis_conn *c)
{
    return c->ssl != NULL;
}

/* ---- writing ---- */

void us_redis_conn_append(us_redis_conn *c, const char *cmd, size_t len)
{
    us_buf_append(&c->out, cmd, len);
}

void us_redis_conn_append_vfmt(us_redis_conn *c, us_reply_limits *limits, const char *fmt,
                               va_list ap)
{
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0 || !cmd)
        abort(); /* out of memory (the format strings are ours) */
    if (limits)
        us_reply_limits_for(cmd, (size_t)len, limits);
    us_buf_append(&c->out, cmd, (size_t)len);
    free(cmd);
}

void us_redis_conn_append_fmt(us_redis_conn *c, us_reply_limits *limits, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    us_redis_conn_append_vfmt(c, limits, fmt, ap);
    va_end(ap);
}

static int read_some(us_redis_conn *c, bool wait, int64_t deadline_ms);

/* A TLS server that refuses us after its side of the handshake (no client certificate,
 * TLS 1.3) sends an alert and closes: our first write then fails with a plain "closed",
 * while the alert that says why is already there to read. */
static int explain_closed(us_redis_conn *c)
{
    if (!c->ssl || c->failure != US_CONN_CLOSED)
        return -1;
    char saved[sizeof c->error];
    memcpy(saved, c->error, sizeof saved);
    c->failure = US_CONN_OK;
    if (read_some(c, false, 0) < 0 && c->failure == US_CONN_TLS)
        return -1;
    c->failure = US_CONN_CLOSED;
    memcpy(c->error, saved, sizeof saved);
    return -1;
}

int us_redis_conn_flush(us_redis_conn *c, int64_t deadline_ms)
{
    while (c->out_pos < c->out.len) {
        const char *p = c->out.data + c->out_pos;
        size_t left = c->out.len - c->out_pos;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, p, left > INT_MAX ? INT_MAX : (int)left);
            if (r > 0) {
                c->out_pos += (size_t)r;
                continue;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                fail_ssl(c, e, "write");
                return explain_closed(c);
            }
            if (wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ms,
                        "write") < 0)
                return -1;
            continue;
        }
        ssize_t n = send(c->fd, p, left, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_pos += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(c, POLLOUT, deadline_ms, "write") < 0)
                return -1;
        } else if (n < 0 && errno != EINTR) {
            return fail(c, errno == EPIPE || errno == ECONNRESET ? US_CONN_CLOSED : US_CONN_IO,
                        "write: %s", strerror(errno));
        }
    }
    us_buf_reset(&c->out);
    c->out_pos = 0;
    return 0;
}

/* ---- reading ---- */

/* Feeds the reader what the socket has. wait: up to the deadline for at least one byte.
 * Returns 1 when something was fed, 0 when nothing was there (only without wait), -1 on
 * a failure. */
static int read_some(us_redis_conn *c, bool wait, int64_t deadline_ms)
{
    char buf[READ_CHUNK];
    for (;;) {
        ssize_t n;
        if (c->ssl) {
            /* Decrypted bytes may be waiting in OpenSSL already; else wait on the socket
             * first, as for plain text, so that a read is one poll and one recv. */
            if (wait && !SSL_has_pending(c->ssl) &&
                wait_fd(c, POLLIN, deadline_ms, "reply") < 0)
                return -1;
            ERR_clear_error();
            int r = SSL_read(c->ssl, buf, sizeof buf);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ && !wait)
                    return 0;
                if (e == SSL_ERROR_WANT_READ)
                    continue; /* a record that held no data (a session ticket) */
                if (e == SSL_ERROR_WANT_WRITE) {
                    if (!wait)
                        return 0;
                    if (wait_fd(c, POLLOUT, deadline_ms, "reply") < 0)
                        return -1;
                    continue;
                }
                return fail_ssl(c, e, "read");
            }
            n = r;
        } else {
            if (wait && wait_fd(c, POLLIN, deadline_ms, "reply") < 0)
                return -1;
            n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0)
                return fail(c, US_CONN_CLOSED, "connection closed by the server");
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    if (!wait)
                        return 0;
                    continue;
                }
                return fail(c, errno == ECONNRESET ? US_CONN_CLOSED : US_CONN_IO, "read: %s",
                            strerror(errno));
            }
        }
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK)
            abort(); /* only out of memory */
        return 1;
    }
}

/* The next whole reply, if the reader has one. 1 with *out, 0 when not yet, -1 on a
 * protocol error or a reply outside its bounds. */
static int take_reply(us_redis_conn *c, const us_reply_limits *limits, const redisReply **out)
{
    void *reply = NULL;
    if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
        if (c->guard.why[0])
            return fail(c, US_CONN_PROTOCOL, "refused %s", c->guard.why);
        return fail(c, US_CONN_PROTOCOL, "protocol error: %s", c->reader->errstr);
    }
    if (reply) {
        *out = reply;
        return 1;
    }
    /* What is left is one line or string in the making: hiredis waits for the whole of
     * it, so a header announcing gigabytes must not be waited for. */
    size_t pending = c->reader->len - c->reader->pos;
    if (pending > limits->max_bulk + LINE_SLACK)
        return fail(c, US_CONN_PROTOCOL, "refused a string over %zu bytes", limits->max_bulk);
    return 0;
}

int us_redis_conn_read(us_redis_conn *c, const us_reply_limits *limits, int64_t deadline_ms,
                       const redisReply **out, size_t *bytes)
{
    *out = NULL;
    c->guard = (us_reply_guard){.limits = limits};
    for (;;) {
        int r = take_reply(c, limits, out);
        if (r < 0)
            return -1;
        if (r > 0) {
            if (bytes)
                *bytes = c->guard.bytes;
            return 0;
        }
        if (read_some(c, true, deadline_ms) < 0)
            return -1;
    }
}

bool us_redis_conn_has_unread(const us_redis_conn *c)
{
    return c->reader->len > c->reader->pos || (c->ssl && SSL_has_pending(c->ssl));
}

int us_redis_conn_check_idle(us_redis_conn *c)
{
    if (us_redis_conn_has_unread(c))
        return fail(c, US_CONN_PROTOCOL, "sent data nobody asked for");
    for (;;) {
        char b;
        ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail(c, US_CONN_CLOSED, "connection closed by the server while idle");
        if (!c->ssl)
            return fail(c, US_CONN_PROTOCOL, "sent data nobody asked for");
        /* TLS records may carry no data (TLS 1.3 session tickets, key updates): let
         * OpenSSL take them; application data is unasked for. */
        int r = read_some(c, false, 0);
        if (r < 0)
            return -1;
        if (us_redis_conn_has_unread(c))
            return fail(c, US_CONN_PROTOCOL, "sent data nobody asked for");
        if (r == 0) {
            /* a record only partly arrived, or one without data: look again */
            n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
        }
    }
}

int us_redis_conn_poll(us_redis_conn *c, const us_reply_limits *limits,
                       const redisReply **out)
{
    *out = NULL;
    c->guard = (us_reply_guard){.limits = limits};
    for (;;) {
        int r = take_reply(c, limits, out);
        if (r != 0)
            return r;
        r = read_some(c, false, 0);
        if (r <= 0)
            return r;
    }
}

us_conn_failure us_redis_conn_failure(const us_redis_conn *c)
{
    return c->failure;
}

const char *us_redis_conn_error(const us_redis_conn *c)
{
    return c->error;
}
