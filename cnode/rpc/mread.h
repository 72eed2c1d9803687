/*
 * mread: locker:master_dirty_read/1 on a node that is not a master, which
 * the library answers with rpc:call(RandomMaster, locker, dirty_read,
 * [Key]). lockerd makes that call itself, the way erpc:call does, so BEAM
 * and lockerd masters answer alike, and returns what rpc:call would:
 * the master's {ok, Value} | {error, not_found}, or {badrpc, Reason}.
 *
 * Model. One unnamed process of the node sends SPAWN_REQUEST {29, ReqId,
 * Self, Self, {erpc, execute_call, 4}, [monitor]} + [Res, locker,
 * dirty_read, [Key]] and receives SPAWN_REPLY and MONITOR_P_EXIT. A read
 * ends with the exit reason ({Res, return, V}: V; {Res, exit, R}:
 * {badrpc, {'EXIT', R}}; {Res, error, R, Stack}: {badrpc, {'EXIT', {R,
 * Stack}}}), a refused spawn ({badrpc, Reason}), the connection going down
 * ({badrpc, nodedown}), or MREAD_TIMEOUT_MS of silence ({badrpc,
 * timeout}: rpc:call's own default is to wait for ever). Pending reads are
 * bounded (MREAD_MAX): beyond it a read answers {badrpc, system_limit}.
 */
#ifndef LOCKERD_MREAD_H
#define LOCKERD_MREAD_H

#include "../node/node.h"
#include "apply.h"

#define MREAD_TIMEOUT_MS 60000
#define MREAD_MAX 4096

struct mread;

struct mread *mread_new(struct node *n);
/* Pending reads end with done(ud, -ECANCELED, {}). NULL ok. */
void mread_free(struct mread *m);
/* Read key (one term) on master. done runs exactly once, later (never from
 * inside this call), with APPLY_RETURN and the value rpc:call returns. */
int mread_start(struct mread *m, const char *master, struct term key, apply_done_fn done,
                void *ud);

#endif
