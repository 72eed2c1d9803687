/*
 * Coordinated operations of the client: lock, update, extend_lease and
 * release (docs/protocol.md section 5, run by cproc exactly as the Erlang
 * library runs them), and the multi-calls wait_for_release, set_nodes and
 * set_w.
 *
 * Model. Each call is an op_cmd holding canonical copies of its terms,
 * built on the caller's thread (so a malformed term fails before anything
 * is queued). On the client thread it becomes one coord task, or for
 * wait_for_release one task per master tried in turn. The command is in
 * flight while its task is pending; cancelling it at close cancels the task
 * (coord then sends the release_write_lock cleanups itself).
 */
#include "lkc_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../cnode/core/log.h"
#include "../ei_glue/enc.h"

#define WFR_MARGIN_MS 2000 /* the master answers {error, timeout} itself first */

struct op_cmd;
/* Result of a multi-call: an LKC code, or 1 when a new task was started. */
typedef int (*mc_done_fn)(struct op_cmd *o, const struct coord_result *r);

struct op_cmd {
    struct lkc_cmd k;
    enum coord_op op;
    struct buf key, value, new_value, req;
    int64_t lease_ms, timeout_ms;
    int fenced;
    uint64_t task;
    mc_done_fn mc_done;
    char **nodes;          /* multi-call target list */
    size_t nnodes;
    size_t attempt;        /* wait_for_release: index of the master tried */
    int64_t started;
    int w;                 /* set_w */
    char **masters, **replicas; /* set_nodes: the new local meta */
    size_t nmasters, nreplicas;
};

void lkc__meta(const struct lkc *c, struct coord_meta *m)
{
    m->masters = c->masters;
    m->nmasters = c->nmasters;
    m->replicas = c->replicas;
    m->nreplicas = c->nreplicas;
    m->w = c->w;
}

static struct term span_of(const struct buf *b) { return (struct term){b->data, (uint32_t)b->len}; }

/* ---- command ops ---- */

static void op_destroy(struct lkc_cmd *k)
{
    struct op_cmd *o = (struct op_cmd *)k;
    buf_free(&o->key);
    buf_free(&o->value);
    buf_free(&o->new_value);
    buf_free(&o->req);
    lkc__free_nodes(o->nodes, o->nnodes);
    lkc__free_nodes(o->masters, o->nmasters);
    lkc__free_nodes(o->replicas, o->nreplicas);
    free(o);
}

static void op_done(void *ud, const struct coord_result *r)
{
    struct op_cmd *o = ud;
    o->k.res = (struct lkc_result){r->w, r->votes, r->commits, r->token};
    int rc;
    if (o->op == COORD_MULTI_CALL) {
        if ((rc = o->mc_done(o, r)) == 1)
            return;
    } else {
        rc = lkc__map_rc(r->rc);
    }
    lkc__finish(&o->k, rc);
}

/* Start (or restart) the task; 0 or an LKC code. */
static int op_start(struct op_cmd *o)
{
    struct lkc *c = o->k.c;
    struct coord_args a = {
        .op = o->op, .key = span_of(&o->key), .value = span_of(&o->value),
        .new_value = span_of(&o->new_value), .lease_ms = o->lease_ms,
        .timeout_ms = o->timeout_ms, .req = span_of(&o->req), .nodes = o->nodes,
        .nnodes = o->nnodes, .fenced = o->fenced,
    };
    if (o->op == COORD_MULTI_CALL && o->mc_done == NULL)
        return LKC_EINVAL;
    struct coord_meta m;
    lkc__meta(c, &m);
    return lkc__map_rc(cproc_start(c->cproc, &a, &m, op_done, o, &o->task));
}

static void op_run(struct lkc_cmd *k)
{
    struct op_cmd *o = (struct op_cmd *)k;
    o->started = loop_now(k->c->loop);
    int rc = op_start(o);
    if (rc) {
        lkc__finish(k, rc);
        return;
    }
    lkc__flight_add(k);
}

