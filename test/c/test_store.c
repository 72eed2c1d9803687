/*
 * Lease store: leases, write locks, waiters and expiry against a fake clock
 * (time enters only through store_advance), the hash table and expiry
 * queue underneath, a randomized run against a naive model, the
 * million-lease drain with a budget, and a memory figure (printed only).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cmocka.h>

#include "cnode/core/clock.h"
#include "cnode/store/store.h"
#include "cnode/store/table.h"
#include "cnode/store/timeq.h"

/* ---- helpers ---- */

static struct term T(const char *s) { return (struct term){(const uint8_t *)s, (uint32_t)strlen(s)}; }

static int term_is(struct term t, const char *s)
{
    return t.len == strlen(s) && memcmp(t.p, s, t.len) == 0;
}

/* {user, N} in canonical external format: 13 bytes. */
static struct term user_key(uint8_t b[13], uint32_t n)
{
    static const uint8_t head[9] = {104, 2, 119, 4, 'u', 's', 'e', 'r', 98};
    memcpy(b, head, sizeof head);
    b[9] = (uint8_t)(n >> 24); b[10] = (uint8_t)(n >> 16);
    b[11] = (uint8_t)(n >> 8); b[12] = (uint8_t)n;
    return (struct term){b, 13};
}

/* A NEW_PID_EXT on node 'node1@localhost': 30 bytes. */
static struct term pid_val(uint8_t b[30], uint32_t id)
{
    static const char node[] = "node1@localhost";
    b[0] = 88; b[1] = 119; b[2] = 15;
    memcpy(b + 3, node, 15);
    for (int i = 0; i < 4; i++) {
        b[18 + i] = (uint8_t)(id >> (24 - 8 * i));
        b[22 + i] = 0;
        b[26 + i] = i == 3 ? 1 : 0;
    }
    return (struct term){b, 30};
}

struct wake {
    enum store_wait_kind kind;
    uint32_t id;
    uint32_t vlen;
    uint8_t val[64];
};

struct wakes {
    size_t n, cap;
    struct wake *v;
};

/* ctx is either a 4-byte id or a short string; both land in `id`/`val`. */
static void on_wake(void *ud, enum store_wait_kind kind, const void *ctx, size_t ctxlen,
                    struct term value)
{
    struct wakes *w = ud;
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->v = realloc(w->v, w->cap * sizeof *w->v);
        assert_non_null(w->v);
    }
    struct wake *e = &w->v[w->n++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    memcpy(&e->id, ctx, ctxlen < 4 ? ctxlen : 4);
    assert_true(value.len <= sizeof e->val);
    e->vlen = value.len;
    if (value.len)
        memcpy(e->val, value.p, value.len);
}

static struct store *new_store(struct wakes *w)
{
    memset(w, 0, sizeof *w);
    struct store_cfg cfg = {on_wake, w};
    struct store *s = store_new(&cfg);
    assert_non_null(s);
    return s;
}

static void done(struct store *s, struct wakes *w)
{
    store_free(s);
    free(w->v);
}

/* Waiter ctx for the fixed tests: a 4-char tag read back as `id`. */
static uint32_t id4(const char *s)
{
    uint32_t v = 0;
    memcpy(&v, s, 4);
    return v;
}

static void add_waiter(struct store *s, const char *key, enum store_wait_kind k, int64_t dl,
                       const char *ctx4)
{
    assert_int_equal(store_waiter_add(s, T(key), k, dl, ctx4, 4), 0);
}

static void expect_lease(struct store *s, const char *key, const char *val, int64_t at)
{
    struct term v;
    int64_t e = 0;
    assert_int_equal(store_lease_get(s, T(key), &v, &e), 0);
    assert_true(term_is(v, val));
    assert_int_equal(e, at);
}

/* ---- leases ---- */

static void test_put_get_update_delete(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    struct term v;
    assert_int_equal(store_lease_get(s, T("k"), &v, NULL), -ENOENT);
    assert_int_equal(store_lease_put(s, T("k"), T("v1"), 100), 0);
    expect_lease(s, "k", "v1", 100);
    assert_int_equal(store_lease_count(s), 1);
    assert_int_equal(store_lease_update(s, T("k"), T("v2")), 0); /* same length */
    expect_lease(s, "k", "v2", 100);
    assert_int_equal(store_lease_update(s, T("k"), T("a longer value")), 0);
    expect_lease(s, "k", "a longer value", 100);
    assert_int_equal(store_lease_update(s, T("k"), T("")), 0);
    expect_lease(s, "k", "", 100);
    assert_int_equal(store_lease_update(s, T("other"), T("x")), -ENOENT);
    assert_int_equal(store_lease_put(s, T("k2"), T("w"), 50), 0);
    assert_int_equal(store_lease_count(s), 2);
    assert_int_equal(store_lease_delete(s, T("k")), 0);
    assert_int_equal(store_lease_get(s, T("k"), &v, NULL), -ENOENT);
    assert_int_equal(store_lease_delete(s, T("k")), -ENOENT);
    assert_int_equal(store_lease_count(s), 1);
    expect_lease(s, "k2", "w", 50);
    /* Spans handed out may be handed back (they point into the store). */
    assert_int_equal(store_lease_get(s, T("k2"), &v, NULL), 0);
    assert_int_equal(store_lease_put(s, T("k2"), v, 60), 0);
    expect_lease(s, "k2", "w", 60);
    assert_int_equal(w.n, 0);
    done(s, &w);
}

