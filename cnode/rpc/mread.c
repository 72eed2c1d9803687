/*
 * mread: master_dirty_read forwarded by erpc; see mread.h.
 *
 * ReqIds are kept in canonical form and compared that way (a peer may
 * re-encode our reference). A read is finished exactly once: by the exit
 * signal, a refused spawn, its connection going down or its timer, and
 * every path unlinks it first, so a late signal finds nothing.
 */
#include "mread.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ei_glue/enc.h"
#include "../core/loop.h"

struct rd {
    struct rd *next;
    struct mread *m;
    char peer[CTRL_NAME_MAX];
    struct buf req_id;       /* canonical */
    struct buf res;
    apply_done_fn done;
    void *ud;
    struct loop_timer timer;
};

struct mread {
    struct node *node;
    struct term pid;
    struct rd *pending;
    size_t npending;
    struct buf out;
};

static struct term span(const struct buf *b) { return (struct term){b->data, (uint32_t)b->len}; }

static void rd_unlink(struct rd *r)
{
    struct mread *m = r->m;
    for (struct rd **pp = &m->pending; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            m->npending--;
            break;
        }
    loop_timer_stop(node_loop(m->node), &r->timer);
}

static void rd_free(struct rd *r)
{
    buf_free(&r->req_id);
    buf_free(&r->res);
    free(r);
}

/* Finish r with the term in m->out (or -errno). */
static void rd_finish(struct rd *r, int rc)
{
    struct mread *m = r->m;
    rd_unlink(r);
    r->done(r->ud, rc, span(&m->out));
    rd_free(r);
}

/* {badrpc, Atom} into m->out. */
static int enc_badrpc_atom(struct buf *b, const char *why)
{
    buf_reset(b);
    return enc_atom_pair(b, "badrpc", why);
}

static void rd_timeout(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct rd *r = t->ud;
    rd_finish(r, enc_badrpc_atom(&r->m->out, "timeout") ? -ENOMEM : APPLY_RETURN);
}

static struct rd *rd_find(struct mread *m, struct term ref)
{
    struct buf canon;
    buf_init(&canon);
    size_t pos = 0;
    struct rd *found = NULL;
    if (term_canon(ref.p, ref.len, &pos, &canon) == 0)
        for (struct rd *r = m->pending; r && !found; r = r->next)
            if (term_eq(span(&r->req_id), span(&canon)))
                found = r;
    buf_free(&canon);
    return found;
}

/* The spawned process's exit reason -> what rpc:call returns. */
static int enc_outcome(struct buf *b, struct term reason)
{
    size_t pos = 0;
    uint32_t ar;
    buf_reset(b);
    if (term_get_tuple(reason.p, reason.len, &pos, &ar) || (ar != 3 && ar != 4) ||
        term_skip(reason.p, reason.len, &pos)) {
        /* noconnection, noproc, ...: the node could not run it */
        int rc = enc_tuple(b, 2);
        if (!rc) rc = enc_atom(b, "badrpc");
        return rc ? rc : enc_raw(b, reason);
    }
    int ret = term_is_atom(reason.p, reason.len, pos, "return");
    int thr = term_is_atom(reason.p, reason.len, pos, "throw");
    int ex = term_is_atom(reason.p, reason.len, pos, "exit");
    struct term cls, val, stack = {NULL, 0};
    if (term_next(reason.p, reason.len, &pos, &cls) || term_next(reason.p, reason.len, &pos, &val))
        return -EINVAL;
    if (ar == 4 && term_next(reason.p, reason.len, &pos, &stack))
        return -EINVAL;
    if (ret || thr)
        return enc_raw(b, val);
    int rc = enc_tuple(b, 2);
    if (!rc) rc = enc_atom(b, "badrpc");
    if (!rc) rc = enc_tuple(b, 2);
    if (!rc) rc = enc_atom(b, "EXIT");
    if (!rc && ex)
        return enc_raw(b, val);
    if (!rc) rc = enc_tuple(b, 2);
    if (!rc) rc = enc_raw(b, val);
    return rc ? rc : stack.p ? enc_raw(b, stack) : enc_nil(b);
}

