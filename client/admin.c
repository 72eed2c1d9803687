/*
 * Administration calls of the client (lockerctl's needs): the handle's
 * meta, a raw gen_server:multi_call to `locker` on a list of nodes, and a
 * per-master summary built on it.
 *
 * Model. A multi-call is one COORD_MULTI_CALL task, started on the client
 * thread like the set_nodes / set_w commands of ops.c; the replies are
 * copied out of the coordinator's result before the callback returns (its
 * spans die with it). coord reports a bad node without saying why, so the
 * reason is inferred from the clock: a phase that ended before its
 * deadline had only nodes that failed (unreachable, down); one that
 * lasted the whole timeout may have had nodes that were merely slow. That
 * is exact for the common cases (a dead cluster, or one silent node) and
 * conservative otherwise.
 *
 * Ownership. The caller owns every array and string handed back; the
 * command owns its copies of the request and node list until destroyed.
 */
#include "lkc_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ei_glue/enc.h"

struct admin_cmd {
    struct lkc_cmd k;
    struct buf req;
    char **nodes;
    size_t nnodes;
    int64_t timeout_ms, started;
    uint64_t task;
    struct lkc_node_reply *out;     /* one per node, filled by the callback */
    char *masters, *replicas;       /* lkc_get_meta */
    int w;
    char peer[256], why[256];       /* lkc_node_failure */
};

static void admin_destroy(struct lkc_cmd *k)
{
    struct admin_cmd *a = (struct admin_cmd *)k;
    buf_free(&a->req);
    lkc__free_nodes(a->nodes, a->nnodes);
    if (a->out)
        lkc_node_replies_free(a->out, a->nnodes);
    free(a->masters);
    free(a->replicas);
    free(a);
}

void lkc_node_replies_free(struct lkc_node_reply *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].node);
        lkc_buf_free(&r[i].reply);
    }
    free(r);
}

/* ---- meta ---- */

/* "a@h,b@h" from a node vector; NULL on ENOMEM. */
static char *join_nodes(char *const *v, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    *p = 0;
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? "," : "", v[i]);
    return s;
}

/* The meta belongs to the client thread (set_nodes swaps it there). */
static void meta_run(struct lkc_cmd *k)
{
    struct admin_cmd *a = (struct admin_cmd *)k;
    struct lkc *c = k->c;
    a->masters = join_nodes(c->masters, c->nmasters);
    a->replicas = join_nodes(c->replicas, c->nreplicas);
    a->w = c->w;
    lkc__finish(k, a->masters && a->replicas ? 0 : LKC_ENOMEM);
}

static void admin_nop_cancel(struct lkc_cmd *k) { lkc__finish(k, LKC_ECLOSED); }

static const struct lkc_cmd_ops meta_ops = {meta_run, admin_nop_cancel, admin_destroy};

static struct admin_cmd *admin_new(const struct lkc_cmd_ops *ops)
{
    struct admin_cmd *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->k.ops = ops;
    buf_init(&a->req);
    return a;
}

int lkc_get_meta(lkc *c, char **masters, char **replicas, int *w)
{
    if (!c || !masters || !replicas || !w)
        return LKC_EINVAL;
    struct admin_cmd *a = admin_new(&meta_ops);
    if (!a)
        return LKC_ENOMEM;
    int rc = lkc__call(c, &a->k, 1);
    if (rc)
        return rc;
    *masters = a->masters;
    *replicas = a->replicas;
    *w = a->w;
    a->masters = a->replicas = NULL;
    admin_destroy(&a->k);
    return 0;
}

/* The node's memory of failed dials belongs to the client thread. */
static void failure_run(struct lkc_cmd *k)
{
    struct admin_cmd *a = (struct admin_cmd *)k;
    int rc = node_last_failure(k->c->node, a->peer, a->why, sizeof a->why);
    lkc__finish(k, rc ? LKC_ENOTFOUND : 0);
}

static const struct lkc_cmd_ops failure_ops = {failure_run, admin_nop_cancel, admin_destroy};

int lkc_node_failure(lkc *c, const char *node, char *why, size_t len)
{
    if (!c || !node || !why || !len || strlen(node) >= sizeof ((struct admin_cmd *)0)->peer)
        return LKC_EINVAL;
    struct admin_cmd *a = admin_new(&failure_ops);
    if (!a)
        return LKC_ENOMEM;
    snprintf(a->peer, sizeof a->peer, "%s", node);
    int rc = lkc__call(c, &a->k, 1);
    if (rc)
        return rc;
    snprintf(why, len, "%s", a->why);
    admin_destroy(&a->k);
    return 0;
}

/* ---- multi-call ---- */

static int copy_reply(struct lkc_node_reply *r, struct term t)
{
    r->rc = lkc__out(t, &r->reply);
    return r->rc;
}

static void mc_done(void *ud, const struct coord_result *res)
{
    struct admin_cmd *a = ud;
    int64_t took = loop_now(a->k.c->loop) - a->started;
    int bad_rc = took >= a->timeout_ms ? LKC_ETIMEOUT : LKC_ECONNECT;
    int rc = 0;
    for (size_t i = 0; i < a->nnodes; i++)
        a->out[i].rc = bad_rc;
    for (size_t j = 0; j < res->nreplies; j++)
        for (size_t i = 0; i < a->nnodes; i++)
            if (!strcmp(a->nodes[i], res->replies[j].node) && !a->out[i].reply.data &&
                copy_reply(&a->out[i], res->replies[j].reply) == LKC_ENOMEM)
                rc = LKC_ENOMEM;
    lkc__finish(&a->k, rc);
}

