/*
 * Chained hash table with incremental rehash; see table.h for the model.
 *
 * Load limits: grow at 2 nodes per bucket, shrink below 1/4. A chained
 * table at load 1..2 costs 4..8 bytes of bucket per node (the chain link
 * lives in the entry), which is what keeps a lease small; a lookup still
 * follows fewer than two links on average. A rehash step moves TABLE_STEP
 * old buckets, so growing from S to 2S buckets completes after S/8 inserts,
 * long before the new array itself fills. A shrink starts as soon as the
 * load drops below 1/4 into an array sized to the count; it too completes
 * within S/8 operations, after which the new array is at most about 1.5
 * full even if every one of them was an insert.
 */
#include "table.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_MIN_SIZE 8
#define TABLE_MAX_LOAD 2
#define TABLE_STEP 8

void table_init(struct table *t, table_key_fn key, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->key = key;
    t->seed = seed;
}

void table_fini(struct table *t)
{
    if (!t)
        return;
    free(t->b[0]);
    free(t->b[1]);
    table_init(t, t->key, t->seed);
}

static struct table_node **bucket(const struct table *t, int i, uint64_t hash)
{
    return &t->b[i][hash & (t->size[i] - 1)];
}

struct table_node *table_find(const struct table *t, struct term key, uint64_t hash)
{
    for (int i = 0; i < 2 && t->b[i]; i++)
        for (struct table_node *n = *bucket(t, i, hash); n; n = n->next)
            if (term_eq(t->key(n), key))
                return n;
    return NULL;
}

static void rehash_done(struct table *t)
{
    free(t->b[0]);
    t->b[0] = t->b[1];
    t->size[0] = t->size[1];
    t->used[0] = t->used[1];
    t->b[1] = NULL;
    t->size[1] = t->used[1] = 0;
    t->rehash = 0;
}

/* Best effort: without memory the old array keeps serving. */
static void resize_start(struct table *t, size_t size)
{
    struct table_node **b = calloc(size, sizeof *b);
    if (!b)
        return;
    t->b[1] = b;
    t->size[1] = size;
    t->used[1] = 0;
    t->rehash = 0;
    if (t->used[0] == 0) /* nothing to move: do not keep two arrays around */
        rehash_done(t);
}

/* Move up to TABLE_STEP old buckets. While used[0] > 0 some bucket at or
 * after `rehash` is non-empty, so the index never runs past the array. */
static void rehash_step(struct table *t)
{
    if (!t->b[1])
        return;
    for (int v = 0; v < TABLE_STEP && t->used[0] > 0; v++) {
        struct table_node *n = t->b[0][t->rehash];
        t->b[0][t->rehash++] = NULL;
        while (n) {
            struct table_node *next = n->next;
            struct term k = t->key(n);
            struct table_node **slot = bucket(t, 1, term_hash_seed(k.p, k.len, t->seed));
            n->next = *slot;
            *slot = n;
            t->used[0]--;
            t->used[1]++;
            n = next;
        }
    }
    if (t->used[0] == 0)
        rehash_done(t);
}

int table_reserve(struct table *t)
{
    if (t->b[0])
        return 0;
    t->b[0] = calloc(TABLE_MIN_SIZE, sizeof *t->b[0]);
    if (!t->b[0])
        return -ENOMEM;
    t->size[0] = TABLE_MIN_SIZE;
    return 0;
}

void table_insert(struct table *t, struct table_node *n, uint64_t hash)
{
    assert(t->b[0]);
    if (!t->b[1] && t->used[0] >= t->size[0] * TABLE_MAX_LOAD)
        resize_start(t, t->size[0] * 2);
    rehash_step(t);
    int i = t->b[1] ? 1 : 0;
    struct table_node **slot = bucket(t, i, hash);
    n->next = *slot;
    *slot = n;
    t->used[i]++;
}

static int chain_unlink(struct table_node **slot, struct table_node *n)
{
    for (; *slot; slot = &(*slot)->next) {
        if (*slot == n) {
            *slot = n->next;
            n->next = NULL;
            return 1;
        }
    }
    return 0;
}

void table_remove(struct table *t, struct table_node *n, uint64_t hash)
{
    if (chain_unlink(bucket(t, 0, hash), n)) {
        t->used[0]--;
    } else {
        int found = t->b[1] && chain_unlink(bucket(t, 1, hash), n);
        assert(found);
        (void)found;
        t->used[1]--;
    }
    rehash_step(t);
    if (!t->b[1] && t->size[0] > TABLE_MIN_SIZE && t->used[0] < t->size[0] / 4) {
        size_t size = TABLE_MIN_SIZE;
        while (size < t->used[0])
            size *= 2;
        resize_start(t, size);
    }
}

void table_replace(struct table *t, struct table_node *old, struct table_node *nw,
                   uint64_t hash)
{
    for (int i = 0; i < 2 && t->b[i]; i++) {
        for (struct table_node **slot = bucket(t, i, hash); *slot; slot = &(*slot)->next) {
            if (*slot == old) {
                nw->next = old->next;
                *slot = nw;
                old->next = NULL;
                return;
            }
        }
    }
    assert(!"table_replace: node not in table");
}

int table_foreach(const struct table *t, int (*fn)(void *ud, struct table_node *n), void *ud)
{
    for (int i = 0; i < 2 && t->b[i]; i++) {
        for (size_t j = 0; j < t->size[i]; j++) {
            struct table_node *next;
            for (struct table_node *n = t->b[i][j]; n; n = next) {
                next = n->next;
                if (fn(ud, n))
                    return 1;
            }
        }
    }
    return 0;
}

size_t table_mem_bytes(const struct table *t)
{
    return (t->size[0] + t->size[1]) * sizeof(struct table_node *);
}
