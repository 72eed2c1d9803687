/*
 * Node-local lock (client/nlock.h): every call and error code on one
 * thread, with_lock's always-unlock, check_with_retry against a thread
 * that unlocks (or creates) the name later and against running out, then
 * two concurrency runs meant for ThreadSanitizer: a mixed workload where
 * each worker replays a deterministic sequence on names only it touches
 * (checked against a pure model, during the run and at the end) while all
 * of them churn shared names and other threads check everything; and a
 * growth run where readers must find every name already created while the
 * table is copied under them. Threads never call cmocka (its failures
 * longjmp); they count violations, which the main thread asserts on.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client/nlock.h"

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int setup(void **state)
{
    *state = lkc_nlocks_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    lkc_nlocks_free(*state);
    return 0;
}

/* ---- single thread ---- */

static void test_new_free(void **state)
{
    (void)state;
    struct lkc_nlocks *a = lkc_nlocks_new(), *b = lkc_nlocks_new();
    assert_non_null(a);
    assert_non_null(b);
    /* Registries are independent. */
    assert_int_equal(lkc_nlock_create(a, "x"), 0);
    assert_int_equal(lkc_nlock_check(b, "x", 7), 7);
    lkc_nlocks_free(a);
    lkc_nlocks_free(b);
    lkc_nlocks_free(NULL);
}

static void test_create_check(void **state)
{
    struct lkc_nlocks *r = *state;
    assert_int_equal(lkc_nlock_check(r, "a", LKC_NLOCK_LOCKED), LKC_NLOCK_LOCKED);
    assert_int_equal(lkc_nlock_check(r, "a", LKC_NLOCK_OK), LKC_NLOCK_OK);
    assert_int_equal(lkc_nlock_check(r, "a", 42), 42);
    assert_int_equal(lkc_nlock_check(r, "a", -1000), -1000);
    assert_int_equal(lkc_nlock_create(r, "a"), 0);
    assert_int_equal(lkc_nlock_check(r, "a", 42), LKC_NLOCK_OK);
    /* Creating again leaves the state alone, locked or not. */
    assert_int_equal(lkc_nlock_create(r, "a"), 0);
    assert_int_equal(lkc_nlock_check(r, "a", 42), LKC_NLOCK_OK);
    assert_int_equal(lkc_nlock_lock(r, "a"), 0);
    assert_int_equal(lkc_nlock_create(r, "a"), 0);
    assert_int_equal(lkc_nlock_check(r, "a", 42), LKC_NLOCK_LOCKED);
    /* Prefixes and extensions are other names. */
    assert_int_equal(lkc_nlock_check(r, "", 42), 42);
    assert_int_equal(lkc_nlock_check(r, "ab", 42), 42);
    assert_int_equal(lkc_nlock_create(r, ""), 0);
    assert_int_equal(lkc_nlock_check(r, "", 42), LKC_NLOCK_OK);
    assert_int_equal(lkc_nlock_check(r, "a", 42), LKC_NLOCK_LOCKED);
}

static void test_lock_unlock(void **state)
{
    struct lkc_nlocks *r = *state;
    assert_int_equal(lkc_nlock_create(r, "l"), 0);
    assert_int_equal(lkc_nlock_unlock(r, "l"), 0); /* not locked: still fine */
    assert_int_equal(lkc_nlock_check(r, "l", 9), LKC_NLOCK_OK);
    assert_int_equal(lkc_nlock_lock(r, "l"), 0);
    assert_int_equal(lkc_nlock_check(r, "l", 9), LKC_NLOCK_LOCKED);
    assert_int_equal(lkc_nlock_lock(r, "l"), 0); /* no waiting, no error */
    assert_int_equal(lkc_nlock_check(r, "l", 9), LKC_NLOCK_LOCKED);
    assert_int_equal(lkc_nlock_unlock(r, "l"), 0);
    assert_int_equal(lkc_nlock_check(r, "l", 9), LKC_NLOCK_OK);
    assert_int_equal(lkc_nlock_unlock(r, "l"), 0);
    assert_int_equal(lkc_nlock_check(r, "l", 9), LKC_NLOCK_OK);
    /* Missing names: lock does not create. */
    assert_int_equal(lkc_nlock_lock(r, "m"), -ENOENT);
    assert_int_equal(lkc_nlock_unlock(r, "m"), -ENOENT);
    assert_int_equal(lkc_nlock_check(r, "m", 9), 9);
}

