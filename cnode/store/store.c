/*
 * Lease store: life cycle, leases, time and statistics (write locks are in
 * wlock.c, waiters in waiter.c, the model in store.h).
 *
 * A lease is one block in s->slab, named by its 32-bit handle:
 *
 *   u32     its slot in lease_q (native byte order; hq tells us on moves)
 *   varint  key length, varint stored value length (1 byte each if < 128)
 *   bytes   key, then the stored value (pidc: a pid packed, else the value)
 *
 * and its expiry lives only in its lease_q slot beside its handle. For a
 * 13-byte {user,N} key and a pid value packed to 4..6 bytes that is a
 * 23..25-byte block in a 24- or 28-byte class, a 12-byte heap slot and
 * one 8-byte index slot at 58..87% load: 47..51 bytes a lease in all at
 * a million leases (bench/store_bench.c, test_store), where a malloc'd
 * block, pointer heap and chained table took ~108.
 *
 * The expiry is not repeated in the block: that would take 8 more bytes a
 * lease, and only a lookup that finds its key pays for reading the heap
 * slot instead (inserts of new keys and misses never do).
 *
 * Hashing: one seeded 64-bit hash per operation; its high 32 bits are the
 * index's, the whole of it the waiter table's.
 *
 * Invariants: every lease is in `leases` and in `lease_q`; a lease with
 * expire_at <= now is never handed out; the only code that frees a lease
 * that is still due to wake release waiters (delete, expiry, a put over an
 * expired one) wakes them first. A packed value holds one reference on its
 * pidc node, dropped exactly when the bytes are overwritten or freed.
 */
#include "store_int.h"

#include <sys/random.h>

#include <errno.h>

#include "../core/clock.h"

static const struct term no_value = {NULL, 0};

/* A lease block taken apart. */
struct lview {
    uint8_t *base;
    const uint8_t *key;
    uint8_t *sval;
    uint32_t klen, slen, pos;
};

static uint32_t hash32(uint64_t h) { return (uint32_t)(h >> 32); }

static void lease_view(const struct store *s, uint32_t h, struct lview *v)
{
    uint8_t *b = slab_ptr(&s->slab, h), *p = b + 4;
    v->base = b;
    memcpy(&v->pos, b, sizeof v->pos);
    if (p[0] < 0x80 && p[1] < 0x80) {
        v->klen = p[0];
        v->slen = p[1];
        p += 2;
    } else {
        p += pidc_varint_get(p, 5, &v->klen);
        p += pidc_varint_get(p, 5, &v->slen);
    }
    v->key = p;
    v->sval = p + v->klen;
}

static struct term view_key(const struct lview *v) { return (struct term){v->key, v->klen}; }

static struct term view_val(const struct store *s, const struct lview *v)
{
    return pidc_unpack(s->pc, v->sval, v->slen);
}

/* SIZE_MAX, which no allocation satisfies, for a value whose stored form
 * (one escape byte more) no longer has a 32-bit length. */
static size_t lease_size(uint32_t klen, size_t slen)
{
    if (slen > UINT32_MAX)
        return SIZE_MAX;
    return 4 + pidc_varint_len(klen) + pidc_varint_len((uint32_t)slen) + klen + slen;
}

/* hidx: does lease h have this key? Reads only the block's head and key. */
static int lease_key_eq(void *ud, uint32_t h, struct term key)
{
    struct lview v;
    lease_view(ud, h, &v);
    return v.klen == key.len && (key.len == 0 || memcmp(v.key, key.p, key.len) == 0);
}

/* hq: lease h is now in slot pos. */
static void lease_moved(void *ud, uint32_t h, uint32_t pos)
{
    struct store *s = ud;
    memcpy(slab_ptr(&s->slab, h), &pos, sizeof pos);
}

/* A value on its way into a block: packed, or raw (the caller's bytes). */
struct sval {
    uint8_t packed[PIDC_MAX_PACKED];
    size_t plen, len;
    struct term raw;
};

/* Packing takes a node reference: sval_cancel gives it back if the value
 * is not stored after all. */
static void sval_prepare(struct store *s, struct term val, struct sval *sv)
{
    sv->plen = pidc_pack(s->pc, val, sv->packed);
    sv->raw = val;
    sv->len = sv->plen ? sv->plen : pidc_raw_len(val);
}

static void sval_cancel(struct store *s, const struct sval *sv)
{
    pidc_drop(s->pc, sv->packed, sv->plen);
}

static void sval_write(uint8_t *dst, const struct sval *sv)
{
    if (sv->plen)
        memcpy(dst, sv->packed, sv->plen);
    else
        pidc_put_raw(dst, sv->raw);
}

/* Lay out a block: slot, lengths, key, value. */
static void lease_fill(uint8_t *b, uint32_t pos, struct term key, const struct sval *sv)
{
    memcpy(b, &pos, sizeof pos);
    uint8_t *p = b + 4;
    p += pidc_varint_put(p, key.len);
    p += pidc_varint_put(p, (uint32_t)sv->len);
    store__copy(p, key.p, key.len);
    sval_write(p + key.len, sv);
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
    slab_init(&s->slab);
    hidx_init(&s->leases, lease_key_eq, s);
    hq_init(&s->lease_q, lease_moved, s);
    if (hidx_reserve(&s->leases) || !(s->pc = pidc_new(s->seed)))
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
    hq_fini(&s->lease_q);
    hidx_fini(&s->leases);
    slab_fini(&s->slab);
    pidc_free(s->pc);
    store__wlocks_destroy(s);
    store__waiters_destroy(s);
    free(s);
}

