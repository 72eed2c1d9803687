/*
 * The coordinator process; see cproc.h.
 */
#include "cproc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../ei_glue/enc.h"
#include "../core/clock.h"
#include "../core/log.h"

#define TAG_MAGIC 0x4c4b0000u /* "LK" in the third ref word */

struct cproc {
    struct node *node;
    struct loop *loop;
    struct coord *coord;
    struct term pid;
    struct loop_timer timer;
    struct buf b, ref;
};

/* ---- reply tags ---- */

static int tag_ref(struct cproc *p, uint64_t id, struct buf *out)
{
    uint32_t ids[3] = {(uint32_t)(id & 0x3ffff), (uint32_t)(id >> 18),
                       TAG_MAGIC | (uint32_t)((id >> 50) & 0xffff)};
    return enc_ref(out, node_name(p->node), node_creation(p->node), ids);
}

/* The call id in a reference of ours, or -EINVAL for any other term. */
static int tag_id(struct cproc *p, struct term t, uint64_t *id)
{
    char nd[CTRL_NAME_MAX];
    size_t pos = 3;
    if (t.len < 4 || t.p[0] != TT_NEWER_REF || get_u16(t.p + 1) < 3 ||
        term_get_atom(t.p, t.len, &pos, nd, sizeof nd) || strcmp(nd, node_name(p->node)) ||
        pos + 16 > t.len || get_u32(t.p + pos) != node_creation(p->node))
        return -EINVAL;
    const uint8_t *w = t.p + pos + 4;
    if ((get_u32(w + 8) & 0xffff0000u) != TAG_MAGIC)
        return -EINVAL;
    *id = (uint64_t)get_u32(w) | (uint64_t)get_u32(w + 4) << 18 |
          (uint64_t)(get_u32(w + 8) & 0xffff) << 50;
    return 0;
}

/* ---- transport for coord ---- */

struct mon_args {
    struct term from, ref;
    int op;
    const char *name;        /* the monitored registered name */
};

static int ctl_monitor(struct buf *out, void *arg)
{
    struct mon_args *a = arg;
    int rc = enc_tuple(out, 4);
    if (!rc) rc = enc_long(out, a->op);
    if (!rc) rc = enc_raw(out, a->from);
    if (!rc) rc = enc_atom(out, a->name);
    return rc ? rc : enc_raw(out, a->ref);
}

/* {'$gen_call', {OurPid, Ref}, Req} */
static int gen_call_msg(struct cproc *p, struct term ref, struct term req)
{
    buf_reset(&p->b);
    int rc = enc_tuple(&p->b, 3);
    if (!rc) rc = enc_atom(&p->b, "$gen_call");
    if (!rc) rc = enc_tuple(&p->b, 2);
    if (!rc) rc = enc_raw(&p->b, p->pid);
    if (!rc) rc = enc_raw(&p->b, ref);
    return rc ? rc : enc_raw(&p->b, req);
}

/* gen_server:call({Name, Node}, Req): MONITOR_P on the name, then the call. */
static int call_named(struct cproc *p, const char *name, const char *node, uint64_t call_id,
                      struct term req)
{
    struct conn *c = node_connect(p->node, node);
    if (!c)
        return -EHOSTUNREACH;
    buf_reset(&p->ref);
    int rc = tag_ref(p, call_id, &p->ref);
    struct term ref = {p->ref.data, (uint32_t)p->ref.len};
    if (!rc)
        rc = gen_call_msg(p, ref, req);
    if (rc)
        return rc;
    struct mon_args m = {p->pid, ref, CTRL_MONITOR_P, name};
    rc = node_send_ctrl(c, ctl_monitor, &m);
    if (!rc)
        rc = node_reg_send(p->node, c, p->pid, name,
                           (struct term){p->b.data, (uint32_t)p->b.len});
    return rc;
}

static int io_call(void *ud, const char *node, uint64_t call_id, struct term req)
{
    return call_named(ud, "locker", node, call_id, req);
}

/* Fenced votes and commits: lockerd's lockerd_fence process (a BEAM
 * master has none and answers the monitor with noproc). */
static int io_call_fence(void *ud, const char *node, uint64_t call_id, struct term req)
{
    return call_named(ud, "lockerd_fence", node, call_id, req);
}

