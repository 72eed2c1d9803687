/*
 * Node-local named locks; see nlock.h for the semantics.
 *
 * Model. Each name ever created has one record (struct nlock_ent): the
 * name bytes and their hash, fixed once the record is published, and an
 * atomic state: OK, LOCKED or DELETED. Records live in an open-addressing
 * table (linear probing) of atomic pointers. A slot goes from NULL to a
 * record once and never changes again in that table: delete does not
 * unlink, it sets the record's state to DELETED (a tombstone), and a later
 * create of the same name finds the tombstone and sets it back to OK. So
 * a probe that meets NULL has proved the name absent, and no record is
 * ever freed while the registry lives. That is the whole of the memory
 * reclamation story for readers: there is nothing to reclaim under them.
 *
 * Growth is copy-on-write. When an insert would take the table past half
 * full, the writer builds a table of twice the size holding the same
 * records, publishes it with a release store, and chains the old table
 * behind it as retired. A reader that loaded the old table finishes its
 * probe there safely: the old table is complete for every name created
 * before the switch, and the records it points to are the live ones, so
 * states read through it are current. Retired tables are freed only by
 * lkc_nlocks_free.
 *
 * Bound on retained memory. Tables double from NLOCK_MIN_SLOTS, so the
 * retired ones together hold fewer slots than the current one: all tables
 * take under 2 * S pointers for a current size S, and S < 4 * N for
 * N >= NLOCK_MIN_SLOTS / 2 distinct names ever created (the table is at
 * most half full, and grew only when it was). That is under 8 pointers
 * (64 bytes on LP64) of table per distinct name, plus one record of
 * about 32 bytes + the name per distinct name. Nothing shrinks before
 * lkc_nlocks_free.
 *
 * Writers. create, delete and growth take `mu`, which keeps `used` exact
 * and makes the find-then-insert of create atomic. lock and unlock do not:
 * they CAS the state between OK and LOCKED and refuse DELETED. That keeps
 * them linearizable against delete (which swaps in DELETED) and create
 * (which only ever moves DELETED to OK, a transition lock/unlock never
 * make), without a mutex on the paths the threads actually hammer.
 *
 * Invariants: the table is at most half full, so every probe ends at a
 * NULL slot; each name has at most one record, in every table made after
 * its creation; a record's state is DELETED exactly when the name does
 * not exist.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* strnlen, nanosleep */
#endif

#include "nlock.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NLOCK_DELETED 2
#define NLOCK_MIN_SLOTS 16

struct nlock_ent {
    _Atomic int state; /* LKC_NLOCK_OK, LKC_NLOCK_LOCKED or NLOCK_DELETED */
    uint64_t hash;
    size_t len;
    char name[]; /* len bytes and a NUL; immutable once published */
};

struct nlock_table {
    size_t mask;                   /* slots - 1; slots is a power of two */
    struct nlock_table *retired;   /* the table this one replaced, or NULL */
    _Atomic(struct nlock_ent *) slot[];
};

struct lkc_nlocks {
    _Atomic(struct nlock_table *) table; /* current; never NULL */
    pthread_mutex_t mu;                  /* create, delete, growth */
    size_t used;                         /* records in the table (under mu) */
};

/* 0 and the name's length, or the error every public call reports. */
static int name_check(const struct lkc_nlocks *r, const char *name, size_t *len)
{
    if (!r || !name)
        return -EINVAL;
    *len = strnlen(name, LKC_NLOCK_NAME_MAX + 1);
    return *len > LKC_NLOCK_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* FNV-1a, with the high half folded down because only low bits index. */
static uint64_t name_hash(const char *name, size_t len)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 1099511628211u;
    }
    return h ^ (h >> 32);
}

static struct nlock_table *table_new(size_t slots)
{
    struct nlock_table *t = malloc(sizeof *t + slots * sizeof t->slot[0]);
    if (!t)
        return NULL;
    t->mask = slots - 1;
    t->retired = NULL;
    for (size_t i = 0; i < slots; i++)
        atomic_init(&t->slot[i], NULL);
    return t;
}

