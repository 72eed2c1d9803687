/*
 * rpc function table; see apply.h.
 *
 * Arguments arrive as a list term; each entry unpacks exactly its arity and
 * builds the request the locker server would get, so the rpc path and the
 * gen_server path share one implementation of every read.
 */
#include "apply.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../ei_glue/enc.h"
#include "../coord/cproc.h"
#include "../core/clock.h"
#include "../core/log.h"
#include "../core/loop.h"
#include "../store/store.h"
#include "mread.h"

#include <time.h>

#define APPLY_MAX_ARGS 4
#define DEFAULT_LEASE 2000
#define DEFAULT_TIMEOUT 5000

struct wait;

struct apply {
    struct node *node;
    struct server *server;
    struct cproc *cproc;
    struct buf req, out;
    struct wait *waits;   /* wait_for / wait_for_release in progress */
    uint64_t next_wait;
    struct mread *mread;  /* master_dirty_read from a non-master */
    uint64_t rnd;         /* picks the master, as the library's random one */
};

/* A wait in progress: finished by the server's waker or by its timer,
 * whichever comes first; found by id so the other one finds nothing. */
struct wait {
    struct wait *next;
    struct apply *a;
    uint64_t id;
    int kind;
    apply_done_fn done;
    void *ud;
    struct loop_timer timer;
    struct buf reason;   /* the exit reason at the timeout, built at start */
};

/* A coordinated call in flight: owns copies of what it needs later. */
struct pending {
    struct apply *a;
    apply_done_fn done;
    void *ud;
    int lag;              /* lag/0: lock, then release, then report */
    int fenced;           /* lockerd:lock/... : {ok, Token} results */
    int64_t lag_start_us;
    struct buf lock_result, key, value;
};

struct call {
    struct term args[APPLY_MAX_ARGS];
    uint32_t n;
    uint8_t small[APPLY_MAX_ARGS][2]; /* elements of a STRING_EXT arg list */
};

/* Split a proper list into its element spans. */
static int split_args(struct term list, struct call *c)
{
    size_t pos = 0;
    c->n = 0;
    int tag = term_peek(list.p, list.len, 0);
    if (tag == TT_NIL)
        return pos + 1 == list.len ? 0 : -EINVAL;
    if (tag == TT_STRING) {
        /* An argument list of small integers arrives as a string. */
        if (list.len < 3 || list.len - 3u != get_u16(list.p + 1) ||
            get_u16(list.p + 1) > APPLY_MAX_ARGS)
            return -EINVAL;
        c->n = get_u16(list.p + 1);
        for (uint32_t i = 0; i < c->n; i++) {
            c->small[i][0] = TT_SMALL_INT;
            c->small[i][1] = list.p[3 + i];
            c->args[i] = (struct term){c->small[i], 2};
        }
        return 0;
    }
    uint32_t n;
    if (term_get_list(list.p, list.len, &pos, &n) || n > APPLY_MAX_ARGS)
        return -EINVAL;
    for (uint32_t i = 0; i < n; i++)
        if (term_next(list.p, list.len, &pos, &c->args[i]))
            return -EINVAL;
    c->n = n;
    return term_peek(list.p, list.len, pos) == TT_NIL && pos + 1 == list.len ? 0 : -EINVAL;
}

/* Evaluate server request {Op, Args...} (or the atom Op) into a->out. */
static int eval_req(struct apply *a, const char *op, const struct call *c)
{
    buf_reset(&a->req);
    int rc = 0;
    if (c->n) {
        rc = enc_tuple(&a->req, c->n + 1);
        if (!rc)
            rc = enc_atom(&a->req, op);
        for (uint32_t i = 0; i < c->n && !rc; i++)
            rc = enc_raw(&a->req, c->args[i]);
    } else {
        rc = enc_atom(&a->req, op);
    }
    if (rc)
        return rc;
    return server_eval(a->server, (struct term){a->req.data, (uint32_t)a->req.len}, &a->out);
}

static int f_dirty_read(struct apply *a, const struct call *c)
{
    return eval_req(a, "dirty_read", c);
}

static int f_get_meta(struct apply *a, const struct call *c) { return eval_req(a, "get_meta", c); }
static int f_summary(struct apply *a, const struct call *c) { return eval_req(a, "summary", c); }
static int f_debug(struct apply *a, const struct call *c)
{
    return eval_req(a, "get_debug_state", c);
}

static int f_node(struct apply *a, const struct call *c)
{
    (void)c;
    return enc_atom(&a->out, node_name(a->node));
}

/* lockerd:set_coalesce(Us): the --coalesce-us of this node, at run time
 * (0..100000; 0 turns it off). Returns ok. */
