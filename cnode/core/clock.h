/*
 * Monotonic milliseconds. Every deadline in lockerd is an int64_t on this
 * clock: 2^63 ms is ~292 million years, so plain signed comparison never
 * wraps in practice and wall-clock jumps never move a deadline.
 */
#ifndef LOCKERD_CLOCK_H
#define LOCKERD_CLOCK_H

#include <stdint.h>
#include <time.h>

#define CLOCK_NEVER INT64_MAX

static inline int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* now + delta, saturating at CLOCK_NEVER (lease lengths come from peers). */
static inline int64_t clock_add(int64_t now, int64_t delta)
{
    if (delta < 0)
        return now;
    return delta > CLOCK_NEVER - now ? CLOCK_NEVER : now + delta;
}

#endif