static void test_delete(void **state)
{
    struct lkc_nlocks *r = *state;
    assert_int_equal(lkc_nlock_delete(r, "d"), 0);
    assert_int_equal(lkc_nlock_create(r, "d"), 0);
    assert_int_equal(lkc_nlock_create(r, "e"), 0);
    assert_int_equal(lkc_nlock_lock(r, "d"), 0);
    assert_int_equal(lkc_nlock_lock(r, "e"), 0);
    assert_int_equal(lkc_nlock_delete(r, "d"), 1);
    assert_int_equal(lkc_nlock_delete(r, "d"), 0);
    assert_int_equal(lkc_nlock_check(r, "d", 5), 5);
    assert_int_equal(lkc_nlock_lock(r, "d"), -ENOENT);
    assert_int_equal(lkc_nlock_unlock(r, "d"), -ENOENT);
    assert_int_equal(lkc_nlock_check(r, "e", 5), LKC_NLOCK_LOCKED);
    /* A name deleted while locked comes back unlocked. */
    assert_int_equal(lkc_nlock_create(r, "d"), 0);
    assert_int_equal(lkc_nlock_check(r, "d", 5), LKC_NLOCK_OK);
    assert_int_equal(lkc_nlock_delete(r, "d"), 1);
    assert_int_equal(lkc_nlock_delete(r, "e"), 1);
    assert_int_equal(lkc_nlock_check(r, "e", 5), 5);
}

static int count_calls(void *arg)
{
    ++*(int *)arg;
    return 0;
}

static int count_retry_calls(int status, void *arg)
{
    (void)status;
    ++*(int *)arg;
    return 0;
}

/* Every call must reject err_name with err before touching anything. */
static void expect_name_error(struct lkc_nlocks *r, const char *err_name, int err)
{
    int calls = 0, res = 77;
    assert_int_equal(lkc_nlock_create(r, err_name), err);
    assert_int_equal(lkc_nlock_check(r, err_name, 3), err);
    assert_int_equal(lkc_nlock_lock(r, err_name), err);
    assert_int_equal(lkc_nlock_unlock(r, err_name), err);
    assert_int_equal(lkc_nlock_delete(r, err_name), err);
    assert_int_equal(lkc_nlock_with_lock(r, err_name, count_calls, &calls, &res), err);
    assert_int_equal(lkc_nlock_check_with_retry(r, err_name, 3, 0, count_retry_calls, &calls),
                     err);
    assert_int_equal(calls, 0);
    assert_int_equal(res, 77);
}

static void test_name_errors(void **state)
{
    struct lkc_nlocks *r = *state;
    char max[LKC_NLOCK_NAME_MAX + 1], over[LKC_NLOCK_NAME_MAX + 2];
    memset(max, 'n', sizeof max - 1);
    max[sizeof max - 1] = '\0';
    memset(over, 'n', sizeof over - 1);
    over[sizeof over - 1] = '\0';

    expect_name_error(r, NULL, -EINVAL);
    expect_name_error(r, over, -ENAMETOOLONG);
    expect_name_error(NULL, "ok", -EINVAL);

    assert_int_equal(lkc_nlock_create(r, max), 0);
    assert_int_equal(lkc_nlock_lock(r, max), 0);
    assert_int_equal(lkc_nlock_check(r, max, 3), LKC_NLOCK_LOCKED);
    assert_int_equal(lkc_nlock_delete(r, max), 1);

    /* NULL callbacks. */
    int res = 5;
    assert_int_equal(lkc_nlock_create(r, "f"), 0);
    assert_int_equal(lkc_nlock_with_lock(r, "f", NULL, NULL, &res), -EINVAL);
    assert_int_equal(res, 5);
    assert_int_equal(lkc_nlock_check(r, "f", 3), LKC_NLOCK_OK);
    assert_int_equal(lkc_nlock_check_with_retry(r, "f", 1, 0, NULL, NULL), -EINVAL);
}

