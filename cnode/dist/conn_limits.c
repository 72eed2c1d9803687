/*
 * The connection layer's pure limit logic (declared in conn.h): the log
 * rate limiter, admission of accepted sockets (--max-conns,
 * --max-handshakes, --max-handshakes-per-source) and output backpressure
 * (--max-out, --max-out-total). Functions of their inputs and the time the
 * caller passes; no sockets, no clock, no allocation.
 */
#include "conn.h"

int conn_ratelim_pass(struct conn_ratelim *r, int64_t now, uint32_t burst, uint32_t *suppressed)
{
    *suppressed = 0;
    if (r->passed < burst) {
        /* The quiet period starts with the last event of the burst, so a
         * burst is followed by at most one line per period. */
        if (++r->passed == burst)
            r->next_at = now + CONN_RATELIM_MS;
        return 1;
    }
    if (now < r->next_at) {
        if (r->suppressed < UINT32_MAX)
            r->suppressed++;
        return 0;
    }
    *suppressed = r->suppressed;
    r->suppressed = 0;
    r->next_at = now + CONN_RATELIM_MS;
    return 1;
}

uint32_t conn_ratelim_flush(struct conn_ratelim *r, int64_t now)
{
    if (!r->suppressed || now < r->next_at)
        return 0;
    uint32_t n = r->suppressed;
    r->suppressed = 0;
    r->next_at = now + CONN_RATELIM_MS;
    return n;
}

enum conn_admit conn_admit(size_t conns, size_t max_conns, size_t handshakes,
                           size_t max_handshakes)
{
    if (conns >= max_conns)
        return CONN_REFUSE_CONNS;
    if (max_handshakes && handshakes >= max_handshakes)
        return CONN_REFUSE_HANDSHAKES;
    return CONN_ADMIT;
}

enum conn_admit conn_admit_source(size_t from_source, size_t max_per_source)
{
    return max_per_source && from_source >= max_per_source ? CONN_REFUSE_SOURCE : CONN_ADMIT;
}

/* The high mark is half the cap: a connection is read only while it holds
 * less, so what a reply adds stays within the cap unless that reply alone
 * is larger than half of it. Resuming at a quarter leaves room for a
 * burst of replies before the next stop. */
void conn_water_init(struct conn_water *w, size_t max_out, size_t max_out_total)
{
    w->high = max_out / 2;
    w->low = max_out / 4;
    w->total_high = max_out_total / 2;
    w->total_low = max_out_total / 4;
    w->floor = CONN_WATER_FLOOR;
}

int conn_over_water(const struct conn_water *w, size_t out, size_t total, int throttled)
{
    if (throttled) {
        if (out > w->low)
            return 1;
        return w->total_high && total > w->total_low && out > w->floor / 2;
    }
    if (out >= w->high)
        return 1;
    return w->total_high && total >= w->total_high && out >= w->floor;
}
