/*
 * lkc_bench: the C load generator of `make bench`. One client node (the
 * C client library, bin/liblocker.a) keeps N lock+release pairs in flight
 * with lkc_lock_async / lkc_release_async for a fixed time and prints one
 * JSON line of figures on stdout.
 *
 *   lkc_bench --masters a@h,b@h,c@h [-setcookie C] [-sname NAME]
 *             [--inflight N] [--seconds S] [--keys K] [--lease MS]
 *             [--latencies FILE]
 *
 * --keys 0 (default): every in-flight slot locks its own key {lkcb, Slot}
 * (distinct keys); --keys K > 0: each attempt picks a random key of K
 * ({lkcc, I}), a failed lock (no_quorum) is counted and the slot tries
 * again (contention). Lock latency is the time from lkc_lock_async to its
 * completion callback, successful locks only. --latencies writes every
 * sample (microseconds, one per line) for plots.
 *
 * Model: callbacks run on the client library's thread, so the counters and
 * the sample array are touched by that thread only; the main thread just
 * waits for the in-flight count to reach zero after the deadline.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/locker.h"

struct bench;

struct slot {
    struct bench *b;
    int idx;
    int key;          /* index into keys[] of the current attempt */
    int64_t t0;       /* lock submitted, us */
};

struct bench {
    lkc *c;
    int nkeys;        /* 0: distinct keys */
    int inflight;
    int64_t lease_ms;
    int64_t deadline_us;
    lkc_buf *keys;    /* one per slot, or nkeys */
    struct slot *slots;
    unsigned rnd;
    /* client-thread-only counters */
    uint64_t locks_ok, releases_ok, no_quorum, errors, release_errors;
    uint32_t *lat;
    size_t nlat, caplat;
    atomic_int active;
    int first_error;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void add_sample(struct bench *b, int64_t us)
{
    if (b->nlat == b->caplat) {
        size_t cap = b->caplat ? b->caplat * 2 : 65536;
        uint32_t *p = realloc(b->lat, cap * sizeof *p);
        if (!p)
            return;
        b->lat = p;
        b->caplat = cap;
    }
    b->lat[b->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void start_lock(struct slot *s);

static void slot_stop(struct slot *s)
{
    atomic_fetch_sub(&s->b->active, 1);
}

static void next(struct slot *s)
{
    if (now_us() >= s->b->deadline_us)
        slot_stop(s);
    else
        start_lock(s);
}

static void on_release(void *ud, int rc, const struct lkc_result *res)
{
    (void)res;
    struct slot *s = ud;
    if (rc == 0)
        s->b->releases_ok++;
    else
        s->b->release_errors++;
    next(s);
}

static void on_lock(void *ud, int rc, const struct lkc_result *res)
{
    (void)res;
    struct slot *s = ud;
    struct bench *b = s->b;
    if (rc == 0) {
        b->locks_ok++;
        add_sample(b, now_us() - s->t0);
        int r = lkc_release_async(b->c, lkc_term_of(&b->keys[s->key]), lkc_self(b->c), 0,
                                  on_release, s);
        if (r) {
            b->release_errors++;
            slot_stop(s);
        }
        return;
    }
    if (rc == LKC_ENOQUORUM) {
        b->no_quorum++;
    } else {
        if (!b->first_error)
            b->first_error = rc;
        b->errors++;
    }
    next(s);
}

static void start_lock(struct slot *s)
{
    struct bench *b = s->b;
    if (b->nkeys > 0) {
        b->rnd = b->rnd * 1103515245u + 12345u;
        s->key = (int)((b->rnd >> 8) % (unsigned)b->nkeys);
    } else {
        s->key = s->idx;
    }
    s->t0 = now_us();
    int rc = lkc_lock_async(b->c, lkc_term_of(&b->keys[s->key]), lkc_self(b->c), b->lease_ms, 0,
                            on_lock, s);
    if (rc) {
        if (!b->first_error)
            b->first_error = rc;
        b->errors++;
        slot_stop(s);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(const uint32_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)n);
    return v[i >= n ? n - 1 : i];
}

static void usage(FILE *f)
{
    fprintf(f, "usage: lkc_bench --masters A@H,B@H,C@H [-setcookie C] [-sname NAME] [-w W]\n"
               "       [--inflight N] [--seconds S] [--keys K] [--lease MS] [--latencies FILE]\n");
}

int main(int argc, char **argv)
{
    struct lkc_opts o = {.log_level = "error", .listen_addr = "127.0.0.1"};
    struct bench b = {.inflight = 1, .lease_ms = 2000, .rnd = (unsigned)getpid()};
    double seconds = 5;
    const char *latfile = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--masters")) o.masters = v;
        else if (!strcmp(a, "-setcookie")) o.cookie = v;
        else if (!strcmp(a, "-sname")) o.node_name = v;
        else if (!strcmp(a, "-w")) o.w = atoi(v);
        else if (!strcmp(a, "--inflight")) b.inflight = atoi(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--keys")) b.nkeys = atoi(v);
        else if (!strcmp(a, "--lease")) b.lease_ms = atoll(v);
        else if (!strcmp(a, "--latencies")) latfile = v;
        else {
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!o.masters || b.inflight < 1 || b.nkeys < 0) {
        usage(stderr);
        return 2;
    }
    char err[512];
    if (lkc_open(&o, &b.c, err, sizeof err)) {
        fprintf(stderr, "lkc_open: %s\n", err);
        return 1;
    }
    int nk = b.nkeys > 0 ? b.nkeys : b.inflight;
    b.keys = calloc((size_t)nk, sizeof *b.keys);
    b.slots = calloc((size_t)b.inflight, sizeof *b.slots);
    if (!b.keys || !b.slots)
        return 1;
    char text[64];
    for (int i = 0; i < nk; i++) {
        snprintf(text, sizeof text, b.nkeys > 0 ? "{lkcc, %d}" : "{lkcb, %d}", i);
        if (lkc_parse(text, &b.keys[i], err, sizeof err)) {
            fprintf(stderr, "lkc_parse: %s\n", err);
            return 1;
        }
    }
    /* Warm-up: connect to every master before the clock starts. */
    lkc_buf wk;
    lkc_parse("{lkcb_warmup, 0}", &wk, NULL, 0);
    int rc = lkc_lock(b.c, lkc_term_of(&wk), lkc_self(b.c), 1000, 0, NULL);
    if (rc) {
        printf("{\"error\": \"warmup lock: %s\"}\n", lkc_strerror(rc));
        return 1;
    }
    lkc_release(b.c, lkc_term_of(&wk), lkc_self(b.c), 0, NULL);
    lkc_buf_free(&wk);

    int64_t t0 = now_us();
    b.deadline_us = t0 + (int64_t)(seconds * 1e6);
    atomic_store(&b.active, b.inflight);
    for (int i = 0; i < b.inflight; i++) {
        b.slots[i] = (struct slot){.b = &b, .idx = i};
        start_lock(&b.slots[i]);
    }
    while (atomic_load(&b.active) > 0)
        usleep(2000);
    double el = (double)(now_us() - t0) / 1e6;

    qsort(b.lat, b.nlat, sizeof *b.lat, cmp_u32);
    uint64_t attempts = b.locks_ok + b.no_quorum + b.errors;
    printf("{\"inflight\": %d, \"keys\": %d, \"seconds\": %.3f, \"locks_ok\": %" PRIu64
           ", \"pairs\": %" PRIu64 ", \"pairs_per_s\": %.1f, \"locks_ok_per_s\": %.1f"
           ", \"no_quorum\": %" PRIu64 ", \"no_quorum_rate\": %.4f, \"errors\": %" PRIu64
           ", \"release_errors\": %" PRIu64 ", \"first_error\": \"%s\""
           ", \"lock_p50_us\": %u, \"lock_p99_us\": %u, \"lock_p999_us\": %u"
           ", \"lock_max_us\": %u}\n",
           b.inflight, b.nkeys, el, b.locks_ok, b.releases_ok, (double)b.releases_ok / el,
           (double)b.locks_ok / el, b.no_quorum,
           attempts ? (double)b.no_quorum / (double)attempts : 0.0, b.errors, b.release_errors,
           b.first_error ? lkc_strerror(b.first_error) : "", pct(b.lat, b.nlat, 0.5),
           pct(b.lat, b.nlat, 0.99), pct(b.lat, b.nlat, 0.999),
           b.nlat ? b.lat[b.nlat - 1] : 0);
    fflush(stdout);
    if (latfile) {
        FILE *f = fopen(latfile, "w");
        if (f) {
            for (size_t i = 0; i < b.nlat; i++)
                fprintf(f, "%u\n", b.lat[i]);
            fclose(f);
        }
    }
    lkc_close(b.c);
    for (int i = 0; i < nk; i++)
        lkc_buf_free(&b.keys[i]);
    free(b.keys);
    free(b.slots);
    free(b.lat);
    return 0;
}
