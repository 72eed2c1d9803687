/*
 * lkc_bench: the C load generator of `make bench`. One client node (the
 * C client library, bin/liblocker.a) runs one of three loads and prints
 * one JSON line of figures on stdout.
 *
 *   lkc_bench --masters a@h,b@h,c@h [-setcookie C] [-sname NAME] MODE...
 *
 * pairs (default): [--inflight N] [--seconds S] [--keys K] [--lease MS]
 *   [--latencies FILE]. N lock+release pairs in flight with lkc_lock_async
 *   / lkc_release_async for S seconds. --keys 0 (default): every in-flight
 *   slot locks its own key {lkcb, Slot} (distinct keys); --keys K > 0: each
 *   attempt picks a random key of K ({lkcc, I}), a failed lock (no_quorum)
 *   is counted and the slot tries again (contention). Lock latency is the
 *   time from lkc_lock_async to its completion callback, successful locks
 *   only. --latencies writes every sample (microseconds, one per line).
 *
 * insert: --insert COUNT [--from I] [--window W] [--batch B] [--master NODE]
 *   [--lease MS | --expire-at-wall MS]. Writes {user, I} -> this client's
 *   pid for I in From..From+COUNT-1 into one master (default: the first)
 *   with `{write, Tag, {user, I}, Pid, Len}` calls (lkc_call_async), W in
 *   flight (default 1000), refilled B at a time (default 64), one Tag (a
 *   reference of the client) for the whole run, as the BEAM loader of
 *   bench/bench_load.erl does. Len is --lease (default 1 h),
 *   or with --expire-at-wall the time left until that wall-clock instant
 *   (ms since the epoch), so every lease ends at the same moment.
 *
 * capacity: --capacity [--window W] [--seconds S] [--master NODE]. W keys
 *   ({lkcap, Slot}); for each, get_write_lock, write and release_write_lock
 *   are sent back to back (a fresh Tag each round; after the first round
 *   each key expects its own previous value), the three replies awaited,
 *   and again, for S seconds: the master's calls/s.
 *
 * Model: completion callbacks run on the client library's thread and start
 * the next call from there, so the counters are touched by that thread
 * only; the main thread starts the first window and waits for the end.
 * The generator's own CPU time (getrusage) is reported as client_cpu_s so
 * that a run can tell whether the client or the master was the bound.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* ---- raw-call loads: insert and capacity ---- */

/* Canonical external-format writers (no 131), enough for these requests. */
struct enc {
    unsigned char b[512];
    size_t n;
};

static void put_bytes(struct enc *e, const void *p, size_t n)
{
    memcpy(e->b + e->n, p, n);
    e->n += n;
}

static void put_atom(struct enc *e, const char *a)
{
    size_t n = strlen(a);
    e->b[e->n++] = 119; /* SMALL_ATOM_UTF8 */
    e->b[e->n++] = (unsigned char)n;
    put_bytes(e, a, n);
}

static void put_tuple(struct enc *e, unsigned arity)
{
    e->b[e->n++] = 104;
    e->b[e->n++] = (unsigned char)arity;
}

static void put_int(struct enc *e, int64_t v)
{
    if (v >= 0 && v <= 255) {
        e->b[e->n++] = 97;
        e->b[e->n++] = (unsigned char)v;
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        uint32_t u = (uint32_t)v;
        unsigned char t[5] = {98, (unsigned char)(u >> 24), (unsigned char)(u >> 16),
                              (unsigned char)(u >> 8), (unsigned char)u};
        put_bytes(e, t, 5);
    } else {
        uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        unsigned char t[11] = {110, 0, v < 0};
        size_t k = 0;
        for (; m; m >>= 8)
            t[3 + k++] = (unsigned char)m;
        t[1] = (unsigned char)k;
        put_bytes(e, t, 3 + k);
    }
}

