/*
 * Named services: a process of the client node whose pid is locked under a
 * name, like a GenServer registered through Locker.Registry (docs/protocol.md
 * section 6), so BEAM code finds it with dirty_read and calls it with
 * gen_server:call.
 *
 * Model. A service is a node process (unnamed, its own pid) plus a lease:
 *   register:   spawn, lock(Name, Pid, Lease); on no quorum the process
 *               exits at once and the caller learns whether the name is
 *               held (a dirty_read finds it) or the cluster is unreachable.
 *   registered: a timer extends the lease LKC_SVC_AHEAD ms before it ends
 *               (Locker.Server's lease_threshold); a failed extension
 *               reports on_lease_lost once and stops extending.
 *   releasing:  unregister or close releases the name, then the process
 *               exits (callers get noproc from then on) and the service is
 *               freed (deferred to the end of the loop iteration, so a user
 *               callback that unregisters never returns into freed memory).
 * At most one coordinator task per service is pending (an extension or the
 * release); releasing cancels a pending extension first.
 *
 * Calls. '$gen_call' becomes an lkc_call holding copies of the caller, the
 * tag and our pid; lkc_reply (any thread) turns the call into a command
 * that sends the gen_server reply from the client thread and frees it.
 * Calls not answered yet are on c->calls (under c->mu) so close frees them.
 */
#include "lkc_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../cnode/core/log.h"

struct lkc_service {
    struct lkc *c;
    struct lkc_service *next;     /* c->services */
    int listed;
    struct buf name;              /* canonical */
    struct buf pid;               /* canonical, this service's pid */
    lkc_buf pid_out;              /* 131 + pid, for lkc_service_pid */
    int64_t lease_ms;
    struct lkc_service_ops ops;
    void *ud;
    struct loop_timer timer;
    uint64_t task;
    int task_live, lost, releasing;
    struct lkc_cmd *waiter;       /* register or unregister waiting for a task */
    struct buf scratch;           /* 131 + a message term, for callbacks */
};

struct lkc_call {
    struct lkc_cmd k;             /* the reply travels as this command */
    struct lkc_call *cprev, *cnext;
    struct buf from, caller, tag, reply;
};

struct svc_cmd {
    struct lkc_cmd k;
    struct lkc_service *s;
    uint64_t task;
};

static struct term span_of(const struct buf *b) { return (struct term){b->data, (uint32_t)b->len}; }

static void svc_free(void *p)
{
    struct lkc_service *s = p;
    if (!s)
        return;
    buf_free(&s->name);
    buf_free(&s->pid);
    buf_free(&s->scratch);
    lkc_buf_free(&s->pid_out);
    free(s);
}

/* The process exits, the service leaves the list, its waiter (if any) is
 * told, and it is freed once the current callbacks are over. */
static void svc_gone(struct lkc_service *s, int rc)
{
    struct lkc *c = s->c;
    loop_timer_stop(c->loop, &s->timer);
    node_exit(c->node, span_of(&s->pid));
    if (s->listed) {
        struct lkc_service **pp = &c->services;
        while (*pp != s)
            pp = &(*pp)->next;
        *pp = s->next;
        s->listed = 0;
    }
    if (s->waiter)
        lkc__finish(s->waiter, rc);
    loop_defer_free(c->loop, svc_free, s);
    if (c->stopping && !c->services)
        lkc__stop(c);
}

static int svc_start(struct lkc_service *s, enum coord_op op, int64_t timeout_ms,
                     coord_done_fn done)
{
    struct lkc *c = s->c;
    struct coord_args a = {.op = op, .key = span_of(&s->name), .value = span_of(&s->pid),
                           .lease_ms = s->lease_ms, .timeout_ms = timeout_ms};
    struct coord_meta m;
    lkc__meta(c, &m);
    int rc = cproc_start(c->cproc, &a, &m, done, s, &s->task);
    s->task_live = rc == 0;
    return rc;
}

/* ---- lease ---- */

static void svc_arm(struct lkc_service *s)
{
    struct loop *l = s->c->loop;
    loop_timer_arm(l, &s->timer, loop_now(l) + s->lease_ms - LKC_SVC_AHEAD);
}

static void svc_lost(struct lkc_service *s, int rc)
{
    s->lost = 1;
    log_warn("lkc: a service lost its name's lease: %s", lkc_strerror(rc));
    if (s->ops.on_lease_lost)
        s->ops.on_lease_lost(s->ud, rc); /* may unregister s: touch nothing after */
}

