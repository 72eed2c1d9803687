/* Waiters that leave with their caller; see waitown.h. */
#include "waitown.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"

#define WAIT_INTERNAL 0xffffffffu

struct ref_note {
    uint32_t len;
    uint64_t h;
};

struct waitown {
    struct node *node;
    struct store *store;
    struct loop_timer sweep;
    int armed;
    struct ref_note *refs;
    size_t nrefs;
    uint32_t lens[4];  /* distinct reference lengths noted (encodings vary) */
    size_t nlens;
};

int waitown_ctx(const void *ctx, size_t len, struct term *pid, struct term *tag)
{
    const uint8_t *p = ctx;
    if (len < 8 || get_u32(p) == WAIT_INTERNAL)
        return -EINVAL;
    uint32_t plen = get_u32(p);
    if ((size_t)plen + 8 > len)
        return -EINVAL;
    uint32_t tlen = get_u32(p + 4 + plen);
    if ((size_t)plen + 8 + tlen > len)
        return -EINVAL;
    *pid = (struct term){p + 4, plen};
    *tag = (struct term){p + 8 + plen, tlen};
    return 0;
}

int waitown_tag_has_ref(struct term tag, struct term ref)
{
    return ref.len && tag.len >= ref.len &&
           memcmp(tag.p + tag.len - ref.len, ref.p, ref.len) == 0;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int cmp_note(const void *a, const void *b)
{
    const struct ref_note *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* ---- the caller's node disconnects ---- */

struct by_node {
    const char *peer;
};

static int pred_node(void *ud, const void *ctx, size_t len)
{
    struct by_node *b = ud;
    struct term pid, tag;
    char nd[CTRL_NAME_MAX];
    return waitown_ctx(ctx, len, &pid, &tag) == 0 && ctrl_term_node(pid, nd, sizeof nd) == 0 &&
           strcmp(nd, b->peer) == 0;
}

static void waitown_on_conn(void *ud, struct conn *c, int up)
{
    struct waitown *w = ud;
    if (up || c->loopback || !store_waiter_count(w->store))
        return;
    /* Replaced by a newer connection from the same node: its callers may
     * still be waiting over that one. */
    struct conn *o = conn_find(node_conns(w->node), c->peer);
    if (o && o->state == CONN_UP)
        return;
    struct by_node b = {c->peer};
    size_t n = store_waiter_drop_if(w->store, pred_node, &b);
    if (n)
        log_info("%zu waiters of %s dropped: its connection closed", n, c->peer);
}

/* ---- the caller demonitors ---- */

static int pred_ref(void *ud, const void *ctx, size_t len)
{
    struct waitown *w = ud;
    struct term pid, tag;
    if (waitown_ctx(ctx, len, &pid, &tag))
        return 0;
    for (size_t i = 0; i < w->nlens; i++) {
        if (tag.len < w->lens[i])
            continue;
        struct ref_note k = {w->lens[i], hash_bytes(tag.p + tag.len - w->lens[i], w->lens[i])};
        if (bsearch(&k, w->refs, w->nrefs, sizeof k, cmp_note))
            return 1;
    }
    return 0;
}

/* One pass over the waiters for every demonitor noted. A hash match
 * without a byte compare: a 64-bit collision would drop one waiter, whose
 * caller then times out as with any lost reply. */
static void waitown_sweep_now(struct waitown *w)
{
    if (w->nrefs && store_waiter_count(w->store)) {
        qsort(w->refs, w->nrefs, sizeof *w->refs, cmp_note);
        size_t n = store_waiter_drop_if(w->store, pred_ref, w);
        if (n)
            log_debug("%zu waiters dropped: their callers demonitored", n);
    }
    w->nrefs = 0;
    w->nlens = 0;
}

static void waitown_sweep(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct waitown *w = t->ud;
    w->armed = 0;
    waitown_sweep_now(w);
}

static void waitown_on_demonitor(void *ud, struct conn *c, const struct ctrl *m)
{
    (void)c;
    struct waitown *w = ud;
    if (!store_waiter_count(w->store) || !m->ref.len)
        return;
    size_t i = 0;
    while (i < w->nlens && w->lens[i] != m->ref.len)
        i++;
    if (i == w->nlens) {
        if (w->nlens == sizeof w->lens / sizeof w->lens[0])
            return; /* not a reference encoding gen_server uses */
        w->lens[w->nlens++] = m->ref.len;
    }
    if (w->nrefs == WAITOWN_MAX_REFS)
        waitown_sweep_now(w);
    w->refs[w->nrefs++] = (struct ref_note){m->ref.len, hash_bytes(m->ref.p, m->ref.len)};
    if (!w->armed) {
        struct loop *l = node_loop(w->node);
        w->armed = loop_timer_arm(l, &w->sweep, loop_now(l) + WAITOWN_SWEEP_MS) == 0;
    }
}

struct waitown *waitown_new(struct node *n, struct store *st)
{
    struct waitown *w = calloc(1, sizeof *w);
    if (!w || !(w->refs = malloc(WAITOWN_MAX_REFS * sizeof *w->refs))) {
        free(w);
        return NULL;
    }
    w->node = n;
    w->store = st;
    loop_timer_init(&w->sweep, waitown_sweep, w);
    if (node_subscribe(n, waitown_on_conn, w)) {
        waitown_free(w);
        return NULL;
    }
    node_set_demonitor_handler(n, waitown_on_demonitor, w);
    return w;
}

void waitown_free(struct waitown *w)
{
    if (!w)
        return;
    loop_timer_stop(node_loop(w->node), &w->sweep);
    node_set_demonitor_handler(w->node, NULL, NULL);
    free(w->refs);
    free(w);
}

void waitown_set_store(struct waitown *w, struct store *st)
{
    w->store = st;
}