static void test_update_keeps_expiry(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    assert_int_equal(store_lease_put(s, T("k"), T("v"), 100), 0);
    assert_int_equal(store_advance(s, 40, 10), 0);
    assert_int_equal(store_lease_update(s, T("k"), T("vvvvvv")), 0);
    expect_lease(s, "k", "vvvvvv", 100);
    assert_int_equal(store_next_deadline(s), 100);
    assert_int_equal(store_advance(s, 99, 10), 0);
    expect_lease(s, "k", "vvvvvv", 100);
    assert_int_equal(store_advance(s, 100, 10), 1);
    assert_int_equal(store_lease_get(s, T("k"), NULL, NULL), -ENOENT);
    assert_int_equal(store_lease_update(s, T("k"), T("x")), -ENOENT);
    done(s, &w);
}

static void test_put_replaces_expiry(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    assert_int_equal(store_lease_put(s, T("k"), T("v"), 100), 0);
    assert_int_equal(store_lease_put(s, T("k"), T("v2!"), 200), 0);
    assert_int_equal(store_lease_count(s), 1);
    assert_int_equal(store_next_deadline(s), 200);
    assert_int_equal(store_advance(s, 150, 10), 0);
    expect_lease(s, "k", "v2!", 200);
    assert_int_equal(store_lease_put(s, T("k"), T("v3"), 170), 0); /* earlier is fine too */
    assert_int_equal(store_next_deadline(s), 170);
    assert_int_equal(store_advance(s, 170, 10), 1);
    assert_int_equal(store_lease_count(s), 0);
    assert_int_equal(store_next_deadline(s), CLOCK_NEVER);
    done(s, &w);
}

static void test_expiry_exact_ms(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    assert_int_equal(store_lease_put(s, T("k"), T("v"), 1000), 0);
    assert_int_equal(store_advance(s, 999, 100), 0);
    expect_lease(s, "k", "v", 1000);
    /* Budget 0: time moves, nothing is reclaimed, yet the lease is gone. */
    assert_int_equal(store_advance(s, 1000, 0), 0);
    assert_int_equal(store_lease_get(s, T("k"), NULL, NULL), -ENOENT);
    assert_int_equal(store_lease_count(s), 1);
    assert_int_equal(store_lease_update(s, T("k"), T("x")), -ENOENT);
    assert_int_equal(store_lease_delete(s, T("k")), -ENOENT);
    assert_int_equal(store_advance(s, 1000, 100), 1);
    assert_int_equal(store_lease_count(s), 0);
    done(s, &w);
}

static void test_put_over_expired(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    assert_int_equal(store_lease_put(s, T("k"), T("old"), 100), 0);
    add_waiter(s, "k", STORE_WAIT_RELEASE, 500, "rel1");
    store_advance(s, 120, 0);
    add_waiter(s, "k", STORE_WAIT_FOR, 500, "for1");
    assert_int_equal(store_lease_put(s, T("k"), T("new value"), 300), 0);
    /* The old lease's end first, then the new value. */
    assert_int_equal(w.n, 2);
    assert_int_equal(w.v[0].kind, STORE_WAIT_RELEASE);
    assert_int_equal(w.v[0].id, id4("rel1"));
    assert_int_equal(w.v[0].vlen, 0);
    assert_int_equal(w.v[1].kind, STORE_WAIT_FOR);
    assert_int_equal(w.v[1].id, id4("for1"));
    assert_memory_equal(w.v[1].val, "new value", 9);
    expect_lease(s, "k", "new value", 300);
    assert_int_equal(store_lease_count(s), 1);
    assert_int_equal(store_advance(s, 299, 100), 0);
    assert_int_equal(store_waiter_count(s), 0);
    done(s, &w);
}

/* ---- write locks ---- */

static void test_wlock_basic(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    struct term tag;
    int64_t at;
    assert_int_equal(store_wlock_get(s, T("k"), &tag, &at), -ENOENT);
    assert_int_equal(store_wlock_add(s, T("k"), T("tag1"), 10000), 0);
    assert_int_equal(store_wlock_get(s, T("k"), &tag, &at), 0);
    assert_true(term_is(tag, "tag1"));
    assert_int_equal(at, 10000);
    assert_int_equal(store_wlock_add(s, T("k"), T("tag2"), 10000), -EEXIST);
    assert_int_equal(store_wlock_add(s, T("k"), T("tag1"), 10000), -EEXIST);
    assert_int_equal(store_wlock_add(s, T("k2"), T("tag2"), 10000), 0);
    assert_int_equal(store_wlock_count(s), 2);
    assert_int_equal(store_wlock_drop_tag(s, T("tag1")), 0);
    assert_int_equal(store_wlock_get(s, T("k"), NULL, NULL), -ENOENT);
    assert_int_equal(store_wlock_drop_tag(s, T("tag1")), -ENOENT);
    assert_int_equal(store_wlock_drop_tag(s, T("nope")), -ENOENT);
    assert_int_equal(store_wlock_count(s), 1);
    assert_int_equal(store_wlock_get(s, T("k2"), &tag, NULL), 0);
    assert_true(term_is(tag, "tag2"));
    assert_int_equal(store_wlock_add(s, T("k"), T("tag3"), 10000), 0);
    done(s, &w);
}