static void op_cancel(struct lkc_cmd *k)
{
    struct op_cmd *o = (struct op_cmd *)k;
    coord_cancel(cproc_coord(k->c->cproc), o->task);
    lkc__finish(k, LKC_ECLOSED);
}

static const struct lkc_cmd_ops op_ops = {op_run, op_cancel, op_destroy};

static struct op_cmd *op_new(enum coord_op op)
{
    struct op_cmd *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->k.ops = &op_ops;
    o->op = op;
    buf_init(&o->key);
    buf_init(&o->value);
    buf_init(&o->new_value);
    buf_init(&o->req);
    return o;
}

/* A lock-family command with canonical copies of its terms. */
static int op_prepare(lkc *c, enum coord_op op, lkc_term key, lkc_term value,
                      const lkc_term *new_value, int64_t lease_ms, int64_t timeout_ms,
                      struct op_cmd **out)
{
    if (!c)
        return LKC_EINVAL;
    struct op_cmd *o = op_new(op);
    if (!o)
        return LKC_ENOMEM;
    int rc = lkc__canon(key, &o->key);
    if (!rc)
        rc = lkc__canon(value, &o->value);
    if (!rc && new_value)
        rc = lkc__canon(*new_value, &o->new_value);
    if (rc) {
        op_destroy(&o->k);
        return rc;
    }
    o->lease_ms = lease_ms > 0 ? lease_ms : LKC_DEFAULT_LEASE;
    o->timeout_ms = timeout_ms > 0 ? timeout_ms : LKC_DEFAULT_TIMEOUT;
    *out = o;
    return 0;
}

static int op_sync(lkc *c, struct op_cmd *o, struct lkc_result *res)
{
    int rc = lkc__call(c, &o->k, 1);
    if (rc)
        return rc;
    if (res)
        *res = o->k.res;
    op_destroy(&o->k);
    return 0;
}

static int op_async(lkc *c, struct op_cmd *o, lkc_done_fn done, void *ud)
{
    o->k.done_fn = done;
    o->k.ud = ud;
    int rc = lkc__submit(c, &o->k);
    if (rc)
        op_destroy(&o->k);
    return rc;
}

/* ---- locks ---- */

int lkc_lock(lkc *c, lkc_term key, lkc_term value, int64_t lease_ms, int64_t timeout_ms,
             struct lkc_result *res)
{
    struct op_cmd *o;
    int rc = op_prepare(c, COORD_LOCK, key, value, NULL, lease_ms, timeout_ms, &o);
    return rc ? rc : op_sync(c, o, res);
}

int lkc_lock_fenced(lkc *c, lkc_term key, lkc_term value, int64_t lease_ms,
                    int64_t timeout_ms, struct lkc_result *res)
{
    struct op_cmd *o;
    int rc = op_prepare(c, COORD_LOCK, key, value, NULL, lease_ms, timeout_ms, &o);
    if (rc)
        return rc;
    o->fenced = 1;
    return op_sync(c, o, res);
}

int lkc_update(lkc *c, lkc_term key, lkc_term value, lkc_term new_value, int64_t timeout_ms,
               struct lkc_result *res)
{
    struct op_cmd *o;
    int rc = op_prepare(c, COORD_UPDATE, key, value, &new_value, 0, timeout_ms, &o);
    return rc ? rc : op_sync(c, o, res);
}

int lkc_extend_lease(lkc *c, lkc_term key, lkc_term value, int64_t lease_ms,
                     int64_t timeout_ms)
{
    struct op_cmd *o;
    int rc = op_prepare(c, COORD_EXTEND_LEASE, key, value, NULL, lease_ms, timeout_ms, &o);
    return rc ? rc : op_sync(c, o, NULL);
}

int lkc_release(lkc *c, lkc_term key, lkc_term value, int64_t timeout_ms,
                struct lkc_result *res)
{
    struct op_cmd *o;
    int rc = op_prepare(c, COORD_RELEASE, key, value, NULL, 0, timeout_ms, &o);
    return rc ? rc : op_sync(c, o, res);
}

