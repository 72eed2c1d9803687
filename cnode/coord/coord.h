/*
 * Coordinator: the client side of the locker protocol (docs/protocol.md section
 * 5), run from C against BEAM and lockerd masters alike. Pure: no sockets,
 * no clock of its own. A transport (struct coord_io) sends the calls; the
 * owner feeds replies, node-down events and time back in.
 *
 * Model
 *  - Each operation is a task: a fresh write Tag, then one or more phases.
 *    A phase is a multi-call: the same request to a list of nodes, each call
 *    identified by a call_id the transport carries in its reply tag. A
 *    phase ends when every node answered, failed (transport error, node
 *    down) or its deadline passed (timeout_ms from the phase start, as
 *    gen_server:multi_call's Timeout). Anything that arrives for a call that
 *    is no longer pending (late, duplicate, earlier phase, finished task) is
 *    ignored.
 *  - lock / update / extend_lease / release: phase 1 sends
 *    {get_write_lock, Key, Expected, Tag} to every master and counts `ok`
 *    votes. Votes >= W: phase 2 commits to every master ({write, ...},
 *    {update, ...}, {extend_lease, ...}) or, for release, to
 *    usort(Masters ++ Replicas) ({release, Key, Value, Tag}); commits are the
 *    `ok` replies; after an extend_lease commit, {release_write_lock, Tag}
 *    goes to every master that did not answer it `ok`. Votes < W:
 *    {release_write_lock, Tag} to every master and the result is
 *    {error, no_quorum}. This is exactly test/erlang/lkr.erl, except that
 *    release_write_lock cleanups are fire-and-forget (send_call_noreply)
 *    instead of a multi-call the caller waits on: the result is the same,
 *    and a dead cluster costs one timeout instead of two.
 *  - COORD_MULTI_CALL: one phase, the caller's request sent as is to every
 *    node of the cluster list (set_nodes, set_w); the result lists the
 *    replies and the bad nodes, like gen_server:multi_call's
 *    {Replies, BadNodes}.
 *  - Every request is encoded when the task starts (keys and values are
 *    copied), so a task never allocates after coord_start except to keep
 *    multi-call reply bytes.
 *
 * Callbacks and re-entrancy
 *  - `done` fires exactly once per task, unless the task is cancelled or the
 *    coordinator freed first; never from inside coord_start: a task that
 *    completes there (no masters, every node unreachable, a transport that
 *    answers synchronously) is delivered by the next coord_advance, and
 *    coord_next_deadline reports the time it completed.
 *  - `done` may call coord_start, coord_cancel, coord_on_reply,
 *    coord_on_node_down and coord_advance; not coord_free.
 *  - The io functions may call back into the coordinator synchronously
 *    (coord_on_reply with the local node's answer, coord_on_node_down for
 *    a connection found broken, even coord_cancel); not coord_free. A task
 *    never steps from inside its own transport call: the step is taken
 *    when the call returns, and a task cancelled meanwhile is freed then.
 *
 * Errors: 0 or a negative errno. Not thread-safe: one event loop owns it.
 */
#ifndef LOCKERD_COORD_H
#define LOCKERD_COORD_H

#include <stddef.h>
#include <stdint.h>

#include "../../ei_glue/term.h"
#include "../core/buf.h"
#include "../core/hist.h"

struct coord_io {
    /* Send the gen_server call `req` (term bytes, no 131) to {locker, node}
     * with a reply tag that identifies call_id; 0 or -errno (-errno = node
     * unreachable now: the call counts as failed at once). */
    int (*call)(void *ud, const char *node, uint64_t call_id, struct term req);
    /* Fire-and-forget send (release_write_lock cleanups; the reply, if any,
     * is dropped by the transport). Errors are ignored. */
    int (*send_call_noreply)(void *ud, const char *node, struct term req);
    /* Append a fresh unique reference (canonical bytes) to out; 0 or -errno. */
    int (*make_ref)(void *ud, struct buf *out);
    /* Optional: like call, to {lockerd_fence, node} (fenced tasks). A node
     * without that process (a BEAM master) is reported by the transport
     * with coord_on_noproc. NULL: fenced tasks are refused (-ENOTSUP). */
    int (*call_fence)(void *ud, const char *node, uint64_t call_id, struct term req);
};

enum coord_op { COORD_LOCK, COORD_UPDATE, COORD_EXTEND_LEASE, COORD_RELEASE, COORD_MULTI_CALL };

