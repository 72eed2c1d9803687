/*
 * The locker server: the process registered as `locker` on this node.
 *
 * It answers every call of docs/protocol.md section 2 and the casts and plain
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
    int eager_push;          /* each write's log entry leaves for the replicas
                                before its commit reply (default on) */
    /* Release on holder exit (holders.h): a master monitors every pid a
     * lease holds and deletes the lease as a release when the process
     * exits (not on a lost connection). max_monitors: most watched keys
     * (0: 1,000,000). */
    int release_on_exit;
    size_t max_monitors;
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

/* The process's life as a test suite drives it by rpc (docs/protocol.md
 * section 5). The three periodic jobs have handles {interval, Ref}
 * (get_debug_state); server_cancel_job() stops the one whose Ref it is
 * (only the push job has anything to stop: pushes, eager included, then
 * leave only on a push_trans_log message): 0, or -ENOENT for a ref that is
 * not one of ours. server_kill() ends the `locker` process: its name and
 * pid stop receiving, its leases, write locks and log are gone at the
 * next start. server_start() is locker:start_link/1,4: on a live server
 * it sets W (w > 0) and the push interval (when given); on a killed one
 * it also starts a fresh, empty server under a new pid, refusing votes
 * on unknown keys until what the killed one held has ended. */
enum { SERVER_JOB_LEASES, SERVER_JOB_LOCKS, SERVER_JOB_PUSH, SERVER_JOBS };
int server_cancel_job(struct server *s, struct term ref);
void server_kill(struct server *s, const char *why);
int server_start(struct server *s, int w, const int64_t *push_interval_ms);
int server_alive(const struct server *s);

/* --release-on-exit at run time (lockerd:set_release_on_exit/1): on, the
 * pids already holding leases are watched too; off, every watch goes. */
void server_set_release_on_exit(struct server *s, int on);
size_t server_holder_count(const struct server *s);
/* The fencing counter (epoch << 40 | sequence; 0: no state file, no tokens). */
uint64_t server_fence(const struct server *s);
uint64_t server_holder_releases(const struct server *s);
struct term server_pid(const struct server *s);

/*
 * Counters for the metrics endpoint (stats.c). Every call the server
 * evaluates (from peers and from rpc) is counted by request (the handler
 * table's index, SERVER_REQ_UNKNOWN for anything else) and by the result
 * its reply carries; refusals by limit (leases, memory, waiters) also
 * count the ones rpc callers get.
 */
enum server_result {
    SERVER_RES_OK, SERVER_RES_ALREADY_LOCKED, SERVER_RES_NOT_EXPECTED, SERVER_RES_RECOVERING,
    SERVER_RES_LIMIT, SERVER_RES_NOT_FOUND, SERVER_RES_NOT_OWNER, SERVER_RES_UNKNOWN,
    SERVER_RES_WAITING, SERVER_RES_ERROR, SERVER_RESULTS
};
#define SERVER_REQ_KINDS 16
#define SERVER_REQ_UNKNOWN (SERVER_REQ_KINDS - 1)
#define SERVER_LIMITS 3
struct server_stats {
    uint64_t calls[SERVER_REQ_KINDS][SERVER_RESULTS];
    uint64_t refused[SERVER_LIMITS];
};
const struct server_stats *server_stats(const struct server *s);
/* Names for labels: request kind i (NULL past the table), result, limit. */
const char *server_request_name(size_t i);
const char *server_result_name(enum server_result r);
const char *server_limit_name(size_t i);
/* The result class of a handler's return code and reply term. */
enum server_result server_result_of(int rc, const uint8_t *reply, size_t len);
void server__count(struct server_stats *st, size_t req, int rc, const struct buf *reply);
/* Monotonic ms until which votes on unknown keys are refused (0: none). */
int64_t server_quiet_until(const struct server *s);
struct repl;
const struct repl *server_repl(const struct server *s);

#endif
