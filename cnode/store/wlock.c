/*
 * Write locks: phase-one votes of the locker protocol, key -> {tag, expiry}.
 *
 * Model. A write lock is one allocation {expire_at, key bytes}, found by key
 * in s->wlocks (at most one per key) and queued by expiry in s->wlock_q. Its
 * tag lives once in a group (struct wtag, found by tag in s->wtags) that
 * lists every lock carrying that tag: an honest coordinator puts one lock
 * per tag, a hostile one may put thousands, and store_wlock_drop_tag then
 * walks exactly those, never a scan and never a long hash chain (the tag
 * table holds each distinct tag once).
 *
 * A lock whose expire_at <= now is absent: wlock_get misses it, wlock_add
 * replaces it, and drop_tag reclaims it without counting it as found.
 */
#include "store_int.h"

#include <errno.h>

struct wtag;

struct wlock {
    struct timeq_node tq;       /* at = expire_at, aux = key length */
    struct table_node link;     /* chain in s->wlocks */
    struct wtag *tag;
    struct wlock *tnext, *tprev; /* other locks carrying the same tag */
    uint8_t key[];
};

struct wtag {
    struct table_node link; /* chain in s->wtags */
    struct wlock *head;
    uint32_t len;
    uint8_t bytes[];
};

static struct term wlock_key(const struct wlock *l) { return (struct term){l->key, l->tq.aux}; }
static struct term wtag_term(const struct wtag *t) { return (struct term){t->bytes, t->len}; }
static size_t wlock_size(uint32_t klen) { return offsetof(struct wlock, key) + klen; }
static size_t wtag_size(uint32_t len) { return offsetof(struct wtag, bytes) + len; }

static struct term wlock_table_key(const struct table_node *n)
{
    return wlock_key(store__of_const(n, struct wlock, link));
}

static struct term wtag_table_key(const struct table_node *n)
{
    return wtag_term(store__of_const(n, struct wtag, link));
}

int store__wlocks_init(struct store *s)
{
    table_init(&s->wlocks, wlock_table_key, s->seed);
    table_init(&s->wtags, wtag_table_key, s->seed);
    timeq_init(&s->wlock_q);
    if (table_reserve(&s->wlocks) || table_reserve(&s->wtags))
        return -ENOMEM;
    return 0;
}

static struct wlock *wlock_find(const struct store *s, struct term key, uint64_t h)
{
    struct table_node *n = table_find(&s->wlocks, key, h);
    return n ? store__of(n, struct wlock, link) : NULL;
}

static struct wtag *wtag_find(const struct store *s, struct term tag, uint64_t h)
{
    struct table_node *n = table_find(&s->wtags, tag, h);
    return n ? store__of(n, struct wtag, link) : NULL;
}

static struct wtag *wtag_get(struct store *s, struct term tag)
{
    uint64_t h = store__hash(s, tag);
    struct wtag *t = wtag_find(s, tag, h);
    if (t)
        return t;
    if (table_reserve(&s->wtags) || !(t = store__alloc(s, wtag_size(tag.len))))
        return NULL;
    t->head = NULL;
    t->len = tag.len;
    store__copy(t->bytes, tag.p, tag.len);
    table_insert(&s->wtags, &t->link, h);
    return t;
}

static void wlock_drop(struct store *s, struct wlock *l)
{
    struct wtag *t = l->tag;
    table_remove(&s->wlocks, &l->link, store__hash(s, wlock_key(l)));
    timeq_remove(&s->wlock_q, &l->tq);
    if (l->tprev)
        l->tprev->tnext = l->tnext;
    else
        t->head = l->tnext;
    if (l->tnext)
        l->tnext->tprev = l->tprev;
    if (!t->head) {
        table_remove(&s->wtags, &t->link, store__hash(s, wtag_term(t)));
        store__release(s, t, wtag_size(t->len));
    }
    store__release(s, l, wlock_size(l->tq.aux));
}

