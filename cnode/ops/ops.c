/*
 * The metrics page and probes; see ops.h. Each family is written by one
 * small function reading one layer, in the order the README lists them.
 */
#include "ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../coord/coord.h"
#include "../core/log.h"
#include "../core/loop.h"
#include "../node/node.h"
#include "../repl/repl.h"
#include "../rpc/apply.h"
#include "../server/server.h"
#include "../store/store.h"
#include "endpoint.h"
#include "mx.h"
#include "proc.h"

struct ops {
    struct loop *loop;
    struct node *node;
    struct server *server;
    struct apply *apply;
    struct endpoint *ep;
    const char *version;
};

int ops_readiness(int64_t now, int64_t quiet_until, int alive, size_t connected,
                  size_t nmasters, int w, char *why, size_t cap)
{
    size_t need = w < 1 ? 1 : (size_t)w;
    if (need > nmasters)
        need = nmasters;
    if (!alive) {
        snprintf(why, cap, "not ready: the locker server is not running\n");
        return 0;
    }
    if (quiet_until > now) {
        snprintf(why, cap, "not ready: quiet period after a restart, %.1f s left\n",
                 (double)(quiet_until - now) / 1000.0);
        return 0;
    }
    if (connected < need) {
        snprintf(why, cap, "not ready: %zu of the %zu masters needed (W=%d of %zu) connected\n",
                 connected, need, w, nmasters);
        return 0;
    }
    snprintf(why, cap, "ready: %zu of %zu masters connected\n", connected, nmasters);
    return 1;
}

/* Masters this node can reach now: UP connections, and itself. lockerd
 * connects to peers on demand, so with dial set (a readiness probe) a
 * master not connected is dialled now: the probes that follow see it. */
static size_t masters_connected(const struct ops *o, size_t *nmasters, int dial)
{
    char *const *m = server_masters(o->server, nmasters);
    size_t up = 0;
    for (size_t i = 0; i < *nmasters; i++) {
        if (strcmp(m[i], node_name(o->node)) == 0) {
            up++;
            continue;
        }
        struct conn *c = conn_find(node_conns(o->node), m[i]);
        if (!c && dial)
            c = node_connect(o->node, m[i]);
        up += c && c->state == CONN_UP;
    }
    return up;
}

static int ready(const struct ops *o, char *why, size_t cap)
{
    size_t nm, up = masters_connected(o, &nm, 1);
    return ops_readiness(loop_now(o->loop), server_quiet_until(o->server),
                         server_alive(o->server), up, nm, server_w(o->server), why, cap);
}

/* ---- metric families ---- */

static void mx_store(struct mx *m, const struct ops *o)
{
    const struct store *st = server_store(o->server);
    mx_family(m, "lockerd_leases", "gauge", "Leases held in the store.");
    mx_sample(m, "lockerd_leases", (double)store_lease_count(st), NULL);
    mx_family(m, "lockerd_write_locks", "gauge", "Pending write locks (votes granted).");
    mx_sample(m, "lockerd_write_locks", (double)store_wlock_count(st), NULL);
    mx_family(m, "lockerd_waiters", "gauge", "wait_for and wait_for_release callers waiting.");
    mx_sample(m, "lockerd_waiters", (double)store_waiter_count(st), NULL);
    mx_family(m, "lockerd_store_bytes", "gauge", "Heap bytes the lease store holds.");
    mx_sample(m, "lockerd_store_bytes", (double)store_mem_bytes(st), NULL);
}

static int is_commit(const char *req)
{
    return !strcmp(req, "write") || !strcmp(req, "extend_lease") || !strcmp(req, "update") ||
           !strcmp(req, "release");
}

static void mx_calls(struct mx *m, const struct ops *o)
{
    const struct server_stats *st = server_stats(o->server);
    mx_family(m, "lockerd_calls_total", "counter",
              "Calls to the locker server, by request and result.");
    for (size_t i = 0; i < SERVER_REQ_KINDS; i++) {
        const char *req = server_request_name(i);
        int always = i == SERVER_REQ_UNKNOWN ? SERVER_RES_UNKNOWN : SERVER_RES_OK;
        for (int r = 0; req && r < SERVER_RESULTS; r++)
            if (st->calls[i][r] || r == always)
                mx_sample(m, "lockerd_calls_total", (double)st->calls[i][r], "request", req,
                          "result", server_result_name((enum server_result)r), NULL);
    }
    mx_family(m, "lockerd_votes_total", "counter",
              "Votes (get_write_lock) answered, by result: ok grants a write lock.");
    static const enum server_result vote_results[] = {
        SERVER_RES_OK, SERVER_RES_ALREADY_LOCKED, SERVER_RES_NOT_EXPECTED,
        SERVER_RES_RECOVERING, SERVER_RES_LIMIT};
    for (size_t r = 0; r < sizeof vote_results / sizeof vote_results[0]; r++)
        mx_sample(m, "lockerd_votes_total", (double)st->calls[0][vote_results[r]], "result",
                  server_result_name(vote_results[r]), NULL);
    mx_family(m, "lockerd_commits_total", "counter",
              "Commits (write, extend_lease, update, release) answered, by request and result.");
    for (size_t i = 0; i < SERVER_REQ_KINDS; i++) {
        const char *req = server_request_name(i);
        if (!req || !is_commit(req))
            continue;
        for (int r = 0; r < SERVER_RESULTS; r++)
            if (st->calls[i][r] || r == SERVER_RES_OK)
                mx_sample(m, "lockerd_commits_total", (double)st->calls[i][r], "request", req,
                          "result", server_result_name((enum server_result)r), NULL);
    }
}