static void test_wlock_expiry(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    assert_int_equal(store_wlock_add(s, T("k"), T("t1"), 10000), 0);
    assert_int_equal(store_next_deadline(s), 10000);
    assert_int_equal(store_advance(s, 9999, 10), 0);
    assert_int_equal(store_wlock_get(s, T("k"), NULL, NULL), 0);
    assert_int_equal(store_advance(s, 10000, 0), 0);
    assert_int_equal(store_wlock_get(s, T("k"), NULL, NULL), -ENOENT);
    /* Only an expired lock carries t1: it is reclaimed but not "found". */
    assert_int_equal(store_wlock_drop_tag(s, T("t1")), -ENOENT);
    assert_int_equal(store_wlock_count(s), 0);
    /* An expired lock is replaced by a new one, even with its own tag. */
    assert_int_equal(store_wlock_add(s, T("k"), T("t2"), 10005), 0);
    assert_int_equal(store_advance(s, 10005, 0), 0);
    assert_int_equal(store_wlock_add(s, T("k"), T("t2"), 20000), 0);
    assert_int_equal(store_wlock_count(s), 1);
    assert_int_equal(store_advance(s, 10005, 10), 0);
    assert_int_equal(store_wlock_drop_tag(s, T("t2")), 0);
    assert_int_equal(store_wlock_count(s), 0);
    assert_int_equal(store_wlock_add(s, T("a"), T("t3"), 20001), 0);
    assert_int_equal(store_advance(s, 20001, 10), 1);
    assert_int_equal(store_wlock_count(s), 0);
    assert_int_equal(store_wlock_drop_tag(s, T("t3")), -ENOENT);
    done(s, &w);
}

static void test_wlock_tag_multimap(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    uint8_t kb[13];
    /* A hostile coordinator reusing one tag on many keys. */
    for (uint32_t i = 0; i < 10000; i++)
        assert_int_equal(store_wlock_add(s, user_key(kb, i), T("evil"), 10000 + i % 7), 0);
    assert_int_equal(store_wlock_add(s, T("honest"), T("good"), 10000), 0);
    assert_int_equal(store_wlock_add(s, user_key(kb, 5), T("good"), 10000), -EEXIST);
    assert_int_equal(store_wlock_count(s), 10001);
    assert_int_equal(store_wlock_drop_tag(s, T("evil")), 0);
    assert_int_equal(store_wlock_count(s), 1);
    assert_int_equal(store_wlock_get(s, user_key(kb, 5), NULL, NULL), -ENOENT);
    assert_int_equal(store_wlock_get(s, T("honest"), NULL, NULL), 0);
    /* Mixed live and expired under one tag: found, all dropped. */
    assert_int_equal(store_wlock_add(s, T("x"), T("mix"), 50), 0);
    assert_int_equal(store_wlock_add(s, T("y"), T("mix"), 500), 0);
    assert_int_equal(store_wlock_add(s, T("z"), T("mix"), 60), 0);
    store_advance(s, 100, 0);
    assert_int_equal(store_wlock_drop_tag(s, T("mix")), 0);
    assert_int_equal(store_wlock_count(s), 1);
    assert_int_equal(store_next_deadline(s), 10000);
    done(s, &w);
}

/* ---- waiters ---- */

static void test_waiters_put_wakes_for(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    add_waiter(s, "k", STORE_WAIT_FOR, 100, "aaaa");
    add_waiter(s, "k", STORE_WAIT_RELEASE, 100, "rrrr");
    add_waiter(s, "k", STORE_WAIT_FOR, 100, "bbbb");
    add_waiter(s, "other", STORE_WAIT_FOR, 100, "oooo");
    assert_int_equal(store_waiter_count(s), 4);
    assert_int_equal(store_lease_put(s, T("k"), T("pid<1>"), 1000), 0);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.v[0].id, id4("aaaa")); /* arrival order */
    assert_int_equal(w.v[1].id, id4("bbbb"));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(w.v[i].kind, STORE_WAIT_FOR);
        assert_int_equal(w.v[i].vlen, 6);
        assert_memory_equal(w.v[i].val, "pid<1>", 6);
    }
    assert_int_equal(store_waiter_count(s), 2);
    /* Update does not wake; a second put has nobody left to wake. */
    assert_int_equal(store_lease_update(s, T("k"), T("pid<2>")), 0);
    assert_int_equal(store_lease_put(s, T("k"), T("pid<3>"), 1000), 0);
    assert_int_equal(w.n, 2);
    done(s, &w);
}

static void test_waiters_delete_wakes_release(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    assert_int_equal(store_lease_put(s, T("k"), T("v"), 1000), 0);
    add_waiter(s, "k", STORE_WAIT_RELEASE, 100, "r1r1");
    add_waiter(s, "k", STORE_WAIT_FOR, 100, "f1f1");
    add_waiter(s, "k", STORE_WAIT_RELEASE, 100, "r2r2");
    assert_int_equal(store_lease_delete(s, T("k")), 0);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.v[0].kind, STORE_WAIT_RELEASE);
    assert_int_equal(w.v[0].id, id4("r1r1"));
    assert_int_equal(w.v[1].id, id4("r2r2"));
    assert_int_equal(w.v[1].vlen, 0);
    /* The wait_for waiter was not woken by the delete and is still there. */
    assert_int_equal(store_waiter_count(s), 1);
    assert_int_equal(store_lease_put(s, T("k"), T("v2"), 1000), 0);
    assert_int_equal(w.n, 3);
    assert_int_equal(w.v[2].id, id4("f1f1"));
    done(s, &w);
}

