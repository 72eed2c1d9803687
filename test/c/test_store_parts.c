/*
 * The containers that keep leases small (cnode/store): the slab of
 * handle-addressed blocks, the Robin Hood handle index with incremental
 * resize, and the heap of (time, handle) pairs. Pid packing and the
 * store's round trip of values are in test_pidc.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cnode/core/clock.h"
#include "cnode/store/hidx.h"
#include "cnode/store/hq.h"
#include "cnode/store/slab.h"

/* ---- slab ---- */

struct blk {
    uint32_t h;
    uint32_t n;
    uint8_t fill;
};

static void blk_fill(struct slab *sl, struct blk *b)
{
    memset(slab_ptr(sl, b->h), b->fill, b->n);
}

static void blk_check(struct slab *sl, const struct blk *b)
{
    const uint8_t *p = slab_ptr(sl, b->h);
    for (uint32_t i = 0; i < b->n; i++)
        if (p[i] != b->fill)
            fail_msg("block %u of %u bytes: byte %u is %u, not %u", b->h, b->n, i, p[i], b->fill);
}

static void test_slab_blocks(void **state)
{
    (void)state;
    enum { N = 60000 };
    struct slab sl;
    slab_init(&sl);
    size_t empty = slab_mem_bytes(&sl);
    struct blk *b = calloc(N, sizeof *b);
    assert_non_null(b);
    srand(11);
    for (int round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < N; i++) {
            if (b[i].h && rand() % 2) {
                blk_check(&sl, &b[i]);
                slab_free(&sl, b[i].h);
                b[i].h = 0;
            }
            if (!b[i].h) {
                /* Mostly small sizes of every class, a few large blocks. */
                b[i].n = i % 97 == 0 ? 513 + (uint32_t)rand() % 3000 : 1 + (uint32_t)rand() % 512;
                b[i].fill = (uint8_t)rand();
                b[i].h = slab_alloc(&sl, b[i].n);
                assert_true(b[i].h != 0 && b[i].h != UINT32_MAX);
                assert_true(((uintptr_t)slab_ptr(&sl, b[i].h) & 3) == 0);
                assert_true(slab_same_size(&sl, b[i].h, b[i].n));
                blk_fill(&sl, &b[i]);
            }
        }
        for (uint32_t i = 0; i < N; i++)
            blk_check(&sl, &b[i]);
    }
    /* Classes: 8..128 by 4, 144..512 by 16; a large block is its own size. */
    uint32_t h = slab_alloc(&sl, 25);
    assert_true(slab_same_size(&sl, h, 28));
    assert_false(slab_same_size(&sl, h, 29));
    assert_false(slab_same_size(&sl, h, 24));
    slab_free(&sl, h);
    h = slab_alloc(&sl, 130);
    assert_true(slab_same_size(&sl, h, 144));
    assert_false(slab_same_size(&sl, h, 128));
    slab_free(&sl, h);
    h = slab_alloc(&sl, 1000);
    assert_true(slab_same_size(&sl, h, 1000));
    assert_false(slab_same_size(&sl, h, 1001));
    slab_free(&sl, h);
    size_t full = slab_mem_bytes(&sl);
    for (uint32_t i = 0; i < N; i++)
        slab_free(&sl, b[i].h);
    /* Pages go back as they empty: one spare kept. */
    size_t left = slab_mem_bytes(&sl);
    assert_true(left <= empty + SLAB_PAGE + 64 + sl.cap * sizeof *sl.pg + 64);
    assert_true(left < full / 4);
    slab_fini(&sl);
    free(b);
}

/* Fill pages of one class, free all but one block per page, refill: the
 * freed slots are reused before any new page. */
static void test_slab_reuse(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct slab sl;
    slab_init(&sl);
    uint32_t *h = calloc(N, sizeof *h);
    assert_non_null(h);
    for (uint32_t i = 0; i < N; i++)
        assert_true((h[i] = slab_alloc(&sl, 24)) != 0);
    size_t peak = slab_mem_bytes(&sl);
    for (uint32_t i = 0; i < N; i++)
        if (i % 100) {
            slab_free(&sl, h[i]);
            h[i] = 0;
        }
    assert_int_equal(slab_mem_bytes(&sl), peak); /* every page still has a block */
    for (uint32_t i = 0; i < N; i++)
        if (!h[i])
            assert_true((h[i] = slab_alloc(&sl, 21)) != 0);
    assert_int_equal(slab_mem_bytes(&sl), peak);
    for (uint32_t i = 0; i < N; i++)
        for (uint32_t j = i + 1; j < i + 3 && j < N; j++)
            assert_true(h[i] != h[j]);
    slab_fini(&sl);
    free(h);
}

