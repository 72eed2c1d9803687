/*
 * Handle index: key -> 32-bit handle, open addressing (Robin Hood, linear
 * probing), with incremental resize. The lease table of the store.
 *
 * Model. A slot is 8 bytes: 32 bits of the key's hash and the handle of
 * the entry (0 empty). The keys live in the entries; the index reaches
 * them only through eq(ud, handle, key), and calls it only for slots whose
 * stored hash bits equal the key's, so a probe that passes other keys
 * reads the slot array and nothing else, and a miss touches no entry.
 * Resizing never needs a key either: the stored bits give every slot's
 * home in an array of any size.
 *
 * Home slot: (hash * cap) >> 32, which works for any capacity (growth is
 * by half, so the table is 58..87% full after it has grown once, not
 * 44..87% as with doubling) and keeps slots in hash order, so moving an
 * array to a new one reads and writes both front to back.
 *
 * Robin Hood: an insert takes the slot of any entry closer to its home
 * than the one being inserted, so a lookup can stop at the first entry
 * closer to its home than the probe distance: misses end early. A remove
 * shifts the following displaced entries back one slot (no tombstones).
 *
 * Resizing (Redis dict style, spread over operations): above 7/8 full a
 * second array 1.5 times the size is allocated, and every later insert or
 * remove moves the next 32 old slots into it, front to back. Meanwhile
 * inserts go to the new array, lookups look in both, and the old array
 * only loses entries: a removed old entry leaves a tombstone (handle
 * HIDX_TOMB, hash kept), so the old array's probe sequences stay intact,
 * and probes there skip the slots already moved (all empty or tombstones).
 * The table shrinks the same way below 1/8 full. A resize completes long
 * before the new array could fill: the new array gets at most cap/32
 * inserts meanwhile.
 *
 * Big arrays are mapped memory of their own, and the old array's pages are
 * handed back to the kernel (MADV_DONTNEED) as the move passes them: at
 * ten million leases freeing the 80 MB old array at once would take the
 * kernel tens of milliseconds in one call; this way no call pays for more
 * than about 1 MiB of it.
 *
 * A failed allocation of a new array is not an error while the current
 * one has an empty slot left: hidx_reserve fails only when it is full.
 */
#ifndef LOCKERD_STORE_HIDX_H
#define LOCKERD_STORE_HIDX_H

#include <stddef.h>
#include <stdint.h>

#include "../../ei_glue/term.h"

#define HIDX_TOMB UINT32_MAX /* never a handle */

struct hidx_slot {
    uint32_t hash, h;
};

struct hidx_arr {
    struct hidx_slot *s;
    uint32_t cap, used; /* used: live entries, not tombstones */
    uint32_t moved;     /* slots below were moved out: probes skip them */
    size_t released;    /* bytes at the front given back to the kernel */
};

typedef int (*hidx_eq_fn)(void *ud, uint32_t h, struct term key);

struct hidx {
    struct hidx_arr a[2]; /* a[1].s != NULL while moving from a[0] */
    hidx_eq_fn eq;
    void *ud;
};

void hidx_init(struct hidx *x, hidx_eq_fn eq, void *ud);
void hidx_fini(struct hidx *x); /* NULL ok; entries belong to the caller */

/* The handle whose key equals key (hash: its 32 hash bits), 0 if none. */
uint32_t hidx_find(const struct hidx *x, uint32_t hash, struct term key);
/* Make sure the next hidx_insert cannot fail: 0 or -ENOMEM. */
int hidx_reserve(struct hidx *x);
/* Add h, whose key is not in the index; hidx_reserve must have succeeded. */
void hidx_insert(struct hidx *x, uint32_t hash, uint32_t h);
/* Remove h, which must be in the index under hash. */
void hidx_remove(struct hidx *x, uint32_t hash, uint32_t h);
/* The entry h moved to handle nw (same key). */
void hidx_replace(struct hidx *x, uint32_t hash, uint32_t h, uint32_t nw);

static inline uint32_t hidx_count(const struct hidx *x) { return x->a[0].used + x->a[1].used; }
static inline int hidx_resizing(const struct hidx *x) { return x->a[1].s != NULL; }
size_t hidx_mem_bytes(const struct hidx *x);

#endif
