/*
 * Transaction-log push; see repl.h for the model.
 *
 * The current log is kept as concatenated entry terms plus a count, so a
 * push builds the trans_log message with one copy. Each replica's backlog
 * is a FIFO of whole messages; messages leave the backlog only when
 * written into an UP connection's output (from then on TCP and the
 * connection layer own delivery).
 */
#include "repl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../ei_glue/enc.h"
#include "../core/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct batch {
    struct batch *next;
    uint32_t entries;
    uint32_t len;
    uint8_t msg[];
};

struct replica {
    char *name;
    struct batch *head, *tail;
    size_t bytes;
    int64_t retry_at;
    int64_t backoff;
};

struct repl {
    struct node *node;
    struct term from_pid;
    struct repl_cfg cfg;
    struct buf log;
    uint32_t nlog;
    struct replica *reps;
    size_t nreps;
    struct buf msg;
};

void repl_foreach_backlog(const struct repl *r, repl_backlog_fn fn, void *ud)
{
    for (size_t i = 0; i < r->nreps; i++)
        fn(ud, r->reps[i].name, r->reps[i].bytes);
}

static void replica_clear(struct replica *r)
{
    while (r->head) {
        struct batch *b = r->head;
        r->head = b->next;
        free(b);
    }
    r->tail = NULL;
    r->bytes = 0;
}

static void replica_drop_oldest(struct replica *r)
{
    struct batch *b = r->head;
    r->head = b->next;
    if (!r->head)
        r->tail = NULL;
    r->bytes -= b->len;
    free(b);
}

/* Send what the backlog holds if the replica is connected; else make sure
 * a connection attempt is under way (respecting the backoff). */
static void replica_flush(struct repl *rp, struct replica *r)
{
    if (!r->head)
        return;
    struct conn *c = conn_find(node_conns(rp->node), r->name);
    if (c && c->state == CONN_UP) {
        while (r->head) {
            struct batch *b = r->head;
            if (node_reg_send(rp->node, c, rp->from_pid, "locker",
                              (struct term){b->msg, b->len}))
                break;
            replica_drop_oldest(r);
        }
        r->backoff = 0;
        return;
    }
    int64_t now = loop_now(node_loop(rp->node));
    if (!c && now >= r->retry_at) {
        r->backoff = r->backoff ? r->backoff * 2 : BACKOFF_MIN_MS;
        if (r->backoff > BACKOFF_MAX_MS)
            r->backoff = BACKOFF_MAX_MS;
        r->retry_at = now + r->backoff;
        node_connect(rp->node, r->name);
    }
}

static void replica_enqueue(struct repl *rp, struct replica *r, const struct buf *msg)
{
    if (msg->len > rp->cfg.max_backlog) {
        log_warn("replication to %s: a batch of %u entries exceeds the backlog cap; dropped",
                 r->name, rp->nlog);
        return;
    }
    size_t lost = 0;
    while (r->head && r->bytes + msg->len > rp->cfg.max_backlog) {
        lost += r->head->entries;
        replica_drop_oldest(r);
    }
    if (lost)
        log_warn("replication backlog to %s over %zu bytes: %zu oldest entries dropped",
                 r->name, rp->cfg.max_backlog, lost);
    struct batch *b = malloc(sizeof *b + msg->len);
    if (!b) {
        log_error("replication to %s: out of memory, %u entries dropped", r->name, rp->nlog);
        return;
    }
    b->next = NULL;
    b->entries = rp->nlog;
    b->len = (uint32_t)msg->len;
    memcpy(b->msg, msg->data, msg->len);
    if (r->tail)
        r->tail->next = b;
    else
        r->head = b;
    r->tail = b;
    r->bytes += b->len;
}

