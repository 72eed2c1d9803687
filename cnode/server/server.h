/*
 * The locker server: the process registered as `locker` on this node.
 *
 * It answers every call of PROTOCOL.md section 2 and the casts and plain
 * messages of section 3, keeps the meta data (w, masters, replicas), and
 * turns requests into store operations plus transaction-log entries. All
 * keys, values and tags are canonicalised before they reach the store, so
 * the store's byte equality is Erlang's =:=.
 */
#ifndef LOCKERD_SERVER_H
#define LOCKERD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "../node/node.h"

struct server_cfg {
    int w;
    char **masters;      /* node names, any order, duplicates allowed */
    size_t nmasters;
    char **replicas;
    size_t nreplicas;
    int64_t push_interval_ms;
    int64_t write_lock_ms;   /* 10000 */
    int64_t expire_budget;   /* expiry work per loop iteration */
    size_t max_backlog;
    /* Limits, 0 = none. A vote or commit that would create a lease beyond
     * max_leases (leases + pending write locks) or with the store over
     * max_memory bytes, and a wait beyond max_waiters, is answered
     * {error, {limit, leases | memory | waiters}}; see server.c. */
    size_t max_leases;
    size_t max_waiters;
    size_t max_memory;
    int eager_push;          /* push each loop iteration's writes at once */
    /* Safe restarts (quiet.h): state file (NULL: none) and quiet period
     * (-1: automatic from the state file, else fixed at every start). */
    const char *state_file;
    int64_t quiet_ms;
};

struct server;

struct server *server_new(struct node *n, const struct server_cfg *cfg, char *err,
                          size_t errlen);
void server_free(struct server *s);

/* Meta, for other modules (coordinator, rpc). Arrays owned by the server. */
int server_w(const struct server *s);
char *const *server_masters(const struct server *s, size_t *count);
char *const *server_replicas(const struct server *s, size_t *count);
struct store *server_store(const struct server *s);
const char *server_node_name(const struct server *s);
int server_is_master(const struct server *s);

/* Evaluate a request term as if called, without a caller (rpc paths):
 * appends the reply term to out. -ENOENT unknown/malformed, -EAGAIN for
 * requests that would wait (wait_for...). */
int server_eval(struct server *s, struct term req, struct buf *out);

/* Waiters for callers inside lockerd (rpc): wait on key (any encoding)
 * until deadline; the waker gets (id, kind, value) when the key is
 * written (STORE_WAIT_FOR) or released/expired (STORE_WAIT_RELEASE).
 * Nothing is called at the deadline: the caller keeps its own timer. */
typedef void (*server_wake_fn)(void *ud, uint64_t id, int kind, struct term value);
int server_wait(struct server *s, struct term key, int kind, int64_t deadline, uint64_t id);
/* Drop the internal waiter id (its rpc caller is gone); no wake. */
void server_wait_cancel(struct server *s, uint64_t id);
void server_set_waker(struct server *s, server_wake_fn fn, void *ud);

/* --eager-push at run time (lockerd:set_eager_push/1). */
void server_set_eager_push(struct server *s, int on);

#endif
