/*
 * Waiters: processes blocked in wait_for / wait_for_release on a key.
 *
 * Model. A waiter is one allocation {deadline, kind, ctx bytes}, queued by
 * deadline in s->waiter_q and linked, in arrival order, into the list of
 * its kind in the key's group (struct wkey, found through s->wkeys). Two
 * lists per key, so a put never walks release waiters and waking the N
 * waiters of one kind is O(N). Waiters are woken in arrival order.
 *
 * Time. A waiter whose deadline is <= now is dead even before
 * store_advance reclaims it: nothing wakes it. An expiry is an event at the
 * lease's expire_at, not at the moment store_advance gets to it, so it
 * wakes every release waiter whose deadline is later than expire_at. Since
 * store_advance reclaims in deadline order, such a waiter is always still
 * there when its key's expired lease is reclaimed, however far behind the
 * drain runs.
 */
#include "store_int.h"

#include <errno.h>

struct wkey;

struct waiter {
    struct timeq_node tq; /* at = deadline, aux = kind */
    struct wkey *wk;
    struct waiter *next, *prev; /* same key and kind, arrival order */
    uint32_t ctxlen;
    uint8_t ctx[];
};

struct wkey {
    struct table_node link;           /* chain in s->wkeys */
    struct waiter *head[2], *tail[2]; /* index: kind - 1 */
    uint32_t klen;
    uint8_t key[];
};

static struct term wkey_key(const struct table_node *n)
{
    const struct wkey *wk = store__of_const(n, struct wkey, link);
    return (struct term){wk->key, wk->klen};
}

int store__waiters_init(struct store *s)
{
    table_init(&s->wkeys, wkey_key, s->seed);
    timeq_init(&s->waiter_q);
    return table_reserve(&s->wkeys);
}

static size_t wkey_size(uint32_t klen) { return offsetof(struct wkey, key) + klen; }
static size_t waiter_size(uint32_t ctxlen) { return offsetof(struct waiter, ctx) + ctxlen; }

static struct wkey *wkey_find(const struct store *s, struct term key, uint64_t h)
{
    struct table_node *n = table_find(&s->wkeys, key, h);
    return n ? store__of(n, struct wkey, link) : NULL;
}

static struct wkey *wkey_new(struct store *s, struct term key, uint64_t h)
{
    if (table_reserve(&s->wkeys))
        return NULL;
    struct wkey *wk = store__alloc(s, wkey_size(key.len));
    if (!wk)
        return NULL;
    wk->head[0] = wk->head[1] = wk->tail[0] = wk->tail[1] = NULL;
    wk->klen = key.len;
    store__copy(wk->key, key.p, key.len);
    table_insert(&s->wkeys, &wk->link, h);
    return wk;
}

static void wkey_free(struct store *s, struct wkey *wk, uint64_t h)
{
    table_remove(&s->wkeys, &wk->link, h);
    store__release(s, wk, wkey_size(wk->klen));
}

static void wkey_free_if_empty(struct store *s, struct wkey *wk)
{
    if (!wk->head[0] && !wk->head[1])
        wkey_free(s, wk, store__hash(s, wkey_key(&wk->link)));
}

static void waiter_unlink(struct waiter *w)
{
    struct wkey *wk = w->wk;
    int k = (int)w->tq.aux - 1;
    if (w->prev)
        w->prev->next = w->next;
    else
        wk->head[k] = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        wk->tail[k] = w->prev;
}

