/*
 * Slab allocator; see slab.h for the model.
 *
 * Invariants: a small page is on its class's partial list exactly while it
 * has a free or never-used slot; no page has zero live blocks, except a
 * fresh one between page_new and its first block; a descriptor with
 * mem == NULL is on the unused list, except pg[0]. A free slot's first 4 bytes hold the
 * next free slot of its page (unit offset + 1, 0 ends), so the smallest
 * class is 8 bytes and every class is a multiple of 4.
 */
#include "slab.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Under AddressSanitizer, free slots and never-used space are poisoned, so
 * a read past a block's class into a free neighbour, or of a freed block,
 * is reported as malloc'd memory would be. Shadow memory has 8-byte
 * granules and slots are 4-byte aligned: poisoning rounds inwards and
 * unpoisoning outwards, so a live neighbour is never poisoned (a few bytes
 * at the edges then go unchecked). */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
static void poison(void *p, size_t n)
{
    uintptr_t a = ((uintptr_t)p + 7) & ~(uintptr_t)7, e = ((uintptr_t)p + n) & ~(uintptr_t)7;
    if (e > a)
        ASAN_POISON_MEMORY_REGION((void *)a, e - a);
}
static void unpoison(void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)7, e = ((uintptr_t)p + n + 7) & ~(uintptr_t)7;
    ASAN_UNPOISON_MEMORY_REGION((void *)a, e - a);
}
#else
static void poison(void *p, size_t n) { (void)p, (void)n; }
static void unpoison(void *p, size_t n) { (void)p, (void)n; }
#endif

#define UNITS_PER_PAGE (SLAB_PAGE >> SLAB_UNIT_SHIFT)
#define MAX_PAGES ((1u << (32 - SLAB_OFF_BITS)) - 1) /* the last would allow handle ~0 */
#define LARGE SLAB_NCLASS

/* Classes 0..30: 8..128 by 4; 31..54: 144..512 by 16. */
static unsigned size_class(size_t n)
{
    if (n <= 8)
        return 0;
    if (n <= 128)
        return (unsigned)((n - 8 + 3) / 4);
    if (n <= SLAB_MAX_SMALL)
        return 30 + (unsigned)((n - 128 + 15) / 16);
    return LARGE;
}

static uint32_t class_units(unsigned c)
{
    size_t bytes = c <= 30 ? 8 + 4 * (size_t)c : 128 + 16 * (size_t)(c - 30);
    return (uint32_t)(bytes >> SLAB_UNIT_SHIFT);
}

/* What malloc really holds for an n-byte request (glibc-like). */
static size_t chunk(size_t n) { return (n + 8 + 15) & ~(size_t)15; }

void slab_init(struct slab *sl)
{
    memset(sl, 0, sizeof *sl);
}

void slab_fini(struct slab *sl)
{
    if (!sl)
        return;
    for (uint32_t i = 1; i < sl->npg; i++) {
        if (sl->pg[i].mem && sl->pg[i].cls != LARGE)
            unpoison(sl->pg[i].mem, SLAB_PAGE);
        free(sl->pg[i].mem);
    }
    free(sl->pg);
    if (sl->spare)
        unpoison(sl->spare, SLAB_PAGE);
    free(sl->spare);
    slab_init(sl);
}

/* A descriptor for a new page or large block: 0 when out of memory or
 * page numbers. */
static uint32_t desc_get(struct slab *sl)
{
    if (sl->unused) {
        uint32_t p = sl->unused;
        sl->unused = sl->pg[p].next;
        return p;
    }
    uint32_t p = sl->npg ? sl->npg : 1; /* pg[0] stays unused: handle 0 means none */
    if (p >= MAX_PAGES)
        return 0;
    if (p >= sl->cap) {
        uint32_t cap = sl->cap ? sl->cap * 2 : 16;
        if (cap > MAX_PAGES)
            cap = MAX_PAGES;
        struct slab_page *pg = realloc(sl->pg, cap * sizeof *pg);
        if (!pg)
            return 0;
        sl->pg = pg;
        sl->cap = cap;
    }
    sl->npg = p + 1;
    return p;
}

static void desc_put(struct slab *sl, uint32_t p)
{
    memset(&sl->pg[p], 0, sizeof sl->pg[p]);
    sl->pg[p].next = sl->unused;
    sl->unused = p;
}

static void partial_push(struct slab *sl, uint32_t p)
{
    struct slab_page *pg = &sl->pg[p];
    uint32_t head = sl->partial[pg->cls];
    pg->prev = 0;
    pg->next = head;
    if (head)
        sl->pg[head].prev = p;
    sl->partial[pg->cls] = p;
}