static void test_waiters_expiry_wakes_release(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    assert_int_equal(store_lease_put(s, T("k"), T("v"), 100), 0);
    add_waiter(s, "k", STORE_WAIT_RELEASE, 500, "rrrr");
    add_waiter(s, "k", STORE_WAIT_FOR, 500, "ffff");
    assert_int_equal(store_advance(s, 99, 10), 0);
    assert_int_equal(w.n, 0);
    assert_int_equal(store_advance(s, 100, 10), 1);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.v[0].kind, STORE_WAIT_RELEASE);
    assert_int_equal(w.v[0].id, id4("rrrr"));
    assert_int_equal(store_waiter_count(s), 1);
    /* A drain running late still wakes a waiter that was alive when the
     * lease ended (deadline 150 > expire_at 100, reclaimed at 200). */
    assert_int_equal(store_lease_put(s, T("j"), T("v"), 120), 0);
    add_waiter(s, "j", STORE_WAIT_RELEASE, 150, "late");
    assert_int_equal(store_advance(s, 200, 1), 1);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.v[1].id, id4("late"));
    /* And one whose deadline is the expiry itself is not woken. */
    assert_int_equal(store_lease_put(s, T("q"), T("v"), 300), 0);
    add_waiter(s, "q", STORE_WAIT_RELEASE, 300, "tie!");
    assert_int_equal(store_advance(s, 400, 100), 1);
    assert_int_equal(w.n, 2);
    assert_int_equal(store_waiter_count(s), 1);
    done(s, &w);
}

static void test_waiters_deadline(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    add_waiter(s, "k", STORE_WAIT_FOR, 50, "dead");
    add_waiter(s, "k", STORE_WAIT_FOR, 51, "aliv");
    assert_int_equal(store_next_deadline(s), 50);
    assert_int_equal(store_advance(s, 50, 10), 1);
    assert_int_equal(store_waiter_count(s), 1);
    /* Past its deadline but not reclaimed yet: still never woken. */
    add_waiter(s, "k", STORE_WAIT_FOR, 52, "lazy");
    assert_int_equal(store_advance(s, 52, 0), 0);
    assert_int_equal(store_lease_put(s, T("k"), T("v"), 1000), 0);
    assert_int_equal(w.n, 0);
    assert_int_equal(store_waiter_count(s), 0);
    /* Release waiters likewise, on delete. */
    add_waiter(s, "k", STORE_WAIT_RELEASE, 60, "relx");
    assert_int_equal(store_advance(s, 60, 0), 0);
    assert_int_equal(store_lease_delete(s, T("k")), 0);
    assert_int_equal(w.n, 0);
    assert_int_equal(store_waiter_count(s), 0);
    assert_int_equal(store_next_deadline(s), CLOCK_NEVER);
    /* Bad kind. */
    assert_int_equal(store_waiter_add(s, T("k"), (enum store_wait_kind)3, 1, "x", 1), -EINVAL);
    done(s, &w);
}

static int drop_even(void *ud, const void *ctx, size_t ctxlen)
{
    uint32_t id;
    assert_int_equal(ctxlen, 4);
    memcpy(&id, ctx, 4);
    (*(int *)ud)++;
    return id % 2 == 0;
}

static void test_waiters_drop_if(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    char key[16];
    for (uint32_t id = 0; id < 3000; id++) {
        snprintf(key, sizeof key, "k%u", id % 10);
        assert_int_equal(store_waiter_add(s, T(key), id % 3 ? STORE_WAIT_FOR : STORE_WAIT_RELEASE,
                                          1000 + (id * 7919) % 5000, &id, 4), 0);
    }
    int calls = 0;
    assert_int_equal(store_waiter_drop_if(s, drop_even, &calls), 1500);
    assert_int_equal(calls, 3000);
    assert_int_equal(store_waiter_count(s), 1500);
    /* Heap order survived the rebuild: deadlines come out in order. */
    int64_t min = CLOCK_NEVER;
    for (uint32_t id = 1; id < 3000; id += 2)
        if (1000 + (id * 7919) % 5000 < min)
            min = 1000 + (id * 7919) % 5000;
    assert_int_equal(store_next_deadline(s), min);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(store_lease_put(s, T(key), T("v"), 100000), 0);
    }
    for (size_t i = 0; i < w.n; i++) {
        assert_int_equal(w.v[i].id % 2, 1);
        assert_int_not_equal(w.v[i].id % 3, 0);
    }
    assert_int_equal(w.n, 1000);
    int64_t last = 0;
    while (store_waiter_count(s)) {
        int64_t d = store_next_deadline(s);
        assert_true(d >= last);
        last = d;
        assert_int_equal(store_advance(s, d, 1), 1);
    }
    assert_int_equal(w.n, 1000);
    done(s, &w);
}

static void test_waiter_ctx_copied(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    char ctx[200];
    memset(ctx, 'z', sizeof ctx);
    memcpy(ctx, "head", 4);
    assert_int_equal(store_waiter_add(s, T(""), STORE_WAIT_FOR, 10, ctx, sizeof ctx), 0);
    memset(ctx, 0, sizeof ctx);
    assert_int_equal(store_waiter_add(s, T(""), STORE_WAIT_FOR, 10, NULL, 0), 0);
    assert_int_equal(store_lease_put(s, T(""), T(""), 100), 0); /* empty key and value */
    assert_int_equal(w.n, 2);
    assert_int_equal(w.v[0].id, id4("head"));
    assert_int_equal(w.v[1].id, 0);
    expect_lease(s, "", "", 100);
    assert_true(store_mem_bytes(s) > 0);
    done(s, &w);
    store_free(NULL);
}

/* ---- iteration ---- */

static int count_lease(void *ud, struct term key, struct term val, int64_t at)
{
    (void)key; (void)val;
    assert_true(at > 10);
    return ++*(int *)ud == 100;
}

static int count_wlock(void *ud, struct term key, struct term tag, int64_t at)
{
    (void)at;
    assert_true(term_is(tag, "tg"));
    assert_int_equal(key.len, 13);
    ++*(int *)ud;
    return 0;
}

