#include "ustatus/clock.h"

#include <time.h>

static struct timespec now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts;
}

int64_t us_clock_mono_ns(void)
{
    struct timespec ts = now(CLOCK_MONOTONIC);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t us_clock_mono_ms(void)
{
    struct timespec ts = now(CLOCK_MONOTONIC);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t us_clock_wall_ms(void)
{
    struct timespec ts = now(CLOCK_REALTIME);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t us_clock_wall_s(void)
{
    /* Not time(NULL): glibc reads a coarser clock there, which lags CLOCK_REALTIME by up to
     * a tick, so a second would start a few milliseconds late next to us_clock_wall_ms. */
    return (int64_t)now(CLOCK_REALTIME).tv_sec;
}
