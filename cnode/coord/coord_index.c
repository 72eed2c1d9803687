/*
 * The coordinator's indexes: tasks by id (reply lookup), tasks by deadline
 * (coord_advance, coord_next_deadline) and the ready list (tasks whose
 * phase ended during an advance or a node-down, stepped after the scan so
 * that no callback runs while an index is being walked).
 *
 * The table is open addressing with linear probing and backward-shift
 * deletion, at most half full; ids are sequential, so a Fibonacci multiply
 * spreads them. The heap is binary, ordered by (deadline, id) so equal
 * deadlines pop in start order, and each task remembers its heap slot.
 * coord__reserve grows both before a task is added; nothing else allocates.
 */
#include "coord_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "../core/clock.h"

static size_t home(const struct coord *c, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (c->tab_cap - 1);
}

static void tab_insert(struct coord *c, struct coord__task *t)
{
    size_t i = home(c, t->id);
    while (c->tab[i])
        i = (i + 1) & (c->tab_cap - 1);
    c->tab[i] = t;
}

static int tab_grow(struct coord *c)
{
    size_t ncap = c->tab_cap ? c->tab_cap * 2 : 16;
    struct coord__task **nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return -ENOMEM;
    struct coord__task **old = c->tab;
    size_t ocap = c->tab_cap;
    c->tab = nt;
    c->tab_cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i])
            tab_insert(c, old[i]);
    free(old);
    return 0;
}

int coord__reserve(struct coord *c)
{
    if ((c->tab_n + 1) * 2 > c->tab_cap && tab_grow(c))
        return -ENOMEM;
    if (c->tab_n + 1 > c->heap_cap) { /* heap_n <= tab_n always */
        size_t ncap = c->heap_cap ? c->heap_cap * 2 : 16;
        struct coord__task **nh = realloc(c->heap, ncap * sizeof *nh);
        if (!nh)
            return -ENOMEM;
        c->heap = nh;
        c->heap_cap = ncap;
    }
    return 0;
}

void coord__tab_put(struct coord *c, struct coord__task *t)
{
    assert((c->tab_n + 1) * 2 <= c->tab_cap);
    tab_insert(c, t);
    c->tab_n++;
}

struct coord__task *coord__tab_get(const struct coord *c, uint64_t id)
{
    if (!c->tab_cap)
        return NULL;
    for (size_t i = home(c, id);; i = (i + 1) & (c->tab_cap - 1)) {
        if (!c->tab[i])
            return NULL;
        if (c->tab[i]->id == id)
            return c->tab[i];
    }
}

/* Is k cyclically in (i, j]? Then the entry at j may not move to i. */
static int between(size_t i, size_t k, size_t j)
{
    return i <= j ? (i < k && k <= j) : (i < k || k <= j);
}

void coord__tab_del(struct coord *c, struct coord__task *t)
{
    size_t mask = c->tab_cap - 1, i = home(c, t->id);
    while (c->tab[i] != t) {
        assert(c->tab[i]);
        i = (i + 1) & mask;
    }
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (!c->tab[j])
            break;
        if (!between(i, home(c, c->tab[j]->id), j)) {
            c->tab[i] = c->tab[j];
            i = j;
        }
    }
    c->tab[i] = NULL;
    c->tab_n--;
}

/* ---- deadline heap ---- */

static int before(const struct coord__task *a, const struct coord__task *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->id < b->id);
}

static void heap_place(struct coord *c, size_t i, struct coord__task *t)
{
    c->heap[i] = t;
    t->heap_idx = i;
}

static void sift_up(struct coord *c, size_t i)
{
    struct coord__task *t = c->heap[i];
    while (i > 0 && before(t, c->heap[(i - 1) / 2])) {
        heap_place(c, i, c->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_place(c, i, t);
}

static void sift_down(struct coord *c, size_t i)
{
    struct coord__task *t = c->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const struct coord__task *best = t;
        if (l < c->heap_n && before(c->heap[l], best))
            best = c->heap[m = l];
        if (l + 1 < c->heap_n && before(c->heap[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        heap_place(c, i, c->heap[m]);
        i = m;
    }
    heap_place(c, i, t);
}

void coord__heap_set(struct coord *c, struct coord__task *t, int64_t deadline)
{
    if (deadline == CLOCK_NEVER) {
        coord__heap_del(c, t);
        t->deadline = CLOCK_NEVER;
        return;
    }
    t->deadline = deadline;
    if (t->heap_idx == COORD__NOT_QUEUED) {
        assert(c->heap_n < c->heap_cap);
        heap_place(c, c->heap_n++, t);
    }
    sift_up(c, t->heap_idx);
    sift_down(c, t->heap_idx);
}

void coord__heap_del(struct coord *c, struct coord__task *t)
{
    size_t i = t->heap_idx;
    if (i == COORD__NOT_QUEUED)
        return;
    t->heap_idx = COORD__NOT_QUEUED;
    struct coord__task *last = c->heap[--c->heap_n];
    if (last == t)
        return;
    heap_place(c, i, last);
    sift_up(c, i);
    sift_down(c, last->heap_idx);
}

struct coord__task *coord__heap_top(const struct coord *c)
{
    return c->heap_n ? c->heap[0] : NULL;
}

/* ---- ready list ---- */

void coord__ready_push(struct coord *c, struct coord__task *t)
{
    if (t->on_ready)
        return;
    t->on_ready = true;
    t->rnext = NULL;
    t->rprev = c->ready_tail;
    if (c->ready_tail)
        c->ready_tail->rnext = t;
    else
        c->ready_head = t;
    c->ready_tail = t;
}

void coord__ready_unlink(struct coord *c, struct coord__task *t)
{
    if (!t->on_ready)
        return;
    t->on_ready = false;
    if (t->rprev)
        t->rprev->rnext = t->rnext;
    else
        c->ready_head = t->rnext;
    if (t->rnext)
        t->rnext->rprev = t->rprev;
    else
        c->ready_tail = t->rprev;
    t->rprev = t->rnext = NULL;
}

void coord__index_free(struct coord *c)
{
    free(c->tab);
    free(c->heap);
    c->tab = c->heap = NULL;
    c->tab_cap = c->tab_n = c->heap_n = c->heap_cap = 0;
    c->ready_head = c->ready_tail = NULL;
}
