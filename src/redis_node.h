/* One connection to one Redis node (SPEC §3.1, §3.6): its address and credentials, a
 * lazy connect with AUTH, SELECT and (for Sentinel-named masters) ROLE, a back-off after
 * failures with one log line per outage, and synchronous commands. Replies are built by
 * redis_reply.c's reader functions, installed on every new connection. */
#ifndef USTATUS_REDIS_NODE_H
#define USTATUS_REDIS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "ustatus/buf.h"
#include "ustatus/config.h"
#include "ustatus/redis_address.h"

typedef struct us_redis_node {
    us_redis_address addr;     /* URL values merged with the section's options */
    char name[300];            /* "host:port" for logs, never a password */
    redisContext *ctx;         /* NULL while disconnected */
    int64_t retry_at_ms;       /* no connect attempt before this (monotonic ms) */
    int64_t backoff_ms;        /* next back-off step; 0 after a good connect */
    bool down_logged;          /* "unreachable" logged since the last good connect */
    bool ever_connected;
    bool refused;              /* the last connect reached the node but AUTH, SELECT or
                                * ROLE failed: a configuration problem, not an outage */
    bool require_master;       /* a new connection must answer ROLE with "master" (Sentinel
                                * client guide, step 3): a demoted master that still accepts
                                * connections would otherwise serve stale reads */
} us_redis_node;

/* Fills node (all of it: no connection, no back-off) from an address string and the
 * section's defaults (user, password, db, timeouts), values in the URL winning. Returns
 * 0, or -1 with a reason in err on a bad address or an over-long user or password.
 * Allocates nothing; borrows nothing from address or rc after returning. */
int us_redis_node_init(us_redis_node *node, const char *address, const us_redis_config *rc,
                       char *err, size_t err_len);

/* Points a TCP node at host:port, keeping its credentials, db and timeouts. Returns 1
 * when the address changed (the connection is dropped and the back-off forgotten: a new
 * address deserves a try now), 0 when it is the same (nothing changes). */
int us_redis_node_set_target(us_redis_node *node, const char *host, int port);

/* Connects unless connected or backing off: TCP or unix, timeouts, AUTH, SELECT, ROLE
 * when require_master. Returns 0 when connected, -1 otherwise (then the failure is
 * counted in the metrics and logged, and the back-off advanced). */
int us_redis_node_connect(us_redis_node *node);

/* After a transport failure on node->ctx (what: "write failed", ...; detail: usually
 * node->ctx->errstr, read before the connection goes): counts and logs it as a connect
 * failure is, advances the back-off, and drops the connection. */
void us_redis_node_fail(us_redis_node *node, const char *what, const char *detail);

/* Drops the connection, if any; keeps the back-off state. The connection is all a node
 * holds, so this is also how a node is released (the struct belongs to the caller). */
void us_redis_node_disconnect(us_redis_node *node);

/* Connects if needed (us_redis_node_connect), then runs one command (hiredis format)
 * synchronously. Returns the reply, which the caller frees with us_reply_free (an error
 * reply is a reply), or NULL when the node cannot be connected or on a transport failure
 * (then handled as us_redis_node_fail does). For PING, CLUSTER SLOTS, SENTINEL. */
const redisReply *us_redis_node_command(us_redis_node *node, const char *fmt, ...);

/* ---- health reports (us_topology_ping) ---- */

/* Appends one {"node":name,"ok":..,"error":error} entry to report, a ',' before it
 * unless first; ok is true when error is NULL. Nothing when report is NULL. */
void us_ping_report(us_buf *report, bool first, const char *name, const char *error);

/* PINGs the node (within its back-off: a node backing off is reported unreachable, and
 * is not contacted) and appends its entry as us_ping_report does. Returns 0 when it
 * answered PING with a non-error reply, -1 otherwise. */
int us_ping_node(us_redis_node *node, us_buf *report, bool first);

#endif
