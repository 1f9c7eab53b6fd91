/* The client side's per-user minimum write interval (SPEC §6, client.min_update_interval):
 * a per-process table of recent writes in front of the store, shared by the client
 * endpoints and the RPC proxy.
 *
 * It keeps `active` exact to the second. Stored timestamps are whole seconds and writes
 * max-merge, so a second write of the same fields within the same second changes nothing
 * in Redis but the expiry. A call is therefore skipped only when this process already
 * wrote every field it asks for (and the same state) within the same wall-clock second
 * *and* less than min_update_interval ago; the first call of every new second is always
 * written. That bounds the writes a client can cause to one per second per user and
 * process for each kind of call (an /online arriving before an update in a second costs
 * one more; a changed state is always written), and every stored `active`/`online` is
 * the second of the latest call. An interval above 1s holds across seconds: the operator
 * trading that precision for fewer writes. */
#ifndef USTATUS_THROTTLE_H
#define USTATUS_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#include "ustatus/store.h"

typedef struct us_throttle us_throttle;

/* One user's write, validated, ready for the store; every pointer borrowed. */
typedef struct us_write {
    const char *user;
    size_t user_len;
    unsigned fields;           /* US_FIELD_* */
    us_state_mode state_mode;
    const char *state;         /* with US_STATE_SET */
    size_t state_len;
} us_write;

/* A table for min_interval_ms (0 = every call is written: no table is kept). */
us_throttle *us_throttle_create(int64_t min_interval_ms);
void us_throttle_free(us_throttle *t);

/* Writes w through store at now_ms (wall clock, Unix milliseconds) unless this process
 * wrote the same thing less than the interval ago. 0 when written or skipped; -1 when
 * Redis failed (nothing is recorded then, so the next call tries again). */
int us_throttle_write(us_throttle *t, us_store *store, const us_write *w, int64_t now_ms);

#endif
