/*
 * Waiters belong to their caller: wait_for / wait_for_release waiters are
 * dropped, and their --max-waiters slots freed, when lockerd learns that
 * nobody is left to answer.
 *
 * Model. Two events tell: the caller's node disconnecting (every waiter of
 * a pid of that node goes at once, unless another connection to the node
 * is up), and a DEMONITOR_P for the locker process (gen_server:call
 * demonitors when it returns, times out or its process exits: the waiter
 * whose tag ends with that monitor's reference has no caller any more).
 * Demonitors arrive after every call, so they are only noted (a bounded
 * list of reference hashes, while any waiter exists) and swept in one pass
 * over the waiters every WAITOWN_SWEEP_MS; a full list is swept at once.
 *
 * Waiter ctx format (server.c): Len:32 Pid Len:32 Tag, or WAIT_INTERNAL
 * (0xffffffff) for rpc waits, which apply.c drops itself.
 */
#ifndef LOCKERD_WAITOWN_H
#define LOCKERD_WAITOWN_H

#include <stddef.h>
#include <stdint.h>

#include "../node/node.h"
#include "../store/store.h"

#define WAITOWN_SWEEP_MS 500
#define WAITOWN_MAX_REFS 65536

struct waitown;

/* Subscribes to n's connection events and demonitors; st borrowed. */
struct waitown *waitown_new(struct node *n, struct store *st);
void waitown_free(struct waitown *w);
/* The server started again with a fresh store (server_start). */
void waitown_set_store(struct waitown *w, struct store *st);

/* ---- pure parts, for tests ---- */
/* A waiter ctx's pid and tag; -EINVAL for an internal or bad ctx. */
int waitown_ctx(const void *ctx, size_t len, struct term *pid, struct term *tag);
/* 1 if tag is ref, or a list whose tail is ref ([alias | Ref]). */
int waitown_tag_has_ref(struct term tag, struct term ref);

#endif
