/*
 * lkc_dirty_read: locker:dirty_read(Key) on a master, called the way
 * erpc:call does it (docs/distribution.md section 7), so BEAM masters
 * running the real locker library and lockerd masters answer alike. And
 * lkc_rpc: any function on one node, the same way.
 *
 * Model. One unnamed process of our node (the "rpc process") sends
 *   SPAWN_REQUEST {29, ReqId, Self, Self, {erpc, execute_call, 4}, [monitor]}
 *   + [Res, locker, dirty_read, [Key]]
 * and the node routes the answers to it: SPAWN_REPLY (a pid, or an error
 * atom when the master refuses) and MONITOR_P_EXIT whose reason is the
 * spawned process's exit: {Res, return, {ok, V} | {error, not_found}}, or
 * {Res, error | exit | throw, ...}, or noconnection.
 *
 * A read tries the masters in order. One attempt ends with an answer, a
 * refusal, a failure exit, the connection going down, or LKC_RPC_ATTEMPT_MS
 * of silence; all but an answer move on to the next master. Each attempt
 * has a fresh ReqId, so a late answer from an abandoned attempt matches
 * nothing and is dropped. ReqIds are compared in canonical form (a peer may
 * re-encode our reference).
 *
 * lkc_rpc makes a single attempt on the node it names, with its own
 * timeout, and hands back the function's result as it came (or {Class,
 * Reason} when it raised) instead of reading {ok, V}.
 */
#include "lkc_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cnode/core/log.h"
#include "../ei_glue/enc.h"

struct rpc_cmd;

struct lkc_rpc {
    struct lkc *c;
    struct term pid;          /* owned by the node */
    struct rpc_cmd *pending;  /* reads with an attempt under way */
    struct buf scratch;
};

#define RPC_MAX_ARGS 16

struct rpc_cmd {
    struct lkc_cmd k;
    struct rpc_cmd *next;     /* in lkc_rpc.pending */
    int listed;
    char mod[256], fun[256];
    struct buf args;          /* the arguments, canonical, one after another */
    uint32_t argoff[RPC_MAX_ARGS + 1];
    uint32_t nargs;
    const char *only;         /* lkc_rpc: the one node asked; NULL: the masters */
    char only_node[256];
    int64_t attempt_ms;
    struct buf req_id;        /* canonical ReqId of the current attempt */
    struct buf res;           /* the Res reference of the current attempt */
    char peer[256];
    size_t attempt;
    struct loop_timer timer;
    lkc_buf value;            /* result, 131 + canonical bytes */
};

static struct term span_of(const struct buf *b) { return (struct term){b->data, (uint32_t)b->len}; }

/* ---- wire ---- */

/* The SPAWN_REQUEST frame straight into the connection's output. */
static int rpc_write(struct lkc_rpc *p, struct conn *conn, struct rpc_cmd *r,
                     struct term req_id)
{
    struct term args[RPC_MAX_ARGS];
    for (uint32_t i = 0; i < r->nargs; i++)
        args[i] = (struct term){r->args.data + r->argoff[i], r->argoff[i + 1] - r->argoff[i]};
    int rc = ctrl_frame_erpc_call(conn_out(conn), req_id, p->pid, span_of(&r->res), r->mod,
                                  r->fun, args, r->nargs);
    if (!rc)
        conn_mark_dirty(conn);
    return rc;
}

/* One attempt on `peer`: fresh ReqId and Res, then the request. */
static int rpc_send(struct lkc_rpc *p, struct rpc_cmd *r, const char *peer)
{
    struct node *n = p->c->node;
    struct conn *conn = node_connect(n, peer);
    if (!conn)
        return -EHOSTUNREACH;
    struct buf raw;
    buf_init(&raw);
    buf_reset(&r->req_id);
    buf_reset(&r->res);
    size_t pos = 0;
    int rc = node_make_ref(n, &raw);
    if (!rc) rc = term_canon(raw.data, raw.len, &pos, &r->req_id);
    if (!rc) rc = node_make_ref(n, &r->res);
    if (!rc) rc = rpc_write(p, conn, r, (struct term){raw.data, (uint32_t)raw.len});
    buf_free(&raw);
    if (!rc)
        snprintf(r->peer, sizeof r->peer, "%s", peer);
    return rc;
}