/* {'$gen_cast', {trans_log, ThisNode, [Entries]}} from the current log. */
static int build_msg(struct repl *rp)
{
    struct buf *m = &rp->msg;
    buf_reset(m);
    int rc = enc_tuple(m, 2);
    if (!rc)
        rc = enc_atom(m, "$gen_cast");
    if (!rc)
        rc = enc_tuple(m, 3);
    if (!rc)
        rc = enc_atom(m, "trans_log");
    if (!rc)
        rc = enc_atom(m, node_name(rp->node));
    if (!rc)
        rc = enc_list(m, rp->nlog);
    if (!rc)
        rc = buf_append(m, rp->log.data, rp->log.len);
    return rc ? rc : enc_nil(m);
}

void repl_push(struct repl *rp)
{
    if (rp->nlog) {
        int targets = 0;
        for (size_t i = 0; i < rp->nreps; i++)
            targets |= strcmp(rp->reps[i].name, node_name(rp->node)) != 0;
        if (targets && build_msg(rp) == 0) {
            for (size_t i = 0; i < rp->nreps; i++)
                if (strcmp(rp->reps[i].name, node_name(rp->node)) != 0)
                    replica_enqueue(rp, &rp->reps[i], &rp->msg);
        } else if (targets) {
            log_error("replication: out of memory building a batch of %u entries", rp->nlog);
        }
        buf_reset(&rp->log);
        rp->nlog = 0;
    }
    for (size_t i = 0; i < rp->nreps; i++)
        replica_flush(rp, &rp->reps[i]);
}

int repl_log(struct repl *rp, struct term entry)
{
    if (!rp->nreps)
        return 0; /* nobody to push to: keep nothing */
    int rc = buf_append(&rp->log, entry.p, entry.len);
    if (!rc)
        rp->nlog++;
    return rc;
}

size_t repl_log_len(const struct repl *rp) { return rp->nlog; }

void repl_drop_log(struct repl *rp)
{
    buf_reset(&rp->log);
    rp->nlog = 0;
}


static void repl_on_conn(void *ud, struct conn *c, int up)
{
    struct repl *rp = ud;
    for (size_t i = 0; i < rp->nreps; i++)
        if (strcmp(rp->reps[i].name, c->peer) == 0 && up)
            replica_flush(rp, &rp->reps[i]);
}

int repl_set_replicas(struct repl *rp, char *const *names, size_t count)
{
    struct replica *v = calloc(count ? count : 1, sizeof *v);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        /* Keep the backlog of replicas that stay. */
        struct replica *old = NULL;
        for (size_t j = 0; j < rp->nreps && !old; j++)
            if (rp->reps[j].name && strcmp(rp->reps[j].name, names[i]) == 0)
                old = &rp->reps[j];
        if (old) {
            v[i] = *old;
            old->name = NULL;
            old->head = old->tail = NULL;
        } else if (!(v[i].name = strdup(names[i]))) {
            for (size_t k = 0; k < i; k++) {
                replica_clear(&v[k]);
                free(v[k].name);
            }
            free(v);
            return -ENOMEM;
        }
    }
    for (size_t j = 0; j < rp->nreps; j++) {
        replica_clear(&rp->reps[j]);
        free(rp->reps[j].name);
    }
    free(rp->reps);
    rp->reps = v;
    rp->nreps = count;
    return 0;
}

struct repl *repl_new(struct node *n, struct term from_pid, const struct repl_cfg *cfg)
{
    struct repl *rp = calloc(1, sizeof *rp);
    if (!rp)
        return NULL;
    rp->node = n;
    rp->from_pid = from_pid;
    rp->cfg = *cfg;
    buf_init(&rp->log);
    buf_init(&rp->msg);
    if (node_subscribe(n, repl_on_conn, rp)) {
        free(rp);
        return NULL;
    }
    return rp;
}

void repl_free(struct repl *rp)
{
    if (!rp)
        return;
    for (size_t i = 0; i < rp->nreps; i++) {
        replica_clear(&rp->reps[i]);
        free(rp->reps[i].name);
    }
    free(rp->reps);
    buf_free(&rp->log);
    buf_free(&rp->msg);
    free(rp);
}
