/*
 * Coordinator: the docs/protocol.md section 5 write operations and multi-calls
 * against a fake transport that records every send in order, with a fake
 * clock passed explicitly. Requests are checked by decoding the recorded
 * bytes element by element; results against what test/erlang/lkr.erl
 * returns for the same replies.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cnode/coord/coord.h"
#include "cnode/core/clock.h"
#include "ei_glue/enc.h"

/* ---- fake transport ---- */

struct sent {
    bool noreply;
    bool fence;    /* sent with call_fence (to lockerd_fence) */
    bool failed;   /* call() returned an error */
    bool answered; /* bookkeeping for the interleaving test */
    char node[16];
    uint64_t id;
    uint32_t len;
    uint8_t req[256];
};

struct fake {
    struct sent *v;
    size_t n, cap;
    uint32_t nref;
    int ref_rc;
    const char *down[4]; /* call() fails for these */
    size_t ndown;
    struct coord *c;     /* sync replies go here */
    bool sync_ok;        /* answer `ok` from inside call() */
    int64_t now;
    void (*on_call)(struct fake *f, const char *node); /* runs inside call() */
    uint64_t hook_arg;
};

static struct sent *record(struct fake *f, const char *node, uint64_t id, struct term req, bool noreply)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->v = realloc(f->v, f->cap * sizeof *f->v);
        assert_non_null(f->v);
    }
    struct sent *s = &f->v[f->n++];
    memset(s, 0, sizeof *s);
    assert_true(strlen(node) < sizeof s->node);
    assert_true(req.len <= sizeof s->req);
    strcpy(s->node, node);
    s->id = id;
    s->noreply = noreply;
    s->len = req.len;
    memcpy(s->req, req.p, req.len);
    return s;
}

static bool is_down(const struct fake *f, const char *node)
{
    for (size_t i = 0; i < f->ndown; i++)
        if (strcmp(f->down[i], node) == 0)
            return true;
    return false;
}

static struct term OK, ALREADY, NOTEXP, NOTFOUND, KEY, VAL, NEWVAL, SETW;

static int fake_call(void *ud, const char *node, uint64_t id, struct term req)
{
    struct fake *f = ud;
    struct sent *s = record(f, node, id, req, false);
    if (is_down(f, node)) {
        s->failed = true;
        return -EHOSTUNREACH;
    }
    if (f->sync_ok)
        coord_on_reply(f->c, id, OK, f->now);
    if (f->on_call)
        f->on_call(f, node);
    return 0;
}

static int fake_noreply(void *ud, const char *node, struct term req)
{
    record(ud, node, 0, req, true);
    return 0;
}

static int fake_make_ref(void *ud, struct buf *out)
{
    struct fake *f = ud;
    if (f->ref_rc)
        return f->ref_rc;
    uint32_t ids[3] = {++f->nref, 7, 9};
    return enc_ref(out, "coord@host", 1, ids);
}

static const struct coord_io fake_io = {fake_call, fake_noreply, fake_make_ref};

static int fake_call_fence(void *ud, const char *node, uint64_t id, struct term req)
{
    struct fake *f = ud;
    size_t at = f->n;
    int rc = fake_call(ud, node, id, req);
    f->v[at].fence = true;
    return rc;
}

static const struct coord_io fake_io_fenced = {fake_call, fake_noreply, fake_make_ref,
                                               fake_call_fence};

/* ---- terms ---- */

static struct buf termbuf[8];

static struct term mk(int i, int (*build)(struct buf *))
{
    buf_init(&termbuf[i]);
    assert_int_equal(build(&termbuf[i]), 0);
    return (struct term){buf_head(&termbuf[i]), (uint32_t)buf_size(&termbuf[i])};
}

static int b_ok(struct buf *b) { return enc_atom(b, "ok"); }
static int b_already(struct buf *b) { return enc_atom_pair(b, "error", "already_locked"); }
static int b_notexp(struct buf *b) { return enc_atom_pair(b, "error", "not_expected_value"); }
static int b_notfound(struct buf *b) { return enc_atom_pair(b, "error", "not_found"); }
static int b_key(struct buf *b)
{
    int rc = enc_tuple(b, 2);
    rc = rc ? rc : enc_atom(b, "user");
    return rc ? rc : enc_long(b, 42);
}
static int b_val(struct buf *b) { return enc_pid(b, "client@host", 77, 0, 3); }
static int b_newval(struct buf *b) { return enc_binary(b, "new", 3); }
static int b_setw(struct buf *b)
{
    int rc = enc_tuple(b, 2);
    rc = rc ? rc : enc_atom(b, "set_w");
    return rc ? rc : enc_long(b, 2);
}

static int setup_terms(void **state)
{
    (void)state;
    OK = mk(0, b_ok);
    ALREADY = mk(1, b_already);
    NOTEXP = mk(2, b_notexp);
    NOTFOUND = mk(3, b_notfound);
    KEY = mk(4, b_key);
    VAL = mk(5, b_val);
    NEWVAL = mk(6, b_newval);
    SETW = mk(7, b_setw);
    return 0;
}

static int teardown_terms(void **state)
{
    (void)state;
    for (int i = 0; i < 8; i++)
        buf_free(&termbuf[i]);
    return 0;
}

/* {user, N}: per-task keys of the interleaving test. */
static struct term user_key(struct buf *b, int n)
{
    buf_init(b);
    assert_int_equal(enc_tuple(b, 2), 0);
    assert_int_equal(enc_atom(b, "user"), 0);
    assert_int_equal(enc_long(b, n), 0);
    return (struct term){buf_head(b), (uint32_t)buf_size(b)};
}

/* ---- request decoding ---- */

struct tag {
    uint8_t b[64];
    uint32_t len;
};

/* Split the request tuple of s into elements; returns the arity. */
static uint32_t split(const struct sent *s, struct term el[8])
{
    size_t pos = 0;
    uint32_t ar;
    assert_int_equal(term_get_tuple(s->req, s->len, &pos, &ar), 0);
    assert_true(ar <= 8);
    for (uint32_t i = 0; i < ar; i++) {
        size_t st = pos;
        assert_int_equal(term_skip(s->req, s->len, &pos), 0);
        el[i] = (struct term){s->req + st, (uint32_t)(pos - st)};
    }
    assert_int_equal(pos, s->len);
    return ar;
}

/* s must be a call (or a no-reply send) to `node` of the tuple described
 * by fmt: 'a' atom (const char *), 't' term (struct term), 'i' integer
 * (int64_t), 'g' the tag (struct tag *: captured if empty, else equal). */