static void svc_extended(void *ud, const struct coord_result *r)
{
    struct lkc_service *s = ud;
    s->task_live = 0;
    if (r->rc == 0)
        svc_arm(s);
    else
        svc_lost(s, lkc__map_rc(r->rc));
}

static void svc_timer(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct lkc_service *s = t->ud;
    if (s->releasing || s->lost || s->task_live)
        return;
    int rc = svc_start(s, COORD_EXTEND_LEASE, LKC_DEFAULT_TIMEOUT, svc_extended);
    if (rc)
        svc_lost(s, lkc__map_rc(rc));
}

/* ---- release ---- */

static void svc_released(void *ud, const struct coord_result *r)
{
    struct lkc_service *s = ud;
    s->task_live = 0;
    svc_gone(s, lkc__map_rc(r->rc));
}

/* Stop extending, release the name; svc_gone follows. */
static void svc_release(struct lkc_service *s)
{
    s->releasing = 1;
    loop_timer_stop(s->c->loop, &s->timer);
    if (s->task_live)
        coord_cancel(cproc_coord(s->c->cproc), s->task);
    s->task_live = 0;
    int rc = svc_start(s, COORD_RELEASE, LKC_SVC_RELEASE_MS, svc_released);
    if (rc)
        svc_gone(s, lkc__map_rc(rc));
}

size_t lkc__svc_close_all(struct lkc *c)
{
    size_t n = 0;
    for (struct lkc_service *s = c->services; s; s = s->next)
        n++;
    /* svc_release may unlink s at once (nothing to send): walk a copy. */
    struct lkc_service **v = n ? calloc(n, sizeof *v) : NULL;
    if (n && !v) {
        lkc__svc_abandon_all(c);
        return 0;
    }
    size_t k = 0;
    for (struct lkc_service *s = c->services; s; s = s->next)
        v[k++] = s;
    for (size_t i = 0; i < k; i++)
        if (!v[i]->releasing)
            svc_release(v[i]);
    free(v);
    n = 0;
    for (struct lkc_service *s = c->services; s; s = s->next)
        n++;
    return n;
}

void lkc__svc_abandon_all(struct lkc *c)
{
    while (c->services) {
        struct lkc_service *s = c->services;
        if (s->task_live)
            coord_cancel(cproc_coord(c->cproc), s->task);
        s->task_live = 0;
        svc_gone(s, LKC_ETIMEOUT);
    }
}

/* ---- calls ---- */

static void call_destroy(struct lkc_cmd *k)
{
    struct lkc_call *call = (struct lkc_call *)k;
    buf_free(&call->from);
    buf_free(&call->caller);
    buf_free(&call->tag);
    buf_free(&call->reply);
    free(call);
}

static void call_run(struct lkc_cmd *k)
{
    struct lkc_call *call = (struct lkc_call *)k;
    struct node *n = k->c->node;
    struct conn *conn = node_conn_for(n, span_of(&call->caller));
    if (conn)
        node_reply(n, conn, span_of(&call->from), span_of(&call->caller), span_of(&call->tag),
                   span_of(&call->reply));
    else
        log_debug("lkc: the caller's node is gone; reply dropped");
    lkc__finish(k, 0);
}

static void call_cancel(struct lkc_cmd *k) { lkc__finish(k, LKC_ECLOSED); }

static const struct lkc_cmd_ops call_ops = {call_run, call_cancel, call_destroy};

static void calls_link(struct lkc *c, struct lkc_call *call)
{
    pthread_mutex_lock(&c->mu);
    call->cprev = NULL;
    call->cnext = c->calls;
    if (c->calls)
        c->calls->cprev = call;
    c->calls = call;
    pthread_mutex_unlock(&c->mu);
}

/* Under c->mu. */
static void calls_unlink(struct lkc *c, struct lkc_call *call)
{
    if (call->cprev)
        call->cprev->cnext = call->cnext;
    else
        c->calls = call->cnext;
    if (call->cnext)
        call->cnext->cprev = call->cprev;
}

void lkc__calls_free_all(struct lkc *c)
{
    pthread_mutex_lock(&c->mu);
    struct lkc_call *call = c->calls;
    c->calls = NULL;
    pthread_mutex_unlock(&c->mu);
    while (call) {
        struct lkc_call *next = call->cnext;
        call_destroy(&call->k);
        call = next;
    }
}

