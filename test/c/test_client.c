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

/* ---- raw calls (lkc_call_async / lkc_call_wait) ---- */

static void first_master(char *out, size_t cap)
{
    size_t n = strcspn(masters, ",");
    assert_true(n < cap);
    memcpy(out, masters, n);
    out[n] = 0;
}

static int is_atom_ok(lkc_term t) { return t.len == 5 && !memcmp(t.data, "\x83\x77\x02ok", 5); }

/* {write, Tag, {lkc_raw, I}, Self, 60000}, spliced from the terms' bytes
 * (refs and pids have no Erlang syntax to parse). */
static lkc_buf raw_write(lkc *c, lkc_term tag, int i)
{
    lkc_buf key, req;
    char text[64];
    snprintf(text, sizeof text, "{lkc_raw, %d}", i);
    key = term(text);
    size_t n = 3 + 7 + (tag.len - 1) + (key.len - 1) + (lkc_self(c).len - 1) + 5;
    req.data = malloc(n);
    assert_non_null(req.data);
    unsigned char *p = req.data;
    memcpy(p, "\x83\x68\x05\x77\x05write", 10);
    p += 10;
    memcpy(p, tag.data + 1, tag.len - 1);
    p += tag.len - 1;
    memcpy(p, key.data + 1, key.len - 1);
    p += key.len - 1;
    memcpy(p, lkc_self(c).data + 1, lkc_self(c).len - 1);
    p += lkc_self(c).len - 1;
    memcpy(p, "\x62\x00\x00\xea\x60", 5); /* 60000 */
    p += 5;
    req.len = (size_t)(p - req.data);
    lkc_buf_free(&key);
    return req;
}