static void expect_req(const struct sent *s, bool noreply, const char *node, const char *fmt, ...)
{
    struct term el[8];
    assert_int_equal(s->noreply, noreply);
    assert_string_equal(s->node, node);
    assert_int_equal(split(s, el), strlen(fmt));
    va_list ap;
    va_start(ap, fmt);
    for (size_t i = 0; fmt[i]; i++) {
        if (fmt[i] == 'a') {
            assert_true(term_is_atom(el[i].p, el[i].len, 0, va_arg(ap, const char *)));
        } else if (fmt[i] == 't') {
            assert_true(term_eq(el[i], va_arg(ap, struct term)));
        } else if (fmt[i] == 'i') {
            int64_t v;
            size_t pos = 0;
            assert_int_equal(term_get_int64(el[i].p, el[i].len, &pos, &v), 0);
            assert_int_equal(v, va_arg(ap, int64_t));
        } else {
            struct tag *g = va_arg(ap, struct tag *);
            assert_int_equal(term_peek(el[i].p, el[i].len, 0), TT_NEWER_REF);
            if (!g->len) {
                assert_true(el[i].len <= sizeof g->b);
                memcpy(g->b, el[i].p, el[i].len);
                g->len = el[i].len;
            }
            assert_true(term_eq(el[i], (struct term){g->b, g->len}));
        }
    }
    va_end(ap);
}

/* ---- results ---- */

struct got {
    int calls;
    struct coord_result r; /* scalars only: the arrays die with the callback */
    size_t nrep, nbad;
    char rep_node[8][16];
    uint8_t rep[8][64];
    uint32_t rep_len[8];
    char bad[8][16];
    void (*hook)(struct got *g); /* runs inside the callback */
    void *hook_ud;
};

static void on_done(void *ud, const struct coord_result *r)
{
    struct got *g = ud;
    g->calls++;
    g->r = *r;
    g->nrep = r->nreplies;
    g->nbad = r->nbad;
    assert_true(r->nreplies <= 8 && r->nbad <= 8);
    for (size_t i = 0; i < r->nreplies; i++) {
        strcpy(g->rep_node[i], r->replies[i].node);
        assert_true(r->replies[i].reply.len <= sizeof g->rep[i]);
        memcpy(g->rep[i], r->replies[i].reply.p, r->replies[i].reply.len);
        g->rep_len[i] = r->replies[i].reply.len;
    }
    for (size_t i = 0; i < r->nbad; i++)
        strcpy(g->bad[i], r->bad_nodes[i]);
    if (g->hook)
        g->hook(g);
}

/* ---- fixtures ---- */

static char *ABC[] = {"a", "b", "c"};
static const struct coord_meta META3 = {ABC, 3, NULL, 0, 2};

struct env {
    struct fake f;
    struct coord *c;
};

static void env_init(struct env *e)
{
    memset(e, 0, sizeof *e);
    e->c = coord_new(&fake_io, &e->f);
    assert_non_null(e->c);
    e->f.c = e->c;
}

static void env_fini(struct env *e)
{
    coord_free(e->c);
    free(e->f.v);
}

static struct coord_args lock_args(void)
{
    return (struct coord_args){.op = COORD_LOCK, .key = KEY, .value = VAL,
                               .lease_ms = 2000, .timeout_ms = 5000};
}

static void reply(struct env *e, size_t i, struct term r, int64_t now)
{
    assert_true(i < e->f.n);
    coord_on_reply(e->c, e->f.v[i].id, r, now);
}

static void expect_votes(struct env *e, size_t from, struct term expected, struct tag *tag)
{
    for (size_t i = 0; i < 3; i++) {
        if (expected.len)
            expect_req(&e->f.v[from + i], false, ABC[i], "attg", "get_write_lock", KEY, expected, tag);
        else
            expect_req(&e->f.v[from + i], false, ABC[i], "atag", "get_write_lock", KEY, "not_found", tag);
    }
}

static void expect_rwl(struct env *e, size_t from, const char *const *nodes, size_t n, struct tag *tag)
{
    for (size_t i = 0; i < n; i++)
        expect_req(&e->f.v[from + i], true, nodes[i], "ag", "release_write_lock", tag);
}

/* ---- fencing tokens ---- */

static struct term counter_vote(struct buf *b, int64_t n)
{
    buf_init(b);
    assert_int_equal(enc_tuple(b, 2), 0);
    assert_int_equal(enc_atom(b, "ok"), 0);
    assert_int_equal(enc_long(b, n), 0);
    return (struct term){buf_head(b), (uint32_t)buf_size(b)};
}

/* The last element of a sent tuple, as an integer. */
static int64_t last_int(const struct sent *s)
{
    size_t pos = 0;
    uint32_t ar;
    assert_int_equal(term_get_tuple(s->req, s->len, &pos, &ar), 0);
    for (uint32_t i = 0; i + 1 < ar; i++)
        assert_int_equal(term_skip(s->req, s->len, &pos), 0);
    int64_t v;
    assert_int_equal(term_get_int64(s->req, s->len, &pos, &v), 0);
    assert_int_equal(pos, s->len);
    return v;
}

static void fenced_env(struct env *e)
{
    memset(e, 0, sizeof *e);
    e->c = coord_new(&fake_io_fenced, &e->f);
    assert_non_null(e->c);
    e->f.c = e->c;
}

/* Token = 1 + the largest counter among the ok votes; the commit carries
 * it and goes to lockerd_fence; W commits give it to the caller. A plain
 * `ok` (not a counter) is not a fenced vote. */