/* ---- leases ---- */

/* Handle of the live lease of key (0 if none); *v describes it. */
static uint32_t lease_live(const struct store *s, struct term key, uint64_t h64,
                           struct lview *v)
{
    uint32_t h = hidx_find(&s->leases, hash32(h64), key);
    if (!h)
        return 0;
    lease_view(s, h, v);
    return hq_at(&s->lease_q, v->pos) > s->now ? h : 0;
}

static int has_waiters(const struct store *s) { return table_count(&s->wkeys) != 0; }

static void wake_release(struct store *s, const struct lview *v, uint64_t h64, int64_t since)
{
    if (has_waiters(s))
        store__wake(s, view_key(v), h64, STORE_WAIT_RELEASE, since, no_value);
}

static void wake_for(struct store *s, uint32_t h, uint64_t h64)
{
    if (!has_waiters(s))
        return;
    struct lview v;
    lease_view(s, h, &v);
    store__wake(s, view_key(&v), h64, STORE_WAIT_FOR, s->now, view_val(s, &v));
}

/* Unlink lease h from both indexes and free it. */
static void lease_drop(struct store *s, uint32_t h, const struct lview *v, uint64_t h64)
{
    hidx_remove(&s->leases, hash32(h64), h);
    hq_remove(&s->lease_q, v->pos);
    pidc_drop(s->pc, v->sval, v->slen);
    slab_free(&s->slab, h);
}

/* Can lease h take the value sv in its own block? The block must be of the
 * right size, the key must stay where it is, and the new value must not be
 * read from the block it overwrites (a span the store handed out). */
static int fits_in_place(const struct store *s, uint32_t h, const struct lview *v,
                         const struct sval *sv)
{
    if (pidc_varint_len((uint32_t)sv->len) != pidc_varint_len(v->slen) ||
        !slab_same_size(&s->slab, h, lease_size(v->klen, sv->len)))
        return 0;
    uintptr_t b = (uintptr_t)v->base, e = (uintptr_t)(v->sval + v->slen);
    uintptr_t p = (uintptr_t)sv->raw.p;
    return sv->plen || !sv->raw.len || p >= e || p + sv->raw.len <= b;
}

/* Where lease h is to take the value sv: *nh = 0 in its own block, else a
 * new block, allocated now so that failing (-ENOMEM) changes nothing. */
static int lease_prepare_move(struct store *s, uint32_t h, const struct lview *v,
                              const struct sval *sv, uint32_t *nh)
{
    *nh = 0;
    if (fits_in_place(s, h, v, sv))
        return 0;
    *nh = slab_alloc(&s->slab, lease_size(v->klen, sv->len));
    return *nh ? 0 : -ENOMEM;
}

/* Give lease h (described by v) the value sv: in place when nh == 0, else
 * in block nh, which takes h's place in both indexes. Returns the lease's
 * handle. */
static uint32_t lease_set_value(struct store *s, uint32_t h, const struct lview *v, uint32_t nh,
                                const struct sval *sv, uint64_t h64)
{
    pidc_drop(s->pc, v->sval, v->slen);
    if (!nh) {
        pidc_varint_put(v->base + 4 + pidc_varint_len(v->klen), (uint32_t)sv->len);
        sval_write(v->sval, sv);
        return h;
    }
    lease_fill(slab_ptr(&s->slab, nh), v->pos, view_key(v), sv);
    hidx_replace(&s->leases, hash32(h64), h, nh);
    hq_set_handle(&s->lease_q, v->pos, nh);
    slab_free(&s->slab, h);
    return nh;
}

int store_lease_get(const struct store *s, struct term key, struct term *val, int64_t *expire_at)
{
    struct lview v;
    if (!lease_live(s, key, store__hash(s, key), &v))
        return -ENOENT;
    if (val)
        *val = view_val(s, &v);
    if (expire_at)
        *expire_at = hq_at(&s->lease_q, v.pos);
    return 0;
}

static int lease_insert(struct store *s, struct term key, uint64_t h64, struct term val,
                        int64_t expire_at)
{
    int rc = hidx_reserve(&s->leases);
    if (!rc)
        rc = hq_reserve(&s->lease_q);
    if (rc)
        return rc;
    struct sval sv;
    sval_prepare(s, val, &sv);
    uint32_t h = slab_alloc(&s->slab, lease_size(key.len, sv.len));
    if (!h) {
        sval_cancel(s, &sv);
        return -ENOMEM;
    }
    lease_fill(slab_ptr(&s->slab, h), 0, key, &sv);
    hidx_insert(&s->leases, hash32(h64), h);
    hq_push(&s->lease_q, expire_at, h);
    wake_for(s, h, h64);
    return 0;
}

