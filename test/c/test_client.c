/*
 * The client library (client/locker.h) against three real lockerd masters
 * (W = 2) started here as child processes: LOCKERD_BIN, default
 * bin/lockerd. Needs epmd (started with `epmd -daemon` if not running).
 * Only the lockerd processes started here are signalled (SIGTERM, then
 * waitpid). Their logs go to /tmp/test_client_<name>.log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "client/locker.h"

#define NMASTERS 3
#define COOKIE "lkc_test_cookie"

static pid_t masters_pid[NMASTERS];
static char masters[1024];
static char host[256];
static unsigned suffix;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static lkc *open_client(const char *alive)
{
    char name[128], err[512];
    snprintf(name, sizeof name, "%s_%u", alive, suffix);
    struct lkc_opts o = {.node_name = name, .cookie = COOKIE, .masters = masters,
                         .listen_addr = "127.0.0.1"};
    lkc *c = NULL;
    int rc = lkc_open(&o, &c, err, sizeof err);
    if (rc)
        fprintf(stderr, "lkc_open(%s): %s (%s)\n", name, err, lkc_strerror(rc));
    return c;
}

static lkc_buf term(const char *text)
{
    lkc_buf b = {0};
    char err[256];
    if (lkc_parse(text, &b, err, sizeof err))
        fail_msg("lkc_parse(%s): %s", text, err);
    return b;
}

static int same(lkc_term a, lkc_term b) { return a.len == b.len && !memcmp(a.data, b.data, a.len); }

static pid_t start_lockerd(const char *bin, int i)
{
    char name[64], log[128];
    snprintf(name, sizeof name, "lkct%d_%u", i, suffix);
    snprintf(log, sizeof log, "/tmp/test_client_%s.log", name);
    pid_t p = fork();
    if (p == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(bin, bin, "-sname", name, "-setcookie", COOKIE, "--masters", masters,
              "--push-interval", "50", "--log-level", "info", (char *)NULL);
        _exit(127);
    }
    return p;
}

/* Ready when a lock and release of a probe key go through. */
static int cluster_ready(void)
{
    lkc *c = open_client("probe");
    if (!c)
        return 0;
    lkc_buf k = term("probe_key");
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        if (lkc_lock(c, lkc_term_of(&k), lkc_self(c), 1000, 1000, NULL) == 0)
            ok = lkc_release(c, lkc_term_of(&k), lkc_self(c), 1000, NULL) == 0;
        else
            sleep_ms(100);
    }
    lkc_buf_free(&k);
    lkc_close(c);
    return ok;
}

static int setup(void **st)
{
    (void)st;
    if (system("epmd -names >/dev/null 2>&1") != 0 &&
        system("ERL_EPMD_ADDRESS=127.0.0.1 epmd -daemon") != 0)
        return -1;
    const char *bin = getenv("LOCKERD_BIN");
    if (!bin || !*bin)
        bin = "bin/lockerd";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    char *dot = strchr(host, '.');
    if (dot)
        *dot = 0;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    suffix = (unsigned)getpid() * 1000u + (unsigned)(rand() % 1000);
    size_t off = 0;
    for (int i = 0; i < NMASTERS; i++)
        off += (size_t)snprintf(masters + off, sizeof masters - off, "%slkct%d_%u@%s",
                                i ? "," : "", i, suffix, host);
    for (int i = 0; i < NMASTERS; i++)
        masters_pid[i] = start_lockerd(bin, i);
    sleep_ms(300);
    if (!cluster_ready()) {
        fprintf(stderr, "test_client: the lockerd masters (%s) did not come up\n", bin);
        return -1;
    }
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    for (int i = 0; i < NMASTERS; i++)
        if (masters_pid[i] > 0)
            kill(masters_pid[i], SIGTERM);
    for (int i = 0; i < NMASTERS; i++)
        if (masters_pid[i] > 0)
            waitpid(masters_pid[i], NULL, 0);
    return 0;
}

/* ---- cases ---- */

static void test_terms(void **st)
{
    (void)st;
    lkc_buf t, text;
    char err[256];
    assert_int_equal(lkc_parse("{user, 42, <<\"job\">>}", &t, err, sizeof err), 0);
    assert_int_equal(t.data[0], 131);
    assert_int_equal(lkc_format(lkc_term_of(&t), &text), 0);
    assert_string_equal((char *)text.data, "{user,42,<<\"job\">>}");
    assert_int_equal(text.len, strlen("{user,42,<<\"job\">>}"));
    lkc_buf_free(&text);
    lkc_buf_free(&t);
    assert_int_equal(lkc_parse("{a, Var}", &t, err, sizeof err), LKC_EBADTERM);
    assert_non_null(strchr(err, '^'));
    assert_string_equal(lkc_strerror(LKC_ENOQUORUM), "no quorum: fewer than W masters agreed");
}

