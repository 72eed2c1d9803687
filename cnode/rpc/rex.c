/*
 * rex, net_kernel and erpc; see rex.h.
 *
 * rpc:sbcast(Nodes, Name, Msg) sends {Caller, {sbcast, Name, Msg}} to rex;
 * rex delivers Msg to the local process Name and answers
 * {rex, ThisNode, ThisNode}, or {rex, ThisNode, {nonexisting_name, Name}}.
 *
 * erpc: SPAWN_REQUEST {29, ReqId, Caller, GL, {erpc, execute_call, 4}, Opts}
 * with arguments [Res, M, F, A]. lockerd answers SPAWN_REPLY with a fresh
 * pid, runs M:F(A) through apply, and reports the outcome the way the
 * spawned process's exit would: MONITOR_P_EXIT with reason
 * {Res, return, Value}, {Res, exit, Reason} or {Res, error, Reason, Stack}. The reply context
 * is copied into a job because apply may finish later (coordinated calls).
 */
#include "rex.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ei_glue/enc.h"
#include "../core/log.h"

struct rex {
    struct node *node;
    struct apply *apply;
    struct term pid;
    struct term nk_pid;
    struct buf b;
};

/* Everything needed to answer once apply finishes; spans point into raw. */
struct job {
    struct rex *r;
    int erpc;            /* 1: erpc spawn, 0: rex gen_server call */
    int monitor, link;
    struct term caller, req_id, res, new_pid, tag, mod, fun, args;
    struct buf raw;
};

static int span_next(struct term t, size_t *pos, struct term *out)
{
    return term_next(t.p, t.len, pos, out);
}

/* Copy spans into the job's own buffer (they come from a frame). */
static int job_keep(struct job *j, struct term *const *spans, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += spans[i]->len;
    if (buf_reserve(&j->raw, total))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint8_t *at = j->raw.data + j->raw.len;
        buf_append(&j->raw, spans[i]->p, spans[i]->len);
        spans[i]->p = at;
    }
    return 0;
}

static void job_free(struct job *j)
{
    buf_free(&j->raw);
    free(j);
}

/* ---- outcome encoding ---- */

/* [{M, F, Args, []}] */
static int enc_stack(struct buf *b, const struct job *j)
{
    int rc = enc_list(b, 1);
    if (!rc) rc = enc_tuple(b, 4);
    if (!rc) rc = enc_raw(b, j->mod);
    if (!rc) rc = enc_raw(b, j->fun);
    if (!rc) rc = enc_raw(b, j->args);
    if (!rc) rc = enc_nil(b);
    return rc ? rc : enc_nil(b);
}

static const char *error_atom(int rc)
{
    return rc == -ENOENT ? "undef" : rc == -ECANCELED ? "shutdown" : "function_clause";
}

/* The error reason: the function's own (APPLY_ERROR) or one for rc < 0. */
static int enc_error_reason(struct buf *b, int rc, struct term v)
{
    return rc == APPLY_ERROR ? enc_raw(b, v) : enc_atom(b, error_atom(rc));
}

/* erpc exit reason: {Res, return, V} | {Res, exit, R} | {Res, error, Reason, Stack} */
static int enc_erpc_reason(struct buf *b, const struct job *j, int rc, struct term v)
{
    int e = enc_tuple(b, rc == APPLY_RETURN || rc == APPLY_EXIT ? 3 : 4);
    if (!e) e = enc_raw(b, j->res);
    if (!e) e = enc_atom(b, rc == APPLY_RETURN ? "return" : rc == APPLY_EXIT ? "exit" : "error");
    if (!e && (rc == APPLY_RETURN || rc == APPLY_EXIT))
        return enc_raw(b, v);
    if (!e) e = enc_error_reason(b, rc, v);
    return e ? e : enc_stack(b, j);
}

