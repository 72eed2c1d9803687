/*
 * Raw calls: gen_server:call({locker, Node}, Request) from the client node,
 * one node, no coordinator (locker.h, lkc_call_async). Built for volume:
 * bulk loads and capacity measurements keep thousands of calls in flight.
 *
 * Model. One unnamed process of the client node (the "raw process") owns a
 * table of call slots. A call takes a free slot, writes
 *   REG_SEND {6, Self, '', locker} + {'$gen_call', {Self, Ref}, Request}
 * straight into the connection's output (the constant part of that frame
 * is encoded once, at start-up) and arms the slot's timer. Ref carries the
 * slot index and a sequence number, so a reply {Ref, Reply} (a SEND to our
 * pid) finds its slot without a lookup, and a late reply to a slot that
 * timed out and was reused matches nothing and is dropped.
 *
 * Failure without a reply: gen_server:call monitors the server for every
 * call; here the raw process monitors {locker, Node} once per connection
 * (the first call on it sends MONITOR_P), which is what tells the caller
 * fast that a node has no locker (MONITOR_P_EXIT noproc) or that it went
 * away. Calls on a connection that closes or whose monitor fires end with
 * LKC_ECONNECT; the callbacks run from the slots' timers, armed to fire at
 * once, so they never run inside the connection layer's own callbacks.
 *
 * Invariants. Slots live in fixed chunks that never move (their timers sit
 * in the loop's heap); a slot is free exactly when it is on the free list;
 * a callback runs after its slot was freed, so it may start the next call
 * at once. Everything here runs on the client thread; user threads reach
 * it through commands (lkc_int.h).
 */
#include "lkc_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cnode/core/log.h"
#include "../ei_glue/enc.h"

#define CHUNK_BITS 10
#define CHUNK (1u << CHUNK_BITS)
#define NCHUNKS (LKC_CALL_MAX / CHUNK)
#define RAW_MAGIC 0x4c520000u  /* "LR" in the third ref word */
#define KIND_CALL 0u
#define KIND_MON 1u
#define REF_WORDS 12           /* three 32-bit words end the reference */

struct raw_slot {
    struct lkc_raw *p;
    uint32_t idx, seq;
    uint32_t next_free;        /* UINT32_MAX: end of the free list */
    int used;
    int fail;                  /* LKC code for a timer that fires early */
    uint64_t conn_id;
    lkc_reply_fn fn;
    void *ud;
    struct loop_timer timer;
};

/* A connection the raw process has called over: its locker monitor. */
struct raw_peer {
    uint64_t conn_id;
    uint32_t mon_seq;          /* identifies the monitor's reference */
};

struct lkc_raw {
    struct lkc *c;
    struct term pid;           /* owned by the node */
    struct raw_slot *chunks[NCHUNKS];
    uint32_t nslots, free_head, inflight;
    uint32_t next_seq;
    struct raw_peer *peers;
    size_t npeers, cappeers;
    struct buf head;           /* frame up to and including {Self, */
    struct buf ref_head;       /* our references up to the id words */
    struct buf req;            /* a request rewritten in canonical form */
    struct buf reply;          /* 131 + the reply handed to a callback */
    struct buf scratch;        /* a reference rewritten in canonical form */
};

static struct raw_slot *slot_at(struct lkc_raw *p, uint32_t i)
{
    return &p->chunks[i >> CHUNK_BITS][i & (CHUNK - 1)];
}

static void slot_timer(struct loop *l, struct loop_timer *t);

/* A free slot (a new chunk when needed), or NULL at LKC_CALL_MAX / ENOMEM. */
static struct raw_slot *slot_take(struct lkc_raw *p)
{
    if (p->free_head == UINT32_MAX) {
        if (p->nslots >= LKC_CALL_MAX)
            return NULL;
        struct raw_slot *ch = calloc(CHUNK, sizeof *ch);
        if (!ch)
            return NULL;
        p->chunks[p->nslots >> CHUNK_BITS] = ch;
        for (uint32_t i = 0; i < CHUNK; i++) {
            ch[i].p = p;
            ch[i].idx = p->nslots + i;
            ch[i].next_free = i + 1 < CHUNK ? p->nslots + i + 1 : UINT32_MAX;
            loop_timer_init(&ch[i].timer, slot_timer, &ch[i]);
        }
        p->free_head = p->nslots;
        p->nslots += CHUNK;
    }
    struct raw_slot *s = slot_at(p, p->free_head);
    p->free_head = s->next_free;
    s->used = 1;
    s->fail = 0;
    s->seq = ++p->next_seq;
    p->inflight++;
    return s;
}