static void test_open_errors(void **st)
{
    (void)st;
    char err[256];
    lkc *c = (lkc *)1;
    struct lkc_opts o = {.cookie = COOKIE, .masters = "no-at-sign"};
    assert_int_equal(lkc_open(&o, &c, err, sizeof err), LKC_EINVAL);
    assert_null(c);
    o.masters = NULL;
    assert_int_equal(lkc_open(&o, &c, err, sizeof err), LKC_EINVAL);
    lkc_close(NULL);
}

static void test_lock_read_release(void **st)
{
    (void)st;
    lkc *c = open_client("c1");
    assert_non_null(c);
    lkc_buf k = term("{lkc_test, lock_read_release}"), v;
    struct lkc_result res;
    assert_int_equal(lkc_lock(c, lkc_term_of(&k), lkc_self(c), 5000, 0, &res), 0);
    assert_int_equal(res.w, 2);
    assert_int_equal(res.votes, 3);
    assert_int_equal(res.commits, 3);
    assert_int_equal(lkc_dirty_read(c, lkc_term_of(&k), &v), 0);
    assert_true(same(lkc_term_of(&v), lkc_self(c)));
    lkc_buf_free(&v);
    /* Same key without the 131 byte: the same term. */
    lkc_term bare = {k.data + 1, k.len - 1};
    assert_int_equal(lkc_lock(c, bare, lkc_self(c), 5000, 0, NULL), LKC_ENOQUORUM);
    assert_int_equal(lkc_release(c, bare, lkc_self(c), 0, &res), 0);
    assert_int_equal(res.commits, 3);
    assert_int_equal(lkc_dirty_read(c, lkc_term_of(&k), &v), LKC_ENOTFOUND);
    unsigned char junk[] = {131, 104, 9};
    assert_int_equal(lkc_lock(c, (lkc_term){junk, sizeof junk}, lkc_self(c), 0, 0, NULL),
                     LKC_EBADTERM);
    lkc_buf_free(&k);
    lkc_close(c);
}