int lkc_reply(lkc_call *call, lkc_term reply)
{
    if (!call)
        return LKC_EINVAL;
    int rc = lkc__canon(reply, &call->reply);
    if (rc) {
        call->reply.len = 0; /* not consumed: the caller may answer again */
        return rc;
    }
    struct lkc *c = call->k.c;
    pthread_mutex_lock(&c->mu);
    calls_unlink(c, call);
    pthread_mutex_unlock(&c->mu);
    rc = lkc__submit(c, &call->k);
    if (rc)
        call_destroy(&call->k);
    return rc;
}

static int call_new(struct lkc_service *s, const struct gen_call *g, struct lkc_call **out)
{
    struct lkc_call *call = calloc(1, sizeof *call);
    if (!call)
        return -ENOMEM;
    call->k.ops = &call_ops;
    call->k.c = s->c;
    buf_init(&call->from);
    buf_init(&call->caller);
    buf_init(&call->tag);
    buf_init(&call->reply);
    if (buf_append(&call->from, s->pid.data, s->pid.len) ||
        buf_append(&call->caller, g->from_pid.p, g->from_pid.len) ||
        buf_append(&call->tag, g->tag.p, g->tag.len)) {
        call_destroy(&call->k);
        return -ENOMEM;
    }
    *out = call;
    return 0;
}

/* ---- messages ---- */

/* 131 + t in s->scratch: what callbacks see (valid during the call). */
static lkc_term svc_term(struct lkc_service *s, struct term t)
{
    buf_reset(&s->scratch);
    if (buf_put_u8(&s->scratch, TT_VERSION) || buf_append(&s->scratch, t.p, t.len))
        return (lkc_term){NULL, 0};
    return (lkc_term){s->scratch.data, s->scratch.len};
}

static void svc_on_call(struct lkc_service *s, const struct gen_call *g)
{
    struct lkc_call *call;
    if (!s->ops.on_call)
        return; /* documented: calls then get no answer */
    if (call_new(s, g, &call)) {
        log_warn("lkc: out of memory: a call to a service dropped");
        return;
    }
    lkc_term req = svc_term(s, g->req);
    if (!req.data) {
        call_destroy(&call->k);
        return;
    }
    calls_link(s->c, call);
    s->ops.on_call(s->ud, call, req);
}

static void svc_on_msg(void *ud, struct conn *conn, const struct ctrl *m)
{
    (void)conn;
    struct lkc_service *s = ud;
    if ((m->op != CTRL_SEND && m->op != CTRL_REG_SEND) || !m->payload.p)
        return; /* monitor exits and spawn replies: we set none */
    struct gen_call g;
    struct term req;
    if (gen_call_parse(m->payload, &g) == 0) {
        svc_on_call(s, &g);
    } else if (gen_cast_parse(m->payload, &req) == 0) {
        lkc_term t = svc_term(s, req);
        if (s->ops.on_cast && t.data)
            s->ops.on_cast(s->ud, t);
    } else {
        lkc_term t = svc_term(s, m->payload);
        if (s->ops.on_info && t.data)
            s->ops.on_info(s->ud, t);
    }
}

/* ---- register ---- */

static void reg_locked(void *ud, const struct coord_result *r)
{
    struct lkc_service *s = ud;
    struct lkc *c = s->c;
    struct lkc_cmd *k = s->waiter;
    s->waiter = NULL;
    s->task_live = 0;
    if (r->rc) {
        node_exit(c->node, span_of(&s->pid));
        lkc__finish(k, lkc__map_rc(r->rc));
        return;
    }
    s->next = c->services;
    c->services = s;
    s->listed = 1;
    svc_arm(s);
    lkc__finish(k, 0);
}

static void reg_run(struct lkc_cmd *k)
{
    struct svc_cmd *sk = (struct svc_cmd *)k;
    struct lkc_service *s = sk->s;
    struct term pid = {NULL, 0};
    size_t pos = 0;
    int rc = node_spawn(k->c->node, NULL, svc_on_msg, s, &pid);
    /* Masters with --release-on-exit monitor the pid: they learn of the
     * service's end from its monitors, not only from its release. */
    if (!rc)
        rc = node_track_monitors(k->c->node, pid);
    if (!rc && (term_canon(pid.p, pid.len, &pos, &s->pid) ||
                lkc__out(span_of(&s->pid), &s->pid_out)))
        rc = -ENOMEM;
    if (!rc)
        rc = svc_start(s, COORD_LOCK, LKC_DEFAULT_TIMEOUT, reg_locked);
    if (!rc)
        s->waiter = k;
    if (rc) {
        if (pid.p)
            node_exit(k->c->node, pid);
        lkc__finish(k, lkc__map_rc(rc));
        return;
    }
    lkc__flight_add(k);
}

