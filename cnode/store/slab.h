/*
 * Slab allocator of the lease store: blocks addressed by 32-bit handles.
 *
 * Model. Small blocks (up to SLAB_MAX_SMALL bytes) are cut from 16 KiB
 * pages, one size class per page: 4-byte steps up to 128 bytes, 16-byte
 * steps up to 512. A larger block is one malloc of its own that takes a
 * whole page number. A handle is (page number << 12 | offset in 4-byte
 * units), so it is half a pointer and turns into one with two loads from a
 * small, hot page table; handle 0 is never given out.
 *
 * Why not malloc per block: glibc adds 8 bytes and rounds to 16 (a 25-byte
 * lease takes 48), a handle is half a pointer, and freeing a million
 * blocks is a million O(1) list pushes, not a million chunks for the
 * allocator to coalesce later.
 *
 * A page hands out never-used slots by bumping an offset (untouched slots
 * cost no RSS) and freed ones from its own free list, threaded through the
 * free slots. Pages with room are on their class's `partial` list. A page
 * whose last block is freed goes back to malloc, except that one empty
 * page is kept as a spare for whichever class next needs a page, so that a
 * count hovering at a page boundary does not allocate and free a page each
 * time (one for all classes: an emptied store holds at most 16 KiB of
 * pages). Every operation is O(1).
 *
 * Blocks are 4-byte aligned. Capacity: 2^20 - 2 page numbers (16 GiB of
 * small blocks, or that many large ones); slab_alloc returns 0 beyond.
 */
#ifndef LOCKERD_STORE_SLAB_H
#define LOCKERD_STORE_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define SLAB_PAGE_SHIFT 14
#define SLAB_PAGE (1u << SLAB_PAGE_SHIFT)
#define SLAB_UNIT_SHIFT 2
#define SLAB_OFF_BITS (SLAB_PAGE_SHIFT - SLAB_UNIT_SHIFT)
#define SLAB_MAX_SMALL 512u
#define SLAB_NCLASS 55u

struct slab_page {
    uint8_t *mem;        /* NULL: descriptor unused */
    uint32_t next, prev; /* partial list of the class; next also links unused descriptors */
    uint32_t free;       /* first free slot: unit offset + 1, 0 if none */
    uint32_t bump;       /* small: first never-used unit; large: block bytes */
    uint16_t cls;        /* size class, SLAB_NCLASS for a large block */
    uint16_t live;       /* blocks handed out (small pages) */
};

struct slab {
    struct slab_page *pg;            /* pg[0] unused, so no handle is 0 */
    uint32_t npg, cap;               /* descriptors in use or unused; allocated */
    uint32_t unused;                 /* list of unused descriptors (via next) */
    uint32_t partial[SLAB_NCLASS];   /* pages with room, 0 ends */
    uint8_t *spare;                  /* an empty page's memory, or NULL */
    size_t bytes;                    /* pages (spare included) and large blocks held */
};

void slab_init(struct slab *sl);
/* Free every page and large block; handles become invalid. NULL ok. */
void slab_fini(struct slab *sl);

/* A block of at least n bytes (n > 0); 0 on ENOMEM or when out of handles. */
uint32_t slab_alloc(struct slab *sl, size_t n);
/* h must be a live handle. */
void slab_free(struct slab *sl, uint32_t h);
/* Would a block of n bytes have h's size? (Then h can be reused for it.) */
int slab_same_size(const struct slab *sl, uint32_t h, size_t n);

static inline void *slab_ptr(const struct slab *sl, uint32_t h)
{
    return sl->pg[h >> SLAB_OFF_BITS].mem +
           ((size_t)(h & ((1u << SLAB_OFF_BITS) - 1)) << SLAB_UNIT_SHIFT);
}

/* Bytes of pages, large blocks and the page table, as malloc holds them. */
size_t slab_mem_bytes(const struct slab *sl);

#endif