/* ---- attempts ---- */

static void rpc_end(struct rpc_cmd *r, int rc)
{
    struct lkc_rpc *p = r->k.c->rpc;
    loop_timer_stop(r->k.c->loop, &r->timer);
    if (r->listed) {
        struct rpc_cmd **pp = &p->pending;
        while (*pp != r)
            pp = &(*pp)->next;
        *pp = r->next;
        r->listed = 0;
    }
    lkc__finish(&r->k, rc);
}

/* Next master: 0 when an attempt is under way, else an LKC code. */
static int rpc_next(struct rpc_cmd *r)
{
    struct lkc *c = r->k.c;
    int rc = -EHOSTUNREACH;
    r->req_id.len = 0; /* nothing matches between attempts */
    size_t nodes = r->only ? 1 : c->nmasters;
    while (++r->attempt < nodes) {
        const char *peer = r->only ? r->only : c->masters[r->attempt];
        rc = rpc_send(c->rpc, r, peer);
        if (rc == 0) {
            loop_timer_arm(c->loop, &r->timer, loop_now(c->loop) + r->attempt_ms);
            return 0;
        }
        log_debug("lkc: %s:%s cannot ask %s: %s", r->mod, r->fun, peer, strerror(-rc));
    }
    return rc == -ENOMEM ? LKC_ENOMEM : LKC_ECONNECT;
}

/* The current attempt failed: move on from a timer, not from inside the
 * connection or frame callback that told us, so connecting to the next
 * master never happens while the connection set is being walked. */
static void rpc_fail_soon(struct rpc_cmd *r)
{
    r->req_id.len = 0;
    loop_timer_arm(r->k.c->loop, &r->timer, loop_now(r->k.c->loop));
}

static void rpc_timer(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct rpc_cmd *r = t->ud;
    if (r->req_id.len) {
        log_debug("lkc: %s:%s on %s: no answer in %lld ms", r->mod, r->fun, r->peer,
                  (long long)r->attempt_ms);
        if (r->only) {
            rpc_end(r, LKC_ETIMEOUT);
            return;
        }
    }
    int rc = rpc_next(r);
    if (rc)
        rpc_end(r, rc);
}

/* ---- answers ---- */

static struct rpc_cmd *rpc_find(struct lkc_rpc *p, struct term ref)
{
    size_t pos = 0;
    buf_reset(&p->scratch);
    if (term_canon(ref.p, ref.len, &pos, &p->scratch))
        return NULL;
    struct term want = span_of(&p->scratch);
    for (struct rpc_cmd *r = p->pending; r; r = r->next)
        if (r->req_id.len && term_eq(span_of(&r->req_id), want))
            return r;
    return NULL;
}

static int rpc_keep(struct rpc_cmd *r, const uint8_t *p, size_t len, size_t pos)
{
    struct buf canon;
    buf_init(&canon);
    int rc = term_canon(p, len, &pos, &canon);
    if (!rc)
        rc = lkc__out(span_of(&canon), &r->value);
    else
        rc = LKC_EPROTO;
    buf_free(&canon);
    return rc;
}

/* {ok, V} -> 0 and the value; {error, not_found} -> LKC_ENOTFOUND.
 * lkc_rpc: whatever came, as it came. */
static int rpc_value(struct rpc_cmd *r, struct term v)
{
    if (r->only)
        return rpc_keep(r, v.p, v.len, 0);
    size_t pos = 0;
    uint32_t ar;
    if (term_get_tuple(v.p, v.len, &pos, &ar) || ar != 2)
        return LKC_EPROTO;
    if (term_is_atom(v.p, v.len, pos, "error"))
        return LKC_ENOTFOUND;
    if (!term_is_atom(v.p, v.len, pos, "ok") || term_skip(v.p, v.len, &pos))
        return LKC_EPROTO;
    return rpc_keep(r, v.p, v.len, pos);
}

/* lkc_rpc: the function raised; {Class, Reason} from {Res, Class, Reason}
 * or {Res, error, Reason, Stack} (pos at Class). noconnection and the
 * like are not a raise. */
