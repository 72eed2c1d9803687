/*
 * Chained hash table of intrusive nodes, with incremental rehash.
 *
 * Model. An entry embeds a struct table_node; the table links and unlinks
 * nodes but never allocates or frees them, only its bucket arrays. A key
 * function maps a node to its key bytes; callers pass the key's seeded hash
 * with each call, so a store operation hashes its key once. Keys are unique
 * unless the caller chooses otherwise (the table does not check).
 *
 * Growth is spread over operations (Redis dict style): when the load
 * reaches TABLE_MAX_LOAD a second bucket array of twice the size is
 * allocated (calloc, so a big one is lazily zeroed pages) and every later
 * insert or remove moves at most TABLE_STEP old buckets into it. While both
 * arrays exist, lookups check both and inserts go to the new one. The table
 * shrinks the same way when the load falls below 1/4.
 *
 * Invariants: every node is in exactly one array; while rehashing, old
 * buckets below `rehash` are empty; a new resize never starts during one
 * (the load may run over TABLE_MAX_LOAD for the few operations a rehash
 * takes). A failed bucket allocation is not an error once the table has
 * buckets: chains just get longer until a later attempt succeeds.
 */
#ifndef LOCKERD_STORE_TABLE_H
#define LOCKERD_STORE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "../../ei_glue/term.h"

struct table_node {
    struct table_node *next;
};

typedef struct term (*table_key_fn)(const struct table_node *n);

struct table {
    struct table_node **b[2]; /* b[1] != NULL while rehashing from b[0] */
    size_t size[2];           /* buckets, powers of two */
    size_t used[2];           /* nodes in each array */
    size_t rehash;            /* next bucket of b[0] to move */
    table_key_fn key;
    uint64_t seed;            /* term_hash_seed seed of the hashes passed in */
};

/* seed: the seed of the term_hash_seed() hashes callers pass (the table
 * rehashes with it when it grows). */
void table_init(struct table *t, table_key_fn key, uint64_t seed);
/* Free the bucket arrays; nodes belong to the caller. NULL ok. */
void table_fini(struct table *t);

struct table_node *table_find(const struct table *t, struct term key, uint64_t hash);
/* Make sure the next table_insert cannot fail: 0 or -ENOMEM. */
int table_reserve(struct table *t);
/* Link n (key hash `hash`); table_reserve must have succeeded first. */
void table_insert(struct table *t, struct table_node *n, uint64_t hash);
/* Unlink n, which must be in the table. */
void table_remove(struct table *t, struct table_node *n, uint64_t hash);
/* Put nw where old is; both must have the same key. */
void table_replace(struct table *t, struct table_node *old, struct table_node *nw,
                   uint64_t hash);

/* Visit every node; fn returns non-zero to stop (then so does this).
 * fn may free the node it is given but must not otherwise touch the table. */
int table_foreach(const struct table *t, int (*fn)(void *ud, struct table_node *n), void *ud);

static inline size_t table_count(const struct table *t) { return t->used[0] + t->used[1]; }
static inline int table_rehashing(const struct table *t) { return t->b[1] != NULL; }
size_t table_mem_bytes(const struct table *t);

#endif
