/*
 * Task construction: argument checks, private copies of the node lists and
 * every request the task may send, encoded once with the fresh Tag.
 *
 * Encoding everything up front is what lets the state machine run without
 * allocating: a commit or a release_write_lock cleanup can never fail for
 * want of memory after the masters have granted their write locks. The
 * callers' spans and node arrays need not outlive coord_start.
 */
#include "coord_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../ei_glue/enc.h"
#include "../core/clock.h"

/* Exactly one well-formed term, nothing after it. */
static int one_term(struct term t)
{
    size_t pos = 0;
    return t.p && t.len && term_skip(t.p, t.len, &pos) == 0 && pos == t.len;
}

static int check_args(const struct coord_args *a, const struct coord_meta *m)
{
    switch (a->op) {
    case COORD_MULTI_CALL:
        if (!one_term(a->req) || (a->nnodes && !a->nodes))
            return -EINVAL;
        return a->nnodes > COORD_MAX_NODES ? -E2BIG : 0;
    case COORD_UPDATE:
        if (!one_term(a->new_value))
            return -EINVAL;
        /* fall through */
    case COORD_LOCK:
    case COORD_EXTEND_LEASE:
    case COORD_RELEASE:
        if (!m || !one_term(a->key) || !one_term(a->value) || (m->nmasters && !m->masters) ||
            (m->nreplicas && !m->replicas))
            return -EINVAL;
        return m->nmasters > COORD_MAX_NODES ? -E2BIG : 0;
    }
    return -EINVAL;
}

static int cmp_name(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Copy two name lists into one block; t->masters gets the first `nm`, and
 * the returned array (owned by the caller) holds all nm + nr pointers. */
static const char **copy_names(struct coord__task *t, char *const *ma, size_t nm,
                               char *const *re, size_t nr)
{
    size_t total = 1;
    for (size_t i = 0; i < nm + nr; i++)
        total += strlen(i < nm ? ma[i] : re[i - nm]) + 1;
    const char **all = malloc((nm + nr + 1) * sizeof *all);
    t->names = malloc(total);
    if (!all || !t->names) {
        free(all);
        return NULL;
    }
    char *p = t->names;
    for (size_t i = 0; i < nm + nr; i++) {
        const char *s = i < nm ? ma[i] : re[i - nm];
        size_t n = strlen(s) + 1;
        memcpy(p, s, n);
        all[i] = p;
        p += n;
    }
    return all;
}

/* Release commits go to lists:usort(Masters ++ Replicas): sorted by atom
 * text (strcmp on UTF-8 is code point order, as Erlang compares atoms). */
static size_t usort_names(const char **v, size_t n)
{
    if (n < 2)
        return n;
    qsort(v, n, sizeof *v, cmp_name);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i], v[k - 1]) != 0)
            v[k++] = v[i];
    return k;
}

static int setup_nodes(struct coord__task *t, const struct coord_args *a,
                       const struct coord_meta *m)
{
    int multi = a->op == COORD_MULTI_CALL, rel = a->op == COORD_RELEASE;
    size_t nm = multi ? a->nnodes : m->nmasters, nr = rel ? m->nreplicas : 0;
    const char **all = copy_names(t, multi ? a->nodes : m->masters, nm,
                                  rel ? m->replicas : NULL, nr);
    if (!all)
        return -ENOMEM;
    t->masters = all;
    t->nmasters = t->ntargets = nm;
    t->targets = all;
    if (rel) {
        t->targets = malloc((nm + nr + 1) * sizeof *t->targets);
        if (!t->targets)
            return -ENOMEM;
        memcpy(t->targets, all, (nm + nr) * sizeof *all);
        t->ntargets = usort_names(t->targets, nm + nr);
        if (t->ntargets > COORD_MAX_NODES)
            return -E2BIG;
    }
    t->nslots = t->nmasters > t->ntargets ? t->nmasters : t->ntargets;
    t->slots = calloc(t->nslots + 1, sizeof *t->slots);
    if (!t->slots)
        return -ENOMEM;
    if (multi) {
        t->out_replies = calloc(t->nslots + 1, sizeof *t->out_replies);
        t->out_bad = calloc(t->nslots + 1, sizeof *t->out_bad);
        if (!t->out_replies || !t->out_bad)
            return -ENOMEM;
    }
    return 0;
}

