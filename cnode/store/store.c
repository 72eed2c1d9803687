/*
 * Lease store: life cycle, leases, time and statistics (write locks are in
 * wlock.c, waiters in waiter.c, the model in store.h).
 *
 * A lease is one malloc block, key and value inline:
 *
 *   off  size  field
 *     0     8  expire_at            (timeq_node.at)
 *     8     4  slot in lease_q      (timeq_node.pos)
 *    12     4  key length           (timeq_node.aux)
 *    16     8  next in hash chain   (table_node)
 *    24     4  value length
 *    28     k  key bytes, then v value bytes, no padding
 *
 * so 28 + k + v bytes, plus 8 bytes of heap slot (in blocks, slack of at
 * most two blocks in all) and one bucket pointer per 1..2 leases (4..8
 * bytes): 40..44 bytes of bookkeeping per lease, beside what malloc adds
 * (glibc: 8-byte header, rounded up to 16). For a 13-byte {user,N} key and
 * a 30-byte pid that is 71 bytes in an 80-byte chunk, ~92 bytes in all at
 * a million leases (test_store prints the figure).
 *
 * Invariants: every lease is in `leases` and in `lease_q`; a lease with
 * expire_at <= now is never handed out; the only code that frees a lease
 * that is still due to wake release waiters (delete, expiry, a put over an
 * expired one) wakes them first.
 */
#include "store_int.h"

#include <sys/random.h>

#include <errno.h>

#include "../core/clock.h"

struct lease {
    struct timeq_node tq;   /* at = expire_at, aux = key length */
    struct table_node link; /* chain in s->leases */
    uint32_t vlen;
    uint8_t kv[]; /* key bytes, then value bytes */
};

_Static_assert(offsetof(struct lease, kv) == 28, "lease header must stay packed");

static const struct term no_value = {NULL, 0};

static struct term lease_key(const struct lease *l) { return (struct term){l->kv, l->tq.aux}; }
static struct term lease_val(const struct lease *l)
{
    return (struct term){l->kv + l->tq.aux, l->vlen};
}
static size_t lease_size(uint32_t klen, uint32_t vlen)
{
    return offsetof(struct lease, kv) + (size_t)klen + vlen;
}

static struct term lease_table_key(const struct table_node *n)
{
    return lease_key(store__of_const(n, struct lease, link));
}

/* ---- life cycle ---- */

struct store *store_new(const struct store_cfg *cfg)
{
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (cfg)
        s->cfg = *cfg;
    s->seed = s->cfg.hash_seed;
    if (!s->seed && getrandom(&s->seed, sizeof s->seed, 0) != sizeof s->seed)
        s->seed = (uint64_t)(uintptr_t)s ^ 0x9e3779b97f4a7c15ull; /* ASLR at least */
    table_init(&s->leases, lease_table_key, s->seed);
    timeq_init(&s->lease_q);
    if (table_reserve(&s->leases))
        goto fail;
    if (store__wlocks_init(s) || store__waiters_init(s))
        goto fail;
    return s;
fail:
    store_free(s);
    return NULL;
}

void store_free(struct store *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < timeq_count(&s->lease_q); i++) {
        struct lease *l = store__of(timeq_get(&s->lease_q, i), struct lease, tq);
        store__release(s, l, lease_size(l->tq.aux, l->vlen));
    }
    timeq_fini(&s->lease_q);
    table_fini(&s->leases);
    store__wlocks_destroy(s);
    store__waiters_destroy(s);
    free(s);
}

/* ---- leases ---- */

static struct lease *lease_find(const struct store *s, struct term key, uint64_t h)
{
    struct table_node *n = table_find(&s->leases, key, h);
    return n ? store__of(n, struct lease, link) : NULL;
}

static struct lease *lease_live(const struct store *s, struct term key, uint64_t h)
{
    struct lease *l = lease_find(s, key, h);
    return l && l->tq.at > s->now ? l : NULL;
}

static struct lease *lease_alloc(struct store *s, struct term key, struct term val)
{
    struct lease *l = store__alloc(s, lease_size(key.len, val.len));
    if (!l)
        return NULL;
    l->tq.aux = key.len;
    l->vlen = val.len;
    store__copy(l->kv, key.p, key.len);
    store__copy(l->kv + key.len, val.p, val.len);
    return l;
}

static void lease_free(struct store *s, struct lease *l)
{
    store__release(s, l, lease_size(l->tq.aux, l->vlen));
}

/* Unlink l from both indexes and free it. */
static void lease_drop(struct store *s, struct lease *l, uint64_t h)
{
    table_remove(&s->leases, &l->link, h);
    timeq_remove(&s->lease_q, &l->tq);
    lease_free(s, l);
}

/* Give l the value val: in place when the length is unchanged, else by
 * moving to a new block (nw, allocated by the caller so that failing is
 * possible before anything changed). Returns the lease's new address. */
static struct lease *lease_set_value(struct store *s, struct lease *l, struct lease *nw,
                                     struct term val, uint64_t h)
{
    if (!nw) {
        store__copy(l->kv + l->tq.aux, val.p, val.len);
        return l;
    }
    table_replace(&s->leases, &l->link, &nw->link, h);
    timeq_replace(&s->lease_q, &l->tq, &nw->tq);
    lease_free(s, l);
    return nw;
}

int store_lease_get(const struct store *s, struct term key, struct term *val, int64_t *expire_at)
{
    const struct lease *l = lease_live(s, key, store__hash(s, key));
    if (!l)
        return -ENOENT;
    if (val)
        *val = lease_val(l);
    if (expire_at)
        *expire_at = l->tq.at;
    return 0;
}

