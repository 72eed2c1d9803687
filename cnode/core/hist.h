/*
 * Fixed-bucket histograms of integer observations (microseconds, bytes...),
 * cheap enough to update on every loop iteration: no allocation, a short
 * scan over at most HIST_MAX bounds. The bounds table is borrowed (static
 * tables below) and ascending; cnt[i] counts observations <= le[i] and
 * above le[i-1], cnt[n] the ones above every bound. Readers (the metrics
 * endpoint) make the counts cumulative themselves.
 */
#ifndef LOCKERD_HIST_H
#define LOCKERD_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_MAX 16

struct hist {
    const int64_t *le;
    size_t n;
    uint64_t cnt[HIST_MAX + 1];
    uint64_t count;
    int64_t sum;
};

/* n <= HIST_MAX; le outlives h. */
void hist_init(struct hist *h, const int64_t *le, size_t n);
void hist_observe(struct hist *h, int64_t v);

/* Bounds in microseconds: a loop iteration (10 us .. 1 s), an operation
 * that waits for peers (1 ms .. 30 s). */
extern const int64_t hist_le_iter_us[];
extern const size_t hist_le_iter_n;
extern const int64_t hist_le_op_us[];
extern const size_t hist_le_op_n;

#endif