int store_wlock_get(const struct store *s, struct term key, struct term *tag, int64_t *expire_at)
{
    struct wlock *l = wlock_find(s, key, store__hash(s, key));
    if (!l || l->tq.at <= s->now)
        return -ENOENT;
    if (tag)
        *tag = wtag_term(l->tag);
    if (expire_at)
        *expire_at = l->tq.at;
    return 0;
}

/* Everything that can fail happens before the first change, except that
 * a tag group may be created early, which no reader can see. The new lock
 * joins its tag group before an expired lock on the key is dropped, so
 * the group survives even when the expired lock carried the same tag. */
int store_wlock_add(struct store *s, struct term key, struct term tag, int64_t expire_at)
{
    uint64_t h = store__hash(s, key);
    struct wlock *old = wlock_find(s, key, h);
    if (old && old->tq.at > s->now)
        return -EEXIST;
    int rc = table_reserve(&s->wlocks);
    if (!rc)
        rc = timeq_reserve(&s->wlock_q);
    if (rc)
        return rc;
    struct wlock *l = store__alloc(s, wlock_size(key.len));
    struct wtag *t = l ? wtag_get(s, tag) : NULL;
    if (!t) {
        store__release(s, l, wlock_size(key.len));
        return -ENOMEM;
    }
    l->tq.at = expire_at;
    l->tq.aux = key.len;
    store__copy(l->key, key.p, key.len);
    l->tag = t;
    l->tprev = NULL;
    l->tnext = t->head;
    if (t->head)
        t->head->tprev = l;
    t->head = l;
    if (old)
        wlock_drop(s, old);
    table_insert(&s->wlocks, &l->link, h);
    timeq_push(&s->wlock_q, &l->tq);
    return 0;
}

int store_wlock_drop_tag(struct store *s, struct term tag)
{
    struct wtag *t = wtag_find(s, tag, store__hash(s, tag));
    if (!t)
        return -ENOENT;
    int live = 0;
    /* The last drop frees t, so t is not read once its list is down to
     * the lock being dropped. */
    for (struct wlock *l = t->head, *next; l; l = next) {
        next = l->tnext;
        live |= l->tq.at > s->now;
        wlock_drop(s, l);
    }
    return live ? 0 : -ENOENT;
}

size_t store_wlock_count(const struct store *s) { return timeq_count(&s->wlock_q); }

void store__wlock_expire(struct store *s, struct timeq_node *n)
{
    wlock_drop(s, store__of(n, struct wlock, tq));
}

struct wlock_visit {
    store_wlock_fn fn;
    void *ud;
    int64_t now;
};

static int wlock_visit(void *ud, struct table_node *n)
{
    struct wlock_visit *v = ud;
    const struct wlock *l = store__of_const(n, struct wlock, link);
    if (l->tq.at <= v->now)
        return 0;
    return v->fn(v->ud, wlock_key(l), wtag_term(l->tag), l->tq.at);
}

void store_foreach_wlock(const struct store *s, store_wlock_fn fn, void *ud)
{
    struct wlock_visit v = {fn, ud, s->now};
    table_foreach(&s->wlocks, wlock_visit, &v);
}

static int wtag_destroy(void *ud, struct table_node *n)
{
    struct store *s = ud;
    struct wtag *t = store__of(n, struct wtag, link);
    store__release(s, t, wtag_size(t->len));
    return 0;
}

void store__wlocks_destroy(struct store *s)
{
    for (uint32_t i = 0; i < timeq_count(&s->wlock_q); i++) {
        struct wlock *l = store__of(timeq_get(&s->wlock_q, i), struct wlock, tq);
        store__release(s, l, wlock_size(l->tq.aux));
    }
    table_foreach(&s->wtags, wtag_destroy, s);
    timeq_fini(&s->wlock_q);
    table_fini(&s->wlocks);
    table_fini(&s->wtags);
}

