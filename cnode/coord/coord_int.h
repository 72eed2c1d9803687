/*
 * Coordinator internals shared by coord.c (state machine), coord_task.c
 * (task construction: copies and request encoding) and coord_index.c (task
 * table, deadline heap, ready list).
 *
 * Invariants
 *  - A live task is in the table (by id) until it is delivered or
 *    cancelled; it is in the heap iff it has a finite deadline and has not
 *    been popped; it is on the ready list only while an advance or a
 *    node-down drains it.
 *  - The heap never grows after coord_start: its capacity is reserved for
 *    every task in the table, so phase changes cannot fail.
 *  - nopen counts the current phase's slots still UNSENT or PENDING; the
 *    phase has ended exactly when nopen == 0.
 *  - call_id = id << 17 | phase_no << 16 | slot: a reply names its task,
 *    its phase and its slot, so a stale one is recognised without a search.
 */
#ifndef LOCKERD_COORD_INT_H
#define LOCKERD_COORD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord.h"

#define COORD__SLOT_BITS 16
#define COORD__ID_SHIFT (COORD__SLOT_BITS + 1)
#define COORD__NOT_QUEUED SIZE_MAX /* heap_idx of a task not in the heap */

enum coord__phase { COORD__VOTE, COORD__COMMIT, COORD__MULTI, COORD__DONE };
enum coord__slot_state { COORD__UNSENT, COORD__PENDING, COORD__OK, COORD__OTHER, COORD__FAILED };

struct coord__slot {
    uint8_t state;
    uint32_t rlen;  /* MULTI reply: bytes at roff in task->rbuf */
    size_t roff;
};

struct coord__task {
    uint64_t id;
    enum coord_op op;
    enum coord__phase phase;
    uint8_t phase_no;        /* 0 vote/multi, 1 commit: part of call ids */
    bool starting;           /* inside coord_start: completion is deferred */
    bool busy;               /* inside one of its own transport calls */
    bool cancelled;          /* dropped while busy: the transport caller frees it */
    bool expired;            /* current phase's deadline passed */
    bool on_ready;
    int w, votes, commits, rc;
    bool fenced;
    int unsupported;               /* fenced vote: nodes without lockerd_fence */
    uint64_t max_counter, token;
    size_t token_off;              /* fenced commit: the token's 8 bytes in reqs */
    int64_t timeout_ms, deadline, now;
    int64_t started;         /* now at coord_start (latency metrics) */
    size_t heap_idx;
    struct coord__task *rprev, *rnext;
    coord_done_fn done;
    void *ud;

    char *names;                   /* node name strings, one block */
    const char **masters;          /* MULTI: the cluster */
    size_t nmasters;
    const char **targets;          /* RELEASE commit: usort(masters ++ replicas) */
    size_t ntargets;
    const char *const *cur_nodes;  /* current phase's nodes: masters or targets */
    size_t ncur;
    struct coord__slot *slots;     /* max(nmasters, ntargets) */
    size_t nslots, nopen;
    struct coord_reply *out_replies; /* MULTI result arrays, sized nslots */
    const char **out_bad;

    struct buf reqs;               /* encoded requests, spans below point into it */
    struct term vote_req;          /* MULTI: the caller's request */
    struct term commit_req, rwl_req;
    struct buf rbuf;               /* MULTI reply bytes */
};

struct coord {
    struct coord_io io;
    void *io_ud;
    int depth;                     /* callbacks (done or io) in progress */
    uint64_t next_id;
    struct coord__task **tab;      /* open addressing by id, linear probing */
    size_t tab_cap, tab_n;
    struct coord__task **heap;     /* binary min-heap by (deadline, id) */
    size_t heap_n, heap_cap;
    struct coord__task *ready_head, *ready_tail;
    struct coord_stats stats;
};

/* coord_task.c */
int coord__task_new(const struct coord_args *a, const struct coord_meta *m,
                    struct coord__task **out);
/* Encode the requests with `tag` (checked: one term); -EINVAL, -ENOMEM. */
int coord__task_encode(struct coord__task *t, const struct coord_args *a, struct term tag);
void coord__task_free(struct coord__task *t);
/* A fenced task's token, written into its encoded commit. */
void coord__task_set_token(struct coord__task *t, uint64_t token);

/* coord_index.c */
int coord__reserve(struct coord *c);   /* room for one more task everywhere */
void coord__tab_put(struct coord *c, struct coord__task *t);
struct coord__task *coord__tab_get(const struct coord *c, uint64_t id);
void coord__tab_del(struct coord *c, struct coord__task *t);
void coord__heap_set(struct coord *c, struct coord__task *t, int64_t deadline);
void coord__heap_del(struct coord *c, struct coord__task *t);
struct coord__task *coord__heap_top(const struct coord *c);
void coord__ready_push(struct coord *c, struct coord__task *t);
void coord__ready_unlink(struct coord *c, struct coord__task *t);
void coord__index_free(struct coord *c);

#endif
