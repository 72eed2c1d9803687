/*
 * Store micro-benchmark: the lease store alone, through its public API
 * (cnode/store/store.h), with the leases of bench scenario 4: keys
 * {user, N} and values one of four pids of one client node.
 *
 * Every measurement runs in a forked child, so each starts from a fresh
 * heap and its RSS growth is its own. Per lease count it prints:
 *  - memory: RSS growth, malloc'd bytes (glibc mallinfo2) and the store's
 *    own estimate (store_mem_bytes), each per lease;
 *  - insert, lookup (hit and miss), re-put of an existing key (a lease
 *    extension), delete and expiry, in ns per operation, CPU time of the
 *    process (the machine is shared: wall time is printed beside it);
 *  - a mass expiry: every lease ending in the same millisecond, reclaimed
 *    by store_advance with a budget of 1000 as lockerd does: the longest
 *    single call, wall and thread CPU time.
 *
 * glibc fastbins are off, as in lockerd (cnode/main.c).
 *
 * Figures only, nothing is asserted. `make bench-store` builds and runs it;
 * STORE_BENCH_SIZES (comma-separated counts) overrides 100000,1000000.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "cnode/store/store.h"

#define BUDGET 1000
#define LATER ((int64_t)1 << 40) /* after every expiry used here */
#define NODE "bench_client@localhost"

static double now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

struct stopwatch {
    double cpu, wall;
};

static struct stopwatch sw_start(void)
{
    return (struct stopwatch){now_ns(CLOCK_PROCESS_CPUTIME_ID), now_ns(CLOCK_MONOTONIC)};
}

static void sw_print(const char *what, struct stopwatch t, size_t ops)
{
    double cpu = now_ns(CLOCK_PROCESS_CPUTIME_ID) - t.cpu, wall = now_ns(CLOCK_MONOTONIC) - t.wall;
    printf("  %-22s %8.1f ns/op CPU  (%8.1f wall)  %zu ops\n", what, cpu / (double)ops,
           wall / (double)ops, ops);
}

static size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

static long rss_bytes(void)
{
    long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

/* {user, N}, canonical: SMALL_INTEGER_EXT below 256, else INTEGER_EXT. */
static struct term user_key(uint8_t b[13], uint32_t n)
{
    static const uint8_t head[8] = {104, 2, 119, 4, 'u', 's', 'e', 'r'};
    memcpy(b, head, sizeof head);
    if (n < 256) {
        b[8] = 97;
        b[9] = (uint8_t)n;
        return (struct term){b, 10};
    }
    b[8] = 98;
    for (int i = 0; i < 4; i++)
        b[9 + i] = (uint8_t)(n >> (24 - 8 * i));
    return (struct term){b, 13};
}

/* NEW_PID_EXT <node>.<id>.0, creation as an OTP 23+ node picks it. */
static struct term pid_val(uint8_t b[64], uint32_t id)
{
    size_t nl = strlen(NODE), o = 0;
    b[o++] = 88;
    b[o++] = 119;
    b[o++] = (uint8_t)nl;
    memcpy(b + o, NODE, nl);
    o += nl;
    uint32_t f[3] = {id, 0, 0x6508a3c1u};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++)
            b[o++] = (uint8_t)(f[k] >> (24 - 8 * i));
    return (struct term){b, (uint32_t)o};
}

/* The four senders of scenario 4 write their own pids. */
static struct term sender_pid(uint8_t b[64], uint32_t i) { return pid_val(b, 90 + (i & 3)); }

/* A fixed pseudo-random visiting order: i * a mod n with a odd and
 * coprime to n is a permutation when n is a power of two or odd; for other
 * n the few repeats do not matter for timing. */
static uint32_t scramble(uint32_t i, uint32_t n) { return (uint32_t)(((uint64_t)i * 2654435761u) % n); }

static void die(const char *what, int rc)
{
    fprintf(stderr, "store_bench: %s: %s\n", what, strerror(-rc));
    exit(1);
}

static struct store *fill(uint32_t n, int64_t (*at)(uint32_t))
{
    struct store_cfg cfg = {0};
    struct store *s = store_new(&cfg);
    if (!s)
        die("store_new", -ENOMEM);
    uint8_t kb[13], vb[64];
    for (uint32_t i = 0; i < n; i++) {
        int rc = store_lease_put(s, user_key(kb, i), sender_pid(vb, i), at(i));
        if (rc)
            die("store_lease_put", rc);
    }
    return s;
}