static void test_fenced_lock(void **state)
{
    (void)state;
    struct env e;
    fenced_env(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    a.fenced = 1;
    struct buf b1, b2;
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    assert_int_equal(e.f.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_true(e.f.v[i].fence);
    reply(&e, 0, counter_vote(&b1, (INT64_C(3) << 40) + 5), 1);
    reply(&e, 1, OK, 1);
    reply(&e, 2, counter_vote(&b2, (INT64_C(2) << 40) + 900), 1);
    assert_int_equal(e.f.n, 6);
    for (size_t i = 3; i < 6; i++) {
        assert_true(e.f.v[i].fence);
        assert_int_equal(last_int(&e.f.v[i]), (INT64_C(3) << 40) + 6);
    }
    reply(&e, 3, OK, 2);
    reply(&e, 4, OK, 2);
    reply(&e, 5, OK, 2);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, 0);
    assert_int_equal(g.r.votes, 2);
    assert_int_equal(g.r.token, (UINT64_C(3) << 40) + 6);
    buf_free(&b1);
    buf_free(&b2);
    env_fini(&e);
}

/* A master without lockerd_fence (noproc): tokens unavailable, the votes
 * released, nothing committed. */
static void test_fenced_beam_master(void **state)
{
    (void)state;
    struct env e;
    fenced_env(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    a.fenced = 1;
    struct buf b1, b2;
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    reply(&e, 0, counter_vote(&b1, 1), 1);
    coord_on_noproc(e.c, e.f.v[1].id, 1);
    reply(&e, 2, counter_vote(&b2, 2), 1);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, -EPROTONOSUPPORT);
    assert_int_equal(g.r.token, 0);
    assert_int_equal(e.f.n, 6);
    struct tag tag = {0};
    expect_rwl(&e, 3, (const char *const *)ABC, 3, &tag);
    buf_free(&b1);
    buf_free(&b2);
    env_fini(&e);
}

/* A lockerd without a state file: tokens unavailable, like a BEAM master. */
static void test_fenced_no_state_file(void **state)
{
    (void)state;
    struct env e;
    fenced_env(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    a.fenced = 1;
    struct buf b1, nsf;
    buf_init(&nsf);
    assert_int_equal(enc_atom_pair(&nsf, "error", "fencing_needs_state_file"), 0);
    struct term nosf = {buf_head(&nsf), (uint32_t)buf_size(&nsf)};
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    reply(&e, 0, counter_vote(&b1, 1), 1);
    reply(&e, 1, nosf, 1);
    reply(&e, 2, nosf, 1);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, -EPROTONOSUPPORT);
    buf_free(&b1);
    buf_free(&nsf);
    env_fini(&e);
}

/* Fewer than W commits: the token does not count. */
static void test_fenced_commit_short(void **state)
{
    (void)state;
    struct env e;
    fenced_env(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    a.fenced = 1;
    struct buf b[3];
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    for (size_t i = 0; i < 3; i++)
        reply(&e, i, counter_vote(&b[i], 7), 1);
    reply(&e, 3, OK, 2);
    reply(&e, 4, ALREADY, 2);
    coord_on_node_down(e.c, "c", 2);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, -ENOLCK);
    assert_int_equal(g.r.commits, 1);
    for (size_t i = 0; i < 3; i++)
        buf_free(&b[i]);
    env_fini(&e);
}

/* No call_fence in the transport: a fenced task is refused up front; a
 * release's commit goes to `locker` (masters and replicas), its vote to
 * lockerd_fence. */
static void test_fenced_transport(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    a.fenced = 1;
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), -ENOTSUP);
    env_fini(&e);
    fenced_env(&e);
    struct coord_args r = {.op = COORD_RELEASE, .key = KEY, .value = VAL, .timeout_ms = 100,
                           .fenced = 1};
    struct buf b[3];
    assert_int_equal(coord_start(e.c, &r, &META3, 0, on_done, &g, NULL), 0);
    for (size_t i = 0; i < 3; i++)
        reply(&e, i, counter_vote(&b[i], 40 + (int64_t)i), 1);
    assert_int_equal(e.f.n, 6);
    for (size_t i = 3; i < 6; i++)
        assert_false(e.f.v[i].fence);
    for (size_t i = 3; i < 6; i++)
        reply(&e, i, OK, 2);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, 0);
    assert_int_equal(g.r.token, 43);
    for (size_t i = 0; i < 3; i++)
        buf_free(&b[i]);
    env_fini(&e);
}

/* ---- lock ---- */

static void test_lock_success(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    uint64_t id = 0;
    struct tag tag = {0};
    assert_int_equal(coord_start(e.c, &a, &META3, 1000, on_done, &g, &id), 0);
    assert_true(id != 0);
    assert_int_equal(coord_pending(e.c), 1);
    assert_int_equal(coord_next_deadline(e.c), 6000);
    assert_int_equal(e.f.n, 3);
    expect_votes(&e, 0, (struct term){0}, &tag);
    /* Like multi_call, the phase waits for every master, not just W. */
    reply(&e, 0, OK, 1100);
    reply(&e, 1, OK, 1150);
    assert_int_equal(e.f.n, 3);
    reply(&e, 2, OK, 1200);
    assert_int_equal(e.f.n, 6);
    for (size_t i = 0; i < 3; i++)
        expect_req(&e.f.v[3 + i], false, ABC[i], "agtti", "write", &tag, KEY, VAL, (int64_t)2000);
    assert_int_equal(coord_next_deadline(e.c), 6200);
    reply(&e, 3, OK, 1300);
    reply(&e, 4, OK, 1300);
    assert_int_equal(g.calls, 0);
    reply(&e, 5, OK, 1300);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, 0);
    assert_int_equal(g.r.task_id, id);
    assert_int_equal(g.r.op, COORD_LOCK);
    assert_int_equal(g.r.w, 2);
    assert_int_equal(g.r.votes, 3);
    assert_int_equal(g.r.commits, 3);
    assert_int_equal(g.r.nreplies, 0);
    assert_int_equal(e.f.n, 6); /* no cleanup sends */
    assert_int_equal(coord_pending(e.c), 0);
    assert_int_equal(coord_next_deadline(e.c), CLOCK_NEVER);
    env_fini(&e);
}

static void test_lock_one_already_locked(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    struct tag tag = {0};
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    reply(&e, 1, ALREADY, 10);
    reply(&e, 0, OK, 10);
    reply(&e, 2, OK, 10);
    /* The commit goes to every master, the refusing one included. */
    assert_int_equal(e.f.n, 6);
    expect_votes(&e, 0, (struct term){0}, &tag);
    for (size_t i = 0; i < 3; i++)
        expect_req(&e.f.v[3 + i], false, ABC[i], "agtti", "write", &tag, KEY, VAL, (int64_t)2000);
    for (size_t i = 3; i < 6; i++)
        reply(&e, i, OK, 20);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, 0);
    assert_int_equal(g.r.votes, 2);
    assert_int_equal(g.r.commits, 3);
    env_fini(&e);
}

static void test_lock_no_quorum(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    struct tag tag = {0};
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    reply(&e, 0, ALREADY, 5);
    reply(&e, 1, OK, 5);
    reply(&e, 2, NOTEXP, 5);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, -ENOLCK);
    assert_int_equal(g.r.votes, 1);
    assert_int_equal(g.r.commits, 0);
    assert_int_equal(e.f.n, 6);
    expect_votes(&e, 0, (struct term){0}, &tag);
    expect_rwl(&e, 3, (const char *const *)ABC, 3, &tag);
    assert_int_equal(coord_pending(e.c), 0);
    env_fini(&e);
}