int store_lease_put(struct store *s, struct term key, struct term val, int64_t expire_at)
{
    uint64_t h64 = store__hash(s, key);
    uint32_t h = hidx_find(&s->leases, hash32(h64), key), nh;
    if (!h)
        return lease_insert(s, key, h64, val, expire_at);
    struct lview v;
    lease_view(s, h, &v);
    struct sval sv;
    sval_prepare(s, val, &sv);
    if (lease_prepare_move(s, h, &v, &sv, &nh)) {
        sval_cancel(s, &sv);
        return -ENOMEM;
    }
    /* An expired lease ended at its expire_at, whether or not store_advance
     * has got to it: that is the event its release waiters wait for. */
    int64_t old_at = hq_at(&s->lease_q, v.pos);
    if (old_at <= s->now)
        wake_release(s, &v, h64, old_at);
    h = lease_set_value(s, h, &v, nh, &sv, h64);
    hq_update(&s->lease_q, v.pos, expire_at);
    wake_for(s, h, h64);
    return 0;
}

int store_lease_update(struct store *s, struct term key, struct term val)
{
    uint64_t h64 = store__hash(s, key);
    struct lview v;
    uint32_t h = lease_live(s, key, h64, &v), nh;
    if (!h)
        return -ENOENT;
    struct sval sv;
    sval_prepare(s, val, &sv);
    if (lease_prepare_move(s, h, &v, &sv, &nh)) {
        sval_cancel(s, &sv);
        return -ENOMEM;
    }
    lease_set_value(s, h, &v, nh, &sv, h64);
    return 0;
}

int store_lease_delete(struct store *s, struct term key)
{
    uint64_t h64 = store__hash(s, key);
    struct lview v;
    uint32_t h = lease_live(s, key, h64, &v);
    if (!h)
        return -ENOENT;
    /* Wake while the lease still holds the key bytes: `key` may be a span
     * the store handed out, pointing into the block. */
    wake_release(s, &v, h64, s->now);
    lease_drop(s, h, &v, h64);
    return 0;
}

size_t store_lease_count(const struct store *s) { return hq_count(&s->lease_q); }

static void lease_expire(struct store *s)
{
    uint32_t h = hq_handle(&s->lease_q, 0);
    int64_t at = hq_at(&s->lease_q, 0);
    struct lview v;
    lease_view(s, h, &v);
    uint64_t h64 = store__hash(s, view_key(&v));
    wake_release(s, &v, h64, at);
    lease_drop(s, h, &v, h64);
}

/* ---- time ---- */

static int64_t queue_min_at(const struct timeq *q)
{
    const struct timeq_node *n = timeq_min(q);
    return n ? n->at : CLOCK_NEVER;
}

static int64_t lease_min_at(const struct store *s)
{
    return hq_count(&s->lease_q) ? hq_at(&s->lease_q, 0) : CLOCK_NEVER;
}

int64_t store_next_deadline(const struct store *s)
{
    int64_t a = lease_min_at(s), b = queue_min_at(&s->wlock_q);
    int64_t c = queue_min_at(&s->waiter_q);
    int64_t m = a < b ? a : b;
    return m < c ? m : c;
}

/* Index of the queue with the earliest head (0 leases, 1 write locks,
 * 2 waiters; first one wins a tie), -1 if all are empty. */
static int earliest(const struct store *s, int64_t *at)
{
    const struct timeq *q[2] = {&s->wlock_q, &s->waiter_q};
    int best = -1;
    if (hq_count(&s->lease_q)) {
        best = 0;
        *at = hq_at(&s->lease_q, 0);
    }
    for (int i = 0; i < 2; i++) {
        const struct timeq_node *n = timeq_min(q[i]);
        if (n && (best < 0 || n->at < *at)) {
            best = i + 1;
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
            lease_expire(s);
        else if (which == 1)
            store__wlock_expire(s, timeq_min(&s->wlock_q));
        else
            store__waiter_expire(s, timeq_min(&s->waiter_q));
    }
    return done;
}

/* ---- iteration and statistics ---- */

/* In expiry-queue order, which is no order a caller may rely on. */
void store_foreach_lease(const struct store *s, store_lease_fn fn, void *ud)
{
    for (uint32_t i = 0; i < hq_count(&s->lease_q); i++) {
        int64_t at = hq_at(&s->lease_q, i);
        if (at <= s->now)
            continue;
        struct lview v;
        lease_view(s, hq_handle(&s->lease_q, i), &v);
        if (fn(ud, view_key(&v), view_val(s, &v), at))
            return;
    }
}

size_t store_mem_bytes(const struct store *s)
{
    return store__chunk(sizeof *s) + s->entry_bytes + slab_mem_bytes(&s->slab) +
           hidx_mem_bytes(&s->leases) + hq_mem_bytes(&s->lease_q) + pidc_mem_bytes(s->pc) +
           table_mem_bytes(&s->wlocks) + table_mem_bytes(&s->wtags) +
           table_mem_bytes(&s->wkeys) + timeq_mem_bytes(&s->wlock_q) +
           timeq_mem_bytes(&s->waiter_q);
}
