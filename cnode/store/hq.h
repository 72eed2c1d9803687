/*
 * Handle queue: a 4-ary min-heap of (time, 32-bit handle) pairs, for the
 * lease expiries.
 *
 * Model. Unlike timeq (intrusive nodes reached by pointer), a slot holds
 * the time itself beside the handle, 12 bytes, so ordering the heap reads
 * only the heap's own memory: a sift compares neighbouring slots instead
 * of chasing a pointer per comparison into entries scattered over the
 * heap. The entry still needs its slot number (to be removed or re-timed
 * in O(log n) without a search): each time a pair lands in a slot the
 * queue calls moved(ud, handle, slot), and the owner stores it.
 *
 * Slots live in fixed blocks of HQ_BLOCK reached through a block table, so
 * growing allocates one block (never a copy of a million slots) and the
 * slack is at most one spare block, as in timeq.
 *
 * Times are full int64 milliseconds (CLOCK_NEVER included): a lease's
 * expiry is exact whatever the clock's origin or the lease length.
 */
#ifndef LOCKERD_STORE_HQ_H
#define LOCKERD_STORE_HQ_H

#include <stddef.h>
#include <stdint.h>

#define HQ_BLOCK_SHIFT 10
#define HQ_BLOCK (1u << HQ_BLOCK_SHIFT)

/* The time split in two 32-bit halves keeps the slot at 12 bytes, 4-aligned. */
struct hq_slot {
    uint32_t at_lo, at_hi, h;
};

typedef void (*hq_moved_fn)(void *ud, uint32_t h, uint32_t pos);

struct hq {
    struct hq_slot **blk;
    uint32_t nblk, blk_cap, n;
    hq_moved_fn moved;
    void *ud;
};

void hq_init(struct hq *q, hq_moved_fn moved, void *ud);
/* Free the slots; NULL ok. */
void hq_fini(struct hq *q);

/* Make sure the next hq_push cannot fail: 0, -ENOMEM or -ERANGE. */
int hq_reserve(struct hq *q);
/* Queue (at, h); hq_reserve must have succeeded. Calls moved(h, slot). */
void hq_push(struct hq *q, int64_t at, uint32_t h);
/* Remove the pair in slot pos (< hq_count). */
void hq_remove(struct hq *q, uint32_t pos);
/* Give the pair in slot pos a new time and restore heap order. */
void hq_update(struct hq *q, uint32_t pos, int64_t at);
/* The entry of slot pos now has handle h (it moved); moved() is not called. */
void hq_set_handle(struct hq *q, uint32_t pos, uint32_t h);

static inline struct hq_slot *hq__slot(const struct hq *q, uint32_t i)
{
    return &q->blk[i >> HQ_BLOCK_SHIFT][i & (HQ_BLOCK - 1)];
}

static inline int64_t hq__at(const struct hq_slot *s)
{
    return (int64_t)((uint64_t)s->at_hi << 32 | s->at_lo);
}

/* Time and handle of slot pos < hq_count; slot 0 is the earliest. */
static inline int64_t hq_at(const struct hq *q, uint32_t pos) { return hq__at(hq__slot(q, pos)); }
static inline uint32_t hq_handle(const struct hq *q, uint32_t pos) { return hq__slot(q, pos)->h; }
static inline uint32_t hq_count(const struct hq *q) { return q->n; }

size_t hq_mem_bytes(const struct hq *q);

#endif