/* Spans are copied by coord_start; each must be exactly one canonical term. */
struct coord_args {
    enum coord_op op;
    struct term key;         /* all but MULTI_CALL */
    struct term value;       /* lock: value to store; others: Expected (current) value */
    struct term new_value;   /* update only */
    int64_t lease_ms;        /* lock, extend_lease: LeaseLength */
    int64_t timeout_ms;      /* per phase; < 0: no deadline (multi_call's infinity) */
    struct term req;         /* MULTI_CALL only: the request, sent as is */
    char *const *nodes;      /* MULTI_CALL only: the cluster */
    size_t nnodes;
    /* Fencing token (lock ops): the vote and the commit go to lockerd's
     * lockerd_fence process; every ok vote carries the master's counter,
     * the token is one more than the largest, and the commit carries it
     * (masters raise their counters to it). Success needs W commits. A
     * master without lockerd_fence makes the task fail with
     * -EPROTONOSUPPORT (tokens unavailable) after releasing the votes. */
    int fenced;
};

/* The local server's meta data (copied); unused by MULTI_CALL (may be NULL). */
struct coord_meta {
    char *const *masters;
    size_t nmasters;
    char *const *replicas;
    size_t nreplicas;
    int w;
};

struct coord_reply {
    const char *node;
    struct term reply;
};

/* Valid only during the done callback. */
struct coord_result {
    uint64_t task_id;
    enum coord_op op;
    int rc;          /* 0, or -ENOLCK for {error, no_quorum}; extend_lease's
                        success is plain `ok`, its counts are informative */
    int w;           /* W used by the vote (lock ops) */
    int votes;       /* `ok` votes */
    int commits;     /* `ok` commit replies (Oks for release); 0 on no_quorum */
    uint64_t token;  /* fenced tasks on success: the fencing token */
    /* MULTI_CALL only, in cluster-list order: nodes that answered, and the
     * bad nodes (unreachable, down, timed out). */
    const struct coord_reply *replies;
    size_t nreplies;
    const char *const *bad_nodes;
    size_t nbad;
};

typedef void (*coord_done_fn)(void *ud, const struct coord_result *r);

/* The most nodes one phase may address (call ids carry a 16-bit slot). */
#define COORD_MAX_NODES 65536u

struct coord;

/* `io` is copied; io_ud is passed to every io function. NULL on ENOMEM. */
struct coord *coord_new(const struct coord_io *io, void *io_ud);
/* Drops pending tasks without callbacks or I/O. NULL ok; not from a callback. */
void coord_free(struct coord *c);

/* Start a task: -EINVAL on bad arguments (missing spans, malformed terms,
 * NULL done), -E2BIG over COORD_MAX_NODES, -ENOMEM, or make_ref's error; no
 * task exists then. On 0 the task id is stored in *task_id (may be NULL). */
int coord_start(struct coord *c, const struct coord_args *a, const struct coord_meta *m,
                int64_t now, coord_done_fn done, void *ud, uint64_t *task_id);
/* Drop a task without its callback. A task still voting may hold write
 * locks: {release_write_lock, Tag} goes to its masters (fire-and-forget).
 * -ENOENT if unknown or already delivered. */
int coord_cancel(struct coord *c, uint64_t task_id);

/* A reply for call_id; unknown, late and duplicate ids are ignored. */
void coord_on_reply(struct coord *c, uint64_t call_id, struct term reply, int64_t now);
/* The call's target process does not exist on its node (MONITOR_P_EXIT
 * noproc): for a fenced call the node is not a lockerd master; otherwise
 * the call failed. */
void coord_on_noproc(struct coord *c, uint64_t call_id, int64_t now);
/* Every pending call to `node` fails now. Scans the pending tasks. */
void coord_on_node_down(struct coord *c, const char *node, int64_t now);
/* End the phases whose deadline is <= now; deliver deferred results. */
void coord_advance(struct coord *c, int64_t now);
/* Earliest deadline, CLOCK_NEVER if none. */
int64_t coord_next_deadline(const struct coord *c);
/* Tasks started and not yet delivered or cancelled. */
size_t coord_pending(const struct coord *c);

/* What the coordinator has done (metrics): results delivered per op, by
 * outcome (0 rc, -ENOLCK no_quorum, anything else), and their latency
 * from coord_start to delivery in microseconds (at the caller's clock's
 * millisecond resolution). Cancelled tasks are not counted. */
enum coord_outcome { COORD_OUT_OK, COORD_OUT_NO_QUORUM, COORD_OUT_ERROR, COORD_OUTCOMES };
#define COORD_OPS (COORD_MULTI_CALL + 1)
struct coord_stats {
    uint64_t done[COORD_OPS][COORD_OUTCOMES];
    struct hist latency[COORD_OPS];
};
const struct coord_stats *coord_stats(const struct coord *c);

#endif
