/*
 * holders: release on holder exit (--release-on-exit).
 *
 * Model. For every lease whose value is a pid of another node, the server
 * watches that pid: a MONITOR_P from the locker process to the pid, with a
 * reference of ours, one per key. When the monitor fires with any reason
 * but noconnection, the holder is gone and the server deletes the lease as
 * a release. A lost connection to the holder's node is not an exit: the
 * watch is kept, marked lost, and its monitor is sent again when the node
 * is connected again (the BEAM answers noproc at once for a process that
 * died meanwhile, which then releases the lease). A holder behind a
 * partition may be alive, so only the lease's expiry ends it then.
 *
 * Entries are found by key (a write replaces the key's watch, a release
 * drops it) and by monitor reference (the exit signal). Both indexes are
 * chained hash tables over the entries' own bytes. The number of entries
 * is bounded (max); entries whose lease ended by expiry are removed lazily:
 * on their exit signal, or by holders_sweep() when the table is full.
 *
 * Pure bookkeeping plus the sends: no timers, no store access.
 */
#ifndef LOCKERD_HOLDERS_H
#define LOCKERD_HOLDERS_H

#include <stddef.h>

#include "../core/buf.h"
#include "../node/node.h"

struct holders;

/* max: most watched keys (> 0). NULL on ENOMEM. */
struct holders *holders_new(struct node *n, size_t max);
void holders_free(struct holders *h); /* NULL ok; sends nothing */

/* key (canonical) now holds val (canonical): watch val when it is a pid of
 * another node, dropping the key's previous watch (demonitored). `from` is
 * the watching process (the locker pid). 0 (also when nothing is watched),
 * -ENOSPC when full (see holders_sweep), -ENOMEM. */
int holders_watch(struct holders *h, struct term from, struct term key, struct term val);
/* The key's lease is gone: stop watching it. */
void holders_unwatch(struct holders *h, struct term from, struct term key);

/* A MONITOR_P_EXIT for ref. Returns 1 when a watched holder exited (reason
 * other than noconnection): its key and pid are copied into key_out and
 * pid_out and the watch is gone. 0 otherwise (unknown ref, or noconnection:
 * the watch is kept for the link's return). */
int holders_down(struct holders *h, struct term ref, struct term reason, struct buf *key_out,
                 struct buf *pid_out);

/* A connection to peer came up or went down. */
void holders_conn(struct holders *h, struct term from, const char *peer, int up);

/* Drop every entry for which still(ud, key, pid) returns 0 (its lease
 * ended or changed hands); returns how many went. */
typedef int (*holders_still_fn)(void *ud, struct term key, struct term pid);
size_t holders_sweep(struct holders *h, struct term from, holders_still_fn still, void *ud);

/* Drop everything; demonitor: also tell the holders' nodes. */
void holders_clear(struct holders *h, struct term from, int demonitor);
size_t holders_count(const struct holders *h);

#endif
