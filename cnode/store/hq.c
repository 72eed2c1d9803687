/*
 * 4-ary heap of (time, handle) slots; see hq.h for the model.
 *
 * Invariant: for every slot i > 0, at(parent(i)) <= at(i), and the owner
 * of every queued handle was last told (by moved) the slot it is in. Sifts
 * move the displaced pair along and write it once where it settles, so a
 * sift of depth d calls moved d + 1 times, once per pair that changed slot.
 */
#include "hq.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define D 4

void hq_init(struct hq *q, hq_moved_fn moved, void *ud)
{
    memset(q, 0, sizeof *q);
    q->moved = moved;
    q->ud = ud;
}

void hq_fini(struct hq *q)
{
    if (!q)
        return;
    for (uint32_t i = 0; i < q->nblk; i++)
        free(q->blk[i]);
    free(q->blk);
    hq_init(q, q->moved, q->ud);
}

static void place(struct hq *q, uint32_t i, struct hq_slot x)
{
    *hq__slot(q, i) = x;
    q->moved(q->ud, x.h, i);
}

static void sift_up(struct hq *q, uint32_t i, struct hq_slot x)
{
    int64_t at = hq__at(&x);
    while (i > 0) {
        uint32_t p = (i - 1) / D;
        const struct hq_slot *ps = hq__slot(q, p);
        if (hq__at(ps) <= at)
            break;
        place(q, i, *ps);
        i = p;
    }
    place(q, i, x);
}

static void sift_down(struct hq *q, uint32_t i, struct hq_slot x)
{
    int64_t at = hq__at(&x);
    for (;;) {
        uint64_t first = (uint64_t)i * D + 1;
        if (first >= q->n)
            break;
        uint32_t c = (uint32_t)first, end = q->n - c > D ? c + D : q->n;
        uint32_t best = c;
        int64_t bat = hq__at(hq__slot(q, c));
        for (uint32_t k = c + 1; k < end; k++) {
            int64_t kat = hq__at(hq__slot(q, k));
            if (kat < bat) {
                best = k;
                bat = kat;
            }
        }
        if (bat >= at)
            break;
        place(q, i, *hq__slot(q, best));
        i = best;
    }
    place(q, i, x);
}

static void resettle(struct hq *q, uint32_t i, struct hq_slot x)
{
    if (i > 0 && hq__at(&x) < hq_at(q, (i - 1) / D))
        sift_up(q, i, x);
    else
        sift_down(q, i, x);
}

int hq_reserve(struct hq *q)
{
    if (q->n < q->nblk * HQ_BLOCK)
        return 0;
    if (q->n == UINT32_MAX || q->nblk >= UINT32_MAX / HQ_BLOCK)
        return -ERANGE;
    if (q->nblk == q->blk_cap) {
        uint32_t cap = q->blk_cap ? q->blk_cap * 2 : 4;
        struct hq_slot **b = realloc(q->blk, cap * sizeof *b);
        if (!b)
            return -ENOMEM;
        q->blk = b;
        q->blk_cap = cap;
    }
    q->blk[q->nblk] = malloc(HQ_BLOCK * sizeof **q->blk);
    if (!q->blk[q->nblk])
        return -ENOMEM;
    q->nblk++;
    return 0;
}

/* One spare block past the last used one, so a count hovering at a block
 * boundary does not allocate and free on every operation. */
static void trim(struct hq *q)
{
    uint32_t need = (q->n + HQ_BLOCK - 1) / HQ_BLOCK;
    while (q->nblk > need + 1)
        free(q->blk[--q->nblk]);
}

void hq_push(struct hq *q, int64_t at, uint32_t h)
{
    assert(q->n < q->nblk * HQ_BLOCK);
    struct hq_slot x = {(uint32_t)(uint64_t)at, (uint32_t)((uint64_t)at >> 32), h};
    sift_up(q, q->n++, x);
}

void hq_remove(struct hq *q, uint32_t pos)
{
    assert(pos < q->n);
    struct hq_slot last = *hq__slot(q, --q->n);
    if (pos != q->n)
        resettle(q, pos, last);
    trim(q);
}

void hq_update(struct hq *q, uint32_t pos, int64_t at)
{
    assert(pos < q->n);
    struct hq_slot x = *hq__slot(q, pos);
    x.at_lo = (uint32_t)(uint64_t)at;
    x.at_hi = (uint32_t)((uint64_t)at >> 32);
    resettle(q, pos, x);
}

void hq_set_handle(struct hq *q, uint32_t pos, uint32_t h)
{
    assert(pos < q->n);
    hq__slot(q, pos)->h = h;
}

size_t hq_mem_bytes(const struct hq *q)
{
    return (size_t)q->nblk * HQ_BLOCK * sizeof(struct hq_slot) +
           (size_t)q->blk_cap * sizeof(struct hq_slot *);
}
