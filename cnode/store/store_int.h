/*
 * Internals shared by the store's files: store.c (life cycle, leases,
 * time), wlock.c (write locks) and waiter.c (waiters). Nothing outside
 * cnode/store/ includes this.
 *
 * Leases, the bulk of the store, are packed for size (store.c): blocks in
 * a slab addressed by 32-bit handles, found through an open-addressing
 * index (hidx) and queued by expiry in a heap of (time, handle) pairs
 * (hq), values in the compact form of pidc.
 *
 * Every write lock and waiter is one malloc holding its bytes inline,
 * linked into one hash table by key and queued in one timeq by its expiry
 * or deadline; the timeq is therefore also the list of all entries of a
 * kind (store_free and waiter filtering walk it).
 * Write locks and waiters also hang off a per-tag / per-key group object
 * so that "all locks with this tag" and "all waiters of this key" are lists,
 * never searches. A group exists exactly while its list is non-empty.
 *
 * entry_bytes estimates what the allocator really holds for those entries
 * and groups (store__chunk), so store_mem_bytes() tracks RSS closely.
 */
#ifndef LOCKERD_STORE_INT_H
#define LOCKERD_STORE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hidx.h"
#include "hq.h"
#include "pidc.h"
#include "slab.h"
#include "store.h"
#include "table.h"
#include "timeq.h"

struct store {
    struct store_cfg cfg;
    uint64_t seed;        /* of every key/tag hash: random per store */
    int64_t now;
    struct slab slab;     /* lease blocks */
    struct hidx leases;   /* lease handles by key */
    struct hq lease_q;    /* lease handles by expire_at */
    struct pidc *pc;      /* interned pid nodes; unpacks values */
    struct table wlocks;  /* struct wlock by key */
    struct table wtags;   /* struct wtag (locks sharing a tag) by tag */
    struct timeq wlock_q; /* struct wlock by expire_at */
    struct table wkeys;   /* struct wkey (waiters of a key) by key */
    struct timeq waiter_q;/* struct waiter by deadline */
    size_t entry_bytes;
};

#define store__of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define store__of_const(ptr, type, member) \
    ((const type *)(const void *)((const char *)(ptr) - offsetof(type, member)))

/* Seeded so that keys colliding in one lockerd process cannot be computed
 * offline by a peer that wants long hash chains. */
static inline uint64_t store__hash(const struct store *s, struct term t)
{
    return term_hash_seed(t.p, t.len, s->seed);
}

/* Bytes an n-byte malloc really occupies, modelled on glibc (8-byte header,
 * 16-byte granules, 32-byte minimum); close enough for other allocators. */
static inline size_t store__chunk(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

static inline void *store__alloc(struct store *s, size_t n)
{
    void *p = malloc(n);
    if (p)
        s->entry_bytes += store__chunk(n);
    return p;
}

static inline void store__release(struct store *s, void *p, size_t n)
{
    if (!p)
        return;
    s->entry_bytes -= store__chunk(n);
    free(p);
}

/* Copy n bytes unless n is 0 (src may then be NULL). memmove: callers may
 * hand back spans the store gave them, which can overlap the destination. */
static inline void store__copy(void *dst, const void *src, size_t n)
{
    if (n)
        memmove(dst, src, n);
}

/* waiter.c; init: tables ready (0) or -ENOMEM, destroy is safe after either */
int store__waiters_init(struct store *s);
/* Wake and free the waiters of `kind` on key whose deadline is after
 * `since` (the moment the event happened); drop the others silently. */
void store__wake(struct store *s, struct term key, uint64_t hash, enum store_wait_kind kind,
                 int64_t since, struct term value);
void store__waiter_expire(struct store *s, struct timeq_node *n);
void store__waiters_destroy(struct store *s);

/* wlock.c; init and destroy as for waiters */
int store__wlocks_init(struct store *s);
void store__wlock_expire(struct store *s, struct timeq_node *n);
void store__wlocks_destroy(struct store *s);

#endif
