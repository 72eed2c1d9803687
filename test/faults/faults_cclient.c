/*
 * faults_cclient: the C clients of the fault-injection runs. One client
 * node (the C library, client/locker.h) shared by N threads; each thread
 * runs the same cycle as the Erlang clients of test/faults/faults_run.erl:
 * lock a random hot key {hot, K} with a value of its own {c, Thread, Seq},
 * extend it 0-3 times, release it, and after an acknowledged release probe
 * it (an extend of the released value, which must not get W votes).
 *
 * Every operation becomes one line on stdout, written when it completes:
 *
 *   op c<T> <lock|extend|release|probe> <K> <Seq> <LeaseMs> <InvNs> <CmpNs> <Rc> <Votes> <Commits> <Token>
 *
 * With --fenced 1 (every master is lockerd) locks are lkc_lock_fenced and
 * Token is the fencing token of an acknowledged lock; it is 0 otherwise.
 * InvNs / CmpNs are CLOCK_MONOTONIC readings: the driver converts them to
 * its own clock (every process on the machine shares that clock). Rc is
 * the library's code (0, LKC_ENOQUORUM, LKC_ETIMEOUT, ...); the driver
 * decides what is acknowledged, refused or unknown.
 *
 * A line "stop" on stdin (or end of input) ends the run: threads finish
 * their current cycle, so a holder always releases. Threads block in the
 * library calls; the only shared state is the stop flag and stdout.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../client/locker.h"

struct cfg {
    lkc *c;
    int keys;
    int64_t lease_min, lease_max, timeout;
    unsigned seed;
    int fenced;
};

struct worker {
    const struct cfg *cfg;
    pthread_t th;
    int id;
    unsigned rnd;
    long seq;
};

static atomic_int stopping;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Uniform in [lo, hi]. */
static int64_t rnd_range(struct worker *w, int64_t lo, int64_t hi)
{
    return hi <= lo ? lo : lo + (int64_t)(rand_r(&w->rnd) % (unsigned)(hi - lo + 1));
}

enum op { OP_LOCK, OP_EXTEND, OP_RELEASE, OP_PROBE };
static const char *const op_names[] = {"lock", "extend", "release", "probe"};

/* Run one operation and print its line; returns the library's code. */
static int run_op(struct worker *w, enum op op, int key_no, lkc_term key, lkc_term value,
                  int64_t lease)
{
    const struct cfg *g = w->cfg;
    struct lkc_result res = {0};
    int64_t inv = mono_ns();
    int rc;
    switch (op) {
    case OP_LOCK:
        rc = g->fenced ? lkc_lock_fenced(g->c, key, value, lease, g->timeout, &res)
                       : lkc_lock(g->c, key, value, lease, g->timeout, &res);
        break;
    case OP_RELEASE:
        rc = lkc_release(g->c, key, value, g->timeout, &res);
        break;
    default:
        rc = lkc_extend_lease(g->c, key, value, lease, g->timeout);
        break;
    }
    int64_t cmp = mono_ns();
    pthread_mutex_lock(&out_lock);
    printf("op c%d %s %d %ld %lld %lld %lld %d %d %d %llu\n", w->id, op_names[op], key_no,
           w->seq, (long long)(op == OP_RELEASE ? 0 : lease), (long long)inv, (long long)cmp, rc,
           res.votes, res.commits, (unsigned long long)(rc ? 0 : res.token));
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    return rc;
}

/* Release, and probe after an acknowledged release. */
static void release_and_probe(struct worker *w, int k, lkc_term key, lkc_term value,
                              int64_t lease)
{
    if (run_op(w, OP_RELEASE, k, key, value, 0) == 0)
        run_op(w, OP_PROBE, k, key, value, lease);
}

