/*
 * Coordinator state machine; see coord.h for the protocol and the contract.
 *
 * A task moves VOTE -> COMMIT -> DONE (or VOTE -> DONE on no quorum, or
 * MULTI -> DONE). task_run takes every step that needs no further input;
 * it is the only place a phase ends, so the order of events (a reply, a
 * node going down, a deadline) never changes what a phase decides, only
 * when. Events that touch many tasks (node down, deadlines) first update
 * slots with no callbacks, putting tasks whose phase ended on the ready
 * list, then step them: a done callback never runs while an index is being
 * walked, and tasks it starts wait for the next event.
 *
 * Re-entrancy: a task is freed only after it has left every index, so a
 * nested event cannot reach a freed task. While one of its transport calls
 * is in progress the task is `busy`: nested events may record replies or
 * failures but not step it, and a nested cancel only marks it; task_io
 * frees it when the transport returns.
 */
#include "coord_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/clock.h"

static uint64_t call_id(const struct coord__task *t, size_t slot)
{
    return t->id << COORD__ID_SHIFT | (uint64_t)t->phase_no << COORD__SLOT_BITS | slot;
}

static void task_detach(struct coord *c, struct coord__task *t)
{
    coord__tab_del(c, t);
    coord__heap_del(c, t);
    coord__ready_unlink(c, t);
}

/* One transport call for t. Returns false when t was cancelled meanwhile
 * (it is freed then); *rc gets the transport's answer. */
static bool task_io(struct coord *c, struct coord__task *t, const char *node, size_t slot,
                    struct term req, bool noreply, int *rc)
{
    /* A fenced task votes and commits (release: votes only) at the
     * lockerd_fence process. */
    bool fence = !noreply && t->fenced &&
                 (t->phase == COORD__VOTE || (t->phase == COORD__COMMIT && t->op != COORD_RELEASE));
    t->busy = true;
    c->depth++;
    *rc = noreply ? c->io.send_call_noreply(c->io_ud, node, req)
          : fence ? c->io.call_fence(c->io_ud, node, call_id(t, slot), req)
                  : c->io.call(c->io_ud, node, call_id(t, slot), req);
    c->depth--;
    t->busy = false;
    if (t->cancelled) {
        coord__task_free(t);
        return false;
    }
    return true;
}

/* ---- slots ---- */

static void slot_fail(struct coord__task *t, size_t i)
{
    assert(t->slots[i].state == COORD__UNSENT || t->slots[i].state == COORD__PENDING);
    t->slots[i].state = COORD__FAILED;
    t->nopen--;
}

/* {error, Why} */
static bool is_error(struct term reply, const char *why)
{
    size_t pos = 0;
    uint32_t ar;
    return term_get_tuple(reply.p, reply.len, &pos, &ar) == 0 && ar == 2 &&
           term_is_atom(reply.p, reply.len, pos, "error") &&
           term_skip(reply.p, reply.len, &pos) == 0 && term_is_atom(reply.p, reply.len, pos, why);
}

/* A fenced vote's ok: {ok, Counter} with 0 <= Counter < 2^63. */
static int fenced_vote(struct term reply, uint64_t *counter)
{
    size_t pos = 0;
    uint32_t ar;
    int64_t v;
    if (term_get_tuple(reply.p, reply.len, &pos, &ar) || ar != 2 ||
        !term_is_atom(reply.p, reply.len, pos, "ok") || term_skip(reply.p, reply.len, &pos) ||
        term_get_int64(reply.p, reply.len, &pos, &v) || v < 0)
        return -EINVAL;
    *counter = (uint64_t)v;
    return 0;
}

/* A multi-call keeps the reply bytes; if they cannot be kept the node is
 * reported bad rather than with a reply that is not the one it sent. */
