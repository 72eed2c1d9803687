/*
 * System processes every Erlang node has and callers expect to reach:
 * `rex` (rpc:sbcast, and rpc calls through the rex server) and
 * `net_kernel` (is_auth, as net_adm:ping asks), plus the answer to
 * spawn requests (erpc) lockerd does not carry out.
 */
#ifndef LOCKERD_REX_H
#define LOCKERD_REX_H

#include "../node/node.h"

struct rex;

/* Spawns rex and net_kernel on n; NULL on failure. */
struct rex *rex_new(struct node *n);
void rex_free(struct rex *r);

#endif
