/*
 * cproc: the coordinator as a process of this node. It puts coord's calls
 * on the wire the way gen_server:multi_call does (a monitor on {locker,
 * Node} plus a '$gen_call' whose tag is a reference of ours) and feeds
 * replies, noproc monitors, closed connections and deadlines back into
 * coord. Used by lockerd itself (rpc callers asking lockerd to lock) and by
 * the client library.
 *
 * Reply tags are references that carry the call id: ids {id & 0x3ffff,
 * id >> 18, magic | id >> 50}, so a reply is matched with no table.
 * After each reply the monitor is removed (DEMONITOR_P), as gen_server
 * does, so peers never accumulate monitors.
 */
#ifndef LOCKERD_CPROC_H
#define LOCKERD_CPROC_H

#include "../node/node.h"
#include "coord.h"

struct cproc;

struct cproc *cproc_new(struct node *n); /* NULL on ENOMEM */
void cproc_free(struct cproc *p);        /* pending tasks dropped, no callbacks */
/* coord_start with the loop's clock. */
int cproc_start(struct cproc *p, const struct coord_args *a, const struct coord_meta *m,
                coord_done_fn done, void *ud, uint64_t *task_id);
struct coord *cproc_coord(struct cproc *p);
struct term cproc_pid(const struct cproc *p);

#endif
