/*
 * Operations: the metrics page and the health probes of a running lockerd,
 * served by the endpoint (endpoint.h) from what each layer already counts
 * (store sizes, connection states, server_stats, conn_stats, coord_stats,
 * the loop's iteration histogram, the replication backlog, procfs).
 *
 *   GET /metrics  Prometheus text format (names: README "Operating lockerd")
 *   GET /healthz  200 "ok" while the process serves its loop
 *   GET /readyz   200 when not in a quiet period, the locker server is
 *                 alive and at least a quorum of the masters it knows is
 *                 connected (itself included when it is one); else 503,
 *                 the body saying why
 *
 * The page is built at each scrape; nothing here runs otherwise.
 */
#ifndef LOCKERD_OPS_H
#define LOCKERD_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"

struct loop;
struct node;
struct server;
struct apply;
struct ops;

struct ops_cfg {
    const char *listen;   /* ADDR:PORT */
    const char *version;
};

struct ops *ops_new(struct loop *l, struct node *n, struct server *s, struct apply *ap,
                    const struct ops_cfg *cfg, char *err, size_t errlen);
void ops_free(struct ops *o); /* NULL ok */
const char *ops_address(const struct ops *o);

/* The readiness rule (pure): 1 ready, 0 not, with the reason in why.
 * need = min(w, nmasters) masters must be connected; no masters, nothing
 * needed. */
int ops_readiness(int64_t now, int64_t quiet_until, int alive, size_t connected,
                  size_t nmasters, int w, char *why, size_t cap);

/* The metrics page (exposed for tests that build a node in-process). */
int ops_metrics(struct ops *o, struct buf *out);

#endif