static int f_set_coalesce(struct apply *a, const struct call *c)
{
    int64_t us;
    size_t pos = 0;
    if (term_get_int64(c->args[0].p, c->args[0].len, &pos, &us) || us < 0 || us > 100000)
        return -EINVAL;
    loop_set_coalesce(node_loop(a->node), (long)us);
    log_info("coalescing %s (%lld us)", us ? "enabled" : "disabled", (long long)us);
    return enc_atom(&a->out, "ok");
}

/* lockerd:coalesce(): the node's current --coalesce-us. */
static int f_coalesce(struct apply *a, const struct call *c)
{
    (void)c;
    return enc_long(&a->out, loop_get_coalesce(node_loop(a->node)));
}

/* lockerd:set_X(true | false): switch a server setting; ok. */
static int set_bool(struct apply *a, const struct call *c,
                    void (*set)(struct server *, int))
{
    int on = term_is_atom(c->args[0].p, c->args[0].len, 0, "true");
    if (!on && !term_is_atom(c->args[0].p, c->args[0].len, 0, "false"))
        return -EINVAL;
    set(a->server, on);
    return enc_atom(&a->out, "ok");
}

/* lockerd:set_eager_push/1: --eager-push at run time. */
static int f_set_eager_push(struct apply *a, const struct call *c)
{
    return set_bool(a, c, server_set_eager_push);
}

/* lockerd:set_release_on_exit/1: --release-on-exit at run time. */
static int f_set_release_on_exit(struct apply *a, const struct call *c)
{
    return set_bool(a, c, server_set_release_on_exit);
}

/* lockerd:quiet_period_left(): ms until this node grants votes on keys it
 * does not know again (its quiet period after a restart); 0 when it is
 * not in one. lockerctl asks it to say why a lock found no quorum. */
static int f_quiet_period_left(struct apply *a, const struct call *c)
{
    (void)c;
    int64_t left = server_quiet_until(a->server) - loop_now(node_loop(a->node));
    return enc_long(&a->out, left > 0 ? left : 0); /* until 0 (none): negative */
}

static int f_whereis(struct apply *a, const struct call *c)
{
    char name[CTRL_NAME_MAX];
    size_t pos = 0;
    if (term_get_atom(c->args[0].p, c->args[0].len, &pos, name, sizeof name))
        return -EINVAL;
    struct term pid;
    if (node_whereis(a->node, name, &pid) == 0)
        return enc_raw(&a->out, pid);
    return enc_atom(&a->out, "undefined");
}

/* ---- the locker process's life, as test suites drive it ---- */

static int arg_int(struct term t, int64_t *v)
{
    size_t pos = 0;
    return term_get_int64(t.p, t.len, &pos, v);
}


static int pid_arg(struct term t)
{
    int tag = term_peek(t.p, t.len, 0);
    return tag == TT_NEW_PID || tag == TT_PID;
}

/* locker:start_link(W) / start_link(W, LeaseExpire, LockExpire, Push):
 * {ok, Pid}. The server runs from boot, so on a live one this sets W and
 * the push interval; after erlang:exit/2 it starts a fresh one. */
static int f_start_link(struct apply *a, const struct call *c)
{
    int64_t w, iv[3] = {0, 0, 0};
    if (arg_int(c->args[0], &w) || w < 1 || w > 1000000)
        return -EINVAL;
    for (uint32_t i = 1; i < c->n; i++)
        if (arg_int(c->args[i], &iv[i - 1]) || iv[i - 1] < 1 || iv[i - 1] > 86400000)
            return -EINVAL;
    int rc = server_start(a->server, (int)w, c->n == 4 ? &iv[2] : NULL);
    if (rc == -EMLINK) /* restarted too often in this process (server.c) */
        return enc_atom_pair(&a->out, "error", "too_many_restarts");
    if (rc)
        return rc;
    rc = enc_tuple(&a->out, 2);
    if (!rc) rc = enc_atom(&a->out, "ok");
    return rc ? rc : enc_raw(&a->out, server_pid(a->server));
}

/* erlang:exit(Pid, Reason): true. An exit signal other than `normal` to
 * the locker process kills it (it does not trap exits); lockerd's other
 * processes are not ended this way. */
static int f_exit(struct apply *a, const struct call *c)
{
    if (!pid_arg(c->args[0]))
        return -EBADMSG;
    if (!term_is_atom(c->args[1].p, c->args[1].len, 0, "normal") && server_alive(a->server) &&
        term_eq(c->args[0], server_pid(a->server)))
        server_kill(a->server, "erlang:exit/2 by rpc");
    return enc_atom(&a->out, "true");
}