int store_waiter_add(struct store *s, struct term key, enum store_wait_kind kind,
                     int64_t deadline, const void *ctx, size_t ctxlen)
{
    if (kind != STORE_WAIT_FOR && kind != STORE_WAIT_RELEASE)
        return -EINVAL;
    if (ctxlen > UINT32_MAX)
        return -EINVAL;
    int rc = timeq_reserve(&s->waiter_q);
    if (rc)
        return rc;
    struct waiter *w = store__alloc(s, waiter_size((uint32_t)ctxlen));
    if (!w)
        return -ENOMEM;
    uint64_t h = store__hash(s, key);
    struct wkey *wk = wkey_find(s, key, h);
    if (!wk && !(wk = wkey_new(s, key, h))) {
        store__release(s, w, waiter_size((uint32_t)ctxlen));
        return -ENOMEM;
    }
    int k = (int)kind - 1;
    w->tq.at = deadline;
    w->tq.aux = (uint32_t)kind;
    w->wk = wk;
    w->ctxlen = (uint32_t)ctxlen;
    store__copy(w->ctx, ctx, ctxlen);
    w->next = NULL;
    w->prev = wk->tail[k];
    if (w->prev)
        w->prev->next = w;
    else
        wk->head[k] = w;
    wk->tail[k] = w;
    timeq_push(&s->waiter_q, &w->tq);
    return 0;
}

size_t store_waiter_count(const struct store *s) { return timeq_count(&s->waiter_q); }

void store__wake(struct store *s, struct term key, uint64_t hash, enum store_wait_kind kind,
                 int64_t since, struct term value)
{
    struct wkey *wk = wkey_find(s, key, hash);
    int k = (int)kind - 1;
    if (!wk || !wk->head[k])
        return;
    /* Detach the whole list first: the group may go away, and the
     * callbacks then run over a list nobody else can reach. */
    struct waiter *w = wk->head[k];
    wk->head[k] = wk->tail[k] = NULL;
    if (!wk->head[1 - k])
        wkey_free(s, wk, hash);
    while (w) {
        struct waiter *next = w->next;
        timeq_remove(&s->waiter_q, &w->tq);
        if (w->tq.at > since && s->cfg.on_wake)
            s->cfg.on_wake(s->cfg.ud, kind, w->ctx, w->ctxlen, value);
        store__release(s, w, waiter_size(w->ctxlen));
        w = next;
    }
}

void store__waiter_expire(struct store *s, struct timeq_node *n)
{
    struct waiter *w = store__of(n, struct waiter, tq);
    timeq_remove(&s->waiter_q, n);
    waiter_unlink(w);
    wkey_free_if_empty(s, w->wk);
    store__release(s, w, waiter_size(w->ctxlen));
}

struct drop_ctx {
    struct store *s;
    int (*pred)(void *ud, const void *ctx, size_t ctxlen);
    void *ud;
    size_t dropped;
};

static int drop_keep(void *ud, struct timeq_node *n)
{
    struct drop_ctx *d = ud;
    struct waiter *w = store__of(n, struct waiter, tq);
    if (!d->pred(d->ud, w->ctx, w->ctxlen))
        return 1;
    waiter_unlink(w);
    wkey_free_if_empty(d->s, w->wk);
    store__release(d->s, w, waiter_size(w->ctxlen));
    d->dropped++;
    return 0;
}

/* One pass over the deadline queue (it lists every waiter) and one heap
 * rebuild: used when a node goes down and all its waiters go at once. */
size_t store_waiter_drop_if(struct store *s,
                            int (*pred)(void *ud, const void *ctx, size_t ctxlen), void *ud)
{
    struct drop_ctx d = {s, pred, ud, 0};
    timeq_filter(&s->waiter_q, drop_keep, &d);
    return d.dropped;
}

static int wkey_destroy(void *ud, struct table_node *n)
{
    struct store *s = ud;
    struct wkey *wk = store__of(n, struct wkey, link);
    store__release(s, wk, wkey_size(wk->klen));
    return 0;
}

void store__waiters_destroy(struct store *s)
{
    for (uint32_t i = 0; i < timeq_count(&s->waiter_q); i++) {
        struct waiter *w = store__of(timeq_get(&s->waiter_q, i), struct waiter, tq);
        store__release(s, w, waiter_size(w->ctxlen));
    }
    table_foreach(&s->wkeys, wkey_destroy, s);
    timeq_fini(&s->waiter_q);
    table_fini(&s->wkeys);
}