/* rex reply: V | {badrpc, {'EXIT', R}} | {badrpc, {'EXIT', {Reason, Stack}}} */
static int enc_rex_reply(struct buf *b, const struct job *j, int rc, struct term v)
{
    if (rc == APPLY_RETURN)
        return enc_raw(b, v);
    int e = enc_tuple(b, 2);
    if (!e) e = enc_atom(b, "badrpc");
    if (!e) e = enc_tuple(b, 2);
    if (!e) e = enc_atom(b, "EXIT");
    if (!e && rc == APPLY_EXIT)
        return enc_raw(b, v);
    if (!e) e = enc_tuple(b, 2);
    if (!e) e = enc_error_reason(b, rc, v);
    return e ? e : enc_stack(b, j);
}

static void job_done(void *ud, int rc, struct term value)
{
    struct job *j = ud;
    struct rex *r = j->r;
    struct conn *c = node_conn_for(r->node, j->caller);
    buf_reset(&r->b);
    if (c && !j->erpc) {
        if (enc_rex_reply(&r->b, j, rc, value) == 0)
            node_reply(r->node, c, r->pid, j->caller, j->tag,
                       (struct term){r->b.data, (uint32_t)r->b.len});
    } else if (c && j->monitor) {
        if (enc_erpc_reason(&r->b, j, rc, value) == 0)
            node_send_exit_reason(c, j->new_pid, j->caller, j->req_id,
                                  (struct term){r->b.data, (uint32_t)r->b.len});
    }
    job_free(j);
}

/* ---- erpc spawn requests ---- */

struct spawn_reply_args {
    const struct ctrl *m;
    int64_t flags;
    struct term result;
};

static int ctl_spawn_reply(struct buf *out, void *arg)
{
    struct spawn_reply_args *s = arg;
    return ctrl_enc_spawn_reply(out, s->m->ref, s->m->from, s->flags, s->result);
}

static void spawn_opts(struct term opts, int *monitor, int *link)
{
    size_t pos = 0;
    uint32_t n;
    *monitor = *link = 0;
    if (term_get_list(opts.p, opts.len, &pos, &n))
        return;
    for (uint32_t i = 0; i < n; i++) {
        if (term_is_atom(opts.p, opts.len, pos, "monitor"))
            *monitor = 1;
        else if (term_is_atom(opts.p, opts.len, pos, "link"))
            *link = 1;
        if (term_skip(opts.p, opts.len, &pos))
            return;
    }
}

static void spawn_refuse(struct rex *r, struct conn *c, const struct ctrl *m, const char *why)
{
    buf_reset(&r->b);
    if (enc_atom(&r->b, why))
        return;
    struct spawn_reply_args s = {m, 0, {r->b.data, (uint32_t)r->b.len}};
    log_debug("spawn request %s:%s/%lld from %s refused (%s)", m->mod, m->fun,
              (long long)m->arity, c->peer, why);
    node_send_ctrl(c, ctl_spawn_reply, &s);
}

/* Arguments of execute_call [Res, M, F, A] or execute_cast [M, F, A]. */
static int spawn_args(struct job *j, struct term list, int call)
{
    size_t pos = 0;
    uint32_t n;
    if (term_get_list(list.p, list.len, &pos, &n) || n != (call ? 4u : 3u))
        return -EINVAL;
    if (call && span_next(list, &pos, &j->res))
        return -EINVAL;
    if (span_next(list, &pos, &j->mod) || span_next(list, &pos, &j->fun) ||
        span_next(list, &pos, &j->args))
        return -EINVAL;
    return term_peek(list.p, list.len, pos) == TT_NIL ? 0 : -EINVAL;
}

