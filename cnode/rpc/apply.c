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

#define APPLY_MAX_ARGS 4

struct apply {
    struct node *node;
    struct server *server;
    struct buf req, out;
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
    for (uint32_t i = 0; i < n; i++) {
        size_t start = pos;
        if (term_skip(list.p, list.len, &pos))
            return -EINVAL;
        c->args[i] = (struct term){list.p + start, (uint32_t)(pos - start)};
    }
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

static const struct {
    const char *mod, *fun;
    uint32_t arity;
    int (*fn)(struct apply *, const struct call *);
} table[] = {
    {"locker", "dirty_read", 1, f_dirty_read},
    /* lockerd holds the replicated table itself, so a master read is a
     * local read on a master; on a non-master it is the local copy. */
    {"locker", "master_dirty_read", 1, f_dirty_read},
    {"locker", "get_meta", 0, f_get_meta},
    {"locker", "summary", 0, f_summary},
    {"locker", "get_debug_state", 0, f_debug},
    {"erlang", "node", 0, f_node},
    {"erlang", "whereis", 1, f_whereis},
};

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
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].arity == c.n && !strcmp(table[i].mod, mod) && !strcmp(table[i].fun, fun)) {
            rc = table[i].fn(a, &c);
            done(ud, rc == 0 ? 0 : (rc == -ENOENT ? -EINVAL : rc),
                 (struct term){a->out.data, (uint32_t)a->out.len});
            return;
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
    return a;
}

void apply_free(struct apply *a)
{
    if (!a)
        return;
    buf_free(&a->req);
    buf_free(&a->out);
    free(a);
}