static void test_foreach(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    uint8_t kb[13];
    for (uint32_t i = 0; i < 300; i++) {
        assert_int_equal(store_lease_put(s, user_key(kb, i), T("v"), i % 2 ? 20 : 10), 0);
        assert_int_equal(store_wlock_add(s, user_key(kb, i), T("tg"), i % 3 ? 20 : 10), 0);
    }
    store_advance(s, 10, 0);
    int n = 0;
    store_foreach_lease(s, count_lease, &n);
    assert_int_equal(n, 100); /* stopped at 100 of 150 live */
    n = 0;
    store_foreach_wlock(s, count_wlock, &n);
    assert_int_equal(n, 200);
    done(s, &w);
}

/* ---- table and timeq underneath ---- */

struct tnode {
    struct table_node link;
    uint32_t k;
};

static struct term tnode_key(const struct table_node *n)
{
    const struct tnode *t = (const struct tnode *)(const void *)n;
    return (struct term){(const uint8_t *)&t->k, 4};
}

static uint64_t khash(const uint32_t *k) { return term_hash(k, 4); }

static void test_table_incremental(void **state)
{
    (void)state;
    enum { N = 200000 };
    struct tnode *nodes = calloc(N, sizeof *nodes);
    assert_non_null(nodes);
    struct table t;
    table_init(&t, tnode_key, 0);
    int rehashes = 0, was = 0;
    size_t started_at = 0;
    for (uint32_t i = 0; i < N; i++) {
        nodes[i].k = i * 2654435761u;
        assert_int_equal(table_reserve(&t), 0);
        table_insert(&t, &nodes[i].link, khash(&nodes[i].k));
        assert_int_equal(table_count(&t), i + 1);
        uint32_t j = (i * 7u) % (i + 1);
        struct term key = {(const uint8_t *)&nodes[j].k, 4};
        assert_ptr_equal(table_find(&t, key, khash(&nodes[j].k)), &nodes[j].link);
        if (table_rehashing(&t) && !was) {
            rehashes++;
            started_at = i;
        }
        /* A grow finishes long before the count could double again. */
        if (table_rehashing(&t))
            assert_true(i - started_at < started_at / 2 + 16);
        was = table_rehashing(&t);
    }
    assert_true(rehashes >= 10);
    uint32_t miss = 0xdeadbeef;
    assert_null(table_find(&t, (struct term){(const uint8_t *)&miss, 4}, khash(&miss)));
    size_t big = table_mem_bytes(&t);
    for (uint32_t i = 0; i < N; i++) {
        table_remove(&t, &nodes[i].link, khash(&nodes[i].k));
        if (i + 1 < N) {
            struct term key = {(const uint8_t *)&nodes[N - 1].k, 4};
            assert_non_null(table_find(&t, key, khash(&nodes[N - 1].k)));
        }
    }
    assert_int_equal(table_count(&t), 0);
    assert_true(table_mem_bytes(&t) < big / 100);
    table_fini(&t);
    free(nodes);
}

struct qnode {
    struct timeq_node tq;
    int queued;
};

static int keep_odd(void *ud, struct timeq_node *x)
{
    (void)ud;
    struct qnode *q = (struct qnode *)(void *)x;
    if (x->at % 2)
        return 1;
    q->queued = 0;
    return 0;
}

static void test_timeq_order(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct qnode *n = calloc(N, sizeof *n);
    assert_non_null(n);
    struct timeq q;
    timeq_init(&q);
    srand(7);
    for (int i = 0; i < N; i++) {
        n[i].tq.at = rand() % 100000;
        assert_int_equal(timeq_reserve(&q), 0);
        timeq_push(&q, &n[i].tq);
        n[i].queued = 1;
    }
    for (int r = 0; r < 30000; r++) {
        struct qnode *x = &n[rand() % N];
        if (!x->queued) {
            assert_int_equal(timeq_reserve(&q), 0);
            timeq_push(&q, &x->tq);
            x->queued = 1;
        } else if (rand() % 2) {
            timeq_remove(&q, &x->tq);
            x->queued = 0;
        } else {
            timeq_update(&q, &x->tq, rand() % 100000);
        }
    }
    uint32_t left = 0;
    for (int i = 0; i < N; i++)
        left += (uint32_t)n[i].queued;
    assert_int_equal(timeq_count(&q), left);
    timeq_filter(&q, keep_odd, NULL);
    int64_t last = -1;
    uint32_t popped = 0;
    for (struct timeq_node *m; (m = timeq_min(&q)) != NULL; popped++) {
        assert_true(m->at >= last);
        assert_int_equal(m->at % 2, 1);
        last = m->at;
        timeq_remove(&q, m);
    }
    uint32_t odd = 0;
    for (int i = 0; i < N; i++)
        odd += (uint32_t)(n[i].queued && n[i].tq.at % 2);
    assert_int_equal(popped, odd);
    assert_true(timeq_mem_bytes(&q) <= 2 * TIMEQ_BLOCK * sizeof(void *) + 64 * sizeof(void *));
    timeq_fini(&q);
    free(n);
}

/* ---- big ones ---- */

