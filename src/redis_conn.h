/* One transport connection to a Redis server (SPEC §3.7, §3.8): our own socket, plain or
 * TLS (OpenSSL), hiredis's redisReader as the RESP parser and nothing else of hiredis's
 * I/O. Owning the socket is what gives every exchange one deadline (not one per read),
 * lets the connect and the TLS handshake share the connect timeout, and lets us see data
 * that arrives when nothing was asked. Replies are built by redis_reply.c's functions and
 * checked against the bounds of the command they answer.
 *
 * Errors: every failing call leaves one line in us_redis_conn_error() and a kind in
 * us_redis_conn_failure(); a connection that failed is not used again (close it). */
#ifndef USTATUS_REDIS_CONN_H
#define USTATUS_REDIS_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "redis_reply.h"
#include "ustatus/config.h"
#include "ustatus/redis_address.h"

/* ---- TLS settings shared by connections ---- */

typedef struct us_redis_tls us_redis_tls;

/* An OpenSSL client context from a TLS section (us_tls_config: the CA, the client
 * certificate and key, insecure_skip_verify, server_name), whether or not `enabled` is
 * set (a rediss:// address turns TLS on by itself). With no server_ca_pem the system's
 * CAs are trusted. `what` names the section in errors ("redis tls"). Returns a new
 * context (us_redis_tls_free), or NULL with a reason in err (a PEM that does not parse,
 * a certificate without its key, a key that does not match). Borrows nothing. */
us_redis_tls *us_redis_tls_create(const us_tls_config *cfg, const char *what, char *err,
                                  size_t err_len);

/* Frees t; NULL is allowed. Connections made with it must be closed first. */
void us_redis_tls_free(us_redis_tls *t);

/* ---- connections ---- */

typedef enum {
    US_CONN_OK = 0,
    US_CONN_CLOSED,            /* the server closed the connection, or a reset */
    US_CONN_IO,                /* a socket error */
    US_CONN_TIMEOUT,           /* the deadline passed */
    US_CONN_PROTOCOL,          /* a reply outside its bounds, or bytes nobody asked for */
    US_CONN_TLS                /* a TLS failure: handshake, certificate, alert */
} us_conn_failure;

typedef struct us_redis_conn us_redis_conn;

/* Connects to a (TCP or unix socket) before deadline_ms (us_clock_mono_ms time): the
 * socket connect and, when tls is not NULL, the TLS handshake with the certificate checked
 * (chain, and the host name or IP of server_name or else of the address). Returns a new
 * connection, or NULL with one line in err saying what failed ("connection refused", "TLS
 * certificate verification failed: certificate has expired", ...) and *failure set. tls is
 * borrowed for the connection's life. */
us_redis_conn *us_redis_conn_open(const us_redis_address *a, const us_redis_tls *tls,
                                  int64_t deadline_ms, us_conn_failure *failure, char *err,
                                  size_t err_len);

/* Closes the connection and frees it; NULL is allowed. */
void us_redis_conn_close(us_redis_conn *c);

/* Whether the connection is TLS. */
bool us_redis_conn_is_tls(const us_redis_conn *c);

/* Queues len bytes of RESP (one or more whole commands) for us_redis_conn_flush. */
void us_redis_conn_append(us_redis_conn *c, const char *cmd, size_t len);

/* Queues a command in hiredis's format language (redisvFormatCommand); when limits is not
 * NULL, fills it with the bounds of the command's reply (us_reply_limits_for), for the
 * us_redis_conn_read of that reply. */
void us_redis_conn_append_fmt(us_redis_conn *c, us_reply_limits *limits, const char *fmt, ...);
void us_redis_conn_append_vfmt(us_redis_conn *c, us_reply_limits *limits, const char *fmt,
                               va_list ap);

/* Writes everything queued, before deadline_ms. Returns 0, or -1 (failure, error). */
int us_redis_conn_flush(us_redis_conn *c, int64_t deadline_ms);

/* Reads the next reply, checked against `limits`, before deadline_ms. Returns 0 with the
 * reply in *out (the caller's: us_reply_free), or -1 with *out NULL (failure, error; a
 * reply outside its bounds is US_CONN_PROTOCOL, and nothing of it is kept). *bytes (when
 * not NULL) gets the memory the reply took. */
int us_redis_conn_read(us_redis_conn *c, const us_reply_limits *limits, int64_t deadline_ms,
                       const redisReply **out, size_t *bytes);

/* After the last reply of an exchange: whether bytes beyond it have already arrived (a
 * reply nobody asked for). Reads nothing from the socket. */
bool us_redis_conn_has_unread(const us_redis_conn *c);

/* Before a new exchange on a connection that sat idle: 0 when nothing arrived meanwhile
 * (the connection can be used), -1 when the server closed it (US_CONN_CLOSED) or sent
 * something nobody asked for (US_CONN_PROTOCOL); then error says which. Never waits. */
int us_redis_conn_check_idle(us_redis_conn *c);

/* For subscriptions: reads what has arrived, without waiting. Returns 1 with a reply
 * (checked against limits) in *out, 0 when no whole reply is there yet, -1 on a failure
 * (closed, error, a reply outside its bounds). */
int us_redis_conn_poll(us_redis_conn *c, const us_reply_limits *limits,
                       const redisReply **out);

/* The last failure: its kind and its line. */
us_conn_failure us_redis_conn_failure(const us_redis_conn *c);
const char *us_redis_conn_error(const us_redis_conn *c);

#endif
