/*
 * Robin Hood handle index with incremental resize; see hidx.h.
 *
 * Invariants (per array): entries sit at or after their home, cyclically,
 * with no empty slot in between; along a run of occupied slots the probe
 * distance grows by at most one per slot (Robin Hood order); at least one
 * slot is empty, so every probe ends. Tombstones exist only in a[0] while
 * a[1] exists; a[0] then never gains an entry, so its runs stay as they
 * were when the resize began, except that slots below a[0].moved hold
 * nothing any more (a probe passes over them as over tombstones, without
 * reading them: their pages may be gone). Every handle is in exactly one
 * array.
 */
#include "hidx.h"

#include <sys/mman.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAP 16
#define STEP 32
#define MAP_MIN (256u << 10) /* arrays this big are mapped, not malloc'd */
#define RELEASE_CHUNK (1u << 20)

static size_t arr_bytes(uint32_t cap) { return (size_t)cap * sizeof(struct hidx_slot); }

static struct hidx_slot *slots_new(uint32_t cap)
{
    if (arr_bytes(cap) < MAP_MIN)
        return calloc(cap, sizeof(struct hidx_slot));
    void *p = mmap(NULL, arr_bytes(cap), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void slots_free(struct hidx_arr *a)
{
    if (a->s && arr_bytes(a->cap) < MAP_MIN)
        free(a->s);
    else if (a->s)
        munmap(a->s, arr_bytes(a->cap));
    memset(a, 0, sizeof *a);
}

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
    slots_free(&x->a[0]);
    slots_free(&x->a[1]);
    hidx_init(x, x->eq, x->ud);
}

static uint32_t home(uint32_t hash, uint32_t cap) { return (uint32_t)(((uint64_t)hash * cap) >> 32); }

static uint32_t dist(uint32_t i, uint32_t hash, uint32_t cap)
{
    uint32_t h = home(hash, cap);
    return i >= h ? i - h : i + cap - h;
}

/* First slot of a probe for hash, past the moved ones; *d its distance. */
static uint32_t probe_start(const struct hidx_arr *a, uint32_t hash, uint32_t *d)
{
    uint32_t i = home(hash, a->cap);
    *d = 0;
    if (i < a->moved) {
        *d = a->moved - i;
        i = a->moved;
    }
    return i;
}

/* The slot after i in a probe, past the moved ones, counting distance. */
static uint32_t probe_next(const struct hidx_arr *a, uint32_t i, uint32_t *d)
{
    ++*d;
    if (++i < a->cap)
        return i;
    *d += a->moved;
    return a->moved;
}

static uint32_t arr_find(const struct hidx *x, const struct hidx_arr *a, uint32_t hash,
                         struct term key)
{
    uint32_t d, i = probe_start(a, hash, &d);
    for (;; i = probe_next(a, i, &d)) {
        const struct hidx_slot *s = &a->s[i];
        if (s->h == 0)
            return 0;
        if (s->hash == hash && s->h != HIDX_TOMB && x->eq(x->ud, s->h, key))
            return s->h;
        if (dist(i, s->hash, a->cap) < d)
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

/* Robin Hood insert into an array without tombstones or moved slots. */
static void arr_insert(struct hidx_arr *a, struct hidx_slot cur)
{
    uint32_t cap = a->cap, i = home(cur.hash, cap);
    for (uint32_t d = 0;; d++, i = i + 1 == cap ? 0 : i + 1) {
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
    uint32_t d, i = probe_start(a, hash, &d);
    for (;; i = probe_next(a, i, &d)) {
        const struct hidx_slot *s = &a->s[i];
        if (s->h == h)
            return i;
        if (s->h == 0 || dist(i, s->hash, a->cap) < d)
            return a->cap;
    }
}

/* Remove slot i of an array that is not being moved from, by shifting
 * the displaced entries after it back. */
static void arr_delete(struct hidx_arr *a, uint32_t i)
{
    uint32_t cap = a->cap;
    for (uint32_t j = i + 1 == cap ? 0 : i + 1;; i = j, j = j + 1 == cap ? 0 : j + 1) {
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
    slots_free(&x->a[0]);
    x->a[0] = x->a[1];
    memset(&x->a[1], 0, sizeof x->a[1]);
}

/* Give the kernel the old array's pages the move has passed, a chunk at a
 * time (the pages are never read again; munmap at the end finds them gone). */
static void release_moved(struct hidx_arr *a)
{
    if (arr_bytes(a->cap) < MAP_MIN)
        return;
    size_t upto = arr_bytes(a->moved) / RELEASE_CHUNK * RELEASE_CHUNK;
    if (upto > a->released) {
        madvise((char *)a->s + a->released, upto - a->released, MADV_DONTNEED);
        a->released = upto;
    }
}

/* Move up to n old slots; finishes the resize when a[0] runs out. */
static void move_some(struct hidx *x, uint32_t n)
{
    struct hidx_arr *a = &x->a[0];
    for (; n > 0 && a->used > 0 && a->moved < a->cap; n--, a->moved++) {
        struct hidx_slot *s = &a->s[a->moved];
        if (s->h != 0 && s->h != HIDX_TOMB) {
            arr_insert(&x->a[1], *s);
            a->used--;
        }
    }
    if (a->used == 0)
        resize_done(x);
    else
        release_moved(a);
}

static void step(struct hidx *x)
{
    if (x->a[1].s)
        move_some(x, STEP);
}

/* Best effort: without memory the current array keeps serving. */
static void resize_start(struct hidx *x, uint32_t cap)
{
    struct hidx_slot *s = slots_new(cap);
    if (!s)
        return;
    x->a[1] = (struct hidx_arr){s, cap, 0, 0, 0};
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
        if (!(x->a[0].s = slots_new(MIN_CAP)))
            return -ENOMEM;
        x->a[0].cap = MIN_CAP;
        return 0;
    }
    /* Cannot happen with STEP and the growth factor as they are; if the
     * new array ever fills first, finish moving at once. */
    if (x->a[1].s && over_full(&x->a[1], 1))
        move_some(x, UINT32_MAX);
    if (x->a[1].s)
        return 0;
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
    return arr_bytes(x->a[0].cap) - x->a[0].released + arr_bytes(x->a[1].cap);
}