int lkc_lock_async(lkc *c, lkc_term key, lkc_term value, int64_t lease_ms, int64_t timeout_ms,
                   lkc_done_fn done, void *ud)
{
    struct op_cmd *o;
    int rc = op_prepare(c, COORD_LOCK, key, value, NULL, lease_ms, timeout_ms, &o);
    return rc ? rc : op_async(c, o, done, ud);
}

int lkc_extend_lease_async(lkc *c, lkc_term key, lkc_term value, int64_t lease_ms,
                           int64_t timeout_ms, lkc_done_fn done, void *ud)
{
    struct op_cmd *o;
    int rc = op_prepare(c, COORD_EXTEND_LEASE, key, value, NULL, lease_ms, timeout_ms, &o);
    return rc ? rc : op_async(c, o, done, ud);
}

int lkc_release_async(lkc *c, lkc_term key, lkc_term value, int64_t timeout_ms,
                      lkc_done_fn done, void *ud)
{
    struct op_cmd *o;
    int rc = op_prepare(c, COORD_RELEASE, key, value, NULL, 0, timeout_ms, &o);
    return rc ? rc : op_async(c, o, done, ud);
}

/* ---- multi-calls ---- */

/* Is t the 2-tuple {a, b} of atoms? */
static int is_atom_pair(struct term t, const char *a, const char *b)
{
    size_t pos = 0;
    uint32_t ar;
    if (term_get_tuple(t.p, t.len, &pos, &ar) || ar != 2 || !term_is_atom(t.p, t.len, pos, a) ||
        term_skip(t.p, t.len, &pos))
        return 0;
    return term_is_atom(t.p, t.len, pos, b);
}

/* wait_for_release: one master at a time, the next one if it is down.
 * 0 when a task was started, else an LKC code. */
static int wfr_next(struct op_cmd *o)
{
    struct lkc *c = o->k.c;
    int rc = LKC_ECONNECT;
    while (++o->attempt < c->nmasters) {
        free(o->nodes[0]);
        if (!(o->nodes[0] = strdup(c->masters[o->attempt])))
            return LKC_ENOMEM;
        if ((rc = op_start(o)) == 0)
            return 0;
    }
    return rc;
}

static int wfr_done(struct op_cmd *o, const struct coord_result *r)
{
    if (r->nreplies == 1) {
        struct term t = r->replies[0].reply;
        if (is_atom_pair(t, "ok", "released"))
            return 0;
        return is_atom_pair(t, "error", "timeout") ? LKC_ETIMEOUT : LKC_EPROTO;
    }
    int64_t waited = loop_now(o->k.c->loop) - o->started;
    if (waited >= o->timeout_ms - WFR_MARGIN_MS)
        return LKC_ETIMEOUT;
    int rc = wfr_next(o);
    return rc ? rc : 1;
}

static void wfr_run(struct lkc_cmd *k)
{
    struct op_cmd *o = (struct op_cmd *)k;
    o->started = loop_now(k->c->loop);
    int rc = wfr_next(o);
    if (rc)
        lkc__finish(k, rc);
    else
        lkc__flight_add(k);
}

static const struct lkc_cmd_ops wfr_ops = {wfr_run, op_cancel, op_destroy};

int lkc_wait_for_release(lkc *c, lkc_term key, int64_t timeout_ms)
{
    if (!c || timeout_ms < 0)
        return LKC_EINVAL;
    struct op_cmd *o = op_new(COORD_MULTI_CALL);
    if (!o)
        return LKC_ENOMEM;
    int rc = lkc__canon(key, &o->key);
    if (!rc && (enc_tuple(&o->req, 3) || enc_atom(&o->req, "wait_for_release") ||
                enc_raw(&o->req, span_of(&o->key)) || enc_long(&o->req, timeout_ms)))
        rc = LKC_ENOMEM;
    if (!rc && (!(o->nodes = calloc(1, sizeof *o->nodes)) || !(o->nodes[0] = strdup(""))))
        rc = LKC_ENOMEM;
    if (rc) {
        op_destroy(&o->k);
        return rc;
    }
    o->nnodes = 1;
    o->k.ops = &wfr_ops;
    o->attempt = (size_t)-1; /* wfr_next tries master 0 first */
    o->timeout_ms = timeout_ms + WFR_MARGIN_MS;
    o->mc_done = wfr_done;
    return op_sync(c, o, NULL);
}

