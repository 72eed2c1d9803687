/*
 * System processes every Erlang node has and callers expect to reach:
 * `rex` (rpc:sbcast; rpc:call / block_call through the rex server) and
 * `net_kernel` (is_auth, as net_adm:ping asks), plus erpc spawn requests
 * (rpc:call on OTP 23+ is erpc: SPAWN_REQUEST of erpc:execute_call/4).
 * Functions come from apply.h; anything else is answered like an
 * undefined function on a BEAM node.
 */
#ifndef LOCKERD_REX_H
#define LOCKERD_REX_H

#include "../node/node.h"
#include "apply.h"

struct rex;

/* Spawns rex and net_kernel on n and takes spawn requests; NULL on failure. */
struct rex *rex_new(struct node *n, struct apply *a);
void rex_free(struct rex *r);

#endif