/* A term handed out by the library without its 131. */
static void put_term(struct enc *e, lkc_term t) { put_bytes(e, t.data + 1, t.len - 1); }

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct raw {
    lkc *c;
    const char *master;
    lkc_buf tag;
    int64_t next, last;          /* insert: next I to send, last I */
    int window, batch;           /* insert: calls in flight at most; refill step */
    int64_t lease_ms, expire_wall;
    int64_t deadline_us;         /* capacity */
    uint64_t replies, errors;
    int first_error;
    char first_reply[128];
    int active;                  /* calls / slots still going (client thread) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;
};

static void raw_error(struct raw *r, int rc, lkc_term reply)
{
    r->errors++;
    if (r->first_error || r->first_reply[0])
        return;
    r->first_error = rc;
    if (!rc) {
        lkc_buf txt;
        if (lkc_format(reply, &txt) == 0) {
            snprintf(r->first_reply, sizeof r->first_reply, "%s", (char *)txt.data);
            lkc_buf_free(&txt);
            /* It goes into a JSON string: no quotes, backslashes, controls. */
            for (char *q = r->first_reply; *q; q++)
                if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
                    *q = '\'';
        }
    }
}

static int is_ok(lkc_term t) { return t.len == 5 && !memcmp(t.data + 1, "\x77\x02ok", 4); }