static void test_node_down_mid_phase(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g1 = {0}, g2 = {0};
    struct coord_args a = lock_args();
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g1, NULL), 0);
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g2, NULL), 0);
    reply(&e, 0, OK, 1);
    reply(&e, 1, OK, 1);
    reply(&e, 3, OK, 1);
    assert_int_equal(e.f.n, 6);
    e.f.down[e.f.ndown++] = "c";
    coord_on_node_down(e.c, "c", 2);
    /* Task 1 had every other master's answer: its commit starts at once
     * (c's commit call fails at the transport). Task 2 still waits for b. */
    assert_int_equal(e.f.n, 9);
    assert_true(e.f.v[8].failed);
    assert_int_equal(coord_next_deadline(e.c), 5000);
    reply(&e, 6, OK, 3);
    reply(&e, 7, OK, 3);
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g1.r.votes, 2);
    assert_int_equal(g1.r.commits, 2);
    assert_int_equal(g2.calls, 0);
    coord_on_node_down(e.c, "b", 4);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g2.r.rc, -ENOLCK);
    assert_int_equal(g2.r.votes, 1);
    /* Cleanup to every master, down or not, as lkr does. */
    assert_int_equal(e.f.n, 12);
    struct tag t2 = {0};
    expect_rwl(&e, 9, (const char *const *)ABC, 3, &t2);
    coord_on_node_down(e.c, "zz", 5); /* nothing pending: no effect */
    assert_int_equal(coord_pending(e.c), 0);
    env_fini(&e);
}

static void test_timeout_and_late_reply(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    struct tag tag = {0};
    assert_int_equal(coord_start(e.c, &a, &META3, 1000, on_done, &g, NULL), 0);
    reply(&e, 0, OK, 2000);
    coord_advance(e.c, 5999);
    assert_int_equal(g.calls, 0);
    assert_int_equal(coord_next_deadline(e.c), 6000);
    coord_advance(e.c, 6000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, -ENOLCK);
    assert_int_equal(g.r.votes, 1);
    expect_votes(&e, 0, (struct term){0}, &tag);
    expect_rwl(&e, 3, (const char *const *)ABC, 3, &tag);
    /* Late, duplicate and unknown replies: ignored. */
    reply(&e, 1, OK, 6001);
    reply(&e, 2, OK, 6001);
    reply(&e, 0, OK, 6001);
    coord_on_reply(e.c, 0, OK, 6001);
    coord_on_reply(e.c, UINT64_MAX, OK, 6001);
    coord_advance(e.c, 100000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(e.f.n, 6);
    assert_int_equal(coord_next_deadline(e.c), CLOCK_NEVER);
    env_fini(&e);
}

static void test_commit_timeout(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    a.timeout_ms = 100;
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    for (size_t i = 0; i < 3; i++)
        reply(&e, i, OK, 50);
    assert_int_equal(coord_next_deadline(e.c), 150); /* a fresh Timeout per phase */
    reply(&e, 4, OK, 60);
    coord_advance(e.c, 150);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, 0);
    assert_int_equal(g.r.votes, 3);
    assert_int_equal(g.r.commits, 1);
    assert_int_equal(e.f.n, 6);
    env_fini(&e);
}

static void test_call_error(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    struct tag tag = {0};
    e.f.down[e.f.ndown++] = "b";
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    assert_true(e.f.v[1].failed);
    reply(&e, 1, OK, 1); /* a reply for a call that failed: ignored */
    reply(&e, 0, OK, 1);
    assert_int_equal(e.f.n, 3);
    reply(&e, 2, OK, 1); /* b already counted as failed: the phase ends */
    assert_int_equal(e.f.n, 6);
    expect_votes(&e, 0, (struct term){0}, &tag);
    for (size_t i = 0; i < 3; i++)
        expect_req(&e.f.v[3 + i], false, ABC[i], "agtti", "write", &tag, KEY, VAL, (int64_t)2000);
    reply(&e, 3, OK, 2);
    reply(&e, 5, OK, 2);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.votes, 2);
    assert_int_equal(g.r.commits, 2);
    env_fini(&e);
}

static void test_all_unreachable_deferred(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    e.f.down[0] = "a", e.f.down[1] = "b", e.f.down[2] = "c", e.f.ndown = 3;
    assert_int_equal(coord_start(e.c, &a, &META3, 700, on_done, &g, NULL), 0);
    /* Finished inside coord_start: delivered by the next advance only. */
    assert_int_equal(g.calls, 0);
    assert_int_equal(coord_pending(e.c), 1);
    assert_int_equal(coord_next_deadline(e.c), 700);
    assert_int_equal(e.f.n, 6); /* 3 failed votes + 3 cleanups */
    coord_advance(e.c, 700);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, -ENOLCK);
    assert_int_equal(g.r.votes, 0);
    assert_int_equal(coord_pending(e.c), 0);
    assert_int_equal(coord_next_deadline(e.c), CLOCK_NEVER);
    env_fini(&e);
}

static void test_quorum_edges(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g1 = {0}, g2 = {0};
    struct coord_args a = lock_args();
    /* No masters and W = 0: multi_call([]) and 0 >= 0, so {ok, 0, 0, 0}. */
    struct coord_meta none = {NULL, 0, NULL, 0, 0};
    assert_int_equal(coord_start(e.c, &a, &none, 0, on_done, &g1, NULL), 0);
    /* W above the master count can never be met. */
    struct coord_meta big = {ABC, 3, NULL, 0, 4};
    assert_int_equal(coord_start(e.c, &a, &big, 0, on_done, &g2, NULL), 0);
    for (size_t i = 0; i < 3; i++)
        reply(&e, i, OK, 1);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g2.r.rc, -ENOLCK);
    assert_int_equal(g2.r.votes, 3);
    assert_int_equal(g2.r.w, 4);
    assert_int_equal(g1.calls, 0);
    coord_advance(e.c, 1);
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g1.r.rc, 0);
    assert_int_equal(g1.r.w, 0);
    assert_int_equal(g1.r.votes, 0);
    assert_int_equal(g1.r.commits, 0);
    env_fini(&e);
}

/* ---- update, extend_lease, release ---- */

static void test_update(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct tag tag = {0};
    struct coord_args a = {.op = COORD_UPDATE, .key = KEY, .value = VAL, .new_value = NEWVAL,
                           .timeout_ms = 5000};
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    reply(&e, 0, OK, 1);
    reply(&e, 1, NOTEXP, 1);
    reply(&e, 2, OK, 1);
    expect_votes(&e, 0, VAL, &tag);
    assert_int_equal(e.f.n, 6);
    for (size_t i = 0; i < 3; i++)
        expect_req(&e.f.v[3 + i], false, ABC[i], "agtt", "update", &tag, KEY, NEWVAL);
    reply(&e, 3, OK, 2);
    reply(&e, 4, OK, 2);
    reply(&e, 5, ALREADY, 2);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, 0);
    assert_int_equal(g.r.op, COORD_UPDATE);
    assert_int_equal(g.r.votes, 2);
    assert_int_equal(g.r.commits, 2);
    assert_int_equal(e.f.n, 6);
    env_fini(&e);
}