static void mc_run(struct lkc_cmd *k)
{
    struct admin_cmd *a = (struct admin_cmd *)k;
    struct lkc *c = k->c;
    struct coord_args ca = {
        .op = COORD_MULTI_CALL, .timeout_ms = a->timeout_ms,
        .req = {a->req.data, (uint32_t)a->req.len}, .nodes = a->nodes, .nnodes = a->nnodes,
    };
    a->started = loop_now(c->loop);
    int rc = lkc__map_rc(cproc_start(c->cproc, &ca, NULL, mc_done, a, &a->task));
    if (rc) {
        lkc__finish(k, rc);
        return;
    }
    lkc__flight_add(k);
}

static void mc_cancel(struct lkc_cmd *k)
{
    struct admin_cmd *a = (struct admin_cmd *)k;
    coord_cancel(cproc_coord(k->c->cproc), a->task);
    lkc__finish(k, LKC_ECLOSED);
}

static const struct lkc_cmd_ops mc_ops = {mc_run, mc_cancel, admin_destroy};

/* The command with its node list, request and result slots. */
static int mc_prepare(const char *nodes, lkc_term request, int64_t timeout_ms,
                      struct admin_cmd **out)
{
    struct admin_cmd *a = admin_new(&mc_ops);
    if (!a)
        return LKC_ENOMEM;
    int rc = lkc__split_nodes(nodes, &a->nodes, &a->nnodes);
    if (rc || !a->nnodes)
        rc = rc == -ENOMEM ? LKC_ENOMEM : LKC_EINVAL;
    if (!rc)
        rc = lkc__canon(request, &a->req);
    if (!rc && !(a->out = calloc(a->nnodes, sizeof *a->out)))
        rc = LKC_ENOMEM;
    for (size_t i = 0; !rc && i < a->nnodes; i++)
        if (!(a->out[i].node = strdup(a->nodes[i])))
            rc = LKC_ENOMEM;
    if (rc) {
        admin_destroy(&a->k);
        return rc;
    }
    a->timeout_ms = timeout_ms > 0 ? timeout_ms : LKC_DEFAULT_TIMEOUT;
    *out = a;
    return 0;
}

int lkc_multi_call(lkc *c, const char *nodes, lkc_term request, int64_t timeout_ms,
                   struct lkc_node_reply **out, size_t *n)
{
    if (!c || !nodes || !out || !n)
        return LKC_EINVAL;
    *out = NULL;
    *n = 0;
    struct admin_cmd *a;
    int rc = mc_prepare(nodes, request, timeout_ms, &a);
    if (rc)
        return rc;
    if ((rc = lkc__call(c, &a->k, 1)) != 0)
        return rc;
    *out = a->out;
    *n = a->nnodes;
    a->out = NULL;
    admin_destroy(&a->k);
    return 0;
}

/* ---- summary ---- */

/* Length of the list at in[*pos] (LIST_EXT, NIL or STRING_EXT); skips it. */
static int list_count(const uint8_t *in, size_t len, size_t *pos, int64_t *count)
{
    if (term_peek(in, len, *pos) == TT_STRING) {
        if (*pos + 3 > len)
            return -EINVAL;
        *count = get_u16(in + *pos + 1);
        return term_skip(in, len, pos);
    }
    uint32_t n;
    size_t p = *pos;
    int rc = term_get_list(in, len, &p, &n);
    if (rc)
        return rc;
    *count = n;
    return term_skip(in, len, pos);
}

/* {ok, WriteLocks, Leases, _, _, _} -> the two counts. */
static int debug_counts(const lkc_buf *b, struct lkc_master_summary *s)
{
    const uint8_t *in = b->data;
    size_t len = b->len, pos = in[0] == TT_VERSION ? 1 : 0;
    uint32_t arity;
    if (term_get_tuple(in, len, &pos, &arity) || arity != 6 || !term_is_atom(in, len, pos, "ok") ||
        term_skip(in, len, &pos))
        return LKC_EPROTO;
    if (list_count(in, len, &pos, &s->write_locks) || list_count(in, len, &pos, &s->leases))
        return LKC_EPROTO;
    return 0;
}

int lkc_summary(lkc *c, int64_t timeout_ms, struct lkc_master_summary **out, size_t *n)
{
    if (!c || !out || !n)
        return LKC_EINVAL;
    *out = NULL;
    *n = 0;
    char *masters = NULL, *replicas = NULL;
    int w;
    int rc = lkc_get_meta(c, &masters, &replicas, &w);
    free(replicas);
    static const unsigned char req[] = {TT_VERSION, TT_SMALL_ATOM_UTF8, 15, 'g', 'e', 't', '_',
                                        'd', 'e', 'b', 'u', 'g', '_', 's', 't', 'a', 't', 'e'};
    struct lkc_node_reply *r = NULL;
    size_t nr = 0;
    if (!rc)
        rc = lkc_multi_call(c, masters, (lkc_term){req, sizeof req}, timeout_ms, &r, &nr);
    free(masters);
    struct lkc_master_summary *s = rc ? NULL : calloc(nr ? nr : 1, sizeof *s);
    if (!rc && !s)
        rc = LKC_ENOMEM;
    for (size_t i = 0; !rc && i < nr; i++) {
        snprintf(s[i].node, sizeof s[i].node, "%s", r[i].node);
        s[i].rc = r[i].rc ? r[i].rc : debug_counts(&r[i].reply, &s[i]);
    }
    lkc_node_replies_free(r, nr);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    *n = nr;
    return 0;
}