static int f_is_process_alive(struct apply *a, const struct call *c)
{
    char nd[CTRL_NAME_MAX];
    if (!pid_arg(c->args[0]) || ctrl_term_node(c->args[0], nd, sizeof nd) ||
        strcmp(nd, node_name(a->node)) != 0)
        return -EBADMSG; /* like the BIF: badarg for a pid of another node */
    return enc_atom(&a->out, node_is_alive(a->node, c->args[0]) ? "true" : "false");
}

static int is_ref(struct term t)
{
    int tag = term_peek(t.p, t.len, 0);
    return tag == TT_NEWER_REF || tag == TT_NEW_REF;
}

/* timer:cancel(TRef): {ok, cancel} for any timer handle (as timer does for
 * one that already ended), stopping the job if it is one of the locker
 * server's; {error, badarg} for anything else. */
static int f_timer_cancel(struct apply *a, const struct call *c)
{
    struct term t = c->args[0], kind, ref;
    size_t pos = 0;
    uint32_t ar;
    if (term_get_tuple(t.p, t.len, &pos, &ar) || ar != 2 || term_next(t.p, t.len, &pos, &kind) ||
        term_next(t.p, t.len, &pos, &ref) ||
        !is_ref(ref) ||
        !(term_is_atom(kind.p, kind.len, 0, "interval") ||
          term_is_atom(kind.p, kind.len, 0, "once") ||
          term_is_atom(kind.p, kind.len, 0, "instant")))
        return enc_atom_pair(&a->out, "error", "badarg");
    server_cancel_job(a->server, ref);
    return enc_atom_pair(&a->out, "ok", "cancel");
}

/* ---- coordinated functions ---- */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void pending_free(struct pending *pd)
{
    buf_free(&pd->lock_result);
    buf_free(&pd->key);
    buf_free(&pd->value);
    free(pd);
}

/* {ok, W, Votes, Commits} | ok | {error, no_quorum} | {Replies, BadNodes} */
static int enc_result(struct buf *b, const struct coord_result *r)
{
    if (r->op != COORD_MULTI_CALL && r->rc)
        return enc_atom_pair(b, "error", "no_quorum");
    if (r->op == COORD_EXTEND_LEASE)
        return enc_atom(b, "ok");
    if (r->op != COORD_MULTI_CALL) {
        int rc = enc_tuple(b, 4);
        if (!rc) rc = enc_atom(b, "ok");
        if (!rc) rc = enc_long(b, r->w);
        if (!rc) rc = enc_long(b, r->votes);
        return rc ? rc : enc_long(b, r->commits);
    }
    int rc = enc_tuple(b, 2);
    if (!rc && r->nreplies) rc = enc_list(b, (uint32_t)r->nreplies);
    for (size_t i = 0; i < r->nreplies && !rc; i++) {
        rc = enc_tuple(b, 2);
        if (!rc) rc = enc_atom(b, r->replies[i].node);
        if (!rc) rc = enc_raw(b, r->replies[i].reply);
    }
    if (!rc) rc = enc_nil(b);
    if (!rc && r->nbad) rc = enc_list(b, (uint32_t)r->nbad);
    for (size_t i = 0; i < r->nbad && !rc; i++)
        rc = enc_atom(b, r->bad_nodes[i]);
    return rc ? rc : enc_nil(b);
}

static void coord_meta_of(struct apply *a, struct coord_meta *m)
{
    m->masters = server_masters(a->server, &m->nmasters);
    m->replicas = server_replicas(a->server, &m->nreplicas);
    m->w = server_w(a->server);
}

static void on_coord_done(void *ud, const struct coord_result *r);

static int pending_start(struct pending *pd, const struct coord_args *ca)
{
    struct coord_meta m;
    coord_meta_of(pd->a, &m);
    return cproc_start(pd->a->cproc, ca, &m, on_coord_done, pd, NULL);
}

/* lag/0, second step: release the probe key, then report. */
static void lag_release(struct pending *pd)
{
    struct coord_args ca = {.op = COORD_RELEASE, .timeout_ms = DEFAULT_TIMEOUT,
                            .key = {pd->key.data, (uint32_t)pd->key.len},
                            .value = {pd->value.data, (uint32_t)pd->value.len}};
    pd->lag = 2;
    if (pending_start(pd, &ca))
        on_coord_done(pd, NULL);
}

/* set_nodes/3, set_w/2: `ok` when every node answered; else the library's
 * {_, []} = multi_call(...) match fails: error {badmatch, {Replies, Bad}}. */