static void test_contention(void **st)
{
    (void)st;
    lkc *a = open_client("ca"), *b = open_client("cb");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(lkc_node_name(a), lkc_node_name(b));
    lkc_buf k = term("{lkc_test, contention}");
    assert_int_equal(lkc_lock(a, lkc_term_of(&k), lkc_self(a), 10000, 0, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(lkc_lock(b, lkc_term_of(&k), lkc_self(b), 10000, 0, NULL),
                         LKC_ENOQUORUM);
    assert_int_equal(lkc_release(b, lkc_term_of(&k), lkc_self(b), 0, NULL), LKC_ENOQUORUM);
    assert_int_equal(lkc_release(a, lkc_term_of(&k), lkc_self(a), 0, NULL), 0);
    assert_int_equal(lkc_lock(b, lkc_term_of(&k), lkc_self(b), 10000, 0, NULL), 0);
    assert_int_equal(lkc_lock(a, lkc_term_of(&k), lkc_self(a), 10000, 0, NULL), LKC_ENOQUORUM);
    assert_int_equal(lkc_release(b, lkc_term_of(&k), lkc_self(b), 0, NULL), 0);
    lkc_buf_free(&k);
    lkc_close(a);
    lkc_close(b);
}

static void test_update(void **st)
{
    (void)st;
    lkc *c = open_client("cu");
    assert_non_null(c);
    lkc_buf k = term("{lkc_test, update}"), v1 = term("v1"), v2 = term("{v, 2}"), v;
    assert_int_equal(lkc_lock(c, lkc_term_of(&k), lkc_term_of(&v1), 5000, 0, NULL), 0);
    assert_int_equal(lkc_update(c, lkc_term_of(&k), lkc_term_of(&v2), lkc_term_of(&v1), 0, NULL),
                     LKC_ENOQUORUM); /* expected value is v1, not v2 */
    assert_int_equal(lkc_update(c, lkc_term_of(&k), lkc_term_of(&v1), lkc_term_of(&v2), 0, NULL),
                     0);
    assert_int_equal(lkc_dirty_read(c, lkc_term_of(&k), &v), 0);
    assert_true(same(lkc_term_of(&v), lkc_term_of(&v2)));
    lkc_buf_free(&v);
    assert_int_equal(lkc_release(c, lkc_term_of(&k), lkc_term_of(&v2), 0, NULL), 0);
    lkc_buf_free(&k);
    lkc_buf_free(&v1);
    lkc_buf_free(&v2);
    lkc_close(c);
}

static void test_extend_lease(void **st)
{
    (void)st;
    lkc *c = open_client("ce");
    assert_non_null(c);
    lkc_buf k = term("{lkc_test, extend}"), other = term("other"), v;
    assert_int_equal(lkc_lock(c, lkc_term_of(&k), lkc_self(c), 1000, 0, NULL), 0);
    for (int i = 0; i < 4; i++) {
        sleep_ms(500);
        assert_int_equal(lkc_extend_lease(c, lkc_term_of(&k), lkc_self(c), 1000, 0), 0);
    }
    assert_int_equal(lkc_dirty_read(c, lkc_term_of(&k), &v), 0); /* 2 s after a 1 s lease */
    lkc_buf_free(&v);
    assert_int_equal(lkc_extend_lease(c, lkc_term_of(&k), lkc_term_of(&other), 1000, 0),
                     LKC_ENOQUORUM);
    /* Not extended any more: the lease runs out (expiry is checked every
     * so often by the masters, hence the margin). */
    int rc = 0;
    for (int i = 0; i < 60 && rc != LKC_ENOTFOUND; i++) {
        sleep_ms(100);
        rc = lkc_dirty_read(c, lkc_term_of(&k), &v);
        lkc_buf_free(&v);
    }
    assert_int_equal(rc, LKC_ENOTFOUND);
    lkc_buf_free(&k);
    lkc_buf_free(&other);
    lkc_close(c);
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls, rc;
    struct lkc_result res;
};

static void on_done(void *ud, int rc, const struct lkc_result *res)
{
    struct waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->rc = rc;
    w->res = *res;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void wait_calls(struct waiter *w, int n)
{
    pthread_mutex_lock(&w->mu);
    while (w->calls < n)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static void test_async(void **st)
{
    (void)st;
    lkc *c = open_client("cx");
    assert_non_null(c);
    lkc_buf k = term("{lkc_test, async}");
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, {0}};
    assert_int_equal(lkc_lock_async(c, lkc_term_of(&k), lkc_self(c), 5000, 0, on_done, &w), 0);
    wait_calls(&w, 1);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.res.commits, 3);
    assert_int_equal(lkc_extend_lease_async(c, lkc_term_of(&k), lkc_self(c), 5000, 0, on_done,
                                            &w), 0);
    wait_calls(&w, 2);
    assert_int_equal(w.rc, 0);
    assert_int_equal(lkc_release_async(c, lkc_term_of(&k), lkc_self(c), 0, on_done, &w), 0);
    wait_calls(&w, 3);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.res.commits, 3);
    lkc_buf_free(&k);
    lkc_close(c);
}

static void test_wait_for_release(void **st)
{
    (void)st;
    lkc *a = open_client("wa"), *b = open_client("wb");
    assert_non_null(a);
    assert_non_null(b);
    lkc_buf k = term("{lkc_test, wait_for_release}");
    assert_int_equal(lkc_wait_for_release(b, lkc_term_of(&k), 1000), 0); /* not held */
    assert_int_equal(lkc_lock(a, lkc_term_of(&k), lkc_self(a), 10000, 0, NULL), 0);
    assert_int_equal(lkc_wait_for_release(b, lkc_term_of(&k), 300), LKC_ETIMEOUT);
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, {0}};
    assert_int_equal(lkc_release_async(a, lkc_term_of(&k), lkc_self(a), 0, on_done, &w), 0);
    assert_int_equal(lkc_wait_for_release(b, lkc_term_of(&k), 5000), 0);
    wait_calls(&w, 1);
    assert_int_equal(w.rc, 0);
    lkc_buf_free(&k);
    lkc_close(a);
    lkc_close(b);
}

static void test_set_w(void **st)
{
    (void)st;
    lkc *c = open_client("cw");
    assert_non_null(c);
    assert_int_equal(lkc_set_w(c, masters, 2), 0);
    assert_int_equal(lkc_set_w(c, masters, 0), LKC_EINVAL);
    char bad[1400];
    snprintf(bad, sizeof bad, "%s,nosuch_%u@%s", masters, suffix, host);
    assert_int_equal(lkc_set_w(c, bad, 2), LKC_ECONNECT);
    assert_int_equal(lkc_set_nodes(c, masters, masters, ""), 0);
    lkc_close(c);
}