/* Enough names for several table doublings, with states checked after
 * each kind of change. */
static void test_many_names(void **state)
{
    struct lkc_nlocks *r = *state;
    enum { N = 5000 };
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "name-%d", i);
        assert_int_equal(lkc_nlock_create(r, name), 0);
        if (i % 2)
            assert_int_equal(lkc_nlock_lock(r, name), 0);
    }
    for (int i = 0; i < N; i += 3) {
        snprintf(name, sizeof name, "name-%d", i);
        assert_int_equal(lkc_nlock_delete(r, name), 1);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "name-%d", i);
        int want = i % 3 == 0 ? -1 : i % 2 ? LKC_NLOCK_LOCKED : LKC_NLOCK_OK;
        assert_int_equal(lkc_nlock_check(r, name, -1), want);
    }
    /* Re-creating reuses tombstones: all come back unlocked. */
    for (int i = 0; i < N; i += 3) {
        snprintf(name, sizeof name, "name-%d", i);
        assert_int_equal(lkc_nlock_create(r, name), 0);
        assert_int_equal(lkc_nlock_check(r, name, -1), LKC_NLOCK_OK);
    }
    assert_int_equal(lkc_nlock_check(r, "name-5000", -1), -1);
}

/* ---- with_lock ---- */

struct wl_ctx {
    struct lkc_nlocks *r;
    const char *name;
    int seen;   /* check() of the name while fn ran */
    int ret;    /* what fn returns */
    int calls;
    int delete_it;
};

static int wl_fn(void *arg)
{
    struct wl_ctx *c = arg;
    c->calls++;
    c->seen = lkc_nlock_check(c->r, c->name, -1);
    if (c->delete_it)
        lkc_nlock_delete(c->r, c->name);
    return c->ret;
}

static void test_with_lock(void **state)
{
    struct lkc_nlocks *r = *state;
    struct wl_ctx c = {.r = r, .name = "w", .ret = 42};
    int res = 0;
    assert_int_equal(lkc_nlock_create(r, "w"), 0);
    assert_int_equal(lkc_nlock_with_lock(r, "w", wl_fn, &c, &res), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.seen, LKC_NLOCK_LOCKED);
    assert_int_equal(res, 42);
    assert_int_equal(lkc_nlock_check(r, "w", -1), LKC_NLOCK_OK);
    /* fn_result may be NULL. */
    assert_int_equal(lkc_nlock_with_lock(r, "w", wl_fn, &c, NULL), 0);
    assert_int_equal(c.calls, 2);
    assert_int_equal(lkc_nlock_check(r, "w", -1), LKC_NLOCK_OK);
}

static void test_with_lock_fn_error(void **state)
{
    struct lkc_nlocks *r = *state;
    struct wl_ctx c = {.r = r, .name = "w", .ret = -EIO};
    int res = 0;
    assert_int_equal(lkc_nlock_create(r, "w"), 0);
    assert_int_equal(lkc_nlock_with_lock(r, "w", wl_fn, &c, &res), 0);
    assert_int_equal(res, -EIO);
    assert_int_equal(c.seen, LKC_NLOCK_LOCKED);
    assert_int_equal(lkc_nlock_check(r, "w", -1), LKC_NLOCK_OK);
    /* Owner-less: a lock taken before is cleared too. */
    c.ret = 1;
    assert_int_equal(lkc_nlock_lock(r, "w"), 0);
    assert_int_equal(lkc_nlock_with_lock(r, "w", wl_fn, &c, &res), 0);
    assert_int_equal(res, 1);
    assert_int_equal(lkc_nlock_check(r, "w", -1), LKC_NLOCK_OK);
}