/* The record for the name in table t, or NULL. Safe without `mu`: slots
 * are read with acquire, so a record seen is a record fully written. */
static struct nlock_ent *table_find(const struct nlock_table *t, const char *name,
                                    size_t len, uint64_t hash)
{
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
        struct nlock_ent *e = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (!e)
            return NULL;
        if (e->hash == hash && e->len == len && memcmp(e->name, name, len) == 0)
            return e;
    }
}

/* Put e in the first free slot of its probe chain. Caller holds `mu` (or
 * owns an unpublished t); release pairs with table_find's acquire. */
static void table_put(struct nlock_table *t, struct nlock_ent *e)
{
    size_t i = e->hash & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slot[i], e, memory_order_release);
}

/* Lock-free lookup through the current table: what check, lock and
 * unlock use. */
static struct nlock_ent *find(struct lkc_nlocks *r, const char *name, size_t len)
{
    struct nlock_table *t = atomic_load_explicit(&r->table, memory_order_acquire);
    return table_find(t, name, len, name_hash(name, len));
}

struct lkc_nlocks *lkc_nlocks_new(void)
{
    struct lkc_nlocks *r = malloc(sizeof *r);
    struct nlock_table *t = table_new(NLOCK_MIN_SLOTS);
    if (!r || !t)
        goto fail;
    if (pthread_mutex_init(&r->mu, NULL) != 0)
        goto fail;
    atomic_init(&r->table, t);
    r->used = 0;
    return r;
fail:
    free(t);
    free(r);
    return NULL;
}