/* A dead first master: dirty_read moves on to the next one. */
static void test_dirty_read_failover(void **st)
{
    (void)st;
    char list[1400], name[64], err[256];
    snprintf(list, sizeof list, "dead_%u@%s,%s", suffix, host, masters);
    snprintf(name, sizeof name, "cf_%u", suffix);
    struct lkc_opts o = {.node_name = name, .cookie = COOKIE, .masters = list, .w = 2};
    lkc *c;
    assert_int_equal(lkc_open(&o, &c, err, sizeof err), 0);
    lkc_buf k = term("{lkc_test, failover}"), v;
    assert_int_equal(lkc_lock(c, lkc_term_of(&k), lkc_self(c), 5000, 0, NULL), 0);
    assert_int_equal(lkc_dirty_read(c, lkc_term_of(&k), &v), 0);
    assert_true(same(lkc_term_of(&v), lkc_self(c)));
    lkc_buf_free(&v);
    assert_int_equal(lkc_release(c, lkc_term_of(&k), lkc_self(c), 0, NULL), 0);
    lkc_buf_free(&k);
    lkc_close(c);
}

struct svc_state {
    int lost;
};

static void svc_lost(void *ud, int rc)
{
    (void)rc;
    ((struct svc_state *)ud)->lost++;
}

static void test_register(void **st)
{
    (void)st;
    lkc *a = open_client("ra"), *b = open_client("rb");
    assert_non_null(a);
    assert_non_null(b);
    lkc_buf name = term("<<\"lkc_test_svc\">>"), v;
    struct svc_state ss = {0};
    const struct lkc_service_ops ops = {.on_lease_lost = svc_lost};
    lkc_service *s, *s2;
    assert_int_equal(lkc_register(a, lkc_term_of(&name), 1500, &ops, &ss, &s), 0);
    assert_int_equal(lkc_register(a, lkc_term_of(&name), 500, &ops, &ss, &s2), LKC_EINVAL);
    assert_int_equal(lkc_dirty_read(b, lkc_term_of(&name), &v), 0);
    assert_true(same(lkc_term_of(&v), lkc_service_pid(s)));
    assert_false(same(lkc_term_of(&v), lkc_self(a)));
    lkc_buf_free(&v);
    assert_int_equal(lkc_lock(b, lkc_term_of(&name), lkc_self(b), 5000, 0, NULL), LKC_ENOQUORUM);
    assert_int_equal(lkc_register(b, lkc_term_of(&name), 1500, &ops, &ss, &s2), LKC_ENAMETAKEN);
    sleep_ms(3500); /* more than two lease lengths: extended meanwhile */
    assert_int_equal(ss.lost, 0);
    assert_int_equal(lkc_lock(b, lkc_term_of(&name), lkc_self(b), 5000, 0, NULL), LKC_ENOQUORUM);
    assert_int_equal(lkc_unregister(s), 0);
    assert_int_equal(lkc_dirty_read(b, lkc_term_of(&name), &v), LKC_ENOTFOUND);
    assert_int_equal(lkc_lock(b, lkc_term_of(&name), lkc_self(b), 5000, 0, NULL), 0);
    assert_int_equal(lkc_release(b, lkc_term_of(&name), lkc_self(b), 0, NULL), 0);
    lkc_buf_free(&name);
    lkc_close(a);
    lkc_close(b);
}

/* Close with async work in flight and a registered service: every
 * callback runs exactly once, and the name is released. */
static void test_close_pending(void **st)
{
    (void)st;
    lkc *a = open_client("pa"), *b = open_client("pb");
    assert_non_null(a);
    assert_non_null(b);
    lkc_buf name = term("lkc_test_close_svc"), v;
    lkc_service *s;
    assert_int_equal(lkc_register(a, lkc_term_of(&name), 10000, NULL, NULL, &s), 0);
    enum { N = 20 };
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, {0}};
    lkc_buf keys[N];
    for (int i = 0; i < N; i++) {
        char text[64];
        snprintf(text, sizeof text, "{lkc_test, close, %d}", i);
        keys[i] = term(text);
        assert_int_equal(lkc_lock_async(a, lkc_term_of(&keys[i]), lkc_self(a), 3000, 0, on_done,
                                        &w), 0);
    }
    lkc_close(a);
    assert_int_equal(w.calls, N);
    assert_int_equal(lkc_dirty_read(b, lkc_term_of(&name), &v), LKC_ENOTFOUND);
    for (int i = 0; i < N; i++)
        lkc_buf_free(&keys[i]);
    lkc_buf_free(&name);
    lkc_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_terms),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_lock_read_release),
        cmocka_unit_test(test_contention),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_extend_lease),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_wait_for_release),
        cmocka_unit_test(test_set_w),
        cmocka_unit_test(test_dirty_read_failover),
        cmocka_unit_test(test_register),
        cmocka_unit_test(test_close_pending),
    };
    return cmocka_run_group_tests_name("client", tests, setup, teardown);
}