static int rpc_raised(struct rpc_cmd *r, struct term reason, size_t pos)
{
    const uint8_t *p = reason.p;
    size_t start = pos;
    if (!(term_is_atom(p, reason.len, pos, "error") || term_is_atom(p, reason.len, pos, "exit") ||
          term_is_atom(p, reason.len, pos, "throw")))
        return LKC_EPROTO;
    if (term_skip(p, reason.len, &pos) || term_skip(p, reason.len, &pos))
        return LKC_EPROTO;
    struct buf t;
    buf_init(&t);
    int rc = enc_tuple(&t, 2) ? LKC_ENOMEM : 0;
    if (!rc && buf_append(&t, p + start, pos - start))
        rc = LKC_ENOMEM;
    if (!rc)
        rc = rpc_keep(r, t.data, t.len, 0);
    buf_free(&t);
    return rc ? rc : LKC_EREMOTE;
}

/* MONITOR_P_EXIT reason: {Res, return, V} ends the read; anything else
 * (error/exit/throw, noconnection, noproc) tries the next master. */
static void rpc_on_exit(struct rpc_cmd *r, struct term reason)
{
    size_t pos = 0;
    uint32_t ar;
    if (term_get_tuple(reason.p, reason.len, &pos, &ar) == 0 && ar == 3 &&
        term_skip(reason.p, reason.len, &pos) == 0 &&
        term_is_atom(reason.p, reason.len, pos, "return") &&
        term_skip(reason.p, reason.len, &pos) == 0) {
        rpc_end(r, rpc_value(r, (struct term){reason.p + pos, (uint32_t)(reason.len - pos)}));
        return;
    }
    if (r->only) {
        pos = 0;
        int rc = LKC_ECONNECT;
        /* {Res, throw | exit, Reason}, {Res, error, Reason, Stack} */
        if (term_get_tuple(reason.p, reason.len, &pos, &ar) == 0 && (ar == 3 || ar == 4) &&
            term_skip(reason.p, reason.len, &pos) == 0)
            rc = rpc_raised(r, reason, pos);
        rpc_end(r, rc);
        return;
    }
    log_debug("lkc: dirty_read on %s failed; trying the next master", r->peer);
    rpc_fail_soon(r);
}

static void rpc_on_msg(void *ud, struct conn *conn, const struct ctrl *m)
{
    (void)conn;
    struct lkc_rpc *p = ud;
    if (m->op != CTRL_SPAWN_REPLY && m->op != CTRL_MONITOR_P_EXIT)
        return; /* e.g. io requests to us as group leader: nothing to do */
    struct rpc_cmd *r = rpc_find(p, m->ref);
    if (!r)
        return;
    if (m->op == CTRL_MONITOR_P_EXIT) {
        rpc_on_exit(r, m->reason);
    } else if (term_peek(m->reason.p, m->reason.len, 0) != TT_NEW_PID &&
               term_peek(m->reason.p, m->reason.len, 0) != TT_PID) {
        log_debug("lkc: %s refused the %s spawn request", r->peer, r->fun);
        if (r->only)
            rpc_end(r, LKC_EPROTO);
        else
            rpc_fail_soon(r);
    }
}

void lkc__rpc_conn(struct lkc *c, struct conn *conn, int up)
{
    if (up || !c->rpc)
        return;
    for (struct rpc_cmd *r = c->rpc->pending; r; r = r->next)
        if (r->req_id.len && strcmp(r->peer, conn->peer) == 0)
            rpc_fail_soon(r);
}

/* ---- command ---- */

static void rpc_run(struct lkc_cmd *k)
{
    struct rpc_cmd *r = (struct rpc_cmd *)k;
    struct lkc_rpc *p = k->c->rpc;
    r->attempt = (size_t)-1;
    loop_timer_init(&r->timer, rpc_timer, r);
    int rc = rpc_next(r);
    if (rc) {
        lkc__finish(k, rc);
        return;
    }
    r->next = p->pending;
    p->pending = r;
    r->listed = 1;
    lkc__flight_add(k);
}

static void rpc_cancel(struct lkc_cmd *k) { rpc_end((struct rpc_cmd *)k, LKC_ECLOSED); }