static int enc_cluster_result(struct buf *b, const struct coord_result *r)
{
    if (!r->nbad)
        return enc_atom(b, "ok") ? -ENOMEM : APPLY_RETURN;
    int rc = enc_tuple(b, 2);
    if (!rc) rc = enc_atom(b, "badmatch");
    if (!rc) rc = enc_result(b, r);
    return rc ? -ENOMEM : APPLY_ERROR;
}

/* lockerd:lock/extend_lease/update/release: {ok, Token} | {error, no_quorum}
 * | {error, tokens_unavailable} (a master is not lockerd). */
static int enc_fenced(struct buf *b, const struct coord_result *r)
{
    if (r->rc == -EPROTONOSUPPORT)
        return enc_atom_pair(b, "error", "tokens_unavailable");
    if (r->rc)
        return enc_atom_pair(b, "error", "no_quorum");
    int rc = enc_tuple(b, 2);
    if (!rc) rc = enc_atom(b, "ok");
    return rc ? rc : enc_long(b, (int64_t)r->token);
}

static void on_coord_done(void *ud, const struct coord_result *r)
{
    struct pending *pd = ud;
    struct apply *a = pd->a;
    if (r && pd->fenced) {
        buf_reset(&a->out);
        int rc = enc_fenced(&a->out, r);
        pd->done(pd->ud, rc, (struct term){a->out.data, (uint32_t)a->out.len});
        pending_free(pd);
        return;
    }
    if (r && r->op == COORD_MULTI_CALL) {
        buf_reset(&a->out);
        int rc = enc_cluster_result(&a->out, r);
        pd->done(pd->ud, rc, (struct term){a->out.data, (uint32_t)a->out.len});
        pending_free(pd);
        return;
    }
    if (pd->lag == 1) {
        if (enc_result(&pd->lock_result, r) == 0) {
            lag_release(pd);
            return;
        }
        pd->lag = 2;
    }
    buf_reset(&a->out);
    int rc;
    if (pd->lag) {
        double ms = (double)(now_us() - pd->lag_start_us) / 1000.0;
        rc = enc_tuple(&a->out, 2);
        if (!rc) rc = buf_put_u8(&a->out, TT_NEW_FLOAT);
        uint64_t bits;
        memcpy(&bits, &ms, sizeof bits);
        if (!rc) rc = buf_put_u64(&a->out, bits);
        if (!rc) rc = enc_raw(&a->out, (struct term){pd->lock_result.data,
                                                    (uint32_t)pd->lock_result.len});
    } else {
        rc = enc_result(&a->out, r);
    }
    pd->done(pd->ud, rc, (struct term){a->out.data, (uint32_t)a->out.len});
    pending_free(pd);
}

static struct pending *pending_new(struct apply *a, apply_done_fn done, void *ud)
{
    struct pending *pd = calloc(1, sizeof *pd);
    if (!pd)
        return NULL;
    pd->a = a;
    pd->done = done;
    pd->ud = ud;
    buf_init(&pd->lock_result);
    buf_init(&pd->key);
    buf_init(&pd->value);
    return pd;
}

/* Starts a coordinated op; its result arrives through on_coord_done. */
static int coordinated(struct apply *a, struct coord_args *ca, apply_done_fn done, void *ud)
{
    struct pending *pd = pending_new(a, done, ud);
    if (!pd)
        return -ENOMEM;
    pd->fenced = ca->fenced;
    int rc = pending_start(pd, ca);
    if (rc)
        pending_free(pd);
    return rc;
}

/* Optional trailing integer arguments with defaults. */
static int opt_int(const struct call *c, uint32_t i, int64_t dflt, int64_t *v)
{
    if (i >= c->n) {
        *v = dflt;
        return 0;
    }
    return arg_int(c->args[i], v) || *v < 0 ? -EINVAL : 0;
}

static int f_write_op(struct apply *a, const struct call *c, enum coord_op op, int fenced,
                      apply_done_fn done, void *ud)
{
    struct coord_args ca = {.op = op, .key = c->args[0], .value = c->args[1], .fenced = fenced};
    uint32_t next = 2;
    if (op == COORD_UPDATE)
        ca.new_value = c->args[next++];
    if (op == COORD_LOCK || op == COORD_EXTEND_LEASE)
        if (opt_int(c, next++, DEFAULT_LEASE, &ca.lease_ms))
            return -EINVAL;
    if (opt_int(c, next, DEFAULT_TIMEOUT, &ca.timeout_ms))
        return -EINVAL;
    return coordinated(a, &ca, done, ud);
}

