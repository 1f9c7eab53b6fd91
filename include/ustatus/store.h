/* User status semantics on top of a topology (SPEC §2): one string per user,
 * "v2:<active>:<online>[:<state>]" under <prefix>.user_status.<user> (README, "Data in
 * Redis"), read with one MGET per node (one GET per key on a Redis Cluster), written by
 * the max-merging update script run with EVALSHA (reloaded on NOSCRIPT), expiry extended
 * on every write, and all the Redis work of one request sent as one pipeline per node.
 * Hashes written by 0.1.0 are read (up to two more round trips, only for users MGET did
 * not find) and converted by the next write. */
#ifndef USTATUS_STORE_H
#define USTATUS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ustatus/buf.h"
#include "ustatus/config.h"

/* The longest state, in bytes (SPEC §1.3). */
#define US_STATE_MAX_BYTES 256

typedef enum { US_OP_GET = 0, US_OP_WRITE, US_OP_DELETE } us_op_kind;

/* Fields a US_OP_WRITE sets to "now" (max-merged). */
#define US_FIELD_ACTIVE 1u
#define US_FIELD_ONLINE 2u

typedef enum { US_STATE_KEEP = 0, US_STATE_SET, US_STATE_CLEAR } us_state_mode;

/* What a US_OP_GET found. Nothing here is copied: every pointer borrows bytes of the
 * store's Redis replies, which the store keeps until the next us_store_exec or
 * us_store_ops_clear on the same store, so a caller writes its response first and
 * clears after. The bytes are not NUL-terminated; use the lengths. */
typedef struct us_status {
    /* Decimal Unix seconds, ready to be copied into JSON as an integer: 1..19 digits
     * without a leading zero, a positive value that fits int64. NULL = unknown (absent,
     * 0, or not such a number). */
    const char *active;
    size_t active_len;
    const char *online;
    size_t online_len;
    const char *state;         /* NULL = unknown; any bytes */
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
 * Returns 0 when every op succeeded, -1 when at least one has failed = true. Ends the
 * life of the statuses of the previous call (see us_status). */
int us_store_exec(us_store *s, us_op *ops, size_t n, int64_t now_s);

/* Resets the out fields of ops and frees the Redis replies their statuses borrowed. */
void us_store_ops_clear(us_store *s, us_op *ops, size_t n);

/* Health: PING every node; see us_topology_ping. */
int us_store_ping(us_store *s, us_buf *report);

void us_store_free(us_store *s);

#endif