/* ---- hidx ---- */

/* Entries for the index test: handle i + 1 has key keys[i]. A hash of
 * 0..15 only (collide) makes every probe compare many equal hash bits. */
struct hx {
    uint32_t *keys;
    int collide;
    uint32_t n;
};

static int hx_eq(void *ud, uint32_t h, struct term key)
{
    struct hx *x = ud;
    return h <= x->n && key.len == 4 && memcmp(&x->keys[h - 1], key.p, 4) == 0;
}

static uint32_t hx_hash(const struct hx *x, uint32_t k)
{
    uint32_t h = (uint32_t)(term_hash(&k, 4) >> 32);
    return x->collide ? h & 15 : h;
}

static struct term hx_key(const uint32_t *k) { return (struct term){(const uint8_t *)k, 4}; }

static void hidx_run(int collide, uint32_t n)
{
    struct hx x = {calloc(n, sizeof(uint32_t)), collide, n};
    uint8_t *in = calloc(n, 1);
    assert_non_null(x.keys);
    assert_non_null(in);
    struct hidx ix;
    hidx_init(&ix, hx_eq, &x);
    int resizes = 0, was = 0;
    for (uint32_t i = 0; i < n; i++) {
        x.keys[i] = i * 2654435761u + 1;
        assert_int_equal(hidx_reserve(&ix), 0);
        hidx_insert(&ix, hx_hash(&x, x.keys[i]), i + 1);
        in[i] = 1;
        uint32_t j = (i * 7u) % (i + 1);
        assert_int_equal(hidx_find(&ix, hx_hash(&x, x.keys[j]), hx_key(&x.keys[j])), j + 1);
        resizes += hidx_resizing(&ix) && !was;
        was = hidx_resizing(&ix);
    }
    assert_int_equal(hidx_count(&ix), n);
    if (!collide)
        assert_true(resizes >= 10);
    /* Random removes, re-inserts and moves while resizes (down, then up)
     * run; every key checked against `in` afterwards. */
    srand(5);
    for (uint32_t r = 0; r < 3 * n; r++) {
        uint32_t i = (uint32_t)rand() % n;
        uint32_t hh = hx_hash(&x, x.keys[i]);
        if (in[i] && r < 2 * n) {
            hidx_remove(&ix, hh, i + 1);
            in[i] = 0;
        } else if (!in[i]) {
            assert_int_equal(hidx_find(&ix, hh, hx_key(&x.keys[i])), 0);
            assert_int_equal(hidx_reserve(&ix), 0);
            hidx_insert(&ix, hh, i + 1);
            in[i] = 1;
        } else {
            /* Same key, "moved" handle: swap it out and back. */
            hidx_replace(&ix, hh, i + 1, UINT32_MAX - 1);
            assert_int_equal(hidx_find(&ix, hh, hx_key(&x.keys[i])), 0); /* eq says no */
            hidx_replace(&ix, hh, UINT32_MAX - 1, i + 1);
        }
    }
    uint32_t live = 0;
    for (uint32_t i = 0; i < n; i++) {
        live += in[i];
        assert_int_equal(hidx_find(&ix, hx_hash(&x, x.keys[i]), hx_key(&x.keys[i])),
                         in[i] ? i + 1 : 0);
    }
    assert_int_equal(hidx_count(&ix), live);
    uint32_t miss = 0;
    assert_int_equal(hidx_find(&ix, hx_hash(&x, miss), hx_key(&miss)), 0);
    size_t big = hidx_mem_bytes(&ix);
    uint32_t last = n;
    while (last > 0 && !in[last - 1])
        last--;
    /* Remove all, every remaining one still found while the index shrinks. */
    for (uint32_t i = 0; i < n; i++) {
        if (!in[i])
            continue;
        hidx_remove(&ix, hx_hash(&x, x.keys[i]), i + 1);
        in[i] = 0;
        if (i + 1 < last)
            assert_int_equal(hidx_find(&ix, hx_hash(&x, x.keys[last - 1]), hx_key(&x.keys[last - 1])),
                             last);
        uint32_t j = (i * 31u) % n;
        assert_int_equal(hidx_find(&ix, hx_hash(&x, x.keys[j]), hx_key(&x.keys[j])), in[j] ? j + 1 : 0);
    }
    assert_int_equal(hidx_count(&ix), 0);
    if (!collide)
        assert_true(hidx_mem_bytes(&ix) < big / 50);
    hidx_fini(&ix);
    free(x.keys);
    free(in);
}