static void slot_answer(struct coord__task *t, size_t i, struct term reply)
{
    struct coord__slot *s = &t->slots[i];
    if (t->phase == COORD__MULTI) {
        s->roff = buf_size(&t->rbuf);
        s->rlen = reply.len;
        if (reply.len && buf_append(&t->rbuf, reply.p, reply.len)) {
            slot_fail(t, i);
            return;
        }
        s->state = COORD__OTHER;
    } else if (t->fenced && t->phase == COORD__VOTE) {
        uint64_t counter = 0;
        s->state = fenced_vote(reply, &counter) ? COORD__OTHER : COORD__OK;
        /* A lockerd without a state file has no epochs: no tokens there,
         * like a BEAM master (it took no write lock). */
        if (s->state == COORD__OTHER && is_error(reply, "fencing_needs_state_file"))
            t->unsupported++;
        if (s->state == COORD__OK && counter > t->max_counter)
            t->max_counter = counter;
    } else {
        s->state = term_is_atom(reply.p, reply.len, 0, "ok") ? COORD__OK : COORD__OTHER;
    }
    t->nopen--;
}

/* The current phase's deadline passed: whatever is still pending failed. */
static void slots_expire(struct coord__task *t)
{
    t->expired = true;
    for (size_t i = 0; i < t->ncur; i++)
        if (t->slots[i].state == COORD__PENDING)
            slot_fail(t, i);
}

static int count_ok(const struct coord__task *t)
{
    int n = 0;
    for (size_t i = 0; i < t->ncur; i++)
        n += t->slots[i].state == COORD__OK;
    return n;
}

/* ---- phases ---- */

/* Send `req` to every node of the phase. A slot is PENDING before its call
 * goes out, so a reply delivered from inside the call is recorded. */
static bool phase_start(struct coord *c, struct coord__task *t, enum coord__phase ph,
                        const char *const *nodes, size_t n, struct term req)
{
    t->phase = ph;
    t->phase_no = ph == COORD__COMMIT;
    t->cur_nodes = nodes;
    t->ncur = t->nopen = n;
    t->expired = false;
    for (size_t i = 0; i < n; i++)
        t->slots[i] = (struct coord__slot){.state = COORD__UNSENT};
    coord__heap_set(c, t, t->timeout_ms < 0 ? CLOCK_NEVER : clock_add(t->now, t->timeout_ms));
    for (size_t i = 0; i < n; i++) {
        if (t->expired) {
            slot_fail(t, i);
            continue;
        }
        t->slots[i].state = COORD__PENDING;
        int rc;
        if (!task_io(c, t, nodes[i], i, req, false, &rc))
            return false;
        if (rc < 0 && t->slots[i].state == COORD__PENDING)
            slot_fail(t, i);
    }
    return true;
}

/* {release_write_lock, Tag} to the masters (skipping those whose slot in
 * the phase just ended says `ok`, for extend_lease), then DONE. */
static bool finish(struct coord *c, struct coord__task *t, int rc, bool cleanup, bool skip_ok)
{
    for (size_t i = 0; cleanup && i < t->nmasters; i++) {
        int ignored;
        if (skip_ok && t->slots[i].state == COORD__OK)
            continue;
        if (!task_io(c, t, t->masters[i], i, t->rwl_req, true, &ignored))
            return false;
    }
    t->rc = rc;
    t->phase = COORD__DONE;
    t->ncur = 0;
    coord__heap_del(c, t);
    return true;
}

/* The current phase has nothing open: decide. False if t was freed. */
static bool phase_end(struct coord *c, struct coord__task *t)
{
    int oks = count_ok(t);
    switch (t->phase) {
    case COORD__VOTE:
        t->votes = oks;
        if (t->fenced && t->unsupported)
            return finish(c, t, -EPROTONOSUPPORT, true, false);
        if (oks < t->w)
            return finish(c, t, -ENOLCK, true, false);
        if (t->fenced)
            coord__task_set_token(t, t->max_counter + 1);
        if (t->op == COORD_RELEASE)
            return phase_start(c, t, COORD__COMMIT, t->targets, t->ntargets, t->commit_req);
        return phase_start(c, t, COORD__COMMIT, t->masters, t->nmasters, t->commit_req);
    case COORD__COMMIT:
        t->commits = oks;
        /* A token is only as good as the commits that raised counters:
         * a fenced acquisition needs W of them. */
        return finish(c, t, t->fenced && oks < t->w && t->op != COORD_RELEASE ? -ENOLCK : 0,
                      t->op == COORD_EXTEND_LEASE, true);
    case COORD__MULTI:
        return finish(c, t, 0, false, false);
    case COORD__DONE:
        break;
    }
    assert(!"phase_end: task already done");
    return true;
}