static void slot_put(struct lkc_raw *p, struct raw_slot *s)
{
    loop_timer_stop(p->c->loop, &s->timer);
    s->used = 0;
    s->next_free = p->free_head;
    p->free_head = s->idx;
    p->inflight--;
}

/* Free the slot, then tell its caller (who may take it again at once). */
static void slot_end(struct lkc_raw *p, struct raw_slot *s, int rc, lkc_term reply)
{
    lkc_reply_fn fn = s->fn;
    void *ud = s->ud;
    slot_put(p, s);
    fn(ud, rc, reply);
}

static void slot_timer(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct raw_slot *s = t->ud;
    slot_end(s->p, s, s->fail ? s->fail : LKC_ETIMEOUT, (lkc_term){NULL, 0});
}

/* Every call over conn_id fails with rc from its timer, now. */
static void fail_conn(struct lkc_raw *p, uint64_t conn_id, int rc)
{
    int64_t now = loop_now(p->c->loop);
    for (uint32_t i = 0; i < p->nslots && p->inflight; i++) {
        struct raw_slot *s = slot_at(p, i);
        if (s->used && s->conn_id == conn_id && !s->fail) {
            s->fail = rc;
            loop_timer_arm(p->c->loop, &s->timer, now);
        }
    }
}

/* ---- references ---- */

static int put_ref(struct lkc_raw *p, struct buf *out, uint32_t w0, uint32_t w1, uint32_t kind)
{
    int rc = buf_reserve(out, p->ref_head.len + REF_WORDS);
    if (rc)
        return rc;
    memcpy(out->data + out->len, p->ref_head.data, p->ref_head.len);
    uint8_t *w = out->data + out->len + p->ref_head.len;
    put_u32(w, w0);
    put_u32(w + 4, w1);
    put_u32(w + 8, RAW_MAGIC | kind);
    out->len += p->ref_head.len + REF_WORDS;
    return 0;
}

/* The words of a reference of ours (any encoding the peer chose). */
static int ref_words(struct lkc_raw *p, struct term t, uint32_t *w0, uint32_t *w1,
                     uint32_t *kind)
{
    size_t want = p->ref_head.len + REF_WORDS;
    if (t.len != want || memcmp(t.p, p->ref_head.data, p->ref_head.len) != 0) {
        /* Not byte for byte ours: compare in canonical form. */
        size_t pos = 0;
        struct term cs;
        buf_reset(&p->scratch);
        if (term_canon_span(t.p, t.len, &pos, &p->scratch, &cs) || cs.len != want ||
            memcmp(cs.p, p->ref_head.data, p->ref_head.len) != 0)
            return -EINVAL;
        t = cs;
    }
    const uint8_t *w = t.p + p->ref_head.len;
    if ((get_u32(w + 8) & 0xffff0000u) != RAW_MAGIC)
        return -EINVAL;
    *w0 = get_u32(w);
    *w1 = get_u32(w + 4);
    *kind = get_u32(w + 8) & 0xffffu;
    return 0;
}

/* ---- sending ---- */

static struct raw_peer *peer_of(struct lkc_raw *p, uint64_t conn_id)
{
    for (size_t i = 0; i < p->npeers; i++)
        if (p->peers[i].conn_id == conn_id)
            return &p->peers[i];
    return NULL;
}

struct mon_arg {
    struct lkc_raw *p;
    uint32_t seq;
};

static int ctl_monitor(struct buf *out, void *arg)
{
    struct mon_arg *m = arg;
    int rc = enc_tuple(out, 4);
    if (!rc) rc = enc_long(out, CTRL_MONITOR_P);
    if (!rc) rc = enc_raw(out, m->p->pid);
    if (!rc) rc = enc_atom(out, "locker");
    /* The first word stays within 18 bits, as BEAM references do. */
    return rc ? rc : put_ref(m->p, out, 0, m->seq, KIND_MON);
}

