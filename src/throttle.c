#include "ustatus/throttle.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ustatus/hash.h"
#include "ustatus/mem.h"

/* Fixed size, open addressing with a short probe. Losing an entry only costs one extra
 * write, so a full window evicts its oldest. */
#define THROTTLE_SLOTS 4096u
#define THROTTLE_PROBE 8u

typedef struct throttle_entry {
    char *user; /* NULL = free slot */
    size_t user_len;
    uint64_t hash;
    int64_t active_ms; /* Unix ms of the last write of each part; 0 = none */
    int64_t online_ms;
    int64_t state_ms;
    us_state_mode state_mode; /* of the last state write */
    char *state;
    size_t state_len;
} throttle_entry;

struct us_throttle {
    int64_t min_interval_ms;
    throttle_entry *slots; /* NULL when min_interval_ms is 0 */
};

static int64_t entry_last_ms(const throttle_entry *e)
{
    int64_t m = e->active_ms;
    if (e->online_ms > m)
        m = e->online_ms;
    if (e->state_ms > m)
        m = e->state_ms;
    return m;
}

/* True when this process wrote the same thing less than min_update_interval ago
 * (SPEC §6). With an interval of one second or less (the default), a write in a new
 * wall-clock second always goes through: stored timestamps are whole seconds, so then
 * a skipped write changes nothing but the expiry, and `active` stays exact to the second.
 * A longer interval is the operator trading that precision for fewer writes. */
static bool fresh(const us_throttle *c, int64_t last, int64_t now)
{
    if (last <= 0 || now < last || now - last >= c->min_interval_ms)
        return false;
    return c->min_interval_ms > 1000 || last / 1000 == now / 1000;
}

static throttle_entry *throttle_find(us_throttle *c, const char *user, size_t len, uint64_t h)
{
    for (unsigned i = 0; i < THROTTLE_PROBE; i++) {
        throttle_entry *e = &c->slots[(h + i) & (THROTTLE_SLOTS - 1)];
        if (e->user && e->hash == h && e->user_len == len && memcmp(e->user, user, len) == 0)
            return e;
    }
    return NULL;
}

/* The entry for user, taking a free slot, one last written in an earlier second (it can
 * no longer cause a skip), or the oldest of the probe window. */
static throttle_entry *throttle_take(us_throttle *c, const char *user, size_t len, int64_t now)
{
    uint64_t h = us_fnv1a64(user, len);
    throttle_entry *e = throttle_find(c, user, len, h);
    if (e)
        return e;
    throttle_entry *victim = NULL;
    for (unsigned i = 0; i < THROTTLE_PROBE; i++) {
        throttle_entry *s = &c->slots[(h + i) & (THROTTLE_SLOTS - 1)];
        if (!s->user || !fresh(c, entry_last_ms(s), now)) {
            victim = s;
            break;
        }
        if (!victim || entry_last_ms(s) < entry_last_ms(victim))
            victim = s;
    }
    free(victim->user);
    free(victim->state);
    memset(victim, 0, sizeof *victim);
    victim->user = us_xstrndup(user, len);
    victim->user_len = len;
    victim->hash = h;
    return victim;
}

static bool throttle_skip(us_throttle *c, const us_write *w, int64_t now)
{
    if (!c->slots)
        return false;
    const throttle_entry *e =
        throttle_find(c, w->user, w->user_len, us_fnv1a64(w->user, w->user_len));
    if (!e)
        return false;
    if ((w->fields & US_FIELD_ACTIVE) && !fresh(c, e->active_ms, now))
        return false;
    if ((w->fields & US_FIELD_ONLINE) && !fresh(c, e->online_ms, now))
        return false;
    if (w->state_mode != US_STATE_KEEP &&
        (!fresh(c, e->state_ms, now) || e->state_mode != w->state_mode ||
         (w->state_mode == US_STATE_SET &&
          (e->state_len != w->state_len || memcmp(e->state, w->state, w->state_len) != 0))))
        return false;
    return true;
}

static void throttle_record(us_throttle *c, const us_write *w, int64_t now)
{
    if (!c->slots)
        return;
    throttle_entry *e = throttle_take(c, w->user, w->user_len, now);
    if (w->fields & US_FIELD_ACTIVE)
        e->active_ms = now;
    if (w->fields & US_FIELD_ONLINE)
        e->online_ms = now;
    if (w->state_mode != US_STATE_KEEP) {
        e->state_ms = now;
        e->state_mode = w->state_mode;
        free(e->state);
        e->state = w->state_mode == US_STATE_SET ? us_xstrndup(w->state, w->state_len) : NULL;
        e->state_len = w->state_mode == US_STATE_SET ? w->state_len : 0;
    }
}

int us_throttle_write(us_throttle *c, us_store *store, const us_write *w, int64_t now)
{
    if (throttle_skip(c, w, now))
        return 0;
    us_op op = {
        .kind = US_OP_WRITE,
        .user = w->user,
        .user_len = w->user_len,
        .fields = w->fields,
        .state_mode = w->state_mode,
        .state = w->state,
        .state_len = w->state_len,
    };
    int rc = us_store_exec(store, &op, 1, now / 1000);
    us_store_ops_clear(store, &op, 1);
    if (rc != 0 || op.failed)
        return -1;
    throttle_record(c, w, now);
    return 0;
}

us_throttle *us_throttle_create(int64_t min_interval_ms)
{
    us_throttle *t = us_xcalloc(1, sizeof *t);
    t->min_interval_ms = min_interval_ms;
    if (min_interval_ms > 0)
        t->slots = us_xcalloc(THROTTLE_SLOTS, sizeof *t->slots);
    return t;
}

void us_throttle_free(us_throttle *t)
{
    if (!t)
        return;
    if (t->slots) {
        for (unsigned i = 0; i < THROTTLE_SLOTS; i++) {
            free(t->slots[i].user);
            free(t->slots[i].state);
        }
        free(t->slots);
    }
    free(t);
}