static void test_with_lock_missing_or_deleted(void **state)
{
    struct lkc_nlocks *r = *state;
    struct wl_ctx c = {.r = r, .name = "w", .ret = 3};
    int res = 99;
    assert_int_equal(lkc_nlock_with_lock(r, "w", wl_fn, &c, &res), -ENOENT);
    assert_int_equal(c.calls, 0);
    assert_int_equal(res, 99);
    assert_int_equal(lkc_nlock_check(r, "w", -1), -1);
    /* fn deleting the name: it ran, its result counts, the name stays gone. */
    c.delete_it = 1;
    assert_int_equal(lkc_nlock_create(r, "w"), 0);
    assert_int_equal(lkc_nlock_with_lock(r, "w", wl_fn, &c, &res), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(res, 3);
    assert_int_equal(lkc_nlock_check(r, "w", -1), -1);
}

/* ---- check_with_retry ---- */

struct retry_ctx {
    int calls;
    int status;
};

static int retry_fn(int status, void *arg)
{
    struct retry_ctx *c = arg;
    c->calls++;
    c->status = status;
    return 1000 + status;
}

static void test_retry_ok_at_once(void **state)
{
    struct lkc_nlocks *r = *state;
    struct retry_ctx c = {0};
    assert_int_equal(lkc_nlock_create(r, "q"), 0);
    assert_int_equal(lkc_nlock_check_with_retry(r, "q", 5, 10000, retry_fn, &c), 1000);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, LKC_NLOCK_OK);
}

static void test_retry_runs_out(void **state)
{
    struct lkc_nlocks *r = *state;
    struct retry_ctx c = {0};
    assert_int_equal(lkc_nlock_create(r, "q"), 0);
    assert_int_equal(lkc_nlock_lock(r, "q"), 0);
    int64_t t0 = now_ms();
    assert_int_equal(lkc_nlock_check_with_retry(r, "q", 5, 10, retry_fn, &c), 1001);
    /* Four sleeps between five attempts; only a lower bound is safe. */
    assert_true(now_ms() - t0 >= 40);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, LKC_NLOCK_LOCKED);
    /* A missing name counts as locked; attempts below 1 mean one. */
    assert_int_equal(lkc_nlock_check_with_retry(r, "none", 3, 0, retry_fn, &c), 1001);
    assert_int_equal(lkc_nlock_check_with_retry(r, "q", 0, -5, retry_fn, &c), 1001);
    assert_int_equal(lkc_nlock_check_with_retry(r, "q", -3, 10000, retry_fn, &c), 1001);
    assert_int_equal(c.calls, 4);
    assert_int_equal(c.status, LKC_NLOCK_LOCKED);
}

struct later_ctx {
    struct lkc_nlocks *r;
    const char *name;
    int64_t delay_ms;
    int create; /* create the name instead of unlocking it */
};

static void *later_thread(void *arg)
{
    struct later_ctx *c = arg;
    nap_ms(c->delay_ms);
    if (c->create)
        lkc_nlock_create(c->r, c->name);
    else
        lkc_nlock_unlock(c->r, c->name);
    return NULL;
}

/* Wait on the name while another thread changes it after delay_ms. */
static void retry_against_thread(struct lkc_nlocks *r, int create)
{
    struct later_ctx lc = {.r = r, .name = "q", .delay_ms = 60, .create = create};
    struct retry_ctx c = {0};
    pthread_t th;
    int64_t t0 = now_ms();
    assert_int_equal(pthread_create(&th, NULL, later_thread, &lc), 0);
    /* 5 ms apart, up to 10 s: several attempts fail before the change. */
    int rc = lkc_nlock_check_with_retry(r, "q", 2000, 5, retry_fn, &c);
    int64_t waited = now_ms() - t0;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(rc, 1000);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, LKC_NLOCK_OK);
    assert_true(waited >= lc.delay_ms);
}