/* A list of atoms -> node names (NULL-terminated array, caller frees). */
static char **atom_list(struct term t, size_t *n)
{
    size_t pos = 0;
    uint32_t cnt;
    if (term_peek(t.p, t.len, 0) == TT_NIL) {
        *n = 0;
        return calloc(1, sizeof(char *));
    }
    if (term_get_list(t.p, t.len, &pos, &cnt) || cnt > COORD_MAX_NODES)
        return NULL;
    char **v = calloc(cnt + 1, sizeof *v);
    char name[CTRL_NAME_MAX];
    for (uint32_t i = 0; v && i < cnt; i++)
        if (term_get_atom(t.p, t.len, &pos, name, sizeof name) || !(v[i] = strdup(name))) {
            for (uint32_t k = 0; k < i; k++)
                free(v[k]);
            free(v);
            return NULL;
        }
    *n = cnt;
    return v;
}

/* set_nodes(Cluster, Masters, Replicas) / set_w(Cluster, W): multi_call. */
static int f_cluster_call(struct apply *a, const struct call *c, apply_done_fn done, void *ud)
{
    size_t n;
    int64_t w;
    if (c->n == 2 && arg_int(c->args[1], &w))
        return -EINVAL; /* set_w(Cluster, W) when is_integer(W) */
    char **nodes = atom_list(c->args[0], &n);
    if (!nodes)
        return -EINVAL;
    buf_reset(&a->req);
    int rc = enc_tuple(&a->req, c->n);
    if (!rc) rc = enc_atom(&a->req, c->n == 3 ? "set_nodes" : "set_w");
    for (uint32_t i = 1; i < c->n && !rc; i++)
        rc = enc_raw(&a->req, c->args[i]);
    struct coord_args ca = {.op = COORD_MULTI_CALL, .timeout_ms = -1, .nodes = nodes,
                            .nnodes = n, .req = {a->req.data, (uint32_t)a->req.len}};
    if (!rc)
        rc = coordinated(a, &ca, done, ud);
    for (size_t i = 0; i < n; i++)
        free(nodes[i]);
    free(nodes);
    return rc;
}

static int f_lag(struct apply *a, apply_done_fn done, void *ud)
{
    struct pending *pd = pending_new(a, done, ud);
    if (!pd)
        return -ENOMEM;
    pd->lag = 1;
    pd->lag_start_us = now_us();
    /* {'__lock_lag_probe', {Mega, Sec, Micro}} -> the coordinator pid */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int rc = enc_tuple(&pd->key, 2);
    if (!rc) rc = enc_atom(&pd->key, "__lock_lag_probe");
    if (!rc) rc = enc_tuple(&pd->key, 3);
    if (!rc) rc = enc_long(&pd->key, ts.tv_sec / 1000000);
    if (!rc) rc = enc_long(&pd->key, ts.tv_sec % 1000000);
    if (!rc) rc = enc_long(&pd->key, ts.tv_nsec / 1000);
    if (!rc) rc = enc_raw(&pd->value, cproc_pid(a->cproc));
    struct coord_args ca = {.op = COORD_LOCK, .lease_ms = DEFAULT_LEASE,
                            .timeout_ms = DEFAULT_TIMEOUT,
                            .key = {pd->key.data, (uint32_t)pd->key.len},
                            .value = {pd->value.data, (uint32_t)pd->value.len}};
    if (!rc)
        rc = pending_start(pd, &ca);
    if (rc)
        pending_free(pd);
    return rc;
}

/* ---- waits ---- */

static struct wait *wait_take(struct apply *a, uint64_t id)
{
    for (struct wait **pp = &a->waits; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            struct wait *w = *pp;
            *pp = w->next;
            loop_timer_stop(node_loop(a->node), &w->timer);
            return w;
        }
    return NULL;
}

static void wait_free(struct wait *w)
{
    buf_free(&w->reason);
    free(w);
}

static void wait_finish(struct wait *w, int rc, struct buf *out)
{
    w->done(w->ud, rc, (struct term){out->data, (uint32_t)out->len});
    wait_free(w);
}

/* The library's caller is in gen_server:call(locker, Req, Timeout): at
 * the timeout it exits with {timeout, {gen_server, call, [locker, Req,
 * Timeout]}}, which rpc reports as {badrpc, {'EXIT', Reason}}. */
static void wait_timeout(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct wait *w = t->ud;
    struct apply *a = w->a;
    if (wait_take(a, w->id) != w)
        return;
    wait_finish(w, APPLY_EXIT, &w->reason);
}