static int io_send_noreply(void *ud, const char *node, struct term req)
{
    struct cproc *p = ud;
    struct conn *c = node_connect(p->node, node);
    if (!c)
        return -EHOSTUNREACH;
    buf_reset(&p->ref);
    int rc = node_make_ref(p->node, &p->ref); /* not a tag of ours: reply dropped */
    if (!rc)
        rc = gen_call_msg(p, (struct term){p->ref.data, (uint32_t)p->ref.len}, req);
    return rc ? rc : node_reg_send(p->node, c, p->pid, "locker",
                                   (struct term){p->b.data, (uint32_t)p->b.len});
}

static int io_make_ref(void *ud, struct buf *out)
{
    struct cproc *p = ud;
    return node_make_ref(p->node, out);
}

/* ---- events into coord ---- */

static void cproc_rearm(struct cproc *p)
{
    int64_t next = coord_next_deadline(p->coord);
    if (next == CLOCK_NEVER)
        loop_timer_stop(p->loop, &p->timer);
    else
        loop_timer_arm(p->loop, &p->timer, next);
}

static void cproc_timer(struct loop *l, struct loop_timer *t)
{
    struct cproc *p = t->ud;
    coord_advance(p->coord, loop_now(l));
    cproc_rearm(p);
}

/* {Ref, Reply} sent to our pid, or MONITOR_P_EXIT for a locker-less node. */
static void cproc_on_msg(void *ud, struct conn *c, const struct ctrl *m)
{
    struct cproc *p = ud;
    uint64_t id;
    int64_t now = loop_now(p->loop);
    if (m->op == CTRL_MONITOR_P_EXIT) {
        if (tag_id(p, m->ref, &id) == 0) {
            if (term_is_atom(m->reason.p, m->reason.len, 0, "noproc"))
                coord_on_noproc(p->coord, id, now);
            else
                coord_on_node_down(p->coord, c->peer, now);
        }
        cproc_rearm(p);
        return;
    }
    struct term t = m->payload, ref, reply;
    size_t pos = 0;
    uint32_t ar;
    if (term_get_tuple(t.p, t.len, &pos, &ar) || ar != 2 || term_next(t.p, t.len, &pos, &ref))
        return;
    reply = (struct term){t.p + pos, (uint32_t)(t.len - pos)};
    if (tag_id(p, ref, &id))
        return; /* a reply to a fire-and-forget send */
    struct mon_args dm = {p->pid, ref, CTRL_DEMONITOR_P, "locker"};
    node_send_ctrl(c, ctl_monitor, &dm);
    coord_on_reply(p->coord, id, reply, now);
    cproc_rearm(p);
}

static void cproc_on_conn(void *ud, struct conn *c, int up)
{
    struct cproc *p = ud;
    if (!up && c->peer[0]) {
        coord_on_node_down(p->coord, c->peer, loop_now(p->loop));
        cproc_rearm(p);
    }
}

/* ---- lifecycle ---- */

static const struct coord_io cproc_io = {
    .call = io_call,
    .send_call_noreply = io_send_noreply,
    .make_ref = io_make_ref,
    .call_fence = io_call_fence,
};

struct cproc *cproc_new(struct node *n)
{
    struct cproc *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->node = n;
    p->loop = node_loop(n);
    buf_init(&p->b);
    buf_init(&p->ref);
    loop_timer_init(&p->timer, cproc_timer, p);
    if (!(p->coord = coord_new(&cproc_io, p)) ||
        node_spawn(n, NULL, cproc_on_msg, p, &p->pid) || node_subscribe(n, cproc_on_conn, p)) {
        cproc_free(p);
        return NULL;
    }
    return p;
}

void cproc_free(struct cproc *p)
{
    if (!p)
        return;
    loop_timer_stop(p->loop, &p->timer);
    coord_free(p->coord);
    buf_free(&p->b);
    buf_free(&p->ref);
    free(p);
}

int cproc_start(struct cproc *p, const struct coord_args *a, const struct coord_meta *m,
                coord_done_fn done, void *ud, uint64_t *task_id)
{
    int rc = coord_start(p->coord, a, m, loop_now(p->loop), done, ud, task_id);
    cproc_rearm(p);
    return rc;
}

struct coord *cproc_coord(struct cproc *p) { return p->coord; }
struct term cproc_pid(const struct cproc *p) { return p->pid; }