/* ---- delivery ---- */

static void fill_multi(struct coord__task *t, struct coord_result *r)
{
    const uint8_t *base = buf_head(&t->rbuf);
    for (size_t i = 0; i < t->nmasters; i++) {
        if (t->slots[i].state == COORD__OTHER)
            t->out_replies[r->nreplies++] = (struct coord_reply){
                t->masters[i], {base + t->slots[i].roff, t->slots[i].rlen}};
        else
            t->out_bad[r->nbad++] = t->masters[i];
    }
    r->replies = t->out_replies;
    r->bad_nodes = t->out_bad;
}

static void deliver(struct coord *c, struct coord__task *t)
{
    task_detach(c, t);
    struct coord_result r = {
        .task_id = t->id, .op = t->op, .rc = t->rc,
        .w = t->w, .votes = t->votes, .commits = t->commits,
        .token = t->rc ? 0 : t->token,
    };
    if (t->op == COORD_MULTI_CALL)
        fill_multi(t, &r);
    int out = !t->rc ? COORD_OUT_OK : t->rc == -ENOLCK ? COORD_OUT_NO_QUORUM : COORD_OUT_ERROR;
    c->stats.done[t->op][out]++;
    hist_observe(&c->stats.latency[t->op], (t->now - t->started) * 1000);
    c->depth++;
    t->done(t->ud, &r);
    c->depth--;
    coord__task_free(t);
}

/* Take every step t can take without new input. A task finishing inside
 * coord_start is left DONE for coord_start to queue. */
static void task_run(struct coord *c, struct coord__task *t)
{
    while (!t->busy && t->nopen == 0) {
        if (t->phase == COORD__DONE) {
            if (!t->starting)
                deliver(c, t);
            return;
        }
        if (!phase_end(c, t))
            return;
    }
}

static void drain_ready(struct coord *c)
{
    struct coord__task *t;
    while ((t = c->ready_head)) {
        coord__ready_unlink(c, t);
        task_run(c, t);
    }
}

/* ---- API ---- */

struct coord *coord_new(const struct coord_io *io, void *io_ud)
{
    assert(io && io->call && io->send_call_noreply && io->make_ref);
    struct coord *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->io = *io;
    c->io_ud = io_ud;
    c->next_id = 1;
    for (int op = 0; op < COORD_OPS; op++)
        hist_init(&c->stats.latency[op], hist_le_op_us, hist_le_op_n);
    return c;
}

const struct coord_stats *coord_stats(const struct coord *c) { return &c->stats; }

void coord_free(struct coord *c)
{
    if (!c)
        return;
    assert(c->depth == 0);
    for (size_t i = 0; i < c->tab_cap; i++)
        coord__task_free(c->tab[i]);
    coord__index_free(c);
    free(c);
}

/* The Tag comes from the transport; requests embed it, so it is used once
 * and dropped. MULTI_CALL needs none. */
static int task_encode(struct coord *c, struct coord__task *t, const struct coord_args *a)
{
    if (a->op == COORD_MULTI_CALL)
        return coord__task_encode(t, a, (struct term){0});
    struct buf tag;
    buf_init(&tag);
    c->depth++;
    int rc = c->io.make_ref(c->io_ud, &tag);
    c->depth--;
    if (!rc)
        rc = coord__task_encode(t, a, (struct term){buf_head(&tag), (uint32_t)buf_size(&tag)});
    buf_free(&tag);
    return rc;
}

