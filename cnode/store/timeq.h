/*
 * Expiry queue: a 4-ary min-heap of intrusive nodes ordered by `at`.
 *
 * Model. An entry embeds a struct timeq_node; the heap holds pointers to
 * nodes and each node remembers its slot (`pos`), so removing or re-timing
 * an arbitrary entry is O(log n) without a search. Peeking at the earliest
 * is O(1). Nothing is ever scanned.
 *
 * Slots live in fixed blocks of TIMEQ_BLOCK pointers reached through a small
 * block table, not one big array: growing allocates one block (bounded work,
 * never a copy of a million pointers) and the slack is at most one spare
 * block. The block table itself doubles, but it holds one pointer per block.
 *
 * `aux` is 32 bits the embedding entry may use for its own purposes (a key
 * length, a kind): it fills what would otherwise be padding after `pos`.
 */
#ifndef LOCKERD_STORE_TIMEQ_H
#define LOCKERD_STORE_TIMEQ_H

#include <stddef.h>
#include <stdint.h>

struct timeq_node {
    int64_t at;
    uint32_t pos; /* slot index, maintained by the queue */
    uint32_t aux; /* owned by the embedding entry */
};

#define TIMEQ_BLOCK_SHIFT 10
#define TIMEQ_BLOCK (1u << TIMEQ_BLOCK_SHIFT)

struct timeq {
    struct timeq_node ***blk; /* blk[i]: slots [i*TIMEQ_BLOCK, (i+1)*TIMEQ_BLOCK) */
    uint32_t nblk;            /* blocks allocated */
    uint32_t blk_cap;         /* length of blk[] */
    uint32_t n;               /* nodes queued */
};

void timeq_init(struct timeq *q);
/* Free the slot storage; nodes belong to the caller. NULL ok. */
void timeq_fini(struct timeq *q);

/* Make sure the next timeq_push cannot fail: 0 or -ENOMEM (-ERANGE at 2^32-1 nodes). */
int timeq_reserve(struct timeq *q);
/* Queue x, whose `at` is already set; timeq_reserve must have succeeded. */
void timeq_push(struct timeq *q, struct timeq_node *x);
/* Unqueue x, which must be queued. */
void timeq_remove(struct timeq *q, struct timeq_node *x);
/* Change x's time and restore heap order. */
void timeq_update(struct timeq *q, struct timeq_node *x, int64_t at);
/* Put nw in old's slot with old's time (the entry moved in memory). */
void timeq_replace(struct timeq *q, struct timeq_node *old, struct timeq_node *nw);

/* Earliest node, NULL if empty. */
struct timeq_node *timeq_min(const struct timeq *q);
/* Node in slot i < timeq_count(): for visiting all, in no particular order. */
struct timeq_node *timeq_get(const struct timeq *q, uint32_t i);
static inline uint32_t timeq_count(const struct timeq *q) { return q->n; }

/* Keep the nodes for which keep() returns non-zero. The queue never looks
 * at a dropped node again, so keep() may free it; keep() must not call the
 * queue. O(n): the heap is rebuilt once, where removing one by one would
 * cost n log n. */
void timeq_filter(struct timeq *q, int (*keep)(void *ud, struct timeq_node *x), void *ud);

size_t timeq_mem_bytes(const struct timeq *q);

#endif