static void test_extend_lease(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct tag tag = {0};
    struct coord_args a = {.op = COORD_EXTEND_LEASE, .key = KEY, .value = VAL, .lease_ms = 3000,
                           .timeout_ms = 1000};
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    reply(&e, 0, OK, 1);
    reply(&e, 1, NOTEXP, 1);
    reply(&e, 2, OK, 1);
    expect_votes(&e, 0, VAL, &tag);
    /* The commit reaches the lagging master too: that is how it catches up. */
    assert_int_equal(e.f.n, 6);
    for (size_t i = 0; i < 3; i++)
        expect_req(&e.f.v[3 + i], false, ABC[i], "agtti", "extend_lease", &tag, KEY, VAL,
                   (int64_t)3000);
    reply(&e, 3, OK, 2);
    reply(&e, 4, ALREADY, 2);
    coord_advance(e.c, 1001); /* c never answers its commit */
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, 0);
    assert_int_equal(g.r.op, COORD_EXTEND_LEASE);
    /* release_write_lock to every master whose commit reply was not `ok`. */
    assert_int_equal(e.f.n, 8);
    const char *notok[] = {"b", "c"};
    expect_rwl(&e, 6, notok, 2, &tag);
    env_fini(&e);
}

static void test_extend_lease_all_ok(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = {.op = COORD_EXTEND_LEASE, .key = KEY, .value = VAL, .lease_ms = 3000,
                           .timeout_ms = 1000};
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    for (size_t i = 0; i < 6; i++)
        reply(&e, i, OK, 1);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, 0);
    assert_int_equal(e.f.n, 6);
    env_fini(&e);
}

static void test_release(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct tag tag = {0};
    char *masters[] = {"b", "d"};
    char *replicas[] = {"c", "b", "a"};
    struct coord_meta m = {masters, 2, replicas, 3, 2};
    struct coord_args a = {.op = COORD_RELEASE, .key = KEY, .value = VAL, .timeout_ms = 5000};
    assert_int_equal(coord_start(e.c, &a, &m, 0, on_done, &g, NULL), 0);
    assert_int_equal(e.f.n, 2);
    expect_req(&e.f.v[0], false, "b", "attg", "get_write_lock", KEY, VAL, &tag);
    expect_req(&e.f.v[1], false, "d", "attg", "get_write_lock", KEY, VAL, &tag);
    reply(&e, 0, OK, 1);
    reply(&e, 1, OK, 1);
    /* lists:usort(Masters ++ Replicas). */
    const char *targets[] = {"a", "b", "c", "d"};
    assert_int_equal(e.f.n, 6);
    for (size_t i = 0; i < 4; i++)
        expect_req(&e.f.v[2 + i], false, targets[i], "attg", "release", KEY, VAL, &tag);
    reply(&e, 2, OK, 2);
    reply(&e, 3, OK, 2);
    reply(&e, 4, NOTFOUND, 2);
    assert_int_equal(g.calls, 0);
    reply(&e, 5, OK, 2);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, 0);
    assert_int_equal(g.r.op, COORD_RELEASE);
    assert_int_equal(g.r.w, 2);
    assert_int_equal(g.r.votes, 2);
    assert_int_equal(g.r.commits, 3);
    assert_int_equal(e.f.n, 6);
    env_fini(&e);
}

static void test_release_no_quorum(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct tag tag = {0};
    char *replicas[] = {"r1", "r2"};
    struct coord_meta m = {ABC, 3, replicas, 2, 2};
    struct coord_args a = {.op = COORD_RELEASE, .key = KEY, .value = VAL, .timeout_ms = 5000};
    assert_int_equal(coord_start(e.c, &a, &m, 0, on_done, &g, NULL), 0);
    reply(&e, 0, NOTEXP, 1);
    reply(&e, 1, NOTEXP, 1);
    reply(&e, 2, OK, 1);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, -ENOLCK);
    /* Cleanup to the masters only: replicas never voted. */
    assert_int_equal(e.f.n, 6);
    expect_votes(&e, 0, VAL, &tag);
    expect_rwl(&e, 3, (const char *const *)ABC, 3, &tag);
    env_fini(&e);
}

/* ---- multi-call ---- */

static void test_multi_call_set_w(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    char *cluster[] = {"a", "b", "c", "d"};
    e.f.down[e.f.ndown++] = "d";
    struct coord_args a = {.op = COORD_MULTI_CALL, .req = SETW, .nodes = cluster, .nnodes = 4,
                           .timeout_ms = 300};
    assert_int_equal(coord_start(e.c, &a, NULL, 0, on_done, &g, NULL), 0);
    assert_int_equal(e.f.n, 4);
    for (size_t i = 0; i < 4; i++) {
        expect_req(&e.f.v[i], false, cluster[i], "ai", "set_w", (int64_t)2);
        assert_int_equal(e.f.v[i].len, SETW.len);
        assert_memory_equal(e.f.v[i].req, SETW.p, SETW.len);
    }
    reply(&e, 2, NOTFOUND, 10); /* any reply shape is kept as is */
    reply(&e, 0, OK, 20);
    coord_advance(e.c, 299);
    assert_int_equal(g.calls, 0);
    coord_advance(e.c, 300);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, 0);
    assert_int_equal(g.r.op, COORD_MULTI_CALL);
    assert_int_equal(g.nrep, 2);
    assert_string_equal(g.rep_node[0], "a");
    assert_int_equal(g.rep_len[0], OK.len);
    assert_memory_equal(g.rep[0], OK.p, OK.len);
    assert_string_equal(g.rep_node[1], "c");
    assert_int_equal(g.rep_len[1], NOTFOUND.len);
    assert_memory_equal(g.rep[1], NOTFOUND.p, NOTFOUND.len);
    assert_int_equal(g.nbad, 2);
    assert_string_equal(g.bad[0], "b");
    assert_string_equal(g.bad[1], "d");
    assert_int_equal(e.f.nref, 0); /* no Tag for a plain multi-call */
    env_fini(&e);
}