/* {timeout, {gen_server, call, [locker, {Kind, Key, Timeout}, Timeout]}} */
static int enc_wait_reason(struct buf *b, const char *kind, struct term key, struct term timeout)
{
    int rc = enc_tuple(b, 2);
    if (!rc) rc = enc_atom(b, "timeout");
    if (!rc) rc = enc_tuple(b, 3);
    if (!rc) rc = enc_atom(b, "gen_server");
    if (!rc) rc = enc_atom(b, "call");
    if (!rc) rc = enc_list(b, 3);
    if (!rc) rc = enc_atom(b, "locker");
    if (!rc) rc = enc_tuple(b, 3);
    if (!rc) rc = enc_atom(b, kind);
    if (!rc) rc = enc_raw(b, key);
    if (!rc) rc = enc_raw(b, timeout);
    if (!rc) rc = enc_raw(b, timeout);
    return rc ? rc : enc_nil(b);
}

/* Server waker: {ok, Value} for wait_for, {ok, released} for release. */
static void wait_woken(void *ud, uint64_t id, int kind, struct term value)
{
    struct apply *a = ud;
    struct wait *w = wait_take(a, id);
    if (!w)
        return;
    buf_reset(&a->out);
    int rc;
    if (kind == STORE_WAIT_FOR) {
        rc = enc_tuple(&a->out, 2);
        if (!rc) rc = enc_atom(&a->out, "ok");
        if (!rc) rc = enc_raw(&a->out, value);
    } else {
        rc = enc_atom_pair(&a->out, "ok", "released");
    }
    if (rc)
        wait_free(w);
    else
        wait_finish(w, APPLY_RETURN, &a->out);
}

static int arg_timeout(struct term t, int64_t *ms)
{
    if (term_is_atom(t.p, t.len, 0, "infinity")) {
        *ms = -1;
        return 0;
    }
    return arg_int(t, ms) || *ms < 0 ? -EINVAL : 0;
}

static int wait_start(struct apply *a, struct term key, struct term timeout, int kind,
                      int64_t timeout_ms, apply_done_fn done, void *ud)
{
    struct wait *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    int64_t now = loop_now(node_loop(a->node));
    int64_t deadline = timeout_ms < 0 ? CLOCK_NEVER : clock_add(now, timeout_ms);
    *w = (struct wait){.a = a, .id = ++a->next_wait, .kind = kind, .done = done, .ud = ud};
    buf_init(&w->reason);
    loop_timer_init(&w->timer, wait_timeout, w);
    int rc = enc_wait_reason(&w->reason, kind == STORE_WAIT_FOR ? "wait_for" : "wait_for_release",
                             key, timeout);
    if (!rc)
        rc = server_wait(a->server, key, kind, deadline, w->id);
    if (!rc && deadline != CLOCK_NEVER)
        rc = loop_timer_arm(node_loop(a->node), &w->timer, deadline);
    if (rc) {
        wait_free(w);
        return rc;
    }
    w->next = a->waits;
    a->waits = w;
    return 0;
}

size_t apply_cancel_waits(struct apply *a, int (*pred)(void *ud, void *arg), void *arg)
{
    size_t n = 0;
    struct wait **pp = &a->waits;
    while (*pp) {
        struct wait *w = *pp;
        if (!pred(w->ud, arg)) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        loop_timer_stop(node_loop(a->node), &w->timer);
        server_wait_cancel(a->server, w->id);
        w->done(w->ud, -ECANCELED, (struct term){NULL, 0});
        wait_free(w);
        n++;
    }
    return n;
}

/* The local table's {ok, Value} | {error, not_found} for key into a->out:
 * 1 held, 0 not, or -errno. */
static int local_read(struct apply *a, struct term key)
{
    struct call rd = {.args = {key}, .n = 1};
    buf_reset(&a->out);
    int rc = eval_req(a, "dirty_read", &rd);
    if (rc)
        return rc;
    /* {error, not_found}: the atom follows the 2-byte tuple header. */
    return !term_is_atom(a->out.data, a->out.len, 2, "error");
}

/* locker:wait_for(Key, Timeout): {ok, Value} at once if held, else when
 * written; at the timeout the caller exits (wait_timeout). */
static int f_wait_for(struct apply *a, const struct call *c, apply_done_fn done, void *ud)
{
    int64_t t;
    if (arg_timeout(c->args[1], &t))
        return -EINVAL;
    int rc = local_read(a, c->args[0]);
    if (rc < 0)
        return rc;
    if (!rc)
        return wait_start(a, c->args[0], c->args[1], STORE_WAIT_FOR, t, done, ud);
    done(ud, 0, (struct term){a->out.data, (uint32_t)a->out.len});
    return 0;
}

