/*
 * 4-ary heap with index-in-node; see timeq.h for the model.
 *
 * Why 4-ary: half the depth of a binary heap for one more comparison per
 * level, and the four children of a slot are adjacent pointers. Ties keep
 * their order loosely (strict comparisons stop early), which is all expiry
 * needs. Invariant: for every slot i > 0, at(parent(i)) <= at(i), and
 * slot(x->pos) == x for every queued x.
 */
#include "timeq.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TIMEQ_D 4

void timeq_init(struct timeq *q) { memset(q, 0, sizeof *q); }

void timeq_fini(struct timeq *q)
{
    if (!q)
        return;
    for (uint32_t i = 0; i < q->nblk; i++)
        free(q->blk[i]);
    free(q->blk);
    timeq_init(q);
}

static struct timeq_node **slot(const struct timeq *q, uint32_t i)
{
    return &q->blk[i >> TIMEQ_BLOCK_SHIFT][i & (TIMEQ_BLOCK - 1)];
}

static void place(struct timeq *q, uint32_t i, struct timeq_node *x)
{
    *slot(q, i) = x;
    x->pos = i;
}

static void sift_up(struct timeq *q, uint32_t i, struct timeq_node *x)
{
    while (i > 0) {
        uint32_t p = (i - 1) / TIMEQ_D;
        struct timeq_node *pn = *slot(q, p);
        if (pn->at <= x->at)
            break;
        place(q, i, pn);
        i = p;
    }
    place(q, i, x);
}

static void sift_down(struct timeq *q, uint32_t i, struct timeq_node *x)
{
    for (;;) {
        uint64_t first = (uint64_t)i * TIMEQ_D + 1;
        if (first >= q->n)
            break;
        uint32_t c = (uint32_t)first, end = q->n - c > TIMEQ_D ? c + TIMEQ_D : q->n;
        uint32_t best = c;
        struct timeq_node *bn = *slot(q, c);
        for (uint32_t k = c + 1; k < end; k++) {
            struct timeq_node *kn = *slot(q, k);
            if (kn->at < bn->at) {
                best = k;
                bn = kn;
            }
        }
        if (bn->at >= x->at)
            break;
        place(q, i, bn);
        i = best;
    }
    place(q, i, x);
}

/* Re-seat x at slot i in whichever direction the order needs. */
static void resettle(struct timeq *q, uint32_t i, struct timeq_node *x)
{
    if (i > 0 && x->at < (*slot(q, (i - 1) / TIMEQ_D))->at)
        sift_up(q, i, x);
    else
        sift_down(q, i, x);
}

int timeq_reserve(struct timeq *q)
{
    if (q->n < q->nblk * TIMEQ_BLOCK)
        return 0;
    if (q->n == UINT32_MAX || q->nblk >= UINT32_MAX / TIMEQ_BLOCK)
        return -ERANGE;
    if (q->nblk == q->blk_cap) {
        uint32_t cap = q->blk_cap ? q->blk_cap * 2 : 4;
        struct timeq_node ***b = realloc(q->blk, cap * sizeof *b);
        if (!b)
            return -ENOMEM;
        q->blk = b;
        q->blk_cap = cap;
    }
    q->blk[q->nblk] = malloc(TIMEQ_BLOCK * sizeof **q->blk);
    if (!q->blk[q->nblk])
        return -ENOMEM;
    q->nblk++;
    return 0;
}

/* Keep one spare block past the last used one so a queue hovering at a
 * block boundary does not allocate and free on every operation. */
static void trim(struct timeq *q)
{
    uint32_t need = (q->n + TIMEQ_BLOCK - 1) / TIMEQ_BLOCK;
    while (q->nblk > need + 1)
        free(q->blk[--q->nblk]);
}

void timeq_push(struct timeq *q, struct timeq_node *x)
{
    assert(q->n < q->nblk * TIMEQ_BLOCK);
    sift_up(q, q->n++, x);
}

void timeq_remove(struct timeq *q, struct timeq_node *x)
{
    uint32_t i = x->pos;
    assert(i < q->n && *slot(q, i) == x);
    struct timeq_node *last = *slot(q, --q->n);
    if (last != x)
        resettle(q, i, last);
    trim(q);
}

void timeq_update(struct timeq *q, struct timeq_node *x, int64_t at)
{
    assert(x->pos < q->n && *slot(q, x->pos) == x);
    x->at = at;
    resettle(q, x->pos, x);
}

void timeq_replace(struct timeq *q, struct timeq_node *old, struct timeq_node *nw)
{
    assert(old->pos < q->n && *slot(q, old->pos) == old);
    nw->at = old->at;
    place(q, old->pos, nw);
}

struct timeq_node *timeq_min(const struct timeq *q) { return q->n ? *slot(q, 0) : NULL; }

struct timeq_node *timeq_get(const struct timeq *q, uint32_t i)
{
    assert(i < q->n);
    return *slot(q, i);
}

void timeq_filter(struct timeq *q, int (*keep)(void *ud, struct timeq_node *x), void *ud)
{
    uint32_t n = q->n, kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct timeq_node *x = *slot(q, i);
        if (keep(ud, x))
            place(q, kept++, x);
    }
    q->n = kept;
    /* Floyd's bottom-up heap construction: O(kept), not kept log kept. */
    for (uint32_t i = kept / TIMEQ_D + 1; i-- > 0;)
        if (i < kept)
            sift_down(q, i, *slot(q, i));
    trim(q);
}

size_t timeq_mem_bytes(const struct timeq *q)
{
    return (size_t)q->nblk * TIMEQ_BLOCK * sizeof(struct timeq_node *) +
           (size_t)q->blk_cap * sizeof(struct timeq_node **);
}