static void mread_on_msg(void *ud, struct conn *c, const struct ctrl *msg)
{
    (void)c;
    struct mread *m = ud;
    struct rd *r;
    if (msg->op != CTRL_SPAWN_REPLY && msg->op != CTRL_MONITOR_P_EXIT)
        return;
    if (!(r = rd_find(m, msg->ref)))
        return;
    if (msg->op == CTRL_SPAWN_REPLY) {
        char why[64];
        size_t pos = 0;
        if (term_get_atom(msg->reason.p, msg->reason.len, &pos, why, sizeof why))
            return; /* a pid: the exit signal follows */
        /* erpc:call raises error {erpc, Why}: rpc:call returns {badrpc, Why} */
        rd_finish(r, enc_badrpc_atom(&m->out, why) ? -ENOMEM : APPLY_RETURN);
        return;
    }
    int rc = enc_outcome(&m->out, msg->reason);
    if (rc == -EINVAL)
        rc = enc_badrpc_atom(&m->out, "badarg");
    rd_finish(r, rc ? -ENOMEM : APPLY_RETURN);
}

static void mread_on_conn(void *ud, struct conn *c, int up)
{
    struct mread *m = ud;
    if (up || !c->peer[0])
        return;
    struct rd *r = m->pending;
    while (r) {
        struct rd *next = r->next;
        if (strcmp(r->peer, c->peer) == 0)
            rd_finish(r, enc_badrpc_atom(&m->out, "nodedown") ? -ENOMEM : APPLY_RETURN);
        r = next;
    }
}

/* SPAWN_REQUEST + [Res, locker, dirty_read, [Key]] into conn's output. */
static int send_request(struct mread *m, struct conn *conn, struct rd *r, struct term req_id,
                        struct term key)
{
    int rc = ctrl_frame_erpc_call(conn_out(conn), req_id, m->pid, span(&r->res), "locker",
                                  "dirty_read", &key, 1);
    if (!rc)
        conn_mark_dirty(conn);
    return rc;
}

int mread_start(struct mread *m, const char *master, struct term key, apply_done_fn done,
                void *ud)
{
    if (m->npending >= MREAD_MAX)
        return -EMLINK;
    struct conn *conn = node_connect(m->node, master);
    if (!conn)
        return -EHOSTUNREACH;
    struct rd *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    *r = (struct rd){.m = m, .done = done, .ud = ud};
    snprintf(r->peer, sizeof r->peer, "%s", master);
    buf_init(&r->req_id);
    buf_init(&r->res);
    loop_timer_init(&r->timer, rd_timeout, r);
    struct buf raw;
    buf_init(&raw);
    size_t pos = 0;
    struct loop *l = node_loop(m->node);
    int rc = node_make_ref(m->node, &raw);
    if (!rc) rc = term_canon(raw.data, raw.len, &pos, &r->req_id);
    if (!rc) rc = node_make_ref(m->node, &r->res);
    if (!rc) rc = send_request(m, conn, r, span(&raw), key);
    if (!rc) rc = loop_timer_arm(l, &r->timer, loop_now(l) + MREAD_TIMEOUT_MS);
    buf_free(&raw);
    if (rc) {
        loop_timer_stop(l, &r->timer);
        rd_free(r);
        return rc;
    }
    r->next = m->pending;
    m->pending = r;
    m->npending++;
    return 0;
}

struct mread *mread_new(struct node *n)
{
    struct mread *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->node = n;
    buf_init(&m->out);
    if (node_spawn_raw(n, NULL, mread_on_msg, m, &m->pid) ||
        node_subscribe(n, mread_on_conn, m)) {
        free(m);
        return NULL;
    }
    return m;
}

void mread_free(struct mread *m)
{
    if (!m)
        return;
    while (m->pending) {
        buf_reset(&m->out);
        rd_finish(m->pending, -ECANCELED);
    }
    buf_free(&m->out);
    free(m);
}
