/* Fixed-bucket histograms; see hist.h. */
#include "hist.h"

#include <assert.h>
#include <string.h>

const int64_t hist_le_iter_us[] = {10,    25,    50,     100,    250,    500,    1000,
                                   2500,  5000,  10000,  25000,  50000,  100000, 250000,
                                   1000000};
const size_t hist_le_iter_n = sizeof hist_le_iter_us / sizeof hist_le_iter_us[0];

const int64_t hist_le_op_us[] = {1000,    2500,    5000,    10000,   25000,   50000,
                                 100000,  250000,  500000,  1000000, 2500000, 5000000,
                                 10000000, 30000000};
const size_t hist_le_op_n = sizeof hist_le_op_us / sizeof hist_le_op_us[0];

void hist_init(struct hist *h, const int64_t *le, size_t n)
{
    assert(n <= HIST_MAX);
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n;
}

void hist_observe(struct hist *h, int64_t v)
{
    size_t i = 0;
    while (i < h->n && v > h->le[i])
        i++;
    h->cnt[i]++;
    h->count++;
    h->sum += v;
}