/* Every node of the cluster answered `ok`? */
static int all_ok(const struct coord_result *r)
{
    if (r->nbad)
        return LKC_ECONNECT;
    for (size_t i = 0; i < r->nreplies; i++)
        if (!term_is_atom(r->replies[i].reply.p, r->replies[i].reply.len, 0, "ok"))
            return LKC_EPROTO;
    return 0;
}

static void swap_nodes(char ***a, size_t *na, char ***b, size_t *nb)
{
    char **t = *a;
    size_t n = *na;
    *a = *b;
    *na = *nb;
    *b = t;
    *nb = n;
}

static int set_nodes_done(struct op_cmd *o, const struct coord_result *r)
{
    struct lkc *c = o->k.c;
    int rc = all_ok(r);
    if (!rc) {
        /* The old lists go away with the command. */
        swap_nodes(&c->masters, &c->nmasters, &o->masters, &o->nmasters);
        swap_nodes(&c->replicas, &c->nreplicas, &o->replicas, &o->nreplicas);
        if ((size_t)c->w > c->nmasters)
            log_warn("lkc: w=%d exceeds the %zu new masters", c->w, c->nmasters);
    }
    return rc;
}

static int set_w_done(struct op_cmd *o, const struct coord_result *r)
{
    int rc = all_ok(r);
    if (!rc)
        o->k.c->w = o->w;
    return rc;
}

static int enc_node_list(struct buf *b, char **v, size_t n)
{
    int rc = n ? enc_list(b, (uint32_t)n) : 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = enc_atom(b, v[i]);
    return rc ? rc : enc_nil(b);
}

/* A multi-call command to `cluster` with the request built by the caller. */
static int cluster_cmd(lkc *c, const char *cluster, mc_done_fn done, struct op_cmd **out)
{
    if (!c || !cluster)
        return LKC_EINVAL;
    struct op_cmd *o = op_new(COORD_MULTI_CALL);
    if (!o)
        return LKC_ENOMEM;
    int rc = lkc__split_nodes(cluster, &o->nodes, &o->nnodes);
    if (rc || !o->nnodes) {
        op_destroy(&o->k);
        return rc == -ENOMEM ? LKC_ENOMEM : LKC_EINVAL;
    }
    o->timeout_ms = LKC_ADMIN_TIMEOUT;
    o->mc_done = done;
    *out = o;
    return 0;
}

int lkc_set_nodes(lkc *c, const char *cluster, const char *masters, const char *replicas)
{
    struct op_cmd *o;
    int rc = cluster_cmd(c, cluster, set_nodes_done, &o);
    if (rc)
        return rc;
    rc = lkc__split_nodes(masters, &o->masters, &o->nmasters);
    if (!rc)
        rc = lkc__split_nodes(replicas, &o->replicas, &o->nreplicas);
    if (rc || !o->nmasters) {
        op_destroy(&o->k);
        return rc == -ENOMEM ? LKC_ENOMEM : LKC_EINVAL;
    }
    if (enc_tuple(&o->req, 3) || enc_atom(&o->req, "set_nodes") ||
        enc_node_list(&o->req, o->masters, o->nmasters) ||
        enc_node_list(&o->req, o->replicas, o->nreplicas)) {
        op_destroy(&o->k);
        return LKC_ENOMEM;
    }
    return op_sync(c, o, NULL);
}

int lkc_set_w(lkc *c, const char *cluster, int w)
{
    if (w < 1)
        return LKC_EINVAL;
    struct op_cmd *o;
    int rc = cluster_cmd(c, cluster, set_w_done, &o);
    if (rc)
        return rc;
    o->w = w;
    if (enc_tuple(&o->req, 2) || enc_atom(&o->req, "set_w") || enc_long(&o->req, w)) {
        op_destroy(&o->k);
        return LKC_ENOMEM;
    }
    return op_sync(c, o, NULL);
}