/* First call over this connection: monitor {locker, Node} on it. */
static int peer_watch(struct lkc_raw *p, struct conn *conn)
{
    if (peer_of(p, conn->id))
        return 0;
    if (p->npeers == p->cappeers) {
        size_t cap = p->cappeers ? 2 * p->cappeers : 8;
        struct raw_peer *v = realloc(p->peers, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        p->peers = v;
        p->cappeers = cap;
    }
    struct mon_arg m = {p, ++p->next_seq};
    int rc = node_send_ctrl(conn, ctl_monitor, &m);
    if (!rc)
        p->peers[p->npeers++] = (struct raw_peer){conn->id, m.seq};
    return rc;
}

static void peer_forget(struct lkc_raw *p, uint64_t conn_id)
{
    struct raw_peer *e = peer_of(p, conn_id);
    if (e)
        *e = p->peers[--p->npeers];
}

/* The whole frame into the connection's output, or nothing. */
static int write_call(struct lkc_raw *p, struct conn *conn, struct raw_slot *s, struct term req)
{
    struct buf *out = conn_out(conn);
    size_t mark = out->len;
    int rc = buf_reserve(out, p->head.len + p->ref_head.len + REF_WORDS + req.len);
    if (rc)
        return rc;
    memcpy(out->data + out->len, p->head.data, p->head.len);
    out->len += p->head.len;
    put_ref(p, out, s->idx, s->seq, KIND_CALL); /* room reserved: cannot fail */
    memcpy(out->data + out->len, req.p, req.len);
    out->len += req.len;
    ctrl_frame_end(out, mark);
    conn_mark_dirty(conn);
    return 0;
}

/* Start a call on the client thread; req is canonical. 0 or an LKC code
 * (then fn is not called). */
static int raw_start(struct lkc *c, const char *node, struct term req, int64_t timeout_ms,
                     lkc_reply_fn fn, void *ud)
{
    struct lkc_raw *p = c->raw;
    if (c->stopping)
        return LKC_ECLOSED;
    struct conn *conn = node_connect(c->node, node);
    if (!conn)
        return LKC_ECONNECT;
    int rc = peer_watch(p, conn);
    if (rc)
        return lkc__map_rc(rc);
    struct raw_slot *s = slot_take(p);
    if (!s)
        return LKC_ENOMEM;
    rc = write_call(p, conn, s, req);
    if (rc) {
        slot_put(p, s);
        return lkc__map_rc(rc);
    }
    s->conn_id = conn->id;
    s->fn = fn;
    s->ud = ud;
    loop_timer_arm(c->loop, &s->timer,
                   loop_now(c->loop) + (timeout_ms > 0 ? timeout_ms : LKC_DEFAULT_TIMEOUT));
    return 0;
}

/* ---- receiving ---- */

/* {Ref, Reply} sent to our pid; t is unchecked (node_spawn_raw): each part
 * is validated as it is taken, and anything else is dropped. */
static void raw_reply(struct lkc_raw *p, struct term t)
{
    size_t pos = 0;
    uint32_t ar, w0, w1, kind;
    struct term ref, reply;
    if (term_get_tuple(t.p, t.len, &pos, &ar) || ar != 2 || term_next(t.p, t.len, &pos, &ref) ||
        ref_words(p, ref, &w0, &w1, &kind) || kind != KIND_CALL || w0 >= p->nslots)
        return;
    struct raw_slot *s = slot_at(p, w0);
    if (!s->used || s->seq != w1 || s->fail)
        return; /* timed out (and maybe reused) or already failing */
    buf_reset(&p->reply);
    if (buf_put_u8(&p->reply, TT_VERSION) ||
        term_canon_span(t.p, t.len, &pos, &p->reply, &reply) || pos != t.len)
        return;
    if (reply.p != p->reply.data + 1 && buf_append(&p->reply, reply.p, reply.len))
        return;
    slot_end(p, s, 0, (lkc_term){p->reply.data, p->reply.len});
}

static void raw_on_msg(void *ud, struct conn *conn, const struct ctrl *m)
{
    struct lkc_raw *p = ud;
    uint32_t w0, w1, kind;
    if (m->op == CTRL_SEND && m->payload.p) {
        raw_reply(p, m->payload);
    } else if (m->op == CTRL_MONITOR_P_EXIT && ref_words(p, m->ref, &w0, &w1, &kind) == 0 &&
               kind == KIND_MON) {
        /* No locker on that node (noproc), or it exited. */
        struct raw_peer *e = peer_of(p, conn->id);
        if (e && e->mon_seq == w1) {
            log_debug("lkc: locker on %s is gone: failing its calls", conn->peer);
            peer_forget(p, conn->id);
            fail_conn(p, conn->id, LKC_ECONNECT);
        }
    }
}

void lkc__raw_conn(struct lkc *c, struct conn *conn, int up)
{
    struct lkc_raw *p = c->raw;
    if (up || !p)
        return;
    peer_forget(p, conn->id);
    fail_conn(p, conn->id, LKC_ECONNECT);
}

void lkc__raw_close_all(struct lkc *c)
{
    struct lkc_raw *p = c->raw;
    for (uint32_t i = 0; p && i < p->nslots && p->inflight; i++) {
        struct raw_slot *s = slot_at(p, i);
        if (s->used)
            slot_end(p, s, LKC_ECLOSED, (lkc_term){NULL, 0});
    }
}

/* ---- commands (calls from other threads, blocking calls, refs) ---- */

struct raw_cmd {
    struct lkc_cmd k;
    struct buf req;             /* canonical request; the made ref */
    char node[256];
    int64_t timeout_ms;
    lkc_reply_fn fn;            /* async: the user's callback */
    void *fn_ud;
    lkc_buf reply;              /* blocking: the reply */
};

static void raw_cmd_destroy(struct lkc_cmd *k)
{
    struct raw_cmd *r = (struct raw_cmd *)k;
    buf_free(&r->req);
    lkc_buf_free(&r->reply);
    free(r);
}

static void raw_cmd_nop(struct lkc_cmd *k) { (void)k; }

static struct term span_of(const struct buf *b) { return (struct term){b->data, (uint32_t)b->len}; }

static void async_run(struct lkc_cmd *k)
{
    struct raw_cmd *r = (struct raw_cmd *)k;
    int rc = raw_start(k->c, r->node, span_of(&r->req), r->timeout_ms, r->fn, r->fn_ud);
    if (rc)
        r->fn(r->fn_ud, rc, (lkc_term){NULL, 0});
    raw_cmd_destroy(k); /* the request is on the wire (or failed): done */
}

static void sync_done(void *ud, int rc, lkc_term reply)
{
    struct raw_cmd *r = ud;
    if (!rc && !(r->reply.data = malloc(reply.len)))
        rc = LKC_ENOMEM;
    if (!rc) {
        memcpy(r->reply.data, reply.data, reply.len);
        r->reply.len = reply.len;
    }
    lkc__finish(&r->k, rc);
}

static void sync_run(struct lkc_cmd *k)
{
    struct raw_cmd *r = (struct raw_cmd *)k;
    int rc = raw_start(k->c, r->node, span_of(&r->req), r->timeout_ms, sync_done, r);
    if (rc)
        lkc__finish(k, rc);
}

/* 131 + a fresh canonical reference into out (client thread). */
static int make_ref(struct lkc *c, struct buf *out)
{
    struct buf raw;
    buf_init(&raw);
    size_t pos = 0;
    int rc = node_make_ref(c->node, &raw);
    if (!rc)
        rc = buf_put_u8(out, TT_VERSION);
    if (!rc)
        rc = term_canon(raw.data, raw.len, &pos, out);
    buf_free(&raw);
    return rc ? LKC_ENOMEM : 0;
}

static void ref_run(struct lkc_cmd *k)
{
    lkc__finish(k, make_ref(k->c, &((struct raw_cmd *)k)->req));
}

/* Calls and refs are never on the in-flight list (a blocking call's slot
 * ends it at close), so cancel is never used. */
static const struct lkc_cmd_ops async_ops = {async_run, raw_cmd_nop, raw_cmd_destroy};
static const struct lkc_cmd_ops sync_ops = {sync_run, raw_cmd_nop, raw_cmd_destroy};
static const struct lkc_cmd_ops ref_ops = {ref_run, raw_cmd_nop, raw_cmd_destroy};

static int raw_cmd_new(const struct lkc_cmd_ops *ops, const char *node, lkc_term request,
                       int64_t timeout_ms, struct raw_cmd **out)
{
    struct raw_cmd *r = calloc(1, sizeof *r);
    if (!r)
        return LKC_ENOMEM;
    r->k.ops = ops;
    buf_init(&r->req);
    if (node && snprintf(r->node, sizeof r->node, "%s", node) >= (int)sizeof r->node) {
        raw_cmd_destroy(&r->k);
        return LKC_EINVAL;
    }
    int rc = request.data ? lkc__canon(request, &r->req) : 0;
    if (rc) {
        raw_cmd_destroy(&r->k);
        return rc;
    }
    r->timeout_ms = timeout_ms;
    *out = r;
    return 0;
}

int lkc_call_async(lkc *c, const char *node, lkc_term request, int64_t timeout_ms,
                   lkc_reply_fn done, void *ud)
{
    if (!c || !node || !done)
        return LKC_EINVAL;
    if (!request.data || !request.len)
        return LKC_EBADTERM;
    if (lkc__on_loop(c)) {
        /* From a callback: validate in place and write at once. */
        struct lkc_raw *p = c->raw;
        size_t pos = request.data[0] == TT_VERSION ? 1 : 0;
        struct term req;
        buf_reset(&p->req);
        int rc = term_canon_span(request.data, request.len, &pos, &p->req, &req);
        if (rc || pos != request.len)
            return rc == -ENOMEM ? LKC_ENOMEM : LKC_EBADTERM;
        return raw_start(c, node, req, timeout_ms, done, ud);
    }
    struct raw_cmd *r;
    int rc = raw_cmd_new(&async_ops, node, request, timeout_ms, &r);
    if (rc)
        return rc;
    r->fn = done;
    r->fn_ud = ud;
    rc = lkc__submit(c, &r->k);
    if (rc)
        raw_cmd_destroy(&r->k);
    return rc;
}

int lkc_call_wait(lkc *c, const char *node, lkc_term request, int64_t timeout_ms, lkc_buf *reply)
{
    if (!c || !node || !reply)
        return LKC_EINVAL;
    *reply = (lkc_buf){NULL, 0};
    if (!request.data)
        return LKC_EBADTERM;
    struct raw_cmd *r;
    int rc = raw_cmd_new(&sync_ops, node, request, timeout_ms, &r);
    if (!rc)
        rc = lkc__call(c, &r->k, 1);
    if (rc)
        return rc;
    *reply = r->reply;
    r->reply = (lkc_buf){NULL, 0};
    raw_cmd_destroy(&r->k);
    return 0;
}

int lkc_make_ref(lkc *c, lkc_buf *out)
{
    if (!c || !out)
        return LKC_EINVAL;
    *out = (lkc_buf){NULL, 0};
    if (lkc__on_loop(c)) {
        struct buf b;
        buf_init(&b);
        int rc = make_ref(c, &b);
        if (rc) {
            buf_free(&b);
            return rc;
        }
        out->data = b.data; /* the buf's storage becomes the caller's */
        out->len = b.len;
        return 0;
    }
    struct raw_cmd *r;
    int rc = raw_cmd_new(&ref_ops, NULL, (lkc_term){NULL, 0}, 0, &r);
    if (!rc)
        rc = lkc__call(c, &r->k, 1);
    if (rc)
        return rc;
    out->data = r->req.data;
    out->len = r->req.len;
    r->req = (struct buf){0};
    raw_cmd_destroy(&r->k);
    return 0;
}

/* ---- the process ---- */

/* The frame's constant part: Len:32 | 112 | 131 {6, Self, '', locker} |
 * 131 {'$gen_call', {Self,  — then Ref, then the request. */
static int build_templates(struct lkc_raw *p)
{
    struct node *n = p->c->node;
    size_t mark, pos = 0;
    struct buf raw;
    buf_init(&raw);
    uint32_t zero[3] = {0, 0, 1};
    int rc = ctrl_frame_begin(&p->head, &mark);
    if (!rc) rc = ctrl_enc_reg_send(&p->head, p->pid, "locker");
    if (!rc) rc = ctrl_payload_begin(&p->head);
    if (!rc) rc = enc_tuple(&p->head, 3);
    if (!rc) rc = enc_atom(&p->head, "$gen_call");
    if (!rc) rc = enc_tuple(&p->head, 2);
    if (!rc) rc = enc_raw(&p->head, p->pid);
    /* A canonical reference of ours without its id words. */
    if (!rc) rc = enc_ref(&raw, node_name(n), node_creation(n), zero);
    if (!rc) rc = term_canon(raw.data, raw.len, &pos, &p->ref_head);
    buf_free(&raw);
    if (!rc && (p->ref_head.len < 3 + REF_WORDS || get_u16(p->ref_head.data + 1) != 3))
        rc = -EINVAL;
    if (!rc)
        p->ref_head.len -= REF_WORDS;
    return rc;
}

int lkc__raw_new(struct lkc *c)
{
    struct lkc_raw *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->c = c;
    p->free_head = UINT32_MAX;
    buf_init(&p->head);
    buf_init(&p->ref_head);
    buf_init(&p->req);
    buf_init(&p->reply);
    buf_init(&p->scratch);
    c->raw = p;
    /* Raw: raw_reply validates each reply while taking it apart. */
    int rc = node_spawn_raw(c->node, NULL, raw_on_msg, p, &p->pid);
    if (!rc)
        rc = build_templates(p);
    if (rc)
        lkc__raw_free(c);
    return rc;
}

void lkc__raw_free(struct lkc *c)
{
    struct lkc_raw *p = c->raw;
    if (!p)
        return;
    for (uint32_t i = 0; i < p->nslots; i++)
        loop_timer_stop(c->loop, &slot_at(p, i)->timer);
    for (uint32_t i = 0; i < NCHUNKS; i++)
        free(p->chunks[i]);
    free(p->peers);
    buf_free(&p->head);
    buf_free(&p->ref_head);
    buf_free(&p->req);
    buf_free(&p->reply);
    buf_free(&p->scratch);
    free(p);
    c->raw = NULL;
}