static void test_multi_call_no_deadline(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    char *cluster[] = {"a", "b"};
    struct coord_args a = {.op = COORD_MULTI_CALL, .req = SETW, .nodes = cluster, .nnodes = 2,
                           .timeout_ms = -1};
    assert_int_equal(coord_start(e.c, &a, NULL, 0, on_done, &g, NULL), 0);
    assert_int_equal(coord_next_deadline(e.c), CLOCK_NEVER);
    reply(&e, 1, OK, 5);
    coord_advance(e.c, INT64_MAX - 1);
    assert_int_equal(g.calls, 0);
    coord_on_node_down(e.c, "a", 10);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.nrep, 1);
    assert_string_equal(g.rep_node[0], "b");
    assert_int_equal(g.nbad, 1);
    assert_string_equal(g.bad[0], "a");
    env_fini(&e);
}

/* ---- many tasks ---- */

#define NTASKS 240

struct ptask {
    int kind; /* 0 all ok, 1 b refuses, 2 a and b refuse, 3 c silent (then down) */
    struct got g;
};

/* N of the {user, N} key in a vote or commit request. */
static int key_of(const struct sent *s)
{
    struct term el[8];
    split(s, el);
    struct term k = el[2];
    if (term_is_atom(el[0].p, el[0].len, 0, "get_write_lock") ||
        term_is_atom(el[0].p, el[0].len, 0, "release"))
        k = el[1];
    size_t pos = 0;
    uint32_t kar;
    int64_t n;
    assert_int_equal(term_get_tuple(k.p, k.len, &pos, &kar), 0);
    assert_int_equal(term_skip(k.p, k.len, &pos), 0);
    assert_int_equal(term_get_int64(k.p, k.len, &pos, &n), 0);
    return (int)n;
}

static struct term answer_for(const struct ptask *p, const struct sent *s)
{
    struct term el[8];
    split(s, el);
    if (!term_is_atom(el[0].p, el[0].len, 0, "get_write_lock"))
        return OK;
    if (p->kind == 1 && strcmp(s->node, "b") == 0)
        return ALREADY;
    if (p->kind == 2 && strcmp(s->node, "c") != 0)
        return NOTEXP;
    return OK;
}

static void test_many_interleaved(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct ptask *pt = calloc(NTASKS, sizeof *pt);
    struct buf kb[NTASKS];
    assert_non_null(pt);
    for (int i = 0; i < NTASKS; i++) {
        pt[i].kind = i % 4;
        struct coord_args a = lock_args();
        a.key = user_key(&kb[i], i);
        assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &pt[i].g, NULL), 0);
        buf_free(&kb[i]); /* the coordinator keeps its own copy */
    }
    assert_int_equal(coord_pending(e.c), NTASKS);
    uint64_t rnd = 12345;
    for (int round = 0; round < 2; round++) {
        for (;;) {
            size_t open[4 * NTASKS * 3], n = 0;
            for (size_t i = 0; i < e.f.n && n < sizeof open / sizeof open[0]; i++) {
                const struct sent *s = &e.f.v[i];
                if (s->noreply || s->failed || s->answered)
                    continue;
                if (round == 0 && strcmp(s->node, "c") == 0 && pt[key_of(s)].kind == 3)
                    continue;
                open[n++] = i;
            }
            if (!n)
                break;
            rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
            size_t i = open[(rnd >> 33) % n];
            e.f.v[i].answered = true;
            struct term r = answer_for(&pt[key_of(&e.f.v[i])], &e.f.v[i]);
            coord_on_reply(e.c, e.f.v[i].id, r, 1);
        }
        if (round == 0) {
            e.f.down[e.f.ndown++] = "c";
            coord_on_node_down(e.c, "c", 2);
        }
    }
    for (int i = 0; i < NTASKS; i++) {
        const struct got *g = &pt[i].g;
        assert_int_equal(g->calls, 1);
        switch (pt[i].kind) {
        case 0:
            assert_int_equal(g->r.rc, 0);
            assert_int_equal(g->r.votes, 3);
            assert_int_equal(g->r.commits, 3);
            break;
        case 1:
            assert_int_equal(g->r.rc, 0);
            assert_int_equal(g->r.votes, 2);
            assert_int_equal(g->r.commits, 3);
            break;
        case 2:
            assert_int_equal(g->r.rc, -ENOLCK);
            assert_int_equal(g->r.votes, 1);
            break;
        default:
            assert_int_equal(g->r.rc, 0);
            assert_int_equal(g->r.votes, 2);
            assert_int_equal(g->r.commits, 2);
        }
    }
    assert_int_equal(coord_pending(e.c), 0);
    free(pt);
    env_fini(&e);
}

/* ---- re-entrancy ---- */

struct chain {
    struct env *e;
    struct got next;
    uint64_t next_id;
    uint64_t cancel_id;
};

static void start_next(struct got *g)
{
    struct chain *ch = g->hook_ud;
    struct coord_args a = lock_args();
    assert_int_equal(coord_start(ch->e->c, &a, &META3, 50, on_done, &ch->next, &ch->next_id), 0);
    if (ch->cancel_id)
        assert_int_equal(coord_cancel(ch->e->c, ch->cancel_id), 0);
    /* The finished task is gone already. */
    assert_int_equal(coord_cancel(ch->e->c, g->r.task_id), -ENOENT);
}

static void test_done_starts_task(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct chain ch = {&e};
    struct got g = {.hook = start_next, .hook_ud = &ch}, other = {0};
    struct coord_args a = lock_args();
    uint64_t oid;
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &other, &oid), 0);
    ch.cancel_id = oid;
    reply(&e, 0, ALREADY, 50);
    reply(&e, 1, ALREADY, 50);
    reply(&e, 2, ALREADY, 50);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, -ENOLCK);
    assert_int_equal(other.calls, 0);
    assert_int_equal(coord_pending(e.c), 1);
    /* 3+3 votes, task 1's 3 cleanups, the new task's 3 votes, then the
     * cancelled task's 3 cleanups. */
    assert_int_equal(e.f.n, 15);
    struct tag t1 = {0}, t2 = {0}, t3 = {0};
    expect_votes(&e, 0, (struct term){0}, &t1);
    expect_votes(&e, 3, (struct term){0}, &t2);
    expect_rwl(&e, 6, (const char *const *)ABC, 3, &t1);
    expect_votes(&e, 9, (struct term){0}, &t3);
    expect_rwl(&e, 12, (const char *const *)ABC, 3, &t2);
    assert_false(term_eq((struct term){t1.b, t1.len}, (struct term){t3.b, t3.len}));
    for (size_t i = 9; i < 12; i++)
        reply(&e, i, OK, 60);
    for (size_t i = 15; i < 18; i++)
        reply(&e, i, OK, 70);
    assert_int_equal(ch.next.calls, 1);
    assert_int_equal(ch.next.r.rc, 0);
    assert_int_equal(ch.next.r.task_id, ch.next_id);
    reply(&e, 3, OK, 80); /* the cancelled task's calls: ignored */
    assert_int_equal(other.calls, 0);
    assert_int_equal(coord_pending(e.c), 0);
    env_fini(&e);
}