/* locker:wait_for_release(Key, Timeout): {error, key_not_locked} if not
 * held; {ok, released} when released or expired; at the timeout the
 * caller exits (wait_timeout). */
static int f_wait_for_release(struct apply *a, const struct call *c, apply_done_fn done,
                              void *ud)
{
    int64_t t;
    if (arg_timeout(c->args[1], &t))
        return -EINVAL;
    int rc = local_read(a, c->args[0]);
    if (rc < 0)
        return rc;
    if (!rc) {
        buf_reset(&a->out);
        rc = enc_atom_pair(&a->out, "error", "key_not_locked");
        if (!rc)
            done(ud, 0, (struct term){a->out.data, (uint32_t)a->out.len});
        return rc;
    }
    return wait_start(a, c->args[0], c->args[1], STORE_WAIT_RELEASE, t, done, ud);
}

/* lock/2..4, update/3,4, extend_lease/3,4, release/2,3: the op, or -1. */
static int write_op(const char *fun, uint32_t n)
{
    if (!strcmp(fun, "lock") && n >= 2 && n <= 4)
        return COORD_LOCK;
    if (!strcmp(fun, "update") && n >= 3 && n <= 4)
        return COORD_UPDATE;
    if (!strcmp(fun, "extend_lease") && n >= 3 && n <= 4)
        return COORD_EXTEND_LEASE;
    if (!strcmp(fun, "release") && n >= 2 && n <= 3)
        return COORD_RELEASE;
    return -1;
}

/* locker:master_dirty_read(Key): the local table on a master; elsewhere,
 * as the library does, rpc:call(RandomMaster, locker, dirty_read, [Key])
 * (mread.c), whose {badrpc, ...} is a return value like any other. */
static int f_master_dirty_read(struct apply *a, const struct call *c, apply_done_fn done,
                               void *ud)
{
    if (server_is_master(a->server)) {
        int rc = eval_req(a, "dirty_read", c);
        if (!rc)
            done(ud, APPLY_RETURN, (struct term){a->out.data, (uint32_t)a->out.len});
        return rc;
    }
    size_t n;
    char *const *masters = server_masters(a->server, &n);
    if (!n)
        return -EINVAL;
    a->rnd ^= a->rnd << 13;
    a->rnd ^= a->rnd >> 7;
    a->rnd ^= a->rnd << 17;
    int rc = mread_start(a->mread, masters[a->rnd % n], c->args[0], done, ud);
    if (rc == -EHOSTUNREACH || rc == -EMLINK) {
        buf_reset(&a->out);
        rc = enc_atom_pair(&a->out, "badrpc", rc == -EMLINK ? "system_limit" : "nodedown");
        if (!rc)
            done(ud, APPLY_RETURN, (struct term){a->out.data, (uint32_t)a->out.len});
    }
    return rc;
}

/* Functions that finish later; NULL when (fun, arity) is not one. */
static int async_call(struct apply *a, const char *fun, const struct call *c, apply_done_fn done,
                      void *ud, int *handled)
{
    *handled = 1;
    int op = write_op(fun, c->n);
    if (op >= 0)
        return f_write_op(a, c, (enum coord_op)op, 0, done, ud);
    if ((!strcmp(fun, "set_nodes") && c->n == 3) || (!strcmp(fun, "set_w") && c->n == 2))
        return f_cluster_call(a, c, done, ud);
    if (!strcmp(fun, "master_dirty_read") && c->n == 1)
        return f_master_dirty_read(a, c, done, ud);
    if (!strcmp(fun, "lag") && c->n == 0)
        return f_lag(a, done, ud);
    if (!strcmp(fun, "wait_for") && c->n == 2)
        return f_wait_for(a, c, done, ud);
    if (!strcmp(fun, "wait_for_release") && c->n == 2)
        return f_wait_for_release(a, c, done, ud);
    *handled = 0;
    return 0;
}

static const struct {
    const char *mod, *fun;
    uint32_t arity;
    int (*fn)(struct apply *, const struct call *);
} table[] = {
    {"locker", "dirty_read", 1, f_dirty_read},
    {"locker", "get_meta", 0, f_get_meta},
    {"locker", "summary", 0, f_summary},
    {"locker", "get_debug_state", 0, f_debug},
    {"erlang", "node", 0, f_node},
    {"erlang", "whereis", 1, f_whereis},
    {"erlang", "exit", 2, f_exit},
    {"erlang", "is_process_alive", 1, f_is_process_alive},
    {"timer", "cancel", 1, f_timer_cancel},
    {"locker", "start_link", 1, f_start_link},
    {"locker", "start_link", 4, f_start_link},
    {"lockerd", "set_coalesce", 1, f_set_coalesce},
    {"lockerd", "coalesce", 0, f_coalesce},
    {"lockerd", "set_eager_push", 1, f_set_eager_push},
    {"lockerd", "set_release_on_exit", 1, f_set_release_on_exit},
    {"lockerd", "quiet_period_left", 0, f_quiet_period_left},
};