/* Scenario 4: an hour from now, in insertion order. */
static int64_t at_hour(uint32_t i) { return 3600000 + i / 1000; }
static int64_t at_same(uint32_t i) { (void)i; return 5000; }

static void bench_memory_and_ops(uint32_t n)
{
    printf("%u leases ({user,N} -> pid of '%s'):\n", n, NODE);
    long rss0 = rss_bytes();
    size_t heap0 = heap_in_use();
    struct stopwatch t = sw_start();
    struct store *s = fill(n, at_hour);
    sw_print("insert", t, n);
    long rss1 = rss_bytes();
    size_t heap1 = heap_in_use();
    printf("  memory per lease: RSS growth %.1f B, malloc'd %.1f B, store_mem_bytes %.1f B\n"
           "    (malloc'd: mallinfo2, without memory the store maps itself)\n",
           (double)(rss1 - rss0) / n, (double)(heap1 - heap0) / n,
           (double)store_mem_bytes(s) / n);

    uint8_t kb[13], vb[64];
    struct term v;
    int64_t exp;
    size_t hits = 0;
    t = sw_start();
    for (uint32_t i = 0; i < n; i++)
        hits += store_lease_get(s, user_key(kb, scramble(i, n)), &v, &exp) == 0;
    sw_print("lookup (hit)", t, n);
    t = sw_start();
    for (uint32_t i = 0; i < n; i++)
        hits += store_lease_get(s, user_key(kb, n + scramble(i, n)), &v, &exp) == 0;
    sw_print("lookup (miss)", t, n);
    if (hits != n)
        printf("  (unexpected: %zu hits of %u)\n", hits, n);
    t = sw_start();
    for (uint32_t i = 0; i < n; i++) {
        int rc = store_lease_put(s, user_key(kb, scramble(i, n)), sender_pid(vb, i),
                                 7200000 + i / 1000);
        if (rc)
            die("store_lease_put (extend)", rc);
    }
    sw_print("re-put (extend)", t, n);
    uint32_t half = n / 2;
    t = sw_start();
    for (uint32_t i = 0; i < half; i++)
        store_lease_delete(s, user_key(kb, 2 * i));
    sw_print("delete", t, half);
    size_t left = store_lease_count(s);
    t = sw_start();
    size_t done = 0;
    while (store_advance(s, LATER, BUDGET) == BUDGET)
        done += BUDGET;
    sw_print("expire (budget 1000)", t, left);
    (void)done;
    store_free(s);
}

static void bench_mass_expiry(uint32_t n)
{
    struct store *s = fill(n, at_same);
    printf("  mass expiry of %u leases, budget %d per call:", n, BUDGET);
    double max_wall = 0, max_cpu = 0, sum_cpu = 0;
    size_t calls = 0;
    for (;;) {
        double w = now_ns(CLOCK_MONOTONIC), c = now_ns(CLOCK_THREAD_CPUTIME_ID);
        size_t did = store_advance(s, 5000, BUDGET);
        c = now_ns(CLOCK_THREAD_CPUTIME_ID) - c;
        w = now_ns(CLOCK_MONOTONIC) - w;
        if (!did)
            break;
        calls++;
        sum_cpu += c;
        if (c > max_cpu)
            max_cpu = c;
        if (w > max_wall)
            max_wall = w;
    }
    printf(" %zu calls, max %.3f ms CPU (%.3f ms wall), mean %.3f ms CPU\n", calls, max_cpu / 1e6,
           max_wall / 1e6, calls ? sum_cpu / 1e6 / (double)calls : 0);
    store_free(s);
}

static void in_child(void (*fn)(uint32_t), uint32_t n)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("store_bench: fork");
        exit(1);
    }
    if (pid == 0) {
        fn(n);
        fflush(stdout);
        _exit(0);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "store_bench: a measurement failed\n");
        exit(1);
    }
}

int main(void)
{
#if defined(__GLIBC__)
    mallopt(M_MXFAST, 0); /* as lockerd's main.c does */
#endif
    const char *sizes = getenv("STORE_BENCH_SIZES");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", sizes && *sizes ? sizes : "100000,1000000");
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        unsigned long n = strtoul(tok, NULL, 10);
        if (n == 0 || n > UINT32_MAX / 4) {
            fprintf(stderr, "store_bench: bad size '%s'\n", tok);
            return 2;
        }
        in_child(bench_memory_and_ops, (uint32_t)n);
        in_child(bench_mass_expiry, (uint32_t)n);
    }
    return 0;
}