static void advance_again(struct got *g)
{
    struct chain *ch = g->hook_ud;
    coord_advance(ch->e->c, 1000);
    struct coord_args a = lock_args();
    a.timeout_ms = 0;
    assert_int_equal(coord_start(ch->e->c, &a, &META3, 1000, on_done, &ch->next, NULL), 0);
}

/* A callback that advances and starts a task already due: the new task
 * waits for the next advance, so a retry loop cannot spin inside one. */
static void test_advance_from_callback(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct chain ch = {&e};
    struct got g1 = {.hook = advance_again, .hook_ud = &ch}, g2 = {0};
    struct coord_args a = lock_args();
    a.timeout_ms = 100;
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g1, NULL), 0);
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g2, NULL), 0);
    coord_advance(e.c, 1000);
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(ch.next.calls, 0);
    assert_int_equal(coord_next_deadline(e.c), 1000);
    coord_advance(e.c, 1000);
    assert_int_equal(ch.next.calls, 1);
    assert_int_equal(ch.next.r.rc, -ENOLCK);
    env_fini(&e);
}

static void test_sync_transport(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    e.f.sync_ok = true;
    e.f.now = 5;
    assert_int_equal(coord_start(e.c, &a, &META3, 5, on_done, &g, NULL), 0);
    /* Both phases ran inside coord_start; the result waits for advance. */
    assert_int_equal(e.f.n, 6);
    assert_int_equal(g.calls, 0);
    assert_int_equal(coord_next_deadline(e.c), 5);
    coord_advance(e.c, 5);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.votes, 3);
    assert_int_equal(g.r.commits, 3);
    /* From an event handler the step is immediate, after the sending loop. */
    e.f.sync_ok = false;
    struct got g2 = {0};
    assert_int_equal(coord_start(e.c, &a, &META3, 10, on_done, &g2, NULL), 0);
    e.f.sync_ok = true;
    reply(&e, 6, OK, 10);
    reply(&e, 7, OK, 10);
    reply(&e, 8, OK, 10);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g2.r.commits, 3);
    assert_int_equal(coord_pending(e.c), 0);
    env_fini(&e);
}

/* Events fed back from inside a transport call, as a transport that
 * notices a broken connection while sending would. */
static void cancel_at_b(struct fake *f, const char *node)
{
    if (strcmp(node, "b") == 0)
        assert_int_equal(coord_cancel(f->c, f->hook_arg), 0);
}

static void a_down_at_b(struct fake *f, const char *node)
{
    if (strcmp(node, "b") == 0)
        coord_on_node_down(f->c, "a", 0);
}

static void expire_at_b(struct fake *f, const char *node)
{
    if (strcmp(node, "b") == 0)
        coord_advance(f->c, 100);
}

static void test_reentrant_io(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    a.timeout_ms = 100;
    /* Cancelled while its own call is in progress: freed when it returns,
     * the remaining votes are never sent. Task ids start at 1. */
    e.f.on_call = cancel_at_b;
    e.f.hook_arg = 1;
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    assert_int_equal(coord_pending(e.c), 0);
    assert_int_equal(e.f.n, 5); /* votes to a, b; cleanups to a, b, c */
    assert_true(e.f.v[2].noreply && e.f.v[3].noreply && e.f.v[4].noreply);
    /* A node going down mid-send: a's vote fails, the phase goes on. */
    e.f.on_call = a_down_at_b;
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    assert_int_equal(e.f.n, 8);
    reply(&e, 5, OK, 1);    /* a failed already: ignored */
    reply(&e, 6, OK, 1);
    assert_int_equal(g.calls, 0);
    reply(&e, 7, NOTEXP, 1);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.rc, -ENOLCK);
    assert_int_equal(g.r.votes, 1);
    /* The deadline passing mid-send: c's vote is not sent at all, and the
     * result still waits for coord_advance outside coord_start. */
    e.f.on_call = expire_at_b;
    struct got g3 = {0};
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g3, NULL), 0);
    assert_int_equal(g3.calls, 0);
    /* 8 + 3 cleanups of the second task, then votes to a, b and cleanups. */
    assert_int_equal(e.f.n, 16);
    assert_string_equal(e.f.v[12].node, "b");
    assert_false(e.f.v[12].noreply);
    struct tag t3 = {0};
    expect_rwl(&e, 13, (const char *const *)ABC, 3, &t3);
    e.f.on_call = NULL;
    coord_advance(e.c, 100);
    assert_int_equal(g3.calls, 1);
    assert_int_equal(g3.r.rc, -ENOLCK);
    assert_int_equal(g3.r.votes, 0);
    assert_int_equal(coord_pending(e.c), 0);
    env_fini(&e);
}

/* ---- cancel, free, arguments ---- */

static void test_cancel(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g1 = {0}, g2 = {0};
    struct tag tag = {0};
    struct coord_args a = lock_args();
    uint64_t id1, id2;
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g1, &id1), 0);
    reply(&e, 0, OK, 1);
    assert_int_equal(coord_cancel(e.c, id1), 0);
    assert_int_equal(coord_cancel(e.c, id1), -ENOENT);
    /* Still voting: its write locks are released. */
    assert_int_equal(e.f.n, 6);
    expect_votes(&e, 0, (struct term){0}, &tag);
    expect_rwl(&e, 3, (const char *const *)ABC, 3, &tag);
    reply(&e, 1, OK, 2);
    reply(&e, 2, OK, 2);
    coord_advance(e.c, 10000);
    assert_int_equal(g1.calls, 0);
    /* Committing: nothing to release. */
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g2, &id2), 0);
    for (size_t i = 6; i < 9; i++)
        reply(&e, i, OK, 1);
    assert_int_equal(e.f.n, 12);
    assert_int_equal(coord_cancel(e.c, id2), 0);
    assert_int_equal(e.f.n, 12);
    reply(&e, 9, OK, 2);
    assert_int_equal(g2.calls, 0);
    assert_int_equal(coord_pending(e.c), 0);
    assert_int_equal(coord_next_deadline(e.c), CLOCK_NEVER);
    env_fini(&e);
}