static void mx_limits(struct mx *m, const struct ops *o)
{
    const struct server_stats *st = server_stats(o->server);
    const struct conn_stats *cs = conn_set_stats(node_conns(o->node));
    mx_family(m, "lockerd_limit_refusals_total", "counter",
              "Requests and connections refused at a configured limit, by limit.");
    for (size_t i = 0; i < SERVER_LIMITS; i++)
        mx_sample(m, "lockerd_limit_refusals_total", (double)st->refused[i], "limit",
                  server_limit_name(i), NULL);
    mx_sample(m, "lockerd_limit_refusals_total", (double)cs->refused[CONN_REFUSE_CONNS],
              "limit", "conns", NULL);
    mx_sample(m, "lockerd_limit_refusals_total", (double)cs->refused[CONN_REFUSE_HANDSHAKES],
              "limit", "handshakes", NULL);
    mx_sample(m, "lockerd_limit_refusals_total", (double)cs->refused[CONN_REFUSE_SOURCE],
              "limit", "handshakes_per_source", NULL);
}

static void mx_peers(struct mx *m, const struct ops *o)
{
    static const char *const names[] = {"epmd", "epmd", "connecting", "handshake", "up"};
    size_t n[CONN_CLOSED] = {0};
    struct conn_set *cs = node_conns(o->node);
    for (struct conn *c = conn_first(cs); c; c = c->next)
        if (!c->loopback && c->state < CONN_CLOSED)
            n[c->state]++;
    mx_family(m, "lockerd_peers", "gauge", "Distribution connections, by state.");
    mx_sample(m, "lockerd_peers", (double)(n[CONN_EPMD] + n[CONN_EPMD_REPLY]), "state",
              names[CONN_EPMD], NULL);
    for (int s = CONN_CONNECTING; s < CONN_CLOSED; s++)
        mx_sample(m, "lockerd_peers", (double)n[s], "state", names[s], NULL);
    const struct conn_stats *st = conn_set_stats(cs);
    mx_family(m, "lockerd_handshake_failures_total", "counter",
              "Connections closed during the distribution handshake, by reason.");
    for (int f = 0; f < CONN_HSF_N; f++)
        mx_sample(m, "lockerd_handshake_failures_total", (double)st->hs_failed[f], "reason",
                  conn_hs_fail_name((enum conn_hs_fail)f), NULL);
    mx_family(m, "lockerd_dist_received_bytes_total", "counter",
              "Bytes received on distribution connections.");
    mx_sample(m, "lockerd_dist_received_bytes_total", (double)st->bytes_in, NULL);
    mx_family(m, "lockerd_dist_sent_bytes_total", "counter",
              "Bytes sent on distribution connections.");
    mx_sample(m, "lockerd_dist_sent_bytes_total", (double)st->bytes_out, NULL);
}

static void backlog_sample(void *ud, const char *replica, size_t bytes)
{
    mx_sample(ud, "lockerd_replication_backlog_bytes", (double)bytes, "replica", replica, NULL);
}

static void mx_cluster(struct mx *m, const struct ops *o)
{
    mx_family(m, "lockerd_replication_backlog_bytes", "gauge",
              "Transaction-log bytes queued for a replica, not yet written to it.");
    repl_foreach_backlog(server_repl(o->server), backlog_sample, m);
    int64_t left = server_quiet_until(o->server) - loop_now(o->loop);
    mx_family(m, "lockerd_quiet_period_remaining_seconds", "gauge",
              "Time until votes on unknown keys are granted again after a restart.");
    mx_sample(m, "lockerd_quiet_period_remaining_seconds", left > 0 ? (double)left / 1000 : 0,
              NULL);
    size_t nm, up = masters_connected(o, &nm, 0);
    mx_family(m, "lockerd_masters", "gauge", "Masters in this node's meta data.");
    mx_sample(m, "lockerd_masters", (double)nm, NULL);
    mx_family(m, "lockerd_masters_connected", "gauge",
              "Masters reachable now (connected, or this node itself).");
    mx_sample(m, "lockerd_masters_connected", (double)up, NULL);
    mx_family(m, "lockerd_write_quorum", "gauge", "W, the votes a write needs.");
    mx_sample(m, "lockerd_write_quorum", (double)server_w(o->server), NULL);
    char why[160];
    mx_family(m, "lockerd_ready", "gauge", "1 when /readyz answers 200.");
    mx_sample(m, "lockerd_ready", ready(o, why, sizeof why), NULL);
}