static void rex_on_spawn(void *ud, struct conn *c, const struct ctrl *m)
{
    struct rex *r = ud;
    if (m->op != CTRL_SPAWN_REQUEST)
        return;
    int call = !strcmp(m->fun, "execute_call") && m->arity == 4;
    int cast = !strcmp(m->fun, "execute_cast") && m->arity == 3;
    if (strcmp(m->mod, "erpc") || (!call && !cast)) {
        spawn_refuse(r, c, m, "notsup");
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        spawn_refuse(r, c, m, "system_limit");
        return;
    }
    j->r = r;
    j->erpc = 1;
    buf_init(&j->raw);
    spawn_opts(m->opts, &j->monitor, &j->link);
    j->caller = m->from;
    j->req_id = m->ref;
    struct buf pid;
    buf_init(&pid);
    char mod[CTRL_NAME_MAX], fun[CTRL_NAME_MAX];
    size_t p1 = 0, p2 = 0;
    struct term *keep[] = {&j->caller, &j->req_id, &j->res, &j->mod, &j->fun, &j->args,
                           &j->new_pid};
    if (spawn_args(j, m->payload, call) || node_make_pid(r->node, &pid) ||
        term_get_atom(j->mod.p, j->mod.len, &p1, mod, sizeof mod) ||
        term_get_atom(j->fun.p, j->fun.len, &p2, fun, sizeof fun)) {
        buf_free(&pid);
        job_free(j);
        spawn_refuse(r, c, m, "badarg");
        return;
    }
    j->new_pid = (struct term){pid.data, (uint32_t)pid.len};
    int rc = job_keep(j, keep, sizeof keep / sizeof keep[0]);
    buf_free(&pid);
    struct spawn_reply_args s = {m, (j->link ? 1 : 0) | (j->monitor ? 2 : 0), j->new_pid};
    if (rc || node_send_ctrl(c, ctl_spawn_reply, &s)) {
        job_free(j);
        return;
    }
    if (!call)
        j->monitor = 0; /* execute_cast: nobody waits for a value */
    apply_start(r->apply, mod, fun, j->args, job_done, j);
}

/* ---- rex ---- */

/* {Caller, {sbcast, Name, Msg}} */
static void rex_sbcast(struct rex *r, struct conn *c, struct term msg)
{
    size_t pos = 0;
    uint32_t ar;
    struct term caller, inner, name_term;
    char name[CTRL_NAME_MAX];
    if (term_get_tuple(msg.p, msg.len, &pos, &ar) || ar != 2 || span_next(msg, &pos, &caller) ||
        term_get_tuple(msg.p, msg.len, &pos, &ar) || ar != 3 ||
        !term_is_atom(msg.p, msg.len, pos, "sbcast") || term_skip(msg.p, msg.len, &pos))
        return;
    size_t name_pos = pos;
    if (term_get_atom(msg.p, msg.len, &pos, name, sizeof name))
        return;
    name_term = (struct term){msg.p + name_pos, (uint32_t)(pos - name_pos)};
    if (span_next(msg, &pos, &inner))
        return;
    int tag = term_peek(caller.p, caller.len, 0);
    if (tag != TT_NEW_PID && tag != TT_PID)
        return;
    struct term target;
    int exists = node_whereis(r->node, name, &target) == 0;
    if (exists) {
        /* Deliver Msg as if the caller had sent it to the name. */
        struct ctrl m = {.op = CTRL_REG_SEND, .from = caller, .to_is_name = 1, .payload = inner};
        snprintf(m.to_name, sizeof m.to_name, "%s", name);
        node_deliver_local(r->node, c, &m);
    }
    buf_reset(&r->b);
    int rc = enc_tuple(&r->b, 3);
    if (!rc) rc = enc_atom(&r->b, "rex");
    if (!rc) rc = enc_atom(&r->b, node_name(r->node));
    if (!rc && exists) {
        rc = enc_atom(&r->b, node_name(r->node));
    } else if (!rc) {
        rc = enc_tuple(&r->b, 2);
        if (!rc) rc = enc_atom(&r->b, "nonexisting_name");
        if (!rc) rc = enc_raw(&r->b, name_term);
    }
    if (!rc)
        node_send(r->node, c, caller, (struct term){r->b.data, (uint32_t)r->b.len});
}