static void test_free_with_pending(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g[4] = {0};
    struct coord_args a = lock_args();
    char *cluster[] = {"a", "b"};
    struct coord_args mc = {.op = COORD_MULTI_CALL, .req = SETW, .nodes = cluster, .nnodes = 2,
                            .timeout_ms = 10};
    for (int i = 0; i < 3; i++)
        assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g[i], NULL), 0);
    assert_int_equal(coord_start(e.c, &mc, NULL, 0, on_done, &g[3], NULL), 0);
    for (size_t i = 0; i < 3; i++)
        reply(&e, i, OK, 1);       /* task 0 committing */
    reply(&e, 9, OK, 1);           /* multi-call holds reply bytes */
    e.f.ndown = 3, e.f.down[0] = "a", e.f.down[1] = "b", e.f.down[2] = "c";
    struct got late = {0};
    assert_int_equal(coord_start(e.c, &a, &META3, 1, on_done, &late, NULL), 0); /* deferred */
    size_t n = e.f.n;
    coord_free(e.c);
    e.c = NULL;
    for (int i = 0; i < 4; i++)
        assert_int_equal(g[i].calls, 0);
    assert_int_equal(late.calls, 0);
    assert_int_equal(e.f.n, n); /* no I/O on free */
    coord_free(NULL);
    free(e.f.v);
}

static void test_bad_args(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    uint64_t id = 99;
    a.key = (struct term){0};
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, &id), -EINVAL);
    a = lock_args();
    a.value = (struct term){(const uint8_t *)"\x68\x02\x61", 3}; /* truncated tuple */
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, &id), -EINVAL);
    a = lock_args();
    uint8_t trailing[64];
    memcpy(trailing, KEY.p, KEY.len);
    trailing[KEY.len] = 106;
    a.key = (struct term){trailing, KEY.len + 1}; /* bytes after the term */
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, &id), -EINVAL);
    a = lock_args();
    assert_int_equal(coord_start(e.c, &a, NULL, 0, on_done, &g, &id), -EINVAL);
    assert_int_equal(coord_start(e.c, &a, &META3, 0, NULL, &g, &id), -EINVAL);
    struct coord_args u = {.op = COORD_UPDATE, .key = KEY, .value = VAL, .timeout_ms = 1};
    assert_int_equal(coord_start(e.c, &u, &META3, 0, on_done, &g, &id), -EINVAL);
    struct coord_args bad = {.op = (enum coord_op)42, .key = KEY, .value = VAL};
    assert_int_equal(coord_start(e.c, &bad, &META3, 0, on_done, &g, &id), -EINVAL);
    struct coord_args mc = {.op = COORD_MULTI_CALL, .nodes = ABC, .nnodes = 3};
    assert_int_equal(coord_start(e.c, &mc, NULL, 0, on_done, &g, &id), -EINVAL);
    char **many = malloc((COORD_MAX_NODES + 1) * sizeof *many);
    assert_non_null(many);
    for (size_t i = 0; i <= COORD_MAX_NODES; i++)
        many[i] = "n";
    mc.req = SETW;
    mc.nodes = many;
    mc.nnodes = COORD_MAX_NODES + 1;
    assert_int_equal(coord_start(e.c, &mc, NULL, 0, on_done, &g, &id), -E2BIG);
    struct coord_meta mm = {many, COORD_MAX_NODES + 1, NULL, 0, 1};
    assert_int_equal(coord_start(e.c, &a, &mm, 0, on_done, &g, &id), -E2BIG);
    free(many);
    e.f.ref_rc = -EIO;
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, &id), -EIO);
    assert_int_equal(id, 99);
    assert_int_equal(e.f.n, 0);
    assert_int_equal(coord_pending(e.c), 0);
    assert_int_equal(coord_cancel(e.c, 1), -ENOENT);
    env_fini(&e);
}

static void test_stale_phase_replies(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g = {0};
    struct coord_args a = lock_args();
    assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g, NULL), 0);
    for (size_t i = 0; i < 3; i++)
        reply(&e, i, OK, 1);
    /* Vote replies replayed during the commit do not count as commits. */
    for (size_t i = 0; i < 3; i++)
        reply(&e, i, OK, 2);
    reply(&e, 3, OK, 2);
    reply(&e, 3, OK, 2); /* duplicate */
    assert_int_equal(g.calls, 0);
    coord_on_reply(e.c, e.f.v[3].id + 1000, OK, 2); /* no such slot */
    reply(&e, 4, ALREADY, 3);
    reply(&e, 5, OK, 3);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.commits, 2);
    env_fini(&e);
}

static void test_deadline_order(void **state)
{
    (void)state;
    struct env e;
    env_init(&e);
    struct got g[5] = {0};
    static const int64_t tmo[5] = {500, 100, 300, 100, 700};
    for (int i = 0; i < 5; i++) {
        struct coord_args a = lock_args();
        a.timeout_ms = tmo[i];
        assert_int_equal(coord_start(e.c, &a, &META3, 0, on_done, &g[i], NULL), 0);
    }
    assert_int_equal(coord_next_deadline(e.c), 100);
    coord_advance(e.c, 100);
    assert_int_equal(g[1].calls + g[3].calls, 2);
    assert_int_equal(g[0].calls + g[2].calls + g[4].calls, 0);
    assert_int_equal(coord_next_deadline(e.c), 300);
    coord_advance(e.c, 650);
    assert_int_equal(g[0].calls + g[2].calls, 2);
    assert_int_equal(g[4].calls, 0);
    assert_int_equal(coord_next_deadline(e.c), 700);
    coord_advance(e.c, 700);
    assert_int_equal(g[4].calls, 1);
    assert_int_equal(coord_pending(e.c), 0);
    env_fini(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_success),
        cmocka_unit_test(test_lock_one_already_locked),
        cmocka_unit_test(test_lock_no_quorum),
        cmocka_unit_test(test_node_down_mid_phase),
        cmocka_unit_test(test_timeout_and_late_reply),
        cmocka_unit_test(test_commit_timeout),
        cmocka_unit_test(test_call_error),
        cmocka_unit_test(test_all_unreachable_deferred),
        cmocka_unit_test(test_quorum_edges),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_extend_lease),
        cmocka_unit_test(test_extend_lease_all_ok),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_release_no_quorum),
        cmocka_unit_test(test_multi_call_set_w),
        cmocka_unit_test(test_multi_call_no_deadline),
        cmocka_unit_test(test_many_interleaved),
        cmocka_unit_test(test_done_starts_task),
        cmocka_unit_test(test_advance_from_callback),
        cmocka_unit_test(test_sync_transport),
        cmocka_unit_test(test_reentrant_io),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_stale_phase_replies),
        cmocka_unit_test(test_deadline_order),
        cmocka_unit_test(test_fenced_lock),
        cmocka_unit_test(test_fenced_beam_master),
        cmocka_unit_test(test_fenced_commit_short),
        cmocka_unit_test(test_fenced_no_state_file),
        cmocka_unit_test(test_fenced_transport),
    };
    return cmocka_run_group_tests(tests, setup_terms, teardown_terms);
}