static void raw_finish(struct raw *r)
{
    pthread_mutex_lock(&r->mu);
    r->finished = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void raw_wait(struct raw *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->finished)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void ins_done(void *ud, int rc, lkc_term reply);

/* {write, Tag, {user, I}, Pid, Len} */
static int ins_send(struct raw *r, int64_t i)
{
    struct enc e = {.n = 0};
    int64_t len = r->lease_ms;
    if (r->expire_wall) {
        len = r->expire_wall - wall_ms();
        if (len < 1)
            len = 1;
    }
    put_tuple(&e, 5);
    put_atom(&e, "write");
    put_term(&e, lkc_term_of(&r->tag));
    put_tuple(&e, 2);
    put_atom(&e, "user");
    put_int(&e, i);
    put_term(&e, lkc_self(r->c));
    put_int(&e, len);
    lkc_term req = {e.b, e.n};
    return lkc_call_async(r->c, r->master, req, 60000, ins_done, r);
}

/* The window is refilled `batch` calls at a time (or with what is left),
 * not one call per reply: a master answering one reply per read would
 * otherwise get one request per packet back, and pay per packet. */
static void ins_done(void *ud, int rc, lkc_term reply)
{
    struct raw *r = ud;
    r->replies++;
    r->active--;
    if (rc || !is_ok(reply))
        raw_error(r, rc, reply);
    int64_t left = r->last - r->next + 1, room = r->window - r->active;
    int64_t n = room < left ? room : left;
    if (n > 0 && (n >= r->batch || n == left))
        for (; n > 0; n--) {
            if (ins_send(r, r->next) != 0) {
                r->last = r->next - 1; /* stop sending; count what is in flight */
                break;
            }
            r->next++;
            r->active++;
        }
    if (r->active == 0)
        raw_finish(r);
}

struct cap_slot {
    struct raw *r;
    lkc_buf key;
    int round;
    int pending;
};

static void cap_done(void *ud, int rc, lkc_term reply);

/* get_write_lock, write, release_write_lock of the slot's key. */
static int cap_round(struct cap_slot *s)
{
    struct raw *r = s->r;
    lkc_buf tag;
    int rc = lkc_make_ref(r->c, &tag);
    if (rc)
        return rc;
    struct enc e[3] = {{.n = 0}, {.n = 0}, {.n = 0}};
    put_tuple(&e[0], 4);
    put_atom(&e[0], "get_write_lock");
    put_term(&e[0], lkc_term_of(&s->key));
    if (s->round)
        put_term(&e[0], lkc_self(r->c));
    else
        put_atom(&e[0], "not_found");
    put_term(&e[0], lkc_term_of(&tag));
    put_tuple(&e[1], 5);
    put_atom(&e[1], "write");
    put_term(&e[1], lkc_term_of(&tag));
    put_term(&e[1], lkc_term_of(&s->key));
    put_term(&e[1], lkc_self(r->c));
    put_int(&e[1], 10000);
    put_tuple(&e[2], 2);
    put_atom(&e[2], "release_write_lock");
    put_term(&e[2], lkc_term_of(&tag));
    lkc_buf_free(&tag);
    /* Counted before the first send: its reply may come before the last. */
    s->pending = 3;
    s->round++;
    for (int i = 0; i < 3; i++)
        if ((rc = lkc_call_async(r->c, r->master, (lkc_term){e[i].b, e[i].n}, 60000, cap_done,
                                 s)) != 0)
            return rc; /* the run ends: the slot's replies never complete it */
    return 0;
}

static void cap_done(void *ud, int rc, lkc_term reply)
{
    struct cap_slot *s = ud;
    struct raw *r = s->r;
    r->replies++;
    if (rc || !is_ok(reply))
        raw_error(r, rc, reply);
    if (--s->pending)
        return;
    if (now_us() < r->deadline_us && (rc = cap_round(s)) == 0)
        return;
    if (rc && !r->first_error)
        r->first_error = rc;
    if (--r->active == 0)
        raw_finish(r);
}

static void print_raw(const char *mode, struct raw *r, double el, double cpu, const char *what,
                      uint64_t count)
{
    printf("{\"mode\": \"%s\", \"master\": \"%s\", \"seconds\": %.4f, \"%s\": %" PRIu64
           ", \"%s_per_s\": %.1f, \"errors\": %" PRIu64 ", \"first_error\": \"%s\""
           ", \"first_bad_reply\": \"%s\", \"client_cpu_s\": %.4f}\n",
           mode, r->master, el, what, count, what, (double)count / el, r->errors,
           r->first_error ? lkc_strerror(r->first_error) : "", r->first_reply, cpu);
    fflush(stdout);
}

static int run_insert(struct raw *r, int64_t from, int64_t count, int window, int batch)
{
    if (lkc_make_ref(r->c, &r->tag))
        return 1;
    int64_t first = count < window ? count : window;
    /* Set before the first send: from then on the client thread owns
     * next and active (its callbacks keep the window full). */
    r->next = from + first;
    r->last = from + count - 1;
    r->active = (int)first;
    r->window = window;
    r->batch = batch < 1 ? 1 : batch > window ? window : batch;
    int64_t t0 = now_us();
    double c0 = cpu_s();
    for (int64_t i = 0; i < first; i++)
        if (ins_send(r, from + i)) {
            fprintf(stderr, "insert: lkc_call_async failed\n");
            return 1;
        }
    raw_wait(r);
    print_raw("insert", r, (double)(now_us() - t0) / 1e6, cpu_s() - c0, "writes",
              (uint64_t)count);
    lkc_buf_free(&r->tag);
    return 0;
}

static int run_capacity(struct raw *r, int window, double seconds)
{
    struct cap_slot *slots = calloc((size_t)window, sizeof *slots);
    if (!slots)
        return 1;
    char text[64];
    for (int i = 0; i < window; i++) {
        slots[i].r = r;
        snprintf(text, sizeof text, "{lkcap, %d}", i);
        if (lkc_parse(text, &slots[i].key, NULL, 0))
            return 1;
    }
    int64_t t0 = now_us();
    double c0 = cpu_s();
    r->deadline_us = t0 + (int64_t)(seconds * 1e6);
    r->active = window;
    for (int i = 0; i < window; i++)
        if (cap_round(&slots[i])) {
            fprintf(stderr, "capacity: cannot start slot %d\n", i);
            return 1;
        }
    raw_wait(r);
    double el = (double)(now_us() - t0) / 1e6;
    print_raw("capacity", r, el, cpu_s() - c0, "calls", r->replies);
    for (int i = 0; i < window; i++)
        lkc_buf_free(&slots[i].key);
    free(slots);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: lkc_bench --masters A@H,B@H,C@H [-setcookie C] [-sname NAME] [-w W]\n"
               "  pairs:    [--inflight N] [--seconds S] [--keys K] [--lease MS]\n"
               "            [--latencies FILE]\n"
               "  insert:   --insert COUNT [--from I] [--window W] [--batch B] [--master NODE]\n"
               "            [--lease MS | --expire-at-wall MS]\n"
               "  capacity: --capacity [--window W] [--seconds S] [--master NODE]\n");
}