static void rpc_destroy(struct lkc_cmd *k)
{
    struct rpc_cmd *r = (struct rpc_cmd *)k;
    buf_free(&r->args);
    buf_free(&r->req_id);
    buf_free(&r->res);
    lkc_buf_free(&r->value);
    free(r);
}

static const struct lkc_cmd_ops rpc_ops = {rpc_run, rpc_cancel, rpc_destroy};

static struct rpc_cmd *rpc_new(const char *mod, const char *fun)
{
    if (strlen(mod) >= sizeof ((struct rpc_cmd *)0)->mod ||
        strlen(fun) >= sizeof ((struct rpc_cmd *)0)->fun)
        return NULL;
    struct rpc_cmd *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->k.ops = &rpc_ops;
    snprintf(r->mod, sizeof r->mod, "%s", mod);
    snprintf(r->fun, sizeof r->fun, "%s", fun);
    r->attempt_ms = LKC_RPC_ATTEMPT_MS;
    buf_init(&r->args);
    buf_init(&r->req_id);
    buf_init(&r->res);
    return r;
}

static int rpc_add_arg(struct rpc_cmd *r, lkc_term t)
{
    if (r->nargs >= RPC_MAX_ARGS)
        return LKC_EINVAL;
    r->argoff[r->nargs] = (uint32_t)r->args.len;
    int rc = lkc__canon(t, &r->args);
    if (rc)
        return rc;
    r->argoff[++r->nargs] = (uint32_t)r->args.len;
    return 0;
}

/* Run r and hand its value over: rc, with *value set when it holds one. */
static int rpc_go(lkc *c, struct rpc_cmd *r, lkc_buf *value)
{
    int rc = lkc__call(c, &r->k, 1);
    if (rc && rc != LKC_EREMOTE)
        return rc; /* r is gone */
    *value = r->value;
    r->value = (lkc_buf){NULL, 0};
    rpc_destroy(&r->k);
    return rc;
}

int lkc_dirty_read(lkc *c, lkc_term key, lkc_buf *value)
{
    if (!c || !value)
        return LKC_EINVAL;
    value->data = NULL;
    value->len = 0;
    struct rpc_cmd *r = rpc_new("locker", "dirty_read");
    if (!r)
        return LKC_ENOMEM;
    int rc = rpc_add_arg(r, key);
    if (rc) {
        rpc_destroy(&r->k);
        return rc;
    }
    return rpc_go(c, r, value);
}

int lkc_rpc(lkc *c, const char *node, const char *mod, const char *fun, const lkc_term *args,
            size_t nargs, int64_t timeout_ms, lkc_buf *result)
{
    if (!c || !node || !strchr(node, '@') || strlen(node) > HS_NAME_MAX || !mod || !fun ||
        !result || (nargs && !args) || nargs > RPC_MAX_ARGS)
        return LKC_EINVAL;
    result->data = NULL;
    result->len = 0;
    struct rpc_cmd *r = rpc_new(mod, fun);
    if (!r)
        return LKC_EINVAL;
    snprintf(r->only_node, sizeof r->only_node, "%s", node);
    r->only = r->only_node;
    r->attempt_ms = timeout_ms > 0 ? timeout_ms : LKC_DEFAULT_TIMEOUT;
    int rc = 0;
    for (size_t i = 0; i < nargs && !rc; i++)
        rc = rpc_add_arg(r, args[i]);
    if (rc) {
        rpc_destroy(&r->k);
        return rc;
    }
    return rpc_go(c, r, result);
}

/* ---- the rpc process ---- */

int lkc__rpc_new(struct lkc *c)
{
    struct lkc_rpc *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->c = c;
    buf_init(&p->scratch);
    int rc = node_spawn(c->node, NULL, rpc_on_msg, p, &p->pid);
    if (rc) {
        free(p);
        return rc;
    }
    c->rpc = p;
    return 0;
}

void lkc__rpc_free(struct lkc *c)
{
    struct lkc_rpc *p = c->rpc;
    if (!p)
        return;
    /* Reads still pending were cancelled at close; nothing else owns them. */
    buf_free(&p->scratch);
    free(p);
    c->rpc = NULL;
}
