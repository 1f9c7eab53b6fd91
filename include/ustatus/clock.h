/* The clocks: monotonic for durations, time-outs and back-offs; the wall clock for what
 * is stored (SPEC §2: the host's clock, in whole seconds). */
#ifndef USTATUS_CLOCK_H
#define USTATUS_CLOCK_H

#include <stdint.h>

/* Monotonic time (CLOCK_MONOTONIC), from an arbitrary origin. */
int64_t us_clock_mono_ns(void);
int64_t us_clock_mono_ms(void);

/* Wall-clock time (CLOCK_REALTIME) since the Unix epoch. */
int64_t us_clock_wall_ms(void);
int64_t us_clock_wall_s(void);

#endif