static void test_mass_expiry_budget(void **state)
{
    (void)state;
    enum { N = 1000000, B = 1000 };
    struct wakes w;
    struct store *s = new_store(&w);
    uint8_t kb[13], vb[30];
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(store_lease_put(s, user_key(kb, i), pid_val(vb, i), 5000), 0);
    assert_int_equal(store_lease_put(s, T("survivor"), T("v"), 5001), 0);
    assert_int_equal(store_lease_count(s), N + 1);
    assert_int_equal(store_advance(s, 4999, B), 0);
    assert_int_equal(store_lease_get(s, user_key(kb, 12345), NULL, NULL), 0);
    for (uint32_t call = 1; call <= N / B; call++) {
        assert_int_equal(store_advance(s, 5000, B), B);
        assert_int_equal(store_lease_count(s), N + 1 - (size_t)call * B);
        /* Reclaimed or not, every one of them reads as absent. */
        assert_int_equal(store_lease_get(s, user_key(kb, call * 997 % N), NULL, NULL), -ENOENT);
        assert_int_equal(store_lease_update(s, user_key(kb, (call * 7919 + 1) % N), T("x")), -ENOENT);
        expect_lease(s, "survivor", "v", 5001);
        if (call < N / B)
            assert_int_equal(store_next_deadline(s), 5000);
    }
    assert_int_equal(store_advance(s, 5000, B), 0);
    assert_int_equal(store_lease_count(s), 1);
    assert_int_equal(store_next_deadline(s), 5001);
    done(s, &w);
}

/* Bytes malloc has handed out and not had back (glibc), 0 if unknown. */
static size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33) && !defined(__SANITIZE_ADDRESS__)
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

static long rss_pages(void)
{
    long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss;
}

static void test_memory_per_lease(void **state)
{
    (void)state;
    enum { N = 1000000 };
    struct wakes w;
    long before = rss_pages();
    size_t heap_before = heap_in_use();
    struct store *s = new_store(&w);
    uint8_t kb[13], vb[30];
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(store_lease_put(s, user_key(kb, i), pid_val(vb, i), 1000000 + i), 0);
    long after = rss_pages();
    double mem = (double)store_mem_bytes(s) / N;
    size_t heap = heap_in_use() - heap_before;
    double rss = (double)(after - before) * (double)sysconf(_SC_PAGESIZE) / N;
    printf("store: %d leases, 13-byte keys, 30-byte values: store_mem_bytes %.1f B/lease, ",
           N, mem);
    if (heap_before || heap)
        printf("malloc in use %.1f B/lease, ", (double)heap / N);
    printf("RSS delta %.1f B/lease%s\n", rss,
#if defined(__SANITIZE_ADDRESS__)
           " (ASan build: RSS includes redzones)"
#else
           ""
#endif
    );
    assert_true(mem > 43);
    done(s, &w);
}

/* ---- randomized run against a naive model ----
 *
 * The model keeps what is *stored* (live or expired-but-not-reclaimed) per
 * key in plain arrays and applies the rules of store.h directly. advance
 * runs either with budget 0 (time moves, nothing reclaimed) or until the
 * store has nothing due, in calls of a random small budget; the model then
 * reclaims everything due at once. The one ordering detail it mirrors: on a
 * tie between a lease's expiry and a release waiter's deadline the lease
 * goes first, so such a waiter is dropped by the wake, not reclaimed as a
 * unit of work (and not woken either way). */

enum { MK = 200, MTAGS = 20 };

struct mwaiter {
    int64_t d;
    uint32_t id;
};

struct mlist {
    size_t n, cap;
    struct mwaiter *v;
};

struct model {
    int64_t now;
    struct {
        int stored;
        int64_t at;
        uint32_t vlen;
        uint8_t val[40];
    } lease[MK];
    struct {
        int stored, tag;
        int64_t at;
    } lock[MK];
    struct mlist wait[MK][2]; /* [kind - 1], arrival order */
    struct wakes expect;
    uint32_t next_id;
    size_t woken, visited;
};

static struct term tag_term(char buf[16], int t)
{
    snprintf(buf, 16, "tag%02d", t);
    return T(buf);
}

static struct term mval(struct model *m, int k)
{
    return (struct term){m->lease[k].val, m->lease[k].vlen};
}

static void m_wake(struct model *m, int k, enum store_wait_kind kind, int64_t since,
                   struct term value)
{
    struct mlist *l = &m->wait[k][kind - 1];
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].d > since)
            on_wake(&m->expect, kind, &l->v[i].id, 4, value);
    l->n = 0;
}

