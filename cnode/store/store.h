/*
 * Lease store: leases, write locks and waiters of one locker server.
 * Pure data, no I/O, no clock of its own: time enters only through
 * store_advance(), so tests drive it with a fake clock.
 *
 * Model
 *  - Keys, values and tags are canonical term byte spans (ei_glue/term.h):
 *    equal bytes <=> =:= terms. The store copies what it keeps, and what
 *    it hands back is byte-identical to what it was given. Key and tag
 *    spans it hands out stay valid until the next mutating call. A lease
 *    value span (store_lease_get, store_foreach_lease, on_wake) stays valid
 *    until the next mutating call or the next call that hands out a value,
 *    whichever comes first: a value stored packed (a pid, see pidc.h) is
 *    rebuilt in one buffer of the store's.
 *  - Lease table: key -> {value, expire_at}. O(1) expected lookup.
 *  - Write locks: at most one per key, key -> {tag, expire_at}; indexed by
 *    key and by tag. A coordinator never reuses a tag, but a hostile one may
 *    lock two keys with one tag: store_wlock_drop_tag drops all of them.
 *  - Waiters: per key, kind STORE_WAIT_FOR (woken with the value by any
 *    store_lease_put of that key) or STORE_WAIT_RELEASE (woken by delete or
 *    expiry of the key's lease). Each carries an opaque ctx blob (copied),
 *    handed to cfg.on_wake when woken, and a deadline after which it is
 *    dropped silently (no callback).
 *  - Time: `now` is the value last passed to store_advance (initially 0).
 *    A lease or write lock whose expire_at <= now is *logically absent* for
 *    every read and operation, even before store_advance reclaims it.
 *    store_lease_put over a logically expired lease first wakes that key's
 *    release waiters (the old lease ended), then stores the new one.
 *  - Expiry uses a priority structure (heap or wheel), never a scan;
 *    store_advance does at most `budget` units of work (one unit = one
 *    lease, lock or waiter reclaimed), so a million leases expiring in the
 *    same millisecond are spread over many loop iterations.
 *
 * Errors: 0 or negative errno (-ENOENT absent, -EEXIST, -ENOMEM).
 * On -ENOMEM the store is unchanged.
 */
#ifndef LOCKERD_STORE_H
#define LOCKERD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../../ei_glue/term.h"

enum store_wait_kind { STORE_WAIT_FOR = 1, STORE_WAIT_RELEASE = 2 };

/* Called for each woken waiter; `value` is the new lease value for
 * STORE_WAIT_FOR and empty for STORE_WAIT_RELEASE. The callback must not
 * call back into the store. */
typedef void (*store_wake_fn)(void *ud, enum store_wait_kind kind, const void *ctx,
                              size_t ctxlen, struct term value);

struct store_cfg {
    store_wake_fn on_wake; /* may be NULL */
    void *ud;
    uint64_t hash_seed;    /* 0: a random seed from the kernel */
};

struct store;

struct store *store_new(const struct store_cfg *cfg); /* NULL on ENOMEM */
void store_free(struct store *s);                    /* NULL ok; waiters dropped */

/* ---- leases ---- */
int store_lease_get(const struct store *s, struct term key, struct term *val, int64_t *expire_at);
/* Insert or replace value and expiry; wakes the key's wait_for waiters. */
int store_lease_put(struct store *s, struct term key, struct term val, int64_t expire_at);
/* Replace the value, keep the expiry; -ENOENT if no live lease. */
int store_lease_update(struct store *s, struct term key, struct term val);
/* Delete; wakes the key's release waiters. -ENOENT if no live lease. */
int store_lease_delete(struct store *s, struct term key);
size_t store_lease_count(const struct store *s); /* stored, incl. not yet reclaimed */

/* ---- write locks ---- */
int store_wlock_get(const struct store *s, struct term key, struct term *tag, int64_t *expire_at);
/* -EEXIST if the key has a live write lock (any tag). */
int store_wlock_add(struct store *s, struct term key, struct term tag, int64_t expire_at);
/* Drop every write lock carrying tag; -ENOENT if none. */
int store_wlock_drop_tag(struct store *s, struct term tag);
size_t store_wlock_count(const struct store *s);

/* ---- waiters ---- */
int store_waiter_add(struct store *s, struct term key, enum store_wait_kind kind,
                     int64_t deadline, const void *ctx, size_t ctxlen);
size_t store_waiter_count(const struct store *s);
/* Drop (without waking) every waiter whose ctx satisfies pred. */
size_t store_waiter_drop_if(struct store *s,
                            int (*pred)(void *ud, const void *ctx, size_t ctxlen), void *ud);

/* ---- time ---- */
/* Earliest expire_at / deadline of anything stored, CLOCK_NEVER (INT64_MAX) if none. */
int64_t store_next_deadline(const struct store *s);
/* Set now, then reclaim up to `budget` expired leases (waking release
 * waiters), expired write locks and timed-out waiters. Returns the units of
 * work done; == budget means more may be due. */
size_t store_advance(struct store *s, int64_t now, size_t budget);

/* ---- iteration (live entries only; fn returns non-zero to stop) ---- */
typedef int (*store_lease_fn)(void *ud, struct term key, struct term val, int64_t expire_at);
typedef int (*store_wlock_fn)(void *ud, struct term key, struct term tag, int64_t expire_at);
void store_foreach_lease(const struct store *s, store_lease_fn fn, void *ud);
void store_foreach_wlock(const struct store *s, store_wlock_fn fn, void *ud);

/* Approximate bytes of heap memory the store holds (for benchmarks/stats). */
size_t store_mem_bytes(const struct store *s);

#endif