static int run_pairs(struct bench *bp, double seconds, const char *latfile)
{
    struct bench b = *bp;
    char err[512];
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
    for (int i = 0; i < nk; i++)
        lkc_buf_free(&b.keys[i]);
    free(b.keys);
    free(b.slots);
    free(b.lat);
    return 0;
}

/* One call before the clock starts: connects to the master. */
static int raw_warmup(struct raw *r)
{
    lkc_buf tag, reply;
    int rc = lkc_make_ref(r->c, &tag);
    if (rc)
        return rc;
    struct enc e = {.n = 0};
    put_tuple(&e, 2);
    put_atom(&e, "release_write_lock");
    put_term(&e, lkc_term_of(&tag));
    lkc_buf_free(&tag);
    rc = lkc_call_wait(r->c, r->master, (lkc_term){e.b, e.n}, 10000, &reply);
    if (!rc && !is_ok(lkc_term_of(&reply)))
        rc = LKC_EPROTO;
    lkc_buf_free(&reply);
    return rc;
}

int main(int argc, char **argv)
{
    struct lkc_opts o = {.log_level = "error", .listen_addr = "127.0.0.1"};
    struct bench b = {.inflight = 1, .lease_ms = 2000, .rnd = (unsigned)getpid()};
    struct raw r = {.lease_ms = 3600000};
    double seconds = 5;
    const char *latfile = NULL;
    int64_t insert = 0, from = 1;
    int window = 1000, batch = 64, capacity = 0, lease_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--capacity")) {
            capacity = 1;
            continue;
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
        else if (!strcmp(a, "--lease")) b.lease_ms = r.lease_ms = atoll(v), lease_set = 1;
        else if (!strcmp(a, "--latencies")) latfile = v;
        else if (!strcmp(a, "--insert")) insert = atoll(v);
        else if (!strcmp(a, "--from")) from = atoll(v);
        else if (!strcmp(a, "--window")) window = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--master")) r.master = v;
        else if (!strcmp(a, "--expire-at-wall")) r.expire_wall = atoll(v);
        else {
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!o.masters || b.inflight < 1 || b.nkeys < 0 || insert < 0 || window < 1 ||
        (insert && capacity) || (r.expire_wall && lease_set)) {
        usage(stderr);
        return 2;
    }
    char err[512];
    if (lkc_open(&o, &b.c, err, sizeof err)) {
        fprintf(stderr, "lkc_open: %s\n", err);
        return 1;
    }
    int rc = 0;
    if (insert || capacity) {
        char first[256];
        snprintf(first, sizeof first, "%s", o.masters);
        first[strcspn(first, ",")] = 0;
        r.c = b.c;
        if (!r.master)
            r.master = first;
        pthread_mutex_init(&r.mu, NULL);
        pthread_cond_init(&r.cv, NULL);
        if ((rc = raw_warmup(&r)) != 0)
            printf("{\"error\": \"warmup call to %s: %s\"}\n", r.master, lkc_strerror(rc));
        else
            rc = insert ? run_insert(&r, from, insert, window, batch)
                        : run_capacity(&r, window, seconds);
        lkc_close(b.c);
        return rc ? 1 : 0;
    }
    rc = run_pairs(&b, seconds, latfile);
    lkc_close(b.c);
    return rc;
}