static void test_retry_unlocked_by_thread(void **state)
{
    struct lkc_nlocks *r = *state;
    assert_int_equal(lkc_nlock_create(r, "q"), 0);
    assert_int_equal(lkc_nlock_lock(r, "q"), 0);
    retry_against_thread(r, 0);
}

static void test_retry_created_by_thread(void **state)
{
    retry_against_thread(*state, 1);
}

/* ---- many threads: mixed workload ---- */

enum {
    MIX_WORKERS = 8,
    MIX_CHECKERS = 3,
    MIX_OPS = 100000,
    MIX_OWN = 256,   /* names each worker alone changes */
    MIX_SHARED = 24, /* names every worker churns */
    MIX_ANCHORS = 8, /* created first, never deleted */
    MIX_MISSING = -100,
};

struct mix {
    struct lkc_nlocks *r;
    char own[MIX_WORKERS][MIX_OWN][32];
    char shared[MIX_SHARED][32];
    char anchor[MIX_ANCHORS][32];
    atomic_int stop;
    atomic_long violations;
    atomic_long checks;
};

struct mix_worker {
    struct mix *m;
    int id;
    uint64_t seed;
};

/* One step of a worker's own sequence, as a pure function of the random
 * word: which name, which op. The model state: MIX_MISSING, OK, LOCKED. */
enum { OP_CREATE, OP_LOCK, OP_UNLOCK, OP_DELETE, OP_WITH_LOCK, OP_N };

static int model_step(int *st, int op, int *want_rc)
{
    int exists = *st != MIX_MISSING;
    switch (op) {
    case OP_CREATE: *want_rc = 0; if (!exists) *st = LKC_NLOCK_OK; break;
    case OP_LOCK: *want_rc = exists ? 0 : -ENOENT; if (exists) *st = LKC_NLOCK_LOCKED; break;
    case OP_UNLOCK:
    case OP_WITH_LOCK: *want_rc = exists ? 0 : -ENOENT; if (exists) *st = LKC_NLOCK_OK; break;
    default: *want_rc = exists; *st = MIX_MISSING; break;
    }
    return *st;
}

static int noop_fn(void *arg)
{
    (void)arg;
    return 7;
}

static int apply(struct lkc_nlocks *r, const char *name, int op)
{
    int res = 0;
    switch (op) {
    case OP_CREATE: return lkc_nlock_create(r, name);
    case OP_LOCK: return lkc_nlock_lock(r, name);
    case OP_UNLOCK: return lkc_nlock_unlock(r, name);
    case OP_WITH_LOCK: {
        int rc = lkc_nlock_with_lock(r, name, noop_fn, NULL, &res);
        return rc == 0 && res != 7 ? -EPROTO : rc;
    }
    default: return lkc_nlock_delete(r, name);
    }
}

/* Shared names: only the set of possible answers is known. */
static int shared_rc_ok(int op, int rc)
{
    switch (op) {
    case OP_CREATE: return rc == 0;
    case OP_DELETE: return rc == 0 || rc == 1;
    default: return rc == 0 || rc == -ENOENT;
    }
}

