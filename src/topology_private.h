/* Internals shared by the topology implementations: one connection to one Redis node,
 * and the multi-node pipeline that every implementation sends its work through. */
#ifndef USTATUS_TOPOLOGY_PRIVATE_H
#define USTATUS_TOPOLOGY_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "ustatus/redis_address.h"
#include "ustatus/topology.h"

/* ---- one node ---- */

typedef struct us_redis_node {
    us_redis_address addr;     /* URL values merged with the section's options */
    char name[300];            /* "host:port" for logs, never a password */
    redisContext *ctx;         /* NULL while disconnected */
    int64_t retry_at_ms;       /* no connect attempt before this (monotonic ms) */
    int64_t backoff_ms;        /* next back-off step; 0 after a good connect */
    bool connect_tried;        /* a connect was attempted in the current exec round */
    bool down_logged;          /* "unreachable" logged since the last good connect */
    unsigned long reconnects;  /* successful connects after the first */
    bool ever_connected;
} us_redis_node;

/* Fills node from an address string and the section's defaults (user, password, db,
 * timeouts), values in the URL winning. -1 with err set on a bad address. */
int us_redis_node_init(us_redis_node *node, const char *address, const us_redis_config *rc,
                       char *err, size_t err_len);

/* Connects unless connected or backing off: TCP or unix, timeouts, AUTH, SELECT.
 * Returns 0 when connected, -1 otherwise (logged; back-off advanced). */
int us_redis_node_connect(us_redis_node *node);

/* Drops the connection (keeps the back-off state). */
void us_redis_node_disconnect(us_redis_node *node);

/* Frees the connection; the node struct itself belongs to the caller. */
void us_redis_node_close(us_redis_node *node);

/* Runs one command synchronously on a connected (or connectable) node; NULL on
 * transport failure (the connection is then dropped). For PING, ROLE, CLUSTER SLOTS. */
redisReply *us_redis_node_command(us_redis_node *node, const char *fmt, ...);

/* ---- pipelines over several nodes ---- */

/* Sends cmds[idx[k]] for each k in [0, count) to `node`... for every group, writing to all
 * groups before reading from any; a group whose connection breaks (not a timeout) is
 * reconnected and its unanswered commands resent once. Commands that end without a
 * reply keep reply == NULL. Returns 0 when all got replies, else -1. */
typedef struct us_pipeline_group {
    us_redis_node *node;
    size_t *idx;               /* indices into cmds */
    size_t count;
} us_pipeline_group;

int us_pipeline_run(us_pipeline_group *groups, size_t n_groups, us_redis_cmd *cmds);

/* Monotonic clock in milliseconds. */
int64_t us_now_ms(void);

/* ---- implementations ---- */

typedef struct us_topology_vt {
    int (*exec)(us_topology *t, us_redis_cmd *cmds, size_t n);
    int (*ping)(us_topology *t, us_buf *report);
    size_t (*node_count)(const us_topology *t);
    void (*free)(us_topology *t);
} us_topology_vt;

struct us_topology {
    const us_topology_vt *vt;
};

us_topology *us_topology_static_create(const us_redis_config *rc, char *err, size_t err_len);

#endif