static void reg_cancel(struct lkc_cmd *k)
{
    struct svc_cmd *sk = (struct svc_cmd *)k;
    coord_cancel(cproc_coord(k->c->cproc), sk->s->task);
    sk->s->task_live = 0;
    sk->s->waiter = NULL;
    node_exit(k->c->node, span_of(&sk->s->pid));
    lkc__finish(k, LKC_ECLOSED);
}

static void svc_cmd_destroy(struct lkc_cmd *k) { free(k); }

static const struct lkc_cmd_ops reg_ops = {reg_run, reg_cancel, svc_cmd_destroy};

static struct lkc_service *svc_new(lkc *c, int64_t lease_ms, const struct lkc_service_ops *ops,
                                   void *ud)
{
    struct lkc_service *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->c = c;
    s->lease_ms = lease_ms;
    if (ops)
        s->ops = *ops;
    s->ud = ud;
    buf_init(&s->name);
    buf_init(&s->pid);
    buf_init(&s->scratch);
    loop_timer_init(&s->timer, svc_timer, s);
    return s;
}

/* No quorum for the name: held by someone (a master has it), or nobody
 * could be asked at all. */
static int reg_why(lkc *c, struct lkc_service *s)
{
    lkc_buf v;
    lkc_term name = {s->name.data, s->name.len};
    int rc = lkc_dirty_read(c, name, &v);
    lkc_buf_free(&v);
    if (rc == 0)
        return LKC_ENAMETAKEN;
    return rc == LKC_ENOTFOUND ? LKC_ENOQUORUM : LKC_ECONNECT;
}

int lkc_register(lkc *c, lkc_term name, int64_t lease_ms, const struct lkc_service_ops *ops,
                 void *ud, lkc_service **out)
{
    if (!c || !out)
        return LKC_EINVAL;
    *out = NULL;
    if (lease_ms <= 0)
        lease_ms = LKC_SVC_LEASE;
    if (lease_ms < LKC_SVC_MIN_LEASE)
        return LKC_EINVAL;
    struct lkc_service *s = svc_new(c, lease_ms, ops, ud);
    struct svc_cmd *k = calloc(1, sizeof *k);
    int rc = s && k ? lkc__canon(name, &s->name) : LKC_ENOMEM;
    if (rc) {
        free(k);
        svc_free(s);
        return rc;
    }
    k->k.ops = &reg_ops;
    k->s = s;
    rc = lkc__call(c, &k->k, 0);
    if (rc == LKC_ENOQUORUM)
        rc = reg_why(c, s);
    if (rc) {
        svc_free(s); /* never listed; its process has exited */
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- unregister ---- */

static void unreg_run(struct lkc_cmd *k)
{
    struct lkc_service *s = ((struct svc_cmd *)k)->s;
    if (s->releasing || s->waiter) {
        lkc__finish(k, LKC_EINVAL);
        return;
    }
    s->waiter = k;
    svc_release(s);
}

/* Never in flight: close waits for the release itself. */
static void unreg_cancel(struct lkc_cmd *k) { lkc__finish(k, LKC_ECLOSED); }

static const struct lkc_cmd_ops unreg_ops = {unreg_run, unreg_cancel, svc_cmd_destroy};

int lkc_unregister(lkc_service *s)
{
    if (!s)
        return LKC_EINVAL;
    struct lkc *c = s->c;
    struct svc_cmd *k = calloc(1, sizeof *k);
    if (!k)
        return LKC_ENOMEM;
    k->k.ops = &unreg_ops;
    k->s = s;
    if (!lkc__on_loop(c))
        return lkc__call(c, &k->k, 0);
    /* From a callback: start the release and return; s goes when it ends. */
    int rc = lkc__submit(c, &k->k);
    if (rc)
        free(k);
    return rc;
}

lkc_term lkc_service_pid(const lkc_service *s)
{
    lkc_term t = {s->pid_out.data, s->pid_out.len};
    return t;
}
