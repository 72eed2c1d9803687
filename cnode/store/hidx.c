/*
 * Robin Hood handle index with incremental resize; see hidx.h.
 *
 * Invariants (per array): entries sit at or after their home, cyclically,
 * with no empty slot in between; along a run of occupied slots the probe
 * distance grows by at most one per slot (Robin Hood order); at least one
 * slot is empty, so every probe ends. Tombstones exist only in a[0] while
 * a[1] exists; a[0] then never gains an entry, so its runs stay as they
 * were when the resize began. Every handle is in exactly one array.
 */
#include "hidx.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAP 16
#define STEP 32

void hidx_init(struct hidx *x, hidx_eq_fn eq, void *ud)
{
    memset(x, 0, sizeof *x);
    x->eq = eq;
    x->ud = ud;
}

void hidx_fini(struct hidx *x)
{
    if (!x)
        return;
    free(x->a[0].s);
    free(x->a[1].s);
    hidx_init(x, x->eq, x->ud);
}

static uint32_t home(uint32_t hash, uint32_t cap) { return (uint32_t)(((uint64_t)hash * cap) >> 32); }

static uint32_t dist(uint32_t i, uint32_t hash, uint32_t cap)
{
    uint32_t h = home(hash, cap);
    return i >= h ? i - h : i + cap - h;
}

static uint32_t next(uint32_t i, uint32_t cap) { return i + 1 == cap ? 0 : i + 1; }

static uint32_t arr_find(const struct hidx *x, const struct hidx_arr *a, uint32_t hash,
                         struct term key)
{
    uint32_t cap = a->cap, i = home(hash, cap);
    for (uint32_t d = 0;; d++, i = next(i, cap)) {
        const struct hidx_slot *s = &a->s[i];
        if (s->h == 0)
            return 0;
        if (s->hash == hash && s->h != HIDX_TOMB && x->eq(x->ud, s->h, key))
            return s->h;
        if (dist(i, s->hash, cap) < d)
            return 0;
    }
}

uint32_t hidx_find(const struct hidx *x, uint32_t hash, struct term key)
{
    uint32_t h = 0;
    for (int k = 0; k < 2 && !h; k++)
        if (x->a[k].used)
            h = arr_find(x, &x->a[k], hash, key);
    return h;
}

/* Robin Hood insert into an array without tombstones. */
static void arr_insert(struct hidx_arr *a, struct hidx_slot cur)
{
    uint32_t cap = a->cap, i = home(cur.hash, cap);
    for (uint32_t d = 0;; d++, i = next(i, cap)) {
        struct hidx_slot *s = &a->s[i];
        if (s->h == 0) {
            *s = cur;
            break;
        }
        uint32_t sd = dist(i, s->hash, cap);
        if (sd < d) {
            struct hidx_slot t = *s;
            *s = cur;
            cur = t;
            d = sd;
        }
    }
    a->used++;
}

/* Slot of handle h in a, or cap if absent. */
static uint32_t arr_slot(const struct hidx_arr *a, uint32_t hash, uint32_t h)
{
    uint32_t cap = a->cap, i = home(hash, cap);
    for (uint32_t d = 0;; d++, i = next(i, cap)) {
        const struct hidx_slot *s = &a->s[i];
        if (s->h == h)
            return i;
        if (s->h == 0 || dist(i, s->hash, cap) < d)
            return cap;
    }
}

/* Remove slot i by shifting the displaced entries after it back. */
static void arr_delete(struct hidx_arr *a, uint32_t i)
{
    uint32_t cap = a->cap;
    for (uint32_t j = next(i, cap);; i = j, j = next(j, cap)) {
        const struct hidx_slot *s = &a->s[j];
        if (s->h == 0 || dist(j, s->hash, cap) == 0) {
            a->s[i].h = 0;
            a->s[i].hash = 0;
            break;
        }
        a->s[i] = *s;
    }
    a->used--;
}

static void resize_done(struct hidx *x)
{
    free(x->a[0].s);
    x->a[0] = x->a[1];
    memset(&x->a[1], 0, sizeof x->a[1]);
    x->move = 0;
}

