/*
 * rex and net_kernel; see rex.h.
 *
 * rpc:sbcast(Nodes, Name, Msg) sends {Caller, {sbcast, Name, Msg}} to rex;
 * rex delivers Msg to the local process Name and answers
 * {rex, ThisNode, ThisNode}, or {rex, ThisNode, {nonexisting_name, Name}}.
 * Calls to rex ({call,M,F,A,GL} / {block_call,M,F,A,GL}) and erpc spawn
 * requests for functions lockerd does not provide answer the way a BEAM
 * node answers an undefined function, so callers fail fast instead of
 * waiting out a timeout.
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
    struct term pid;
    struct term nk_pid;
    struct buf b;
};

static int span_next(struct term t, size_t *pos, struct term *out)
{
    size_t start = *pos;
    if (term_skip(t.p, t.len, pos))
        return -EINVAL;
    *out = (struct term){t.p + start, (uint32_t)(*pos - start)};
    return 0;
}

/* {Caller, {sbcast, Name, Msg}} */
static void rex_sbcast(struct rex *r, struct conn *c, struct term msg)
{
    size_t pos = 0;
    uint32_t ar;
    struct term caller, inner;
    char name[CTRL_NAME_MAX];
    if (term_get_tuple(msg.p, msg.len, &pos, &ar) || ar != 2 || span_next(msg, &pos, &caller) ||
        term_get_tuple(msg.p, msg.len, &pos, &ar) || ar != 3 ||
        !term_is_atom(msg.p, msg.len, pos, "sbcast") || term_skip(msg.p, msg.len, &pos))
        return;
    size_t name_pos = pos;
    if (term_get_atom(msg.p, msg.len, &pos, name, sizeof name) || span_next(msg, &pos, &inner))
        return;
    struct term name_term = {msg.p + name_pos, (uint32_t)(pos - name_pos - inner.len)};
    int tag = term_peek(caller.p, caller.len, 0);
    if (tag != TT_NEW_PID && tag != TT_PID)
        return;
    struct term target;
    int exists = node_whereis(r->node, name, &target) == 0;
    buf_reset(&r->b);
    int rc = enc_tuple(&r->b, 3);
    if (!rc)
        rc = enc_atom(&r->b, "rex");
    if (!rc)
        rc = enc_atom(&r->b, node_name(r->node));
    if (!rc && exists) {
        rc = enc_atom(&r->b, node_name(r->node));
    } else if (!rc) {
        rc = enc_tuple(&r->b, 2);
        if (!rc)
            rc = enc_atom(&r->b, "nonexisting_name");
        if (!rc)
            rc = enc_raw(&r->b, name_term);
    }
    if (exists) {
        /* Deliver Msg as if sent to the name by the caller. */
        struct ctrl m = {.op = CTRL_REG_SEND, .from = caller, .to_is_name = 1, .payload = inner};
        snprintf(m.to_name, sizeof m.to_name, "%s", name);
        node_deliver_local(r->node, c, &m);
    }
    if (!rc)
        node_send(r->node, c, caller, (struct term){r->b.data, (uint32_t)r->b.len});
}

/* {badrpc, {'EXIT', {undef, [{M, F, A, []}]}}} for rex calls. */
static int enc_undef(struct buf *b, struct term mfa_m, struct term mfa_f, struct term mfa_a)
{
    int rc = enc_tuple(b, 2);
    if (!rc) rc = enc_atom(b, "badrpc");
    if (!rc) rc = enc_tuple(b, 2);
    if (!rc) rc = enc_atom(b, "EXIT");
    if (!rc) rc = enc_tuple(b, 2);
    if (!rc) rc = enc_atom(b, "undef");
    if (!rc) rc = enc_list(b, 1);
    if (!rc) rc = enc_tuple(b, 4);
    if (!rc) rc = enc_raw(b, mfa_m);
    if (!rc) rc = enc_raw(b, mfa_f);
    if (!rc) rc = enc_raw(b, mfa_a);
    if (!rc) rc = enc_nil(b);
    return rc ? rc : enc_nil(b);
}

static void rex_call(struct rex *r, struct conn *c, const struct gen_call *g)
{
    size_t pos = 0;
    uint32_t ar;
    struct term m, f, a;
    struct term req = g->req;
    if (term_get_tuple(req.p, req.len, &pos, &ar) || ar != 5 ||
        !(term_is_atom(req.p, req.len, pos, "call") ||
          term_is_atom(req.p, req.len, pos, "block_call")) ||
        term_skip(req.p, req.len, &pos) || span_next(req, &pos, &m) || span_next(req, &pos, &f) ||
        span_next(req, &pos, &a)) {
        log_debug("rex: unsupported call from %s ignored", c->peer);
        return;
    }
    buf_reset(&r->b);
    if (enc_undef(&r->b, m, f, a) == 0)
        node_reply(r->node, c, r->pid, g->from_pid, g->tag,
                   (struct term){r->b.data, (uint32_t)r->b.len});
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
    if (gen_call_parse(m->payload, &g) ||
        term_get_tuple(g.req.p, g.req.len, &pos, &ar) || ar != 2 ||
        !term_is_atom(g.req.p, g.req.len, pos, "is_auth"))
        return;
    buf_reset(&r->b);
    if (enc_atom(&r->b, "yes") == 0)
        node_reply(r->node, c, r->nk_pid, g.from_pid, g.tag,
                   (struct term){r->b.data, (uint32_t)r->b.len});
}

struct spawn_refuse {
    const struct ctrl *m;
    struct buf *b;
};

static int ctl_spawn_refuse(struct buf *out, void *arg)
{
    struct spawn_refuse *s = arg;
    return ctrl_enc_spawn_reply(out, s->m->ref, s->m->from, 0,
                                (struct term){s->b->data, (uint32_t)s->b->len});
}

/* Spawn requests: refused with notsup until rpc emulation handles them. */
static void spawn_on_msg(void *ud, struct conn *c, const struct ctrl *m)
{
    struct rex *r = ud;
    if (m->op != CTRL_SPAWN_REQUEST)
        return;
    buf_reset(&r->b);
    if (enc_atom(&r->b, "notsup"))
        return;
    struct spawn_refuse s = {m, &r->b};
    log_debug("spawn request %s:%s/%lld from %s refused (notsup)", m->mod, m->fun,
              (long long)m->arity, c->peer);
    node_send_ctrl(c, ctl_spawn_refuse, &s);
}

struct rex *rex_new(struct node *n)
{
    struct rex *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->node = n;
    buf_init(&r->b);
    if (node_spawn(n, "rex", rex_on_msg, r, &r->pid) ||
        node_spawn(n, "net_kernel", nk_on_msg, r, &r->nk_pid)) {
        free(r);
        return NULL;
    }
    node_set_spawn_handler(n, spawn_on_msg, r);
    return r;
}

void rex_free(struct rex *r)
{
    if (!r)
        return;
    buf_free(&r->b);
    free(r);
}