/* A `locker` function while the server is down (killed, not started
 * again): what reads the server's tables first (the waits and reads
 * included) fails with badarg, as the library's ETS tables went with its
 * process; get_debug_state, a plain call, exits with noproc. */
static void dead_server(struct apply *a, const char *fun, apply_done_fn done, void *ud)
{
    int call = !strcmp(fun, "get_debug_state");
    int rc = call ? enc_tuple(&a->out, 2) : enc_atom(&a->out, "badarg");
    if (call) {
        if (!rc) rc = enc_atom(&a->out, "noproc");
        if (!rc) rc = enc_tuple(&a->out, 3);
        if (!rc) rc = enc_atom(&a->out, "gen_server");
        if (!rc) rc = enc_atom(&a->out, "call");
        if (!rc) rc = enc_list(&a->out, 2);
        if (!rc) rc = enc_atom(&a->out, "locker");
        if (!rc) rc = enc_atom(&a->out, fun);
        if (!rc) rc = enc_nil(&a->out);
    }
    done(ud, rc ? -ENOMEM : call ? APPLY_EXIT : APPLY_ERROR,
         (struct term){a->out.data, (uint32_t)a->out.len});
}

void apply_start(struct apply *a, const char *mod, const char *fun, struct term args,
                 apply_done_fn done, void *ud)
{
    struct call c;
    int rc = split_args(args, &c);
    if (rc) {
        done(ud, -ENOENT, (struct term){NULL, 0});
        return;
    }
    buf_reset(&a->out);
    if (!strcmp(mod, "locker") && !server_alive(a->server) &&
        !(strcmp(fun, "start_link") == 0 && (c.n == 1 || c.n == 4))) {
        dead_server(a, fun, done, ud);
        return;
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].arity == c.n && !strcmp(table[i].mod, mod) && !strcmp(table[i].fun, fun)) {
            rc = table[i].fn(a, &c);
            if (rc == -EBADMSG) {
                /* The BIF's badarg. */
                buf_reset(&a->out);
                rc = enc_atom(&a->out, "badarg") ? -ENOMEM : APPLY_ERROR;
            }
            done(ud, rc >= 0 ? rc : (rc == -ENOENT ? -EINVAL : rc),
                 (struct term){a->out.data, (uint32_t)a->out.len});
            return;
        }
    /* lockerd:lock/2..4 and friends: the locker functions with a fencing
     * token, {ok, Token} (docs/protocol.md, fencing tokens). */
    int op = strcmp(mod, "lockerd") ? -1 : write_op(fun, c.n);
    if (op >= 0) {
        rc = f_write_op(a, &c, (enum coord_op)op, 1, done, ud);
        if (rc)
            done(ud, rc == -ENOMEM ? -ENOMEM : -EINVAL, (struct term){NULL, 0});
        return;
    }
    if (!strcmp(mod, "locker")) {
        int handled;
        rc = async_call(a, fun, &c, done, ud, &handled);
        if (handled) {
            if (rc)
                done(ud, rc == -ENOMEM ? -ENOMEM : -EINVAL, (struct term){NULL, 0});
            return;
        }
    }
    done(ud, -ENOENT, (struct term){NULL, 0});
}

struct apply *apply_new(struct node *n, struct server *s)
{
    struct apply *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->node = n;
    a->server = s;
    buf_init(&a->req);
    buf_init(&a->out);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    a->rnd = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull | 1;
    if (!(a->cproc = cproc_new(n)) || !(a->mread = mread_new(n))) {
        apply_free(a);
        return NULL;
    }
    server_set_waker(s, wait_woken, a);
    return a;
}

const struct coord *apply_coord(const struct apply *a) { return cproc_coord(a->cproc); }

void apply_free(struct apply *a)
{
    if (!a)
        return;
    /* Waits still open at shutdown end now, so their callers' jobs are
     * released (the node is still up: apply goes before it). */
    while (a->waits) {
        struct wait *w = a->waits;
        a->waits = w->next;
        loop_timer_stop(node_loop(a->node), &w->timer);
        w->done(w->ud, -ECANCELED, (struct term){NULL, 0});
        wait_free(w);
    }
    mread_free(a->mread);
    cproc_free(a->cproc);
    buf_free(&a->req);
    buf_free(&a->out);
    free(a);
}