static void test_hidx_random(void **state)
{
    (void)state;
    hidx_run(0, 200000);
}

static void test_hidx_colliding_hashes(void **state)
{
    (void)state;
    hidx_run(1, 3000);
}

/* Load stays within 7/8 and, once grown, above 1/2. */
static void test_hidx_load(void **state)
{
    (void)state;
    struct hx x = {calloc(300000, sizeof(uint32_t)), 0, 300000};
    assert_non_null(x.keys);
    struct hidx ix;
    hidx_init(&ix, hx_eq, &x);
    for (uint32_t i = 0; i < 300000; i++) {
        x.keys[i] = i;
        assert_int_equal(hidx_reserve(&ix), 0);
        hidx_insert(&ix, hx_hash(&x, i), i + 1);
        if (!hidx_resizing(&ix) && i > 1000) {
            double load = (double)hidx_count(&ix) / ix.a[0].cap;
            assert_true(load <= 0.876 && load > 0.5);
        }
    }
    printf("hidx: 300000 keys, %.1f bytes per key\n", (double)hidx_mem_bytes(&ix) / 300000);
    hidx_fini(&ix);
    free(x.keys);
}

/* ---- hq ---- */

struct hqt {
    uint32_t pos[5000];
    int64_t at[5000];
    int queued[5000];
};

static void hqt_moved(void *ud, uint32_t h, uint32_t pos)
{
    struct hqt *t = ud;
    t->pos[h] = pos;
}

static void hqt_check(const struct hq *q, const struct hqt *t)
{
    for (uint32_t i = 0; i < hq_count(q); i++) {
        uint32_t h = hq_handle(q, i);
        assert_int_equal(t->pos[h], i);
        assert_int_equal(hq_at(q, i), t->at[h]);
        if (i > 0)
            assert_true(hq_at(q, (i - 1) / 4) <= hq_at(q, i));
    }
}

static void test_hq_order(void **state)
{
    (void)state;
    enum { N = 5000 };
    /* Times across the whole int64 range: the split halves must order
     * exactly as int64 does, sign and carry included. */
    static const int64_t special[] = {INT64_MIN, INT64_MIN + 1, -4294967296LL, -4294967295LL,
                                      -1, 0, 1, 4294967295LL, 4294967296LL, CLOCK_NEVER - 1,
                                      CLOCK_NEVER};
    struct hqt *t = calloc(1, sizeof *t);
    assert_non_null(t);
    struct hq q;
    hq_init(&q, hqt_moved, t);
    srand(3);
    for (uint32_t h = 0; h < N; h++) {
        t->at[h] = h < 11 ? special[h] : (int64_t)((uint64_t)rand() << 33 ^ (uint64_t)rand());
        assert_int_equal(hq_reserve(&q), 0);
        hq_push(&q, t->at[h], h);
        t->queued[h] = 1;
    }
    hqt_check(&q, t);
    for (int r = 0; r < 20000; r++) {
        uint32_t h = (uint32_t)rand() % N;
        if (!t->queued[h]) {
            assert_int_equal(hq_reserve(&q), 0);
            hq_push(&q, t->at[h], h);
            t->queued[h] = 1;
        } else if (rand() % 2) {
            hq_remove(&q, t->pos[h]);
            t->queued[h] = 0;
        } else {
            t->at[h] = rand() % 3 ? rand() % 1000 - 500 : special[rand() % 11];
            hq_update(&q, t->pos[h], t->at[h]);
        }
    }
    hqt_check(&q, t);
    int64_t last = INT64_MIN;
    uint32_t popped = 0, queued = 0;
    for (uint32_t h = 0; h < N; h++)
        queued += (uint32_t)t->queued[h];
    while (hq_count(&q)) {
        assert_true(hq_at(&q, 0) >= last);
        last = hq_at(&q, 0);
        hq_remove(&q, 0);
        popped++;
    }
    assert_int_equal(popped, queued);
    assert_true(hq_mem_bytes(&q) <= 2 * HQ_BLOCK * sizeof(struct hq_slot) + 64 * sizeof(void *));
    hq_fini(&q);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slab_blocks),
        cmocka_unit_test(test_slab_reuse),
        cmocka_unit_test(test_hidx_random),
        cmocka_unit_test(test_hidx_colliding_hashes),
        cmocka_unit_test(test_hidx_load),
        cmocka_unit_test(test_hq_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