struct pipe {
    lkc *c;
    const char *node;
    lkc_buf tag;
    int next, total, ok, bad, done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void pipe_done(void *ud, int rc, lkc_term reply)
{
    struct pipe *p = ud;
    if (rc == 0 && is_atom_ok(reply))
        p->ok++;
    else
        p->bad++;
    if (p->next < p->total) {
        /* From the callback: written straight into the connection. */
        lkc_buf req = raw_write(p->c, lkc_term_of(&p->tag), p->next++);
        int r = lkc_call_async(p->c, p->node, lkc_term_of(&req), 5000, pipe_done, p);
        lkc_buf_free(&req);
        if (r == 0)
            return;
        p->bad++;
    }
    pthread_mutex_lock(&p->mu);
    p->done++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* A blocking write, then 2000 pipelined ones (200 in flight), each a
 * real lease on the first master. */
static void test_raw_calls(void **st)
{
    (void)st;
    char m0[256];
    first_master(m0, sizeof m0);
    lkc *c = open_client("rc");
    assert_non_null(c);
    struct pipe p = {.c = c, .node = m0, .total = 2000, .mu = PTHREAD_MUTEX_INITIALIZER,
                     .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(lkc_make_ref(c, &p.tag), 0);
    assert_int_equal(p.tag.data[0], 131);
    assert_int_equal(p.tag.data[1], 90); /* NEWER_REFERENCE_EXT */
    lkc_buf req = raw_write(c, lkc_term_of(&p.tag), 0), reply, v;
    assert_int_equal(lkc_call_wait(c, m0, lkc_term_of(&req), 5000, &reply), 0);
    assert_true(is_atom_ok(lkc_term_of(&reply)));
    lkc_buf_free(&req);
    lkc_buf_free(&reply);
    enum { WINDOW = 200 };
    p.next = WINDOW;
    for (int i = 0; i < WINDOW; i++) {
        req = raw_write(c, lkc_term_of(&p.tag), i);
        assert_int_equal(lkc_call_async(c, m0, lkc_term_of(&req), 5000, pipe_done, &p), 0);
        lkc_buf_free(&req);
    }
    pthread_mutex_lock(&p.mu);
    while (p.done < WINDOW)
        pthread_cond_wait(&p.cv, &p.mu);
    pthread_mutex_unlock(&p.mu);
    assert_int_equal(p.ok, p.total);
    assert_int_equal(p.bad, 0);
    /* Real leases: the master holds {lkc_raw, 1999} -> our pid. */
    lkc_buf k = term("{lkc_raw, 1999}");
    assert_int_equal(lkc_dirty_read(c, lkc_term_of(&k), &v), 0);
    assert_true(same(lkc_term_of(&v), lkc_self(c)));
    /* A request with no reply in time times out; a malformed one is
     * refused before anything is sent. */
    lkc_buf wf = term("{wait_for, {lkc_raw, never}, 60000}");
    assert_int_equal(lkc_call_wait(c, m0, lkc_term_of(&wf), 300, &reply), LKC_ETIMEOUT);
    static const unsigned char bad[] = {131, 104, 2, 119};
    assert_int_equal(lkc_call_wait(c, m0, (lkc_term){bad, sizeof bad}, 1000, &reply),
                     LKC_EBADTERM);
    assert_int_equal(lkc_call_async(c, m0, (lkc_term){bad, sizeof bad}, 1000, pipe_done, &p),
                     LKC_EBADTERM);
    lkc_buf_free(&wf);
    lkc_buf_free(&k);
    lkc_buf_free(&v);
    lkc_buf_free(&p.tag);
    lkc_close(c);
}

struct one {
    int calls, rc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void one_done(void *ud, int rc, lkc_term reply)
{
    (void)reply;
    struct one *o = ud;
    pthread_mutex_lock(&o->mu);
    o->calls++;
    o->rc = rc;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

/* Nodes without a locker fail fast: one not running at all, and a live
 * node (another client) whose monitor on locker answers noproc. A call
 * pending at close ends with LKC_ECLOSED. */
static void test_raw_call_failures(void **st)
{
    (void)st;
    char m0[256], ghost[300];
    first_master(m0, sizeof m0);
    snprintf(ghost, sizeof ghost, "lkc_nosuch_%u@%s", suffix, host);
    lkc *a = open_client("ra"), *b = open_client("rb");
    assert_non_null(a);
    assert_non_null(b);
    lkc_buf req = term("get_meta"), reply;
    assert_int_equal(lkc_call_wait(a, ghost, lkc_term_of(&req), 5000, &reply), LKC_ECONNECT);
    assert_int_equal(lkc_call_wait(a, lkc_node_name(b), lkc_term_of(&req), 5000, &reply),
                     LKC_ECONNECT);
    assert_int_equal(lkc_call_wait(a, m0, lkc_term_of(&req), 5000, &reply), 0);
    lkc_buf_free(&reply);
    struct one o = {0, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
    assert_int_equal(lkc_call_async(a, ghost, lkc_term_of(&req), 5000, one_done, &o), 0);
    pthread_mutex_lock(&o.mu);
    while (o.calls < 1)
        pthread_cond_wait(&o.cv, &o.mu);
    pthread_mutex_unlock(&o.mu);
    assert_int_equal(o.rc, LKC_ECONNECT);
    lkc_buf wf = term("{wait_for, {lkc_raw, never}, 60000}");
    assert_int_equal(lkc_call_async(a, m0, lkc_term_of(&wf), 60000, one_done, &o), 0);
    lkc_close(a);
    assert_int_equal(o.calls, 2);
    assert_int_equal(o.rc, LKC_ECLOSED);
    lkc_buf_free(&wf);
    lkc_buf_free(&req);
    lkc_close(b);
}

/* lkc_rpc: a return value, a raise (undef, badarg), a node that is not
 * there; lkc_node_failure then says why, and forgets once it connects. */
static void test_rpc(void **st)
{
    (void)st;
    char m0[256], ghost[300], why[256];
    first_master(m0, sizeof m0);
    snprintf(ghost, sizeof ghost, "lkc_nosuch_%u@%s", suffix, host);
    lkc *c = open_client("rp");
    assert_non_null(c);
    lkc_buf r, want = term(m0);
    assert_int_equal(lkc_rpc(c, m0, "erlang", "node", NULL, 0, 5000, &r), 0);
    assert_true(same(lkc_term_of(&r), lkc_term_of(&want)));
    lkc_buf_free(&r);
    lkc_buf_free(&want);
    /* a lockerd master not in a quiet period */
    want = term("0");
    assert_int_equal(lkc_rpc(c, m0, "lockerd", "quiet_period_left", NULL, 0, 5000, &r), 0);
    assert_true(same(lkc_term_of(&r), lkc_term_of(&want)));
    lkc_buf_free(&r);
    lkc_buf_free(&want);
    /* arguments, and the result exactly as the function returns it */
    lkc_buf k = term("{lkc_rpc, key}"), v = term("<<\"x\">>");
    assert_int_equal(lkc_lock(c, lkc_term_of(&k), lkc_term_of(&v), 5000, 5000, NULL), 0);
    lkc_term args[] = {lkc_term_of(&k)};
    want = term("{ok, <<\"x\">>}");
    assert_int_equal(lkc_rpc(c, m0, "locker", "dirty_read", args, 1, 5000, &r), 0);
    assert_true(same(lkc_term_of(&r), lkc_term_of(&want)));
    lkc_buf_free(&r);
    lkc_buf_free(&want);
    assert_int_equal(lkc_release(c, lkc_term_of(&k), lkc_term_of(&v), 5000, NULL), 0);
    /* two arguments */
    lkc_buf t100 = term("100");
    lkc_term args2[] = {lkc_term_of(&k), lkc_term_of(&t100)};
    want = term("{error, key_not_locked}");
    assert_int_equal(lkc_rpc(c, m0, "locker", "wait_for_release", args2, 2, 5000, &r), 0);
    assert_true(same(lkc_term_of(&r), lkc_term_of(&want)));
    lkc_buf_free(&r);
    lkc_buf_free(&want);
    lkc_buf_free(&t100);
    /* raises: {Class, Reason} */
    assert_int_equal(lkc_rpc(c, m0, "no_such_module", "f", args, 1, 5000, &r), LKC_EREMOTE);
    lkc_buf text;
    assert_int_equal(lkc_format(lkc_term_of(&r), &text), 0);
    assert_string_equal((const char *)text.data, "{error,undef}");
    lkc_buf_free(&text);
    lkc_buf_free(&r);
    /* unreachable, and why */
    assert_int_equal(lkc_node_failure(c, m0, why, sizeof why), LKC_ENOTFOUND);
    assert_int_equal(lkc_rpc(c, ghost, "erlang", "node", NULL, 0, 5000, &r), LKC_ECONNECT);
    assert_int_equal(lkc_node_failure(c, ghost, why, sizeof why), 0);
    assert_non_null(strstr(why, "epmd"));
    /* bad arguments */
    assert_int_equal(lkc_rpc(c, "no_at_sign", "erlang", "node", NULL, 0, 5000, &r), LKC_EINVAL);
    assert_int_equal(lkc_rpc(c, m0, "erlang", "node", NULL, 17, 5000, &r), LKC_EINVAL);
    lkc_buf_free(&k);
    lkc_buf_free(&v);
    lkc_close(c);
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
        cmocka_unit_test(test_raw_calls),
        cmocka_unit_test(test_raw_call_failures),
        cmocka_unit_test(test_rpc),
    };
    return cmocka_run_group_tests_name("client", tests, setup, teardown);
}