static int wake_cmp(const void *a, const void *b)
{
    const struct wake *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void check_wakes(struct model *m, struct wakes *w)
{
    assert_int_equal(w->n, m->expect.n);
    if (w->n == 0)
        return;
    qsort(w->v, w->n, sizeof *w->v, wake_cmp);
    qsort(m->expect.v, m->expect.n, sizeof *m->expect.v, wake_cmp);
    for (size_t i = 0; i < w->n; i++) {
        assert_int_equal(w->v[i].id, m->expect.v[i].id);
        assert_int_equal(w->v[i].kind, m->expect.v[i].kind);
        assert_int_equal(w->v[i].vlen, m->expect.v[i].vlen);
        assert_memory_equal(w->v[i].val, m->expect.v[i].val, w->v[i].vlen);
    }
    m->woken += w->n;
    w->n = m->expect.n = 0;
}

/* A third of the values are pids of a few nodes, which the store keeps
 * packed (cnode/store/pidc.h); the rest random bytes, kept as they are. */
static uint32_t m_value(uint8_t val[40])
{
    if (rand() % 3 == 0) {
        static const uint8_t head[2][7] = {{88, 119, 4, 'm', '1', '@', 'h'},
                                           {88, 119, 4, 'm', '2', '@', 'h'}};
        memcpy(val, head[rand() % 2], 7);
        for (int i = 7; i < 19; i++)
            val[i] = i < 15 && rand() % 2 ? (uint8_t)rand() : (uint8_t)(i == 18 ? rand() % 3 : 0);
        return 19;
    }
    uint32_t vlen = (uint32_t)(rand() % 41);
    for (uint32_t i = 0; i < vlen; i++)
        val[i] = (uint8_t)rand();
    return vlen;
}

static void m_put(struct model *m, struct store *s, int k, struct term key)
{
    uint8_t val[40];
    uint32_t vlen = m_value(val);
    int64_t at = m->now + rand() % 53 - 2;
    assert_int_equal(store_lease_put(s, key, (struct term){val, vlen}, at), 0);
    if (m->lease[k].stored && m->lease[k].at <= m->now)
        m_wake(m, k, STORE_WAIT_RELEASE, m->lease[k].at, (struct term){NULL, 0});
    m->lease[k].stored = 1;
    m->lease[k].at = at;
    m->lease[k].vlen = vlen;
    memcpy(m->lease[k].val, val, vlen);
    m_wake(m, k, STORE_WAIT_FOR, m->now, mval(m, k));
}

static void m_get(struct model *m, struct store *s, int k, struct term key)
{
    struct term v;
    int64_t at;
    int live = m->lease[k].stored && m->lease[k].at > m->now;
    assert_int_equal(store_lease_get(s, key, &v, &at), live ? 0 : -ENOENT);
    if (live) {
        assert_int_equal(at, m->lease[k].at);
        assert_int_equal(v.len, m->lease[k].vlen);
        assert_memory_equal(v.p, m->lease[k].val, v.len);
    }
}

static void m_update_delete(struct model *m, struct store *s, int k, struct term key, int del)
{
    int live = m->lease[k].stored && m->lease[k].at > m->now;
    if (del) {
        assert_int_equal(store_lease_delete(s, key), live ? 0 : -ENOENT);
        if (live) {
            m_wake(m, k, STORE_WAIT_RELEASE, m->now, (struct term){NULL, 0});
            m->lease[k].stored = 0;
        }
        return;
    }
    uint8_t val[40];
    uint32_t vlen = m_value(val);
    assert_int_equal(store_lease_update(s, key, (struct term){val, vlen}), live ? 0 : -ENOENT);
    if (live) {
        m->lease[k].vlen = vlen;
        memcpy(m->lease[k].val, val, vlen);
    }
}

static void m_wlock(struct model *m, struct store *s, int k, struct term key, int op)
{
    char tb[16];
    int tag = rand() % MTAGS;
    int live = m->lock[k].stored && m->lock[k].at > m->now;
    if (op == 0) {
        int64_t at = m->now + rand() % 50 - 2;
        assert_int_equal(store_wlock_add(s, key, tag_term(tb, tag), at), live ? -EEXIST : 0);
        if (!live) {
            m->lock[k].stored = 1;
            m->lock[k].tag = tag;
            m->lock[k].at = at;
        }
    } else if (op == 1) {
        struct term t;
        int64_t at;
        assert_int_equal(store_wlock_get(s, key, &t, &at), live ? 0 : -ENOENT);
        if (live) {
            tag_term(tb, m->lock[k].tag);
            assert_true(term_is(t, tb));
            assert_int_equal(at, m->lock[k].at);
        }
    } else {
        int found = 0;
        for (int i = 0; i < MK; i++) {
            if (m->lock[i].stored && m->lock[i].tag == tag) {
                found |= m->lock[i].at > m->now;
                m->lock[i].stored = 0;
            }
        }
        assert_int_equal(store_wlock_drop_tag(s, tag_term(tb, tag)), found ? 0 : -ENOENT);
    }
}

static void m_waiter_add(struct model *m, struct store *s, int k, struct term key)
{
    enum store_wait_kind kind = rand() % 2 ? STORE_WAIT_FOR : STORE_WAIT_RELEASE;
    int64_t d = m->now + rand() % 150 - 2;
    uint32_t id = m->next_id++;
    assert_int_equal(store_waiter_add(s, key, kind, d, &id, 4), 0);
    struct mlist *l = &m->wait[k][kind - 1];
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    l->v[l->n++] = (struct mwaiter){d, id};
}

static int drop_mod7(void *ud, const void *ctx, size_t ctxlen)
{
    uint32_t id;
    assert_int_equal(ctxlen, 4);
    memcpy(&id, ctx, 4);
    return (int)(id % 7) == *(int *)ud;
}

/* Remove the waiters of a list for which d satisfies the filter; count. */
static size_t m_filter(struct mlist *l, int (*drop)(const struct mwaiter *, const void *),
                       const void *arg)
{
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (drop(&l->v[i], arg))
            dropped++;
        else
            l->v[kept++] = l->v[i];
    }
    l->n = kept;
    return dropped;
}

static int mw_by_id(const struct mwaiter *w, const void *arg)
{
    return (int)(w->id % 7) == *(const int *)arg;
}

static int mw_due(const struct mwaiter *w, const void *arg)
{
    return w->d <= *(const int64_t *)arg;
}

static void m_drop_if(struct model *m, struct store *s)
{
    int r = rand() % 7;
    size_t want = 0;
    for (int k = 0; k < MK; k++)
        for (int i = 0; i < 2; i++)
            want += m_filter(&m->wait[k][i], mw_by_id, &r);
    assert_int_equal(store_waiter_drop_if(s, drop_mod7, &r), want);
}

/* Expiry of lease k at E: release waiters after E are woken, one at E is
 * dropped by the wake (lease first on a tie), earlier ones stay to be
 * reclaimed on their own. */
