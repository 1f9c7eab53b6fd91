/* User status semantics on top of a topology (SPEC §2): key layout, the max-merging
 * update script run with EVALSHA (reloaded on NOSCRIPT), expiry extended on every write,
 * and all the Redis work of one request sent as one pipeline per node. */
#ifndef USTATUS_STORE_H
#define USTATUS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ustatus/buf.h"
#include "ustatus/config.h"

/* Limits of the data model (SPEC §1.3). */
#define US_USER_ID_MAX_BYTES 1024
#define US_STATE_MAX_BYTES 256

typedef enum { US_OP_GET = 0, US_OP_WRITE, US_OP_DELETE } us_op_kind;

/* Fields a US_OP_WRITE sets to "now" (max-merged). */
#define US_FIELD_ACTIVE 1u
#define US_FIELD_ONLINE 2u

typedef enum { US_STATE_KEEP = 0, US_STATE_SET, US_STATE_CLEAR } us_state_mode;

typedef struct us_status {
    int64_t active;            /* 0 = unknown */
    int64_t online;            /* 0 = unknown */
    char *state;               /* NULL = unknown; owned, freed by us_store_ops_clear */
    size_t state_len;
} us_status;

typedef struct us_op {
    us_op_kind kind;
    const char *user;          /* borrowed; any bytes */
    size_t user_len;
    unsigned fields;           /* WRITE: US_FIELD_* */
    us_state_mode state_mode;  /* WRITE */
    const char *state;         /* WRITE with US_STATE_SET; borrowed */
    size_t state_len;
    /* out */
    bool failed;               /* Redis unreachable, timed out or answered an error */
    us_status status;          /* GET */
} us_op;

typedef struct us_store us_store;

/* Creates a store for the configuration's user status section (us_config_store_redis).
 * Borrows nothing from cfg after returning. NULL with a reason in err. */
us_store *us_store_create(const us_config *cfg, char *err, size_t err_len);

/* Executes ops[0..n) at time now_s (Unix seconds), all in one exchange per Redis node.
 * Returns 0 when every op succeeded, -1 when at least one has failed = true. */
int us_store_exec(us_store *s, us_op *ops, size_t n, int64_t now_s);

/* Frees results held by ops (status.state) and resets the out fields. */
void us_store_ops_clear(us_op *ops, size_t n);

/* Health: PING every node; see us_topology_ping. */
int us_store_ping(us_store *s, us_buf *report);

void us_store_free(us_store *s);

#endif
