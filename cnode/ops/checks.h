/*
 * Start-up checks of the cluster configuration that catch a newcomer's
 * typos: a master whose own name is not in --masters (it would not count
 * its own vote in its quorum, and the others would not ask it), and
 * --masters / --replicas hosts that do not resolve (every connection to
 * them would fail, quietly, forever). Warnings only: lockerd still starts.
 */
#ifndef LOCKERD_CHECKS_H
#define LOCKERD_CHECKS_H

#include <stddef.h>

/* 0 if host resolves, else -errno-like; the default resolves by
 * getaddrinfo (blocking: start-up only). */
typedef int (*checks_resolve_fn)(void *ud, const char *host);
int checks_resolve_default(void *ud, const char *host);

/* Log a warning for each problem; returns how many were found. self is
 * this node's name; a node list may hold self. */
int checks_cluster(const char *self, char *const *masters, size_t nmasters,
                   char *const *replicas, size_t nreplicas, checks_resolve_fn resolve,
                   void *ud);

#endif