static void *mix_worker_run(void *arg)
{
    struct mix_worker *w = arg;
    struct mix *m = w->m;
    int model[MIX_OWN];
    long bad = 0;
    for (int i = 0; i < MIX_OWN; i++)
        model[i] = MIX_MISSING;
    uint64_t s = w->seed;
    for (int n = 0; n < MIX_OPS; n++) {
        uint64_t x = xorshift(&s);
        int op = (int)((x >> 8) % OP_N);
        if (x % 4 == 0) {
            const char *name = m->shared[(x >> 16) % MIX_SHARED];
            bad += !shared_rc_ok(op, apply(m->r, name, op));
            int st = lkc_nlock_check(m->r, name, MIX_MISSING);
            bad += st != LKC_NLOCK_OK && st != LKC_NLOCK_LOCKED && st != MIX_MISSING;
            continue;
        }
        int i = (int)((x >> 16) % MIX_OWN), want_rc;
        int want = model_step(&model[i], op, &want_rc);
        bad += apply(m->r, m->own[w->id][i], op) != want_rc;
        bad += lkc_nlock_check(m->r, m->own[w->id][i], MIX_MISSING) != want;
    }
    atomic_fetch_add(&m->violations, bad);
    return NULL;
}

static void *mix_checker_run(void *arg)
{
    struct mix *m = arg;
    long bad = 0, n = 0;
    while (!atomic_load(&m->stop)) {
        for (int i = 0; i < MIX_ANCHORS; i++, n++) {
            int st = lkc_nlock_check(m->r, m->anchor[i], MIX_MISSING);
            bad += st != LKC_NLOCK_OK && st != LKC_NLOCK_LOCKED;
        }
        for (int i = 0; i < MIX_SHARED; i++, n++) {
            int st = lkc_nlock_check(m->r, m->shared[i], MIX_MISSING);
            bad += st != LKC_NLOCK_OK && st != LKC_NLOCK_LOCKED && st != MIX_MISSING;
        }
        for (int w = 0; w < MIX_WORKERS; w++)
            for (int i = 0; i < MIX_OWN; i += 7, n++) {
                int st = lkc_nlock_check(m->r, m->own[w][i], MIX_MISSING);
                bad += st != LKC_NLOCK_OK && st != LKC_NLOCK_LOCKED && st != MIX_MISSING;
            }
        /* Anchors are locked and unlocked by checkers too: never deleted,
         * so lock and unlock on them must always succeed. */
        bad += lkc_nlock_lock(m->r, m->anchor[n % MIX_ANCHORS]) != 0;
        bad += lkc_nlock_unlock(m->r, m->anchor[(n / 3) % MIX_ANCHORS]) != 0;
    }
    atomic_fetch_add(&m->violations, bad);
    atomic_fetch_add(&m->checks, n);
    return NULL;
}

static void mix_names(struct mix *m)
{
    for (int w = 0; w < MIX_WORKERS; w++)
        for (int i = 0; i < MIX_OWN; i++)
            snprintf(m->own[w][i], sizeof m->own[w][i], "own/%d/%d", w, i);
    for (int i = 0; i < MIX_SHARED; i++)
        snprintf(m->shared[i], sizeof m->shared[i], "shared/%d", i);
    for (int i = 0; i < MIX_ANCHORS; i++)
        snprintf(m->anchor[i], sizeof m->anchor[i], "anchor/%d", i);
}

/* Replay a worker's sequence on the model alone and compare the end
 * states with what the registry holds now. */
static long mix_final_mismatches(struct mix *m, const struct mix_worker *w)
{
    int model[MIX_OWN], rc;
    long bad = 0;
    for (int i = 0; i < MIX_OWN; i++)
        model[i] = MIX_MISSING;
    uint64_t s = w->seed;
    for (int n = 0; n < MIX_OPS; n++) {
        uint64_t x = xorshift(&s);
        if (x % 4 != 0)
            model_step(&model[(x >> 16) % MIX_OWN], (int)((x >> 8) % OP_N), &rc);
    }
    for (int i = 0; i < MIX_OWN; i++)
        bad += lkc_nlock_check(m->r, m->own[w->id][i], MIX_MISSING) != model[i];
    return bad;
}