static void m_expire_lease(struct model *m, int k)
{
    int64_t e = m->lease[k].at;
    struct mlist *l = &m->wait[k][STORE_WAIT_RELEASE - 1];
    size_t kept = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].d > e)
            on_wake(&m->expect, STORE_WAIT_RELEASE, &l->v[i].id, 4, (struct term){NULL, 0});
        else if (l->v[i].d < e)
            l->v[kept++] = l->v[i];
    }
    l->n = kept;
    m->lease[k].stored = 0;
}

static void m_advance(struct model *m, struct store *s)
{
    m->now += rand() % 100 == 0 ? 60 : rand() % 4;
    int r = rand() % 4;
    if (r == 0) {
        assert_int_equal(store_advance(s, m->now, 0), 0);
        return;
    }
    size_t budget = r == 1 ? SIZE_MAX : (size_t)(rand() % 5 + 1), got = 0, n;
    do {
        n = store_advance(s, m->now, budget);
        got += n;
    } while (n == budget);
    size_t want = 0;
    for (int k = 0; k < MK; k++) {
        if (m->lease[k].stored && m->lease[k].at <= m->now) {
            m_expire_lease(m, k);
            want++;
        }
        if (m->lock[k].stored && m->lock[k].at <= m->now) {
            m->lock[k].stored = 0;
            want++;
        }
    }
    for (int k = 0; k < MK; k++)
        for (int i = 0; i < 2; i++)
            want += m_filter(&m->wait[k][i], mw_due, &m->now);
    assert_int_equal(got, want);
}

static void m_check_totals(struct model *m, struct store *s)
{
    size_t leases = 0, locks = 0, waiters = 0;
    int64_t next = CLOCK_NEVER;
    for (int k = 0; k < MK; k++) {
        if (m->lease[k].stored) {
            leases++;
            next = m->lease[k].at < next ? m->lease[k].at : next;
        }
        if (m->lock[k].stored) {
            locks++;
            next = m->lock[k].at < next ? m->lock[k].at : next;
        }
        for (int i = 0; i < 2; i++) {
            waiters += m->wait[k][i].n;
            for (size_t j = 0; j < m->wait[k][i].n; j++)
                next = m->wait[k][i].v[j].d < next ? m->wait[k][i].v[j].d : next;
        }
    }
    assert_int_equal(store_lease_count(s), leases);
    assert_int_equal(store_wlock_count(s), locks);
    assert_int_equal(store_waiter_count(s), waiters);
    assert_int_equal(store_next_deadline(s), next);
}

static int m_visit(void *ud, struct term key, struct term val, int64_t at)
{
    struct model *m = ud;
    assert_int_equal(key.len, 13);
    int k = key.p[9] << 24 | key.p[10] << 16 | key.p[11] << 8 | key.p[12];
    assert_true(k >= 0 && k < MK);
    assert_true(m->lease[k].stored && m->lease[k].at == at && at > m->now);
    assert_int_equal(val.len, m->lease[k].vlen);
    assert_memory_equal(val.p, m->lease[k].val, val.len);
    m->visited++;
    return 0;
}

static void m_step(struct model *m, struct store *s)
{
    uint8_t kb[13];
    int k = rand() % MK;
    struct term key = user_key(kb, (uint32_t)k);
    int op = rand() % 100;
    if (op < 22)
        m_put(m, s, k, key);
    else if (op < 37)
        m_get(m, s, k, key);
    else if (op < 45)
        m_update_delete(m, s, k, key, 0);
    else if (op < 53)
        m_update_delete(m, s, k, key, 1);
    else if (op < 68)
        m_wlock(m, s, k, key, op % 3);
    else if (op < 81)
        m_waiter_add(m, s, k, key);
    else if (op < 82)
        m_drop_if(m, s);
    else
        m_advance(m, s);
}

static void test_random_vs_model(void **state)
{
    (void)state;
    struct wakes w;
    struct store *s = new_store(&w);
    struct model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    srand(12345);
    for (int i = 0; i < 100000; i++) {
        m_step(m, s);
        check_wakes(m, &w);
        m_check_totals(m, s);
        if (i % 5000 == 0)
            store_foreach_lease(s, m_visit, m);
    }
    /* The run must have exercised what it checks. */
    assert_true(m->woken > 2000);
    assert_true(m->visited > 100);
    printf("model: %u waiters added, %zu woken, %zu live leases visited\n", m->next_id,
           m->woken, m->visited);
    for (int k = 0; k < MK; k++)
        for (int i = 0; i < 2; i++)
            free(m->wait[k][i].v);
    free(m->expect.v);
    free(m);
    done(s, &w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, while the process heap is fresh, so RSS growth is the store's. */
        cmocka_unit_test(test_memory_per_lease),
        cmocka_unit_test(test_put_get_update_delete),
        cmocka_unit_test(test_update_keeps_expiry),
        cmocka_unit_test(test_put_replaces_expiry),
        cmocka_unit_test(test_expiry_exact_ms),
        cmocka_unit_test(test_put_over_expired),
        cmocka_unit_test(test_wlock_basic),
        cmocka_unit_test(test_wlock_expiry),
        cmocka_unit_test(test_wlock_tag_multimap),
        cmocka_unit_test(test_waiters_put_wakes_for),
        cmocka_unit_test(test_waiters_delete_wakes_release),
        cmocka_unit_test(test_waiters_expiry_wakes_release),
        cmocka_unit_test(test_waiters_deadline),
        cmocka_unit_test(test_waiters_drop_if),
        cmocka_unit_test(test_waiter_ctx_copied),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_table_incremental),
        cmocka_unit_test(test_timeq_order),
        cmocka_unit_test(test_random_vs_model),
        cmocka_unit_test(test_mass_expiry_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