/* One cycle: lock, hold with 0-3 extends, release, probe. */
static int cycle(struct worker *w)
{
    const struct cfg *g = w->cfg;
    int k = (int)rnd_range(w, 1, g->keys);
    int64_t lease = rnd_range(w, g->lease_min, g->lease_max);
    char text[96];
    lkc_buf key, value;
    snprintf(text, sizeof text, "{hot, %d}", k);
    if (lkc_parse(text, &key, NULL, 0))
        return -1;
    snprintf(text, sizeof text, "{c, %d, %ld}", w->id, w->seq);
    if (lkc_parse(text, &value, NULL, 0)) {
        lkc_buf_free(&key);
        return -1;
    }
    lkc_term kt = lkc_term_of(&key), vt = lkc_term_of(&value);
    int rc = run_op(w, OP_LOCK, k, kt, vt, lease);
    if (rc == 0) {
        int extends = (int)rnd_range(w, 0, 3);
        int held = 1;
        for (int i = 0; i < extends && held; i++) {
            sleep_ms(rnd_range(w, lease / 5, lease * 3 / 4));
            held = run_op(w, OP_EXTEND, k, kt, vt, lease) == 0;
        }
        if (held)
            sleep_ms(rnd_range(w, 0, lease / 3));
        release_and_probe(w, k, kt, vt, lease);
    } else if (rc == LKC_ENOQUORUM) {
        sleep_ms(rnd_range(w, 100, 400));
    } else {
        /* Unknown outcome: the value may hold the key somewhere. */
        release_and_probe(w, k, kt, vt, lease);
    }
    lkc_buf_free(&key);
    lkc_buf_free(&value);
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!atomic_load(&stopping)) {
        w->seq++;
        if (cycle(w) < 0) {
            fprintf(stderr, "faults_cclient: cannot build terms\n");
            break;
        }
    }
    return NULL;
}

/* stdin: "stop" or end of input sets the stop flag. */
static void *stdin_main(void *arg)
{
    (void)arg;
    char line[64];
    while (fgets(line, sizeof line, stdin) && strncmp(line, "stop", 4) != 0) {
    }
    atomic_store(&stopping, 1);
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: faults_cclient --masters A@H,B@H,C@H --name NODE@HOST [options]\n"
        "  --cookie C        (default ~/.erlang.cookie)   -w N (default majority)\n"
        "  --listen ADDR     distribution listen address   --ticktime S (default 60)\n"
        "  --threads N (4)   --keys K (4)   --lease-min MS (600)   --lease-max MS (1500)\n"
        "  --timeout MS (400) per call phase   --seed S\n"
        "  --fenced 0|1      locks with fencing tokens (every master lockerd)\n"
        "Runs lock/extend/release/probe cycles until \"stop\" on stdin; one line\n"
        "per operation on stdout.\n");
}

static int parse(int argc, char **argv, struct lkc_opts *o, struct cfg *g, int *threads)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!v)
            return -1;
        i++;
        if (!strcmp(a, "--masters")) o->masters = v;
        else if (!strcmp(a, "--name")) o->node_name = v;
        else if (!strcmp(a, "--cookie")) o->cookie = v;
        else if (!strcmp(a, "--listen")) o->listen_addr = v;
        else if (!strcmp(a, "-w")) o->w = atoi(v);
        else if (!strcmp(a, "--ticktime")) o->net_ticktime = atoi(v);
        else if (!strcmp(a, "--threads")) *threads = atoi(v);
        else if (!strcmp(a, "--keys")) g->keys = atoi(v);
        else if (!strcmp(a, "--lease-min")) g->lease_min = atoll(v);
        else if (!strcmp(a, "--lease-max")) g->lease_max = atoll(v);
        else if (!strcmp(a, "--timeout")) g->timeout = atoll(v);
        else if (!strcmp(a, "--seed")) g->seed = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--fenced")) g->fenced = atoi(v) != 0;
        else return -1;
    }
    if (!o->masters || !o->node_name || *threads < 1 || g->keys < 1 || g->lease_min < 1 ||
        g->lease_max < g->lease_min || g->timeout < 1)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct lkc_opts o = {.log_level = "warn"};
    struct cfg g = {.keys = 4, .lease_min = 600, .lease_max = 1500, .timeout = 400,
                    .seed = (unsigned)time(NULL)};
    int threads = 4;
    if (parse(argc, argv, &o, &g, &threads) < 0) {
        usage(stderr);
        return 2;
    }
    char err[512];
    if (lkc_open(&o, &g.c, err, sizeof err)) {
        fprintf(stderr, "faults_cclient: lkc_open: %s\n", err);
        return 1;
    }
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    pthread_t in;
    if (!ws || pthread_create(&in, NULL, stdin_main, NULL)) {
        fprintf(stderr, "faults_cclient: out of memory or threads\n");
        return 1;
    }
    pthread_detach(in);
    int started = 0;
    for (; started < threads; started++) {
        ws[started] = (struct worker){.cfg = &g, .id = started + 1,
                                      .rnd = g.seed * 7919u + (unsigned)started};
        if (pthread_create(&ws[started].th, NULL, worker_main, &ws[started]))
            break;
    }
    for (int i = 0; i < started; i++)
        pthread_join(ws[i].th, NULL);
    lkc_close(g.c);
    free(ws);
    fprintf(stderr, "faults_cclient: %d threads done\n", started);
    return started == threads ? 0 : 1;
}