int coord_start(struct coord *c, const struct coord_args *a, const struct coord_meta *m,
                int64_t now, coord_done_fn done, void *ud, uint64_t *task_id)
{
    if (!c || !a || !done)
        return -EINVAL;
    if (a->fenced && a->op != COORD_MULTI_CALL && !c->io.call_fence)
        return -ENOTSUP;
    struct coord__task *t = NULL;
    int rc = coord__task_new(a, m, &t);
    if (!rc)
        rc = task_encode(c, t, a);
    if (!rc)
        rc = coord__reserve(c); /* after make_ref: it may have started tasks */
    if (rc) {
        coord__task_free(t);
        return rc;
    }
    assert(c->next_id < 1ull << (64 - COORD__ID_SHIFT));
    uint64_t id = t->id = c->next_id++;
    t->done = done;
    t->ud = ud;
    t->now = t->started = now;
    t->starting = true;
    coord__tab_put(c, t);
    if (task_id)
        *task_id = id;
    enum coord__phase first = a->op == COORD_MULTI_CALL ? COORD__MULTI : COORD__VOTE;
    if (phase_start(c, t, first, t->masters, t->nmasters, t->vote_req))
        task_run(c, t);
    /* Nested events may have cancelled it; nothing else can free it here.
     * Finished already: due at once in the heap, so coord_advance (never
     * this call) delivers it and coord_next_deadline says so. Queued only
     * now: a nested coord_advance must not find a task it cannot deliver. */
    t = coord__tab_get(c, id);
    if (t) {
        t->starting = false;
        if (t->phase == COORD__DONE)
            coord__heap_set(c, t, now);
    }
    return 0;
}

int coord_cancel(struct coord *c, uint64_t task_id)
{
    struct coord__task *t = coord__tab_get(c, task_id);
    if (!t)
        return -ENOENT;
    task_detach(c, t);
    /* Detached first: the cleanup sends below cannot lead back to it. */
    if (t->phase == COORD__VOTE) {
        for (size_t i = 0; i < t->nmasters; i++) {
            c->depth++;
            c->io.send_call_noreply(c->io_ud, t->masters[i], t->rwl_req);
            c->depth--;
        }
    }
    if (t->busy)
        t->cancelled = true;
    else
        coord__task_free(t);
    return 0;
}

/* The task whose call call_id still waits (its slot in *slot), or NULL for
 * an unknown, late or duplicate id. */
static struct coord__task *pending_call(struct coord *c, uint64_t call_id, size_t *slot)
{
    struct coord__task *t = coord__tab_get(c, call_id >> COORD__ID_SHIFT);
    *slot = (size_t)(call_id & ((1u << COORD__SLOT_BITS) - 1));
    unsigned ph = (unsigned)(call_id >> COORD__SLOT_BITS) & 1;
    if (!t || t->phase == COORD__DONE || ph != t->phase_no || *slot >= t->ncur ||
        t->slots[*slot].state != COORD__PENDING)
        return NULL;
    return t;
}

void coord_on_reply(struct coord *c, uint64_t call_id, struct term reply, int64_t now)
{
    size_t slot;
    struct coord__task *t = pending_call(c, call_id, &slot);
    if (!t)
        return;
    t->now = now;
    slot_answer(t, slot, reply);
    task_run(c, t);
}

void coord_on_noproc(struct coord *c, uint64_t call_id, int64_t now)
{
    size_t slot;
    struct coord__task *t = pending_call(c, call_id, &slot);
    if (!t)
        return;
    t->now = now;
    if (t->fenced && t->phase == COORD__VOTE) {
        t->unsupported++;
        t->slots[slot].state = COORD__OTHER;
        t->nopen--;
    } else {
        slot_fail(t, slot);
    }
    task_run(c, t);
}

void coord_on_node_down(struct coord *c, const char *node, int64_t now)
{
    if (!node)
        return;
    for (size_t i = 0; i < c->tab_cap; i++) {
        struct coord__task *t = c->tab[i];
        bool hit = false;
        for (size_t s = 0; t && s < t->ncur; s++) {
            if (t->slots[s].state == COORD__PENDING && strcmp(t->cur_nodes[s], node) == 0) {
                slot_fail(t, s);
                hit = true;
            }
        }
        if (hit) {
            t->now = now;
            if (t->nopen == 0)
                coord__ready_push(c, t);
        }
    }
    drain_ready(c);
}

void coord_advance(struct coord *c, int64_t now)
{
    struct coord__task *t;
    while ((t = coord__heap_top(c)) && t->deadline <= now) {
        coord__heap_del(c, t);
        t->now = now;
        if (t->phase != COORD__DONE)
            slots_expire(t);
        if (t->nopen == 0)
            coord__ready_push(c, t);
    }
    drain_ready(c);
}

int64_t coord_next_deadline(const struct coord *c)
{
    const struct coord__task *t = coord__heap_top(c);
    return t ? t->deadline : CLOCK_NEVER;
}

size_t coord_pending(const struct coord *c)
{
    return c->tab_n;
}