/* {call | block_call, M, F, A, GroupLeader} as a gen_server call. */
static void rex_call(struct rex *r, struct conn *c, const struct gen_call *g)
{
    size_t pos = 0;
    uint32_t ar;
    struct term req = g->req, gl;
    char mod[CTRL_NAME_MAX], fun[CTRL_NAME_MAX];
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    buf_init(&j->raw);
    j->r = r;
    j->caller = g->from_pid;
    j->tag = g->tag;
    size_t p1 = 0, p2 = 0;
    if (term_get_tuple(req.p, req.len, &pos, &ar) || ar != 5 ||
        !(term_is_atom(req.p, req.len, pos, "call") ||
          term_is_atom(req.p, req.len, pos, "block_call")) ||
        term_skip(req.p, req.len, &pos) || span_next(req, &pos, &j->mod) ||
        span_next(req, &pos, &j->fun) || span_next(req, &pos, &j->args) ||
        span_next(req, &pos, &gl) ||
        term_get_atom(j->mod.p, j->mod.len, &p1, mod, sizeof mod) ||
        term_get_atom(j->fun.p, j->fun.len, &p2, fun, sizeof fun)) {
        log_debug("rex: unsupported request from %s ignored", c->peer);
        job_free(j);
        return;
    }
    struct term *keep[] = {&j->caller, &j->tag, &j->mod, &j->fun, &j->args};
    if (job_keep(j, keep, sizeof keep / sizeof keep[0])) {
        job_free(j);
        return;
    }
    apply_start(r->apply, mod, fun, j->args, job_done, j);
}

static void rex_on_msg(void *ud, struct conn *c, const struct ctrl *m)
{
    struct rex *r = ud;
    struct gen_call g;
    if (gen_call_parse(m->payload, &g) == 0)
        rex_call(r, c, &g);
    else
        rex_sbcast(r, c, m->payload);
}

/* net_kernel: {'$gen_call', From, {is_auth, Node}} -> yes. */
static void nk_on_msg(void *ud, struct conn *c, const struct ctrl *m)
{
    struct rex *r = ud;
    struct gen_call g;
    size_t pos = 0;
    uint32_t ar;
    if (gen_call_parse(m->payload, &g) || term_get_tuple(g.req.p, g.req.len, &pos, &ar) ||
        ar != 2 || !term_is_atom(g.req.p, g.req.len, pos, "is_auth"))
        return;
    buf_reset(&r->b);
    if (enc_atom(&r->b, "yes") == 0)
        node_reply(r->node, c, r->nk_pid, g.from_pid, g.tag,
                   (struct term){r->b.data, (uint32_t)r->b.len});
}

/* rpc waits of a node that disconnected end with it (nobody is left to
 * answer; an infinity wait would hold its --max-waiters slot forever). */
static int job_of_node(void *ud, void *arg)
{
    const struct job *j = ud;
    char nd[CTRL_NAME_MAX];
    return ctrl_term_node(j->caller, nd, sizeof nd) == 0 && strcmp(nd, arg) == 0;
}

static void rex_on_conn(void *ud, struct conn *c, int up)
{
    struct rex *r = ud;
    if (up || c->loopback)
        return;
    size_t n = apply_cancel_waits(r->apply, job_of_node, c->peer);
    if (n)
        log_info("%zu rpc waits of %s dropped: its connection closed", n, c->peer);
}

struct rex *rex_new(struct node *n, struct apply *a)
{
    struct rex *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->node = n;
    r->apply = a;
    buf_init(&r->b);
    if (node_spawn(n, "rex", rex_on_msg, r, &r->pid) ||
        node_spawn(n, "net_kernel", nk_on_msg, r, &r->nk_pid)) {
        free(r);
        return NULL;
    }
    node_set_spawn_handler(n, rex_on_spawn, r);
    if (node_subscribe(n, rex_on_conn, r)) {
        free(r);
        return NULL;
    }
    return r;
}

void rex_free(struct rex *r)
{
    if (!r)
        return;
    buf_free(&r->b);
    free(r);
}