static void partial_unlink(struct slab *sl, uint32_t p)
{
    struct slab_page *pg = &sl->pg[p];
    if (pg->prev)
        sl->pg[pg->prev].next = pg->next;
    else
        sl->partial[pg->cls] = pg->next;
    if (pg->next)
        sl->pg[pg->next].prev = pg->prev;
    pg->next = pg->prev = 0;
}

static uint32_t page_new(struct slab *sl, unsigned c)
{
    uint32_t p = desc_get(sl);
    if (!p)
        return 0;
    uint8_t *mem = sl->spare;
    if (mem) {
        sl->spare = NULL;
    } else if ((mem = malloc(SLAB_PAGE)) != NULL) {
        sl->bytes += chunk(SLAB_PAGE);
    } else {
        desc_put(sl, p);
        return 0;
    }
    poison(mem, SLAB_PAGE);
    struct slab_page *pg = &sl->pg[p];
    memset(pg, 0, sizeof *pg);
    pg->mem = mem;
    pg->cls = (uint16_t)c;
    partial_push(sl, p);
    return p;
}

static int page_full(const struct slab_page *pg)
{
    return !pg->free && pg->bump + class_units(pg->cls) > UNITS_PER_PAGE;
}

static uint32_t alloc_large(struct slab *sl, size_t n)
{
    if (n > UINT32_MAX)
        return 0;
    uint32_t p = desc_get(sl);
    if (!p)
        return 0;
    uint8_t *mem = malloc(n);
    if (!mem) {
        desc_put(sl, p);
        return 0;
    }
    struct slab_page *pg = &sl->pg[p];
    memset(pg, 0, sizeof *pg);
    pg->mem = mem;
    pg->cls = LARGE;
    pg->bump = (uint32_t)n;
    sl->bytes += chunk(n);
    return p << SLAB_OFF_BITS;
}

uint32_t slab_alloc(struct slab *sl, size_t n)
{
    assert(n > 0);
    unsigned c = size_class(n);
    if (c == LARGE)
        return alloc_large(sl, n);
    uint32_t p = sl->partial[c];
    if (!p && !(p = page_new(sl, c)))
        return 0;
    struct slab_page *pg = &sl->pg[p];
    uint32_t off;
    if (pg->free) {
        off = pg->free - 1;
        uint8_t *slot = pg->mem + ((size_t)off << SLAB_UNIT_SHIFT);
        unpoison(slot, sizeof pg->free);
        memcpy(&pg->free, slot, sizeof pg->free);
    } else {
        off = pg->bump;
        pg->bump += class_units(c);
    }
    unpoison(pg->mem + ((size_t)off << SLAB_UNIT_SHIFT), (size_t)class_units(c) << SLAB_UNIT_SHIFT);
    pg->live++;
    if (page_full(pg))
        partial_unlink(sl, p);
    return p << SLAB_OFF_BITS | off;
}

/* An empty page: its memory becomes the spare, or goes back to malloc. */
static void page_release(struct slab *sl, uint32_t p)
{
    struct slab_page *pg = &sl->pg[p];
    partial_unlink(sl, p);
    if (!sl->spare) {
        sl->spare = pg->mem;
    } else {
        unpoison(pg->mem, SLAB_PAGE);
        free(pg->mem);
        sl->bytes -= chunk(SLAB_PAGE);
    }
    desc_put(sl, p);
}

void slab_free(struct slab *sl, uint32_t h)
{
    uint32_t p = h >> SLAB_OFF_BITS, off = h & ((1u << SLAB_OFF_BITS) - 1);
    assert(p > 0 && p < sl->npg && sl->pg[p].mem);
    struct slab_page *pg = &sl->pg[p];
    if (pg->cls == LARGE) {
        free(pg->mem);
        sl->bytes -= chunk(pg->bump);
        desc_put(sl, p);
        return;
    }
    assert(pg->live > 0);
    int was_full = page_full(pg);
    uint8_t *slot = pg->mem + ((size_t)off << SLAB_UNIT_SHIFT);
    poison(slot, (size_t)class_units(pg->cls) << SLAB_UNIT_SHIFT);
    unpoison(slot, sizeof pg->free);
    memcpy(slot, &pg->free, sizeof pg->free);
    poison(slot, (size_t)class_units(pg->cls) << SLAB_UNIT_SHIFT);
    pg->free = off + 1;
    if (was_full)
        partial_push(sl, p);
    if (--pg->live == 0)
        page_release(sl, p);
}

int slab_same_size(const struct slab *sl, uint32_t h, size_t n)
{
    const struct slab_page *pg = &sl->pg[h >> SLAB_OFF_BITS];
    if (pg->cls == LARGE)
        return size_class(n) == LARGE && n == pg->bump;
    return size_class(n) == pg->cls;
}

size_t slab_mem_bytes(const struct slab *sl)
{
    return sl->bytes + (sl->cap ? chunk((size_t)sl->cap * sizeof *sl->pg) : 0);
}