static int lease_insert(struct store *s, struct term key, uint64_t h, struct term val,
                        int64_t expire_at)
{
    int rc = table_reserve(&s->leases);
    if (!rc)
        rc = timeq_reserve(&s->lease_q);
    if (rc)
        return rc;
    struct lease *l = lease_alloc(s, key, val);
    if (!l)
        return -ENOMEM;
    l->tq.at = expire_at;
    table_insert(&s->leases, &l->link, h);
    timeq_push(&s->lease_q, &l->tq);
    store__wake(s, lease_key(l), h, STORE_WAIT_FOR, s->now, lease_val(l));
    return 0;
}

int store_lease_put(struct store *s, struct term key, struct term val, int64_t expire_at)
{
    uint64_t h = store__hash(s, key);
    struct lease *l = lease_find(s, key, h);
    if (!l)
        return lease_insert(s, key, h, val, expire_at);
    struct lease *nw = NULL;
    if (l->vlen != val.len && !(nw = lease_alloc(s, lease_key(l), val)))
        return -ENOMEM;
    /* An expired lease ended at its expire_at, whether or not store_advance
     * has got to it: that is the event its release waiters wait for. */
    if (l->tq.at <= s->now)
        store__wake(s, lease_key(l), h, STORE_WAIT_RELEASE, l->tq.at, no_value);
    l = lease_set_value(s, l, nw, val, h);
    timeq_update(&s->lease_q, &l->tq, expire_at);
    store__wake(s, lease_key(l), h, STORE_WAIT_FOR, s->now, lease_val(l));
    return 0;
}

int store_lease_update(struct store *s, struct term key, struct term val)
{
    uint64_t h = store__hash(s, key);
    struct lease *l = lease_live(s, key, h);
    if (!l)
        return -ENOENT;
    struct lease *nw = NULL;
    if (l->vlen != val.len) {
        if (!(nw = lease_alloc(s, lease_key(l), val)))
            return -ENOMEM;
    }
    lease_set_value(s, l, nw, val, h);
    return 0;
}

int store_lease_delete(struct store *s, struct term key)
{
    uint64_t h = store__hash(s, key);
    struct lease *l = lease_live(s, key, h);
    if (!l)
        return -ENOENT;
    /* Wake while the lease still holds the key bytes: `key` may be a span
     * the store handed out, pointing into l. */
    store__wake(s, lease_key(l), h, STORE_WAIT_RELEASE, s->now, no_value);
    lease_drop(s, l, h);
    return 0;
}

size_t store_lease_count(const struct store *s) { return timeq_count(&s->lease_q); }

static void lease_expire(struct store *s, struct timeq_node *n)
{
    struct lease *l = store__of(n, struct lease, tq);
    uint64_t h = store__hash(s, lease_key(l));
    store__wake(s, lease_key(l), h, STORE_WAIT_RELEASE, l->tq.at, no_value);
    lease_drop(s, l, h);
}

/* ---- time ---- */

static int64_t queue_min_at(const struct timeq *q)
{
    const struct timeq_node *n = timeq_min(q);
    return n ? n->at : CLOCK_NEVER;
}

int64_t store_next_deadline(const struct store *s)
{
    int64_t a = queue_min_at(&s->lease_q), b = queue_min_at(&s->wlock_q);
    int64_t c = queue_min_at(&s->waiter_q);
    int64_t m = a < b ? a : b;
    return m < c ? m : c;
}

/* Index of the queue with the earliest head (0 leases, 1 write locks,
 * 2 waiters; first one wins a tie), -1 if all are empty. */
static int earliest(const struct store *s, int64_t *at)
{
    const struct timeq *q[3] = {&s->lease_q, &s->wlock_q, &s->waiter_q};
    int best = -1;
    for (int i = 0; i < 3; i++) {
        const struct timeq_node *n = timeq_min(q[i]);
        if (n && (best < 0 || n->at < *at)) {
            best = i;
            *at = n->at;
        }
    }
    return best;
}

/* Merging the three queues by time keeps the promise waiter.c relies on:
 * an expired lease is reclaimed before any waiter whose deadline is later.
 * Which of two equal times goes first makes no difference to who is woken. */
size_t store_advance(struct store *s, int64_t now, size_t budget)
{
    size_t done = 0;
    s->now = now;
    for (; done < budget; done++) {
        int64_t at = 0;
        int which = earliest(s, &at);
        if (which < 0 || at > now)
            break;
        if (which == 0)
            lease_expire(s, timeq_min(&s->lease_q));
        else if (which == 1)
            store__wlock_expire(s, timeq_min(&s->wlock_q));
        else
            store__waiter_expire(s, timeq_min(&s->waiter_q));
    }
    return done;
}

/* ---- iteration and statistics ---- */

struct lease_visit {
    store_lease_fn fn;
    void *ud;
    int64_t now;
};

static int lease_visit(void *ud, struct table_node *n)
{
    struct lease_visit *v = ud;
    const struct lease *l = store__of_const(n, struct lease, link);
    if (l->tq.at <= v->now)
        return 0;
    return v->fn(v->ud, lease_key(l), lease_val(l), l->tq.at);
}

void store_foreach_lease(const struct store *s, store_lease_fn fn, void *ud)
{
    struct lease_visit v = {fn, ud, s->now};
    table_foreach(&s->leases, lease_visit, &v);
}

size_t store_mem_bytes(const struct store *s)
{
    return store__chunk(sizeof *s) + s->entry_bytes + table_mem_bytes(&s->leases) +
           table_mem_bytes(&s->wlocks) + table_mem_bytes(&s->wtags) +
           table_mem_bytes(&s->wkeys) + timeq_mem_bytes(&s->lease_q) +
           timeq_mem_bytes(&s->wlock_q) + timeq_mem_bytes(&s->waiter_q);
}