/* Move up to n old slots; finishes the resize when a[0] runs out. */
static void move_some(struct hidx *x, uint32_t n)
{
    struct hidx_arr *a = &x->a[0];
    for (; n > 0 && a->used > 0 && x->move < a->cap; n--, x->move++) {
        struct hidx_slot *s = &a->s[x->move];
        if (s->h != 0 && s->h != HIDX_TOMB) {
            arr_insert(&x->a[1], *s);
            s->h = HIDX_TOMB;
            a->used--;
        }
    }
    if (a->used == 0)
        resize_done(x);
}

static void step(struct hidx *x)
{
    if (x->a[1].s)
        move_some(x, STEP);
}

/* Best effort: without memory the current array keeps serving. */
static void resize_start(struct hidx *x, uint32_t cap)
{
    struct hidx_slot *s = calloc(cap, sizeof *s);
    if (!s)
        return;
    x->a[1] = (struct hidx_arr){s, cap, 0};
    x->move = 0;
    if (x->a[0].used == 0)
        resize_done(x);
}

static int over_full(const struct hidx_arr *a, uint32_t extra)
{
    return (uint64_t)(a->used + extra) * 8 > (uint64_t)a->cap * 7;
}

int hidx_reserve(struct hidx *x)
{
    if (!x->a[0].s) {
        if (!(x->a[0].s = calloc(MIN_CAP, sizeof *x->a[0].s)))
            return -ENOMEM;
        x->a[0].cap = MIN_CAP;
        return 0;
    }
    if (x->a[1].s) {
        /* Cannot happen with STEP and the growth factor as they are; if
         * the new array ever fills first, finish moving at once. */
        if (over_full(&x->a[1], 1))
            move_some(x, UINT32_MAX);
        return 0;
    }
    struct hidx_arr *a = &x->a[0];
    if (over_full(a, 1) && a->cap <= UINT32_MAX / 3 * 2)
        resize_start(x, a->cap + a->cap / 2);
    if (x->a[1].s || a->used + 2 <= a->cap)
        return 0;
    return -ENOMEM;
}

void hidx_insert(struct hidx *x, uint32_t hash, uint32_t h)
{
    assert(x->a[0].s && h != 0 && h != HIDX_TOMB);
    step(x);
    struct hidx_arr *a = x->a[1].s ? &x->a[1] : &x->a[0];
    assert(a->used + 1 < a->cap);
    arr_insert(a, (struct hidx_slot){hash, h});
}

void hidx_remove(struct hidx *x, uint32_t hash, uint32_t h)
{
    struct hidx_arr *a = &x->a[0];
    uint32_t i = a->used ? arr_slot(a, hash, h) : a->cap;
    if (i < a->cap && x->a[1].s) {
        a->s[i].h = HIDX_TOMB;
        a->used--;
    } else if (i < a->cap) {
        arr_delete(a, i);
    } else {
        a = &x->a[1];
        i = a->s ? arr_slot(a, hash, h) : 0;
        assert(a->s && i < a->cap);
        arr_delete(a, i);
    }
    step(x);
    a = &x->a[0];
    if (!x->a[1].s && a->cap > MIN_CAP && (uint64_t)a->used * 8 < a->cap) {
        uint32_t cap = a->used * 2 > MIN_CAP ? a->used * 2 : MIN_CAP;
        resize_start(x, cap);
    }
}

void hidx_replace(struct hidx *x, uint32_t hash, uint32_t h, uint32_t nw)
{
    assert(nw != 0 && nw != HIDX_TOMB);
    for (int k = 0; k < 2; k++) {
        struct hidx_arr *a = &x->a[k];
        uint32_t i = a->used ? arr_slot(a, hash, h) : a->cap;
        if (i < a->cap) {
            a->s[i].h = nw;
            return;
        }
    }
    assert(!"hidx_replace: handle not in index");
}

size_t hidx_mem_bytes(const struct hidx *x)
{
    return ((size_t)x->a[0].cap + x->a[1].cap) * sizeof(struct hidx_slot);
}
