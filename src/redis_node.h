/* One Redis node (SPEC §3.1, §3.6, §3.7): its address, credentials and TLS settings, a
 * lazy connect (redis_conn.c) with AUTH, SELECT, CLIENT SETNAME and (for Sentinel-named
 * masters) ROLE, a back-off after failures with one log line per outage, and synchronous
 * commands. */
#ifndef USTATUS_REDIS_NODE_H
#define USTATUS_REDIS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "redis_conn.h"
#include "ustatus/buf.h"
#include "ustatus/config.h"
#include "ustatus/redis_address.h"

/* How many new connections a request may still open (redis_cluster.c sets one per
 * request, so that a slot map naming a thousand nodes cannot make one request open a
 * thousand connections). */
typedef struct us_connect_budget {
    int left;                  /* connects still allowed */
    size_t refused;            /* connects refused for want of budget */
} us_connect_budget;

/* The TLS context of a group of nodes, created when the first node needs it: the data
 * nodes use redis.tls, the sentinels redis.sentinel_tls. The topology owns it (free
 * tls with us_redis_tls_free after its nodes are disconnected); cfg and what are only
 * read by us_redis_node_init. */
typedef struct us_redis_tls_slot {
    const us_tls_config *cfg;
    const char *what;          /* "redis tls", for errors */
    us_redis_tls *tls;         /* NULL until a node needs it */
} us_redis_tls_slot;

typedef struct us_redis_node {
    us_redis_address addr;     /* URL values merged with the section's options */
    char name[300];            /* "host:port" for logs, never a password */
    us_redis_conn *conn;       /* NULL while disconnected */
    const us_redis_tls *tls;   /* NULL: plain text; else borrowed from the topology */
    char client_name[128];     /* CLIENT SETNAME on every new connection; "" = none */
    us_connect_budget *budget; /* NULL: no limit; else borrowed from the topology */
    int64_t retry_at_ms;       /* no connect attempt before this (monotonic ms) */
    int64_t backoff_ms;        /* next back-off step; 0 after a good connect */
    bool down_logged;          /* "unreachable" logged since the last good connect */
    bool ever_connected;
    bool refused;              /* the last connect reached the node but AUTH, SELECT,
                                * CLIENT SETNAME or ROLE failed: a configuration problem,
                                * not an outage */
    int wait_replicas;         /* after a pipeline's writes, WAIT for this many replicas
                                * (redis.wait_replicas); 0: no WAIT */
    int64_t wait_timeout_ms;   /* WAIT's timeout (redis.wait_timeout) */
    bool unconfirmed_logged;   /* "writes not confirmed" logged since the last confirmation */
    bool require_master;       /* a new connection must answer ROLE with "master" (Sentinel
                                * client guide, step 3): a demoted master that still accepts
                                * connections would otherwise serve stale reads */
} us_redis_node;

/* Fills node (all of it: no connection, no back-off) from an address string and the
 * section's defaults (user, password, db, timeouts, client_name, wait_replicas and
 * wait_timeout), values in the URL
 * winning. TLS is on when the address is rediss:// or tls->cfg->enabled; then the slot's
 * context is created if it is not yet, and the node borrows it. Returns 0, or -1 with a
 * reason in err on a bad address, an over-long user, password or client name, or TLS
 * settings that do not load. Borrows nothing from address or rc after returning. */
int us_redis_node_init(us_redis_node *node, const char *address, const us_redis_config *rc,
                       us_redis_tls_slot *tls, char *err, size_t err_len);

/* Makes node a copy of model's settings (credentials, db, timeouts, TLS, client name,
 * WAIT, budget) pointed at host:port, with no connection and no back-off: a node that a Redis
 * Cluster names. */
void us_redis_node_init_like(us_redis_node *node, const us_redis_node *model, const char *host,
                             int port);

/* Points a TCP node at host:port, keeping its credentials, db and timeouts. Returns 1
 * when the address changed (the connection is dropped and the back-off forgotten: a new
 * address deserves a try now), 0 when it is the same (nothing changes). */
int us_redis_node_set_target(us_redis_node *node, const char *host, int port);

/* Connects unless connected or backing off: TCP or unix, TLS, then AUTH, SELECT, CLIENT
 * SETNAME and ROLE (require_master) in one round trip, all within connect_timeout. A
 * connection kept from an earlier request is checked first: one the server closed, or
 * that delivered data nobody asked for, is closed and replaced. A node with a budget
 * spends one connect of it, and is refused (-1, no back-off, a debug line) when it is
 * spent. Returns 0 when connected, -1 otherwise (then the failure is counted in the
 * metrics and logged, and the back-off advanced). */
int us_redis_node_connect(us_redis_node *node);

/* After a transport failure on node->conn (what: "write failed", ...; detail: usually
 * us_redis_conn_error, read before the connection goes): counts and logs it as a connect
 * failure is, advances the back-off, and drops the connection. */
void us_redis_node_fail(us_redis_node *node, const char *what, const char *detail);

/* Drops the connection, if any; keeps the back-off state. The connection is all a node
 * holds, so this is also how a node is released (the struct belongs to the caller). */
void us_redis_node_disconnect(us_redis_node *node);

/* Connects if needed (us_redis_node_connect), then runs one command (hiredis format)
 * with one deadline of io_timeout for the exchange, its reply bounded as
 * us_reply_limits_for says. Returns the reply, which the caller frees with us_reply_free
 * (an error reply is a reply), or NULL when the node cannot be connected or on a
 * transport or protocol failure (then handled as us_redis_node_fail does). For PING,
 * CLUSTER SLOTS, SENTINEL. */
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
