/*
 * apply: the functions lockerd carries out for rpc callers (erpc spawn
 * requests and rex calls), with the results a BEAM node running `locker`
 * would give.
 *
 * Model. apply_start() looks the MFA up in a fixed table. Local reads
 * (dirty_read, get_meta, summary, get_debug_state, erlang:node/whereis)
 * finish at once; functions that must wait (coordinated writes, waits) are
 * started as tasks and finish later. Either way `done` runs exactly once,
 * with rc APPLY_RETURN and the return value, APPLY_EXIT / APPLY_ERROR and
 * the reason the function exits or fails with on a BEAM node running the
 * library (e.g. a wait_for that times out exits with {timeout, {gen_server,
 * call, [...]}}; set_nodes with a node that did not answer fails with
 * {badmatch, {Replies, BadNodes}}), or -ENOENT for an undefined function
 * (the caller reports undef), or -EINVAL for arguments the function does
 * not accept (reported as function_clause).
 */
#ifndef LOCKERD_APPLY_H
#define LOCKERD_APPLY_H

#include "../node/node.h"
#include "../server/server.h"

enum { APPLY_RETURN = 0, APPLY_EXIT = 1, APPLY_ERROR = 2 };
typedef void (*apply_done_fn)(void *ud, int rc, struct term value);

struct apply;

struct apply *apply_new(struct node *n, struct server *s);
void apply_free(struct apply *a);
/* The coordinator locker:lock/... by rpc runs on (its metrics). */
struct coord;
const struct coord *apply_coord(const struct apply *a);
/* args: a proper list term (any encoding). */
void apply_start(struct apply *a, const char *mod, const char *fun, struct term args,
                 apply_done_fn done, void *ud);
/* Waits (wait_for / wait_for_release) whose `ud` satisfies pred end now:
 * their server waiters are dropped and done runs with -ECANCELED. For a
 * caller that is gone (its node disconnected). Returns how many. */
size_t apply_cancel_waits(struct apply *a, int (*pred)(void *ud, void *arg), void *arg);

#endif