void lkc_nlocks_free(struct lkc_nlocks *r)
{
    if (!r)
        return;
    struct nlock_table *t = atomic_load_explicit(&r->table, memory_order_acquire);
    /* The current table holds every record exactly once. */
    for (size_t i = 0; i <= t->mask; i++)
        free(atomic_load_explicit(&t->slot[i], memory_order_relaxed));
    while (t) {
        struct nlock_table *older = t->retired;
        free(t);
        t = older;
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Make room for one more record: publish a table twice the size when
 * this insert would fill the current one past half. Caller holds `mu`.
 * The old table stays readable (see the file comment). 0 or -ENOMEM. */
static int grow_if_needed(struct lkc_nlocks *r)
{
    struct nlock_table *old = atomic_load_explicit(&r->table, memory_order_relaxed);
    size_t slots = old->mask + 1;
    if ((r->used + 1) * 2 <= slots)
        return 0;
    struct nlock_table *t = table_new(slots * 2);
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < slots; i++) {
        struct nlock_ent *e = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
        if (e)
            table_put(t, e);
    }
    t->retired = old;
    atomic_store_explicit(&r->table, t, memory_order_release);
    return 0;
}

/* Insert a new record, unlocked. Caller holds `mu` and has checked that
 * the name has none. 0 or -ENOMEM. */
static int insert_new(struct lkc_nlocks *r, const char *name, size_t len, uint64_t hash)
{
    int rc = grow_if_needed(r);
    if (rc < 0)
        return rc;
    struct nlock_ent *e = malloc(sizeof *e + len + 1);
    if (!e)
        return -ENOMEM;
    atomic_init(&e->state, LKC_NLOCK_OK);
    e->hash = hash;
    e->len = len;
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    table_put(atomic_load_explicit(&r->table, memory_order_relaxed), e);
    r->used++;
    return 0;
}

int lkc_nlock_create(struct lkc_nlocks *r, const char *name)
{
    size_t len;
    int rc = name_check(r, name, &len);
    if (rc < 0)
        return rc;
    uint64_t hash = name_hash(name, len);
    pthread_mutex_lock(&r->mu);
    struct nlock_ent *e =
        table_find(atomic_load_explicit(&r->table, memory_order_relaxed), name, len, hash);
    if (e) {
        /* Revive a tombstone; a live name keeps its state. Only this
         * (under mu) moves a record out of DELETED, so a lock/unlock CAS
         * racing with it either saw DELETED and failed, or runs after. */
        int dead = NLOCK_DELETED;
        atomic_compare_exchange_strong_explicit(&e->state, &dead, LKC_NLOCK_OK,
                                                memory_order_acq_rel, memory_order_relaxed);
    } else {
        rc = insert_new(r, name, len, hash);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int lkc_nlock_delete(struct lkc_nlocks *r, const char *name)
{
    size_t len;
    int rc = name_check(r, name, &len);
    if (rc < 0)
        return rc;
    /* mu orders this against create's revival; lock/unlock never leave
     * or enter DELETED, so the exchange tells exactly whether it existed. */
    pthread_mutex_lock(&r->mu);
    struct nlock_ent *e = find(r, name, len);
    int existed = e && atomic_exchange_explicit(&e->state, NLOCK_DELETED,
                                                memory_order_acq_rel) != NLOCK_DELETED;
    pthread_mutex_unlock(&r->mu);
    return existed;
}

int lkc_nlock_check(struct lkc_nlocks *r, const char *name, int dflt)
{
    size_t len;
    int rc = name_check(r, name, &len);
    if (rc < 0)
        return rc;
    struct nlock_ent *e = find(r, name, len);
    if (!e)
        return dflt;
    int s = atomic_load_explicit(&e->state, memory_order_acquire);
    return s == NLOCK_DELETED ? dflt : s;
}

/* Move a live record to `to` (OK or LOCKED); a tombstone means the name
 * does not exist. The CAS, not a plain store, is what keeps a lock from
 * resurrecting a name deleted between the load and the store. */
static int set_state(struct lkc_nlocks *r, const char *name, int to)
{
    size_t len;
    int rc = name_check(r, name, &len);
    if (rc < 0)
        return rc;
    struct nlock_ent *e = find(r, name, len);
    if (!e)
        return -ENOENT;
    int s = atomic_load_explicit(&e->state, memory_order_relaxed);
    do {
        if (s == NLOCK_DELETED)
            return -ENOENT;
    } while (!atomic_compare_exchange_weak_explicit(&e->state, &s, to, memory_order_acq_rel,
                                                    memory_order_relaxed));
    return 0;
}

int lkc_nlock_lock(struct lkc_nlocks *r, const char *name)
{
    return set_state(r, name, LKC_NLOCK_LOCKED);
}

int lkc_nlock_unlock(struct lkc_nlocks *r, const char *name)
{
    return set_state(r, name, LKC_NLOCK_OK);
}

int lkc_nlock_with_lock(struct lkc_nlocks *r, const char *name, int (*fn)(void *arg),
                        void *arg, int *fn_result)
{
    if (!fn)
        return -EINVAL;
    int rc = lkc_nlock_lock(r, name);
    if (rc < 0)
        return rc;
    int res = fn(arg);
    /* -ENOENT here means fn (or another thread) deleted the name: nothing
     * is left locked, which is all the unlock is for. */
    (void)lkc_nlock_unlock(r, name);
    if (fn_result)
        *fn_result = res;
    return 0;
}

/* Sleep ms milliseconds, resuming after signals. */
static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int lkc_nlock_check_with_retry(struct lkc_nlocks *r, const char *name, int max_attempts,
                               int64_t interval_ms, int (*fn)(int status, void *arg),
                               void *arg)
{
    size_t len;
    int rc = name_check(r, name, &len);
    if (rc < 0)
        return rc;
    if (!fn)
        return -EINVAL;
    if (max_attempts < 1)
        max_attempts = 1;
    if (interval_ms < 0)
        interval_ms = 0;
    int status = LKC_NLOCK_LOCKED;
    for (int attempt = 1;; attempt++) {
        status = lkc_nlock_check(r, name, LKC_NLOCK_LOCKED);
        assert(status == LKC_NLOCK_OK || status == LKC_NLOCK_LOCKED);
        if (status == LKC_NLOCK_OK || attempt >= max_attempts)
            break;
        sleep_ms(interval_ms);
    }
    return fn(status, arg);
}