static void mx_coord(struct mx *m, const struct ops *o)
{
    static const char *const ops[COORD_OPS] = {"lock", "update", "extend_lease", "release",
                                               "multi_call"};
    static const char *const outs[COORD_OUTCOMES] = {"ok", "no_quorum", "error"};
    const struct coord *c = apply_coord(o->apply);
    const struct coord_stats *st = coord_stats(c);
    mx_family(m, "lockerd_coordinator_operations_total", "counter",
              "Quorum operations lockerd coordinated (locker calls by rpc), by op and outcome.");
    for (int op = 0; op < COORD_OPS; op++)
        for (int r = 0; r < COORD_OUTCOMES; r++)
            mx_sample(m, "lockerd_coordinator_operations_total", (double)st->done[op][r], "op",
                      ops[op], "outcome", outs[r], NULL);
    mx_family(m, "lockerd_coordinator_pending", "gauge", "Coordinated operations in flight.");
    mx_sample(m, "lockerd_coordinator_pending", (double)coord_pending(c), NULL);
    mx_family(m, "lockerd_coordinator_duration_seconds", "histogram",
              "Time from start to result of a coordinated operation.");
    for (int op = 0; op < COORD_OPS; op++)
        mx_hist(m, "lockerd_coordinator_duration_seconds", &st->latency[op], 1e6, "op",
                ops[op]);
}

static void mx_process(struct mx *m, const struct ops *o)
{
    mx_family(m, "lockerd_loop_iteration_seconds", "histogram",
              "Work time of one event-loop iteration (its wait excluded).");
    mx_hist(m, "lockerd_loop_iteration_seconds", loop_iter_hist(o->loop), 1e6, NULL, NULL);
    struct proc_usage u;
    proc_usage_read(&u);
    static const struct {
        const char *name, *type, *help;
    } f[] = {
        {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes."},
        {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."},
        {"process_open_fds", "gauge", "Open file descriptors."},
        {"process_max_fds", "gauge", "Maximum number of open file descriptors."},
        {"process_cpu_seconds_total", "counter", "User and system CPU time in seconds."},
        {"process_start_time_seconds", "gauge", "Start time since the epoch in seconds."},
    };
    double v[] = {(double)u.rss_bytes, (double)u.vsize_bytes, (double)u.open_fds,
                  (double)u.max_fds,   u.cpu_seconds,         u.start_time};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (v[i] < 0)
            continue; /* not readable here: absent rather than wrong */
        mx_family(m, f[i].name, f[i].type, f[i].help);
        mx_sample(m, f[i].name, v[i], NULL);
    }
}

static void mx_self(struct mx *m, const struct ops *o)
{
    mx_family(m, "lockerd_info", "gauge", "Version and node name; the value is 1.");
    mx_sample(m, "lockerd_info", 1, "version", o->version, "node", node_name(o->node), NULL);
    static const int codes[] = {200, 400, 404, 405, 408, 431, 500, 503};
    mx_family(m, "lockerd_http_responses_total", "counter",
              "Responses of this metrics and health endpoint, by status code.");
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char code[8];
        snprintf(code, sizeof code, "%d", codes[i]);
        mx_sample(m, "lockerd_http_responses_total", (double)ep_count_of(o->ep, codes[i]),
                  "code", code, NULL);
    }
}

int ops_metrics(struct ops *o, struct buf *out)
{
    struct mx m = {.out = out};
    mx_self(&m, o);
    mx_store(&m, o);
    mx_calls(&m, o);
    mx_limits(&m, o);
    mx_peers(&m, o);
    mx_cluster(&m, o);
    mx_coord(&m, o);
    mx_process(&m, o);
    return m.err;
}

/* ---- the endpoint's handler ---- */

static int put_text(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

static int ops_serve(void *ud, const struct http_req *r, struct buf *body, const char **ctype)
{
    struct ops *o = ud;
    if (!strcmp(r->path, "/metrics")) {
        *ctype = MX_CONTENT_TYPE;
        return ops_metrics(o, body) ? 500 : 200;
    }
    if (!strcmp(r->path, "/healthz"))
        return put_text(body, "ok\n") ? 500 : 200;
    if (!strcmp(r->path, "/readyz")) {
        char why[160];
        int ok = ready(o, why, sizeof why);
        return put_text(body, why) ? 500 : ok ? 200 : 503;
    }
    put_text(body, "not found: try /metrics, /healthz, /readyz\n");
    return 404;
}

struct ops *ops_new(struct loop *l, struct node *n, struct server *s, struct apply *ap,
                    const struct ops_cfg *cfg, char *err, size_t errlen)
{
    struct ops *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *o = (struct ops){.loop = l, .node = n, .server = s, .apply = ap, .version = cfg->version};
    if (!(o->ep = ep_new(l, cfg->listen, ops_serve, o, err, errlen))) {
        free(o);
        return NULL;
    }
    log_info("metrics and health on http://%s/metrics, /healthz, /readyz", ep_address(o->ep));
    return o;
}

void ops_free(struct ops *o)
{
    if (!o)
        return;
    ep_free(o->ep);
    free(o);
}

const char *ops_address(const struct ops *o) { return ep_address(o->ep); }