static void test_threads_mixed(void **state)
{
    struct mix *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->r = *state;
    mix_names(m);
    for (int i = 0; i < MIX_ANCHORS; i++)
        assert_int_equal(lkc_nlock_create(m->r, m->anchor[i]), 0);

    pthread_t wt[MIX_WORKERS], ct[MIX_CHECKERS];
    struct mix_worker w[MIX_WORKERS];
    for (int i = 0; i < MIX_CHECKERS; i++)
        assert_int_equal(pthread_create(&ct[i], NULL, mix_checker_run, m), 0);
    for (int i = 0; i < MIX_WORKERS; i++) {
        w[i] = (struct mix_worker){.m = m, .id = i, .seed = 0x9e3779b97f4a7c15u * (i + 1)};
        assert_int_equal(pthread_create(&wt[i], NULL, mix_worker_run, &w[i]), 0);
    }
    for (int i = 0; i < MIX_WORKERS; i++)
        assert_int_equal(pthread_join(wt[i], NULL), 0);
    atomic_store(&m->stop, 1);
    for (int i = 0; i < MIX_CHECKERS; i++)
        assert_int_equal(pthread_join(ct[i], NULL), 0);

    assert_int_equal(atomic_load(&m->violations), 0);
    assert_true(atomic_load(&m->checks) > 0);
    for (int i = 0; i < MIX_WORKERS; i++)
        assert_int_equal(mix_final_mismatches(m, &w[i]), 0);
    for (int i = 0; i < MIX_ANCHORS; i++)
        assert_int_not_equal(lkc_nlock_check(m->r, m->anchor[i], MIX_MISSING), MIX_MISSING);
    free(m);
}

/* ---- many threads: growth under readers ---- */

enum { GROW_NAMES = 20000, GROW_READERS = 6 };

struct grow {
    struct lkc_nlocks *r;
    atomic_int created; /* names 0..created-1 exist, and stay */
    atomic_int stop;
    atomic_long violations;
};

static void grow_name(char *buf, size_t n, int i) { snprintf(buf, n, "grow-%d", i); }

static void *grow_reader(void *arg)
{
    struct grow *g = arg;
    uint64_t s = 0x2545f4914f6cdd1du ^ (uint64_t)(uintptr_t)&s;
    long bad = 0;
    char name[32];
    while (!atomic_load(&g->stop)) {
        int n = atomic_load(&g->created);
        if (n == 0)
            continue;
        int i = (int)(xorshift(&s) % (uint64_t)n);
        grow_name(name, sizeof name, i);
        /* Created before we looked: a copy in progress must not hide it. */
        int st = lkc_nlock_check(g->r, name, -1);
        bad += st != LKC_NLOCK_OK && st != LKC_NLOCK_LOCKED;
        bad += lkc_nlock_lock(g->r, name) != 0;
        bad += lkc_nlock_unlock(g->r, name) != 0;
    }
    atomic_fetch_add(&g->violations, bad);
    return NULL;
}

static void test_threads_growth(void **state)
{
    struct grow g = {.r = *state};
    pthread_t th[GROW_READERS];
    char name[32];
    for (int i = 0; i < GROW_READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, grow_reader, &g), 0);
    for (int i = 0; i < GROW_NAMES; i++) {
        grow_name(name, sizeof name, i);
        assert_int_equal(lkc_nlock_create(g.r, name), 0);
        atomic_store(&g.created, i + 1);
    }
    atomic_store(&g.stop, 1);
    for (int i = 0; i < GROW_READERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&g.violations), 0);
    for (int i = 0; i < GROW_NAMES; i++) {
        grow_name(name, sizeof name, i);
        int st = lkc_nlock_check(g.r, name, -1);
        assert_true(st == LKC_NLOCK_OK || st == LKC_NLOCK_LOCKED);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_free),
        cmocka_unit_test_setup_teardown(test_create_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_unlock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_with_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_with_lock_fn_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_with_lock_missing_or_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_ok_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_runs_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_unlocked_by_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_created_by_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_mixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_growth, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