int coord__task_new(const struct coord_args *a, const struct coord_meta *m,
                    struct coord__task **out)
{
    *out = NULL;
    int rc = check_args(a, m);
    if (rc)
        return rc;
    struct coord__task *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->op = a->op;
    t->fenced = a->fenced && a->op != COORD_MULTI_CALL;
    t->w = a->op == COORD_MULTI_CALL ? 0 : m->w;
    t->timeout_ms = a->timeout_ms;
    t->deadline = CLOCK_NEVER;
    t->heap_idx = COORD__NOT_QUEUED;
    buf_init(&t->reqs);
    buf_init(&t->rbuf);
    rc = setup_nodes(t, a, m);
    if (rc) {
        coord__task_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- requests ---- */

static int enc_vote(struct buf *b, const struct coord_args *a, struct term tag)
{
    int rc = enc_tuple(b, 4);
    if (!rc)
        rc = enc_atom(b, "get_write_lock");
    if (!rc)
        rc = enc_raw(b, a->key);
    if (!rc)
        rc = a->op == COORD_LOCK ? enc_atom(b, "not_found") : enc_raw(b, a->value);
    return rc ? rc : enc_raw(b, tag);
}

/* A fenced commit's last element: the token as an 8-byte SMALL_BIG_EXT,
 * patched in place once the vote has chosen it (coord__task_set_token), so
 * that no commit is encoded after the masters granted their votes. */
static int enc_token_slot(struct buf *b)
{
    static const uint8_t slot[11] = {110, 8, 0};
    return buf_append(b, slot, sizeof slot);
}

/* {write, Tag, Key, Value, Len} / {extend_lease, Tag, Key, Value, Len} /
 * {update, Tag, Key, NewValue} / {release, Key, Value, Tag}. */
static int enc_commit(struct buf *b, const struct coord_args *a, struct term tag)
{
    static const char *const name[] = {
        [COORD_LOCK] = "write", [COORD_UPDATE] = "update",
        [COORD_EXTEND_LEASE] = "extend_lease", [COORD_RELEASE] = "release",
    };
    int lease = a->op == COORD_LOCK || a->op == COORD_EXTEND_LEASE;
    int fenced = a->fenced && a->op != COORD_RELEASE;
    int rc = enc_tuple(b, (lease ? 5 : 4) + fenced);
    if (!rc)
        rc = enc_atom(b, name[a->op]);
    if (a->op == COORD_RELEASE) {
        if (!rc)
            rc = enc_raw(b, a->key);
        if (!rc)
            rc = enc_raw(b, a->value);
        return rc ? rc : enc_raw(b, tag);
    }
    if (!rc)
        rc = enc_raw(b, tag);
    if (!rc)
        rc = enc_raw(b, a->key);
    if (!rc)
        rc = enc_raw(b, a->op == COORD_UPDATE ? a->new_value : a->value);
    if (!rc && lease)
        rc = enc_long(b, a->lease_ms);
    return rc || !fenced ? rc : enc_token_slot(b);
}

static int enc_rwl(struct buf *b, struct term tag)
{
    int rc = enc_tuple(b, 2);
    if (!rc)
        rc = enc_atom(b, "release_write_lock");
    return rc ? rc : enc_raw(b, tag);
}

int coord__task_encode(struct coord__task *t, const struct coord_args *a, struct term tag)
{
    struct buf *b = &t->reqs;
    if (a->op == COORD_MULTI_CALL) {
        int rc = enc_raw(b, a->req);
        if (rc)
            return rc;
        t->vote_req = (struct term){buf_head(b), (uint32_t)buf_size(b)};
        return 0;
    }
    if (!one_term(tag))
        return -EINVAL;
    size_t v0 = buf_size(b);
    int rc = enc_vote(b, a, tag);
    size_t c0 = buf_size(b);
    if (!rc)
        rc = enc_commit(b, a, tag);
    size_t r0 = buf_size(b);
    if (!rc)
        rc = enc_rwl(b, tag);
    if (rc)
        return rc;
    /* Spans are taken only now: appends may have moved the storage. */
    if (t->fenced && a->op != COORD_RELEASE)
        t->token_off = r0 - 8;
    const uint8_t *p = buf_head(b);
    t->vote_req = (struct term){p + v0, (uint32_t)(c0 - v0)};
    t->commit_req = (struct term){p + c0, (uint32_t)(r0 - c0)};
    t->rwl_req = (struct term){p + r0, (uint32_t)(buf_size(b) - r0)};
    return 0;
}

void coord__task_set_token(struct coord__task *t, uint64_t token)
{
    t->token = token;
    if (!t->token_off)
        return;
    uint8_t *p = (uint8_t *)buf_head(&t->reqs) + t->token_off;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(token >> (8 * i));
}

void coord__task_free(struct coord__task *t)
{
    if (!t)
        return;
    if (t->targets != t->masters)
        free(t->targets);
    free(t->masters);
    free(t->names);
    free(t->slots);
    free(t->out_replies);
    free(t->out_bad);
    buf_free(&t->reqs);
    buf_free(&t->rbuf);
    free(t);
}
