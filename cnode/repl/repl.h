/*
 * Replication: the transaction log of accepted writes and its push to
 * replicas.
 *
 * Model. The server appends each accepted write as an entry term
 * ({write,K,V,Len}, {extend_lease,K,V,Len}, {update,K,V}, {release,K}).
 * Every push interval (or on push_trans_log) the log becomes one message
 * {'$gen_cast', {trans_log, ThisNode, [Entries...]}} queued to every
 * replica other than this node, oldest first, and the log is cleared. Each
 * replica has its own backlog, so a replica that is down gets everything
 * once it is back, in order; lockerd connects out to it, retrying with
 * exponential backoff (100 ms doubling to 5 s). A backlog is bounded in
 * bytes: when a new batch does not fit, the oldest batches are dropped and
 * a log line says how many entries that replica lost.
 *
 * The server may also push right after logging a write (its eager push,
 * the default): the entry is then queued to each connected replica ahead
 * of the commit reply, so the reply never overtakes it.
 */
#ifndef LOCKERD_REPL_H
#define LOCKERD_REPL_H

#include <stddef.h>
#include <stdint.h>

#include "../node/node.h"

struct repl_cfg {
    int64_t push_interval_ms; /* 100 */
    size_t max_backlog;       /* bytes per replica */
};

struct repl;

struct repl *repl_new(struct node *n, struct term from_pid, const struct repl_cfg *cfg);
void repl_free(struct repl *r);
/* Replace the replica set (node names). */
int repl_set_replicas(struct repl *r, char *const *names, size_t count);
/* Append one entry (its term bytes). */
int repl_log(struct repl *r, struct term entry);
/* Push now (the periodic job, or push_trans_log). */
void repl_push(struct repl *r);
size_t repl_log_len(const struct repl *r);
/* Each replica's backlog (bytes not yet written to its connection), for
 * the metrics endpoint. */
typedef void (*repl_backlog_fn)(void *ud, const char *replica, size_t bytes);
void repl_foreach_backlog(const struct repl *r, repl_backlog_fn fn, void *ud);
/* Forget the entries logged since the last push (the server restarted). */
void repl_drop_log(struct repl *r);

#endif
