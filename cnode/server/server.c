/*
 * The locker server; see server.h and docs/protocol.md sections 2-4.
 *
 * Request path: REG_SEND payload -> gen_call envelope -> request tuple
 * (atom op + canonical argument spans) -> handler, in one walk over the
 * payload: the node hands it over unchecked (node_spawn_raw) and the
 * envelope parser and the request decoder validate what they take, the
 * decoder canonicalising each argument in the same pass. Handlers operate
 * on the store, encode the reply into s->reply and, for writes, one
 * transaction-log entry into s->entry. Arguments of the wrong type get
 * {error, {unknown_request, Req}} like unknown requests; a request that is
 * not a well-formed term is dropped with a warning (never echoed back):
 * the server never dies of bad input.
 *
 * Limits (--max-leases, --max-memory, --max-waiters) are checked where a
 * lease or waiter would be created, never where an acknowledged write is
 * applied: a key without a lease gets the vote {error, {limit, leases}}
 * (or memory) instead of ok, which the coordinator counts as a refusal,
 * so the lock fails cleanly (no_quorum) before anything is written. A
 * pending write lock reserves a lease, so a commit we voted for is always
 * applied; a commit we did not vote for (no write lock of its tag) that
 * would add a key over the limit is refused the same way, so a peer
 * sending bare writes cannot grow the table either. Replicated entries
 * are always applied: the masters acknowledged them. Refusals are logged
 * at most once per second per limit, with a count.
 *
 * Safe restarts (quiet.c): a restarted master answers {error, recovering}
 * to votes on keys it has no lease or write lock for, until every lease
 * it may have granted before the restart has ended; every commit first
 * records its lease length in the state file when it is a new longest.
 *
 * Time: before each request the store's clock is set to the loop's cached
 * "now", so logically expired leases are invisible at once; reclamation
 * runs in a loop hook with a bounded budget per iteration.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../ei_glue/enc.h"
#include "../core/clock.h"
#include "../core/log.h"
#include "../repl/repl.h"
#include "../store/store.h"
#include "holders.h"
#include "quiet.h"
#include "waitown.h"
#include "request.h"

#define MAX_ARGS SERVER_REQ_MAX_ARGS
#define NOT_FOUND_ATOM "\x77\x09not_found"

struct server {
    struct node *node;
    struct loop *loop;
    struct store *store;
    struct repl *repl;
    struct term pid;
    struct server_cfg cfg;
    int w;
    char **masters, **replicas;
    size_t nmasters, nreplicas;
    struct buf args;         /* request arguments the decoder rewrote */
    struct buf key;          /* server_wait's key, canonical */
    struct buf reply, entry, ctx;
    struct loop_timer expiry_timer;
    struct loop_timer push_timer;
    struct loop_timer quiet_timer;
    struct quiet *quiet;
    server_wake_fn waker;
    void *waker_ud;
    struct conn_ratelim limit_rl[3];
    /* The three periodic jobs (lease expiry, write-lock expiry, log push)
     * as get_debug_state shows them: {interval, Ref}, cancellable by
     * timer:cancel/1 over rpc. job_ref[i] spans point into job_refs. */
    struct buf job_refs;
    struct term job_ref[SERVER_JOBS];
    int push_cancelled;      /* no push at all until push_trans_log */
    struct server_stats stats; /* metrics (stats.c) */
    int dead;                /* killed (erlang:exit/2) until start_link */
    struct holders *holders; /* --release-on-exit: monitored lease holders */
    struct term fence_pid;   /* lockerd_fence: fenced votes and commits */
    uint64_t fence;          /* fencing counter: epoch << 40 | sequence */
    struct conn_ratelim holder_rl;
    int64_t dead_until;      /* latest expiry the killed incarnation held */
    uint64_t holder_releases; /* leases released because their holder exited */
    int restarts;            /* start_link after a kill, in this process */
    struct waitown *own;     /* waiters dropped with their callers */
};

struct req {
    char op[64];
    uint32_t nargs;
    struct term args[MAX_ARGS];
    struct term whole;
};

/* ---- helpers ---- */

/* An argument as a handler stores or compares it. The decoder
 * (server_decode_request) validated and canonicalised every argument in
 * the pass that split the request, so this only takes it: the bytes of a
 * request are walked once. `slot` is not used. */
static inline int canon(struct server *s, int slot, struct term arg, struct term *out)
{
    (void)s;
    (void)slot;
    *out = arg;
    return 0;
}

static int arg_int(struct term raw, int64_t *v)
{
    size_t pos = 0;
    return term_get_int64(raw.p, raw.len, &pos, v);
}

/* A timeout: non-negative integer or 'infinity'. */
static int arg_timeout(struct term raw, int64_t now, int64_t *deadline)
{
    if (term_is_atom(raw.p, raw.len, 0, "infinity")) {
        *deadline = CLOCK_NEVER;
        return 0;
    }
    int64_t t;
    int rc = arg_int(raw, &t);
    if (rc || t < 0)
        return -EINVAL;
    *deadline = clock_add(now, t);
    return 0;
}

static int64_t now_ms(struct server *s) { return loop_now(s->loop); }

static int reply_ok(struct server *s) { return enc_atom(&s->reply, "ok"); }
static int reply_error(struct server *s, const char *why)
{
    return enc_atom_pair(&s->reply, "error", why);
}

/* Log the entry; with eager push a write's entry leaves for the replicas
 * now, so it is queued ahead of the reply to the caller (on the same
 * connection when the caller's node is a replica): a replica that gets
 * the commit reply has the entry already. A release is not pushed early:
 * its coordinator sends it to the replicas itself, and a pushed entry
 * racing ahead of that call would make the replica answer not_found where
 * the library's replica answers ok. It leaves with the next push, in
 * order. */
static int log_entry(struct server *s, int eager)
{
    int rc = repl_log(s->repl, (struct term){s->entry.data, (uint32_t)s->entry.len});
    if (!rc && eager && s->cfg.eager_push && !s->push_cancelled)
        repl_push(s->repl);
    return rc;
}

/* {Op, K, V, Len} / {update, K, V} / {release, K}; eager: may push now. */
static int log_kv_push(struct server *s, const char *op, struct term k, const struct term *v,
                       const int64_t *len, int eager)
{
    if (!s->nreplicas)
        return 0; /* the log keeps nothing without replicas: do not build it */
    buf_reset(&s->entry);
    int rc = enc_tuple(&s->entry, 2 + (v != NULL) + (len != NULL));
    if (!rc)
        rc = enc_atom(&s->entry, op);
    if (!rc)
        rc = enc_raw(&s->entry, k);
    if (!rc && v)
        rc = enc_raw(&s->entry, *v);
    if (!rc && len)
        rc = enc_long(&s->entry, *len);
    return rc ? rc : log_entry(s, eager);
}

static int log_kv(struct server *s, const char *op, struct term k, const struct term *v,
                  const int64_t *len)
{
    return log_kv_push(s, op, k, v, len, strcmp(op, "release") != 0);
}

/* ---- limits ---- */

enum { LIM_LEASES, LIM_MEMORY, LIM_WAITERS };
static const char *const limit_names[] = {"leases", "memory", "waiters"};

static void limit_log(struct server *s, int which, const char *what)
{
    uint32_t dropped;
    if (!conn_ratelim_pass(&s->limit_rl[which], now_ms(s), 1, &dropped))
        return;
    char more[64] = "";
    if (dropped)
        snprintf(more, sizeof more, "; %u earlier ones not logged", dropped);
    log_warn("%s: --max-%s reached (%zu leases, %zu write locks, %zu waiters, %zu store "
             "bytes%s)", what, limit_names[which], store_lease_count(s->store),
             store_wlock_count(s->store), store_waiter_count(s->store),
             store_mem_bytes(s->store), more);
}

/* The limit a new lease would break, or -1. */
static int lease_limit(struct server *s)
{
    if (s->cfg.max_leases &&
        store_lease_count(s->store) + store_wlock_count(s->store) >= s->cfg.max_leases)
        return LIM_LEASES;
    if (s->cfg.max_memory && store_mem_bytes(s->store) >= s->cfg.max_memory)
        return LIM_MEMORY;
    return -1;
}

/* {error, {limit, Which}} */
static int reply_limit(struct server *s, int which, const char *what)
{
    s->stats.refused[which]++;
    limit_log(s, which, what);
    int rc = enc_tuple(&s->reply, 2);
    if (!rc)
        rc = enc_atom(&s->reply, "error");
    return rc ? rc : enc_atom_pair(&s->reply, "limit", limit_names[which]);
}

static int waiter_limit(struct server *s)
{
    return s->cfg.max_waiters && store_waiter_count(s->store) >= s->cfg.max_waiters;
}

/* ---- calls ---- */

struct caller {
    struct conn *conn;
    struct gen_call g;
};

static int h_get_write_lock(struct server *s, struct caller *c, struct req *r)
{
    (void)c;
    struct term key, expected, tag, cur;
    if (canon(s, 0, r->args[0], &key) || canon(s, 1, r->args[1], &expected) ||
        canon(s, 2, r->args[2], &tag))
        return -EINVAL;
    if (store_wlock_get(s->store, key, &cur, NULL) == 0)
        return reply_error(s, "already_locked");
    struct term val;
    int held = store_lease_get(s->store, key, &val, NULL) == 0;
    struct term nf = {(const uint8_t *)NOT_FOUND_ATOM, 11};
    if (!held && quiet_active(s->quiet, now_ms(s)))
        return reply_error(s, "recovering");
    if ((held && term_eq(val, expected)) || (!held && term_eq(expected, nf))) {
        int lim = held ? -1 : lease_limit(s);
        if (lim >= 0)
            return reply_limit(s, lim, "vote for a new lease refused");
        int rc = store_wlock_add(s->store, key, tag, clock_add(now_ms(s), s->cfg.write_lock_ms));
        return rc ? rc : reply_ok(s);
    }
    return reply_error(s, "not_expected_value");
}

static int h_release_write_lock(struct server *s, struct caller *c, struct req *r)
{
    (void)c;
    struct term tag;
    if (canon(s, 2, r->args[0], &tag))
        return -EINVAL;
    store_wlock_drop_tag(s->store, tag);
    return reply_ok(s);
}

/* ---- release on holder exit (holders.h) ---- */

static int still_held(void *ud, struct term key, struct term pid)
{
    struct server *s = ud;
    struct term v;
    return store_lease_get(s->store, key, &v, NULL) == 0 && term_eq(v, pid);
}

/* key now holds val: a master with --release-on-exit watches a pid value. */
static void watch(struct server *s, struct term key, struct term val)
{
    if (!s->cfg.release_on_exit) {
        if (holders_count(s->holders))
            holders_unwatch(s->holders, s->pid, key);
        return;
    }
    if (!server_is_master(s))
        return;
    int rc = holders_watch(s->holders, s->pid, key, val);
    if (rc == -ENOSPC && holders_sweep(s->holders, s->pid, still_held, s))
        rc = holders_watch(s->holders, s->pid, key, val);
    uint32_t dropped;
    if (rc && conn_ratelim_pass(&s->holder_rl, now_ms(s), 1, &dropped))
        log_warn("a lease holder is not watched (%s, %zu watched, --max-monitors %zu): its "
                 "lease ends at its expiry only%s", strerror(-rc), holders_count(s->holders),
                 s->cfg.max_monitors, dropped ? " (more not logged)" : "");
}

static void unwatch(struct server *s, struct term key)
{
    if (holders_count(s->holders))
        holders_unwatch(s->holders, s->pid, key);
}

/* MONITOR_P_EXIT for one of our watches: the holder exited (not a lost
 * connection), so its lease goes as a release would (logged for the
 * replicas, release waiters woken). */
static void holder_exit(struct server *s, const struct ctrl *m)
{
    struct buf key, pid;
    buf_init(&key);
    buf_init(&pid);
    if (holders_down(s->holders, m->ref, m->reason, &key, &pid)) {
        struct term k = {key.data, (uint32_t)key.len}, p = {pid.data, (uint32_t)pid.len};
        store_advance(s->store, now_ms(s), 0);
        if (still_held(s, k, p) && store_lease_delete(s->store, k) == 0) {
            s->holder_releases++;
            /* No coordinator tells the replicas of this one: push it now. */
            if (log_kv_push(s, "release", k, NULL, NULL, 1))
                log_error("release on holder exit: the log entry for the replicas was lost");
        }
    }
    buf_free(&key);
    buf_free(&pid);
}

static void server_on_conn(void *ud, struct conn *c, int up)
{
    struct server *s = ud;
    if (c->peer[0] && holders_count(s->holders))
        holders_conn(s->holders, s->pid, c->peer, up);
}

static int watch_lease(void *ud, struct term key, struct term val, int64_t expire_at)
{
    (void)expire_at;
    watch(ud, key, val);
    return 0;
}

void server_set_release_on_exit(struct server *s, int on)
{
    s->cfg.release_on_exit = on != 0;
    if (!on) {
        holders_clear(s->holders, s->pid, 1);
    } else if (!s->dead) {
        store_advance(s->store, now_ms(s), 0);
        store_foreach_lease(s->store, watch_lease, s);
    }
    log_info("release on holder exit %s", on ? "on" : "off");
}

size_t server_holder_count(const struct server *s) { return holders_count(s->holders); }
uint64_t server_holder_releases(const struct server *s) { return s->holder_releases; }

/* write and extend_lease: {Op, Tag, Key, Value, LeaseLength} */
static int put_lease(struct server *s, struct req *r, const char *op)
{
    struct term tag, key, val;
    int64_t len;
    if (canon(s, 2, r->args[0], &tag) || canon(s, 0, r->args[1], &key) ||
        canon(s, 1, r->args[2], &val) || arg_int(r->args[3], &len))
        return -EINVAL;
    if (len < 0)
        len = 0;
    /* Whether we voted or the key exists matters only over a limit: look
     * them up then, not on every commit (a lookup in a big table is a
     * cache miss or two). */
    int lim = lease_limit(s);
    struct term cur;
    if (lim >= 0 && ((store_wlock_get(s->store, key, &cur, NULL) == 0 && term_eq(cur, tag)) ||
                     store_lease_get(s->store, key, NULL, NULL) == 0))
        lim = -1;
    store_wlock_drop_tag(s->store, tag);
    if (lim >= 0)
        return reply_limit(s, lim, "commit of a new lease without our vote refused");
    quiet_note_lease(s->quiet, len);
    int rc = store_lease_put(s->store, key, val, clock_add(now_ms(s), len));
    if (!rc) {
        watch(s, key, val);
        rc = log_kv(s, op, key, &val, &len);
    }
    return rc ? rc : reply_ok(s);
}

static int h_write(struct server *s, struct caller *c, struct req *r)
{
    (void)c;
    return put_lease(s, r, "write");
}

static int h_extend_lease(struct server *s, struct caller *c, struct req *r)
{
    (void)c;
    return put_lease(s, r, "extend_lease");
}

static int h_update(struct server *s, struct caller *c, struct req *r)
{
    (void)c;
    struct term tag, key, val;
    if (canon(s, 2, r->args[0], &tag) || canon(s, 0, r->args[1], &key) ||
        canon(s, 1, r->args[2], &val))
        return -EINVAL;
    store_wlock_drop_tag(s->store, tag);
    if (store_lease_update(s->store, key, val) == 0) /* absent: expired meanwhile */
        watch(s, key, val);
    int rc = log_kv(s, "update", key, &val, NULL);
    return rc ? rc : reply_ok(s);
}

static int h_release(struct server *s, struct caller *c, struct req *r)
{
    (void)c;
    struct term key, val, tag, cur;
    if (canon(s, 0, r->args[0], &key) || canon(s, 1, r->args[1], &val) ||
        canon(s, 2, r->args[2], &tag))
        return -EINVAL;
    /* The tag is dropped on every path: its coordinator is done with it. */
    store_wlock_drop_tag(s->store, tag);
    if (store_lease_get(s->store, key, &cur, NULL) != 0)
        return reply_error(s, "not_found");
    if (!term_eq(cur, val))
        return reply_error(s, "not_owner");
    store_lease_delete(s->store, key);
    unwatch(s, key);
    int rc = log_kv(s, "release", key, NULL, NULL);
    return rc ? rc : reply_ok(s);
}

/* Waiter ctx: Len:32 Pid Len:32 Tag (the caller's encodings). */
static int add_waiter(struct server *s, struct caller *c, struct term key,
                      enum store_wait_kind kind, int64_t deadline)
{
    if (!c)
        return -EAGAIN; /* evaluated without a caller (rpc): cannot wait */
    if (waiter_limit(s))
        return reply_limit(s, LIM_WAITERS, "wait refused");
    buf_reset(&s->ctx);
    int rc = buf_put_u32(&s->ctx, c->g.from_pid.len);
    if (!rc)
        rc = enc_raw(&s->ctx, c->g.from_pid);
    if (!rc)
        rc = buf_put_u32(&s->ctx, c->g.tag.len);
    if (!rc)
        rc = enc_raw(&s->ctx, c->g.tag);
    if (!rc)
        rc = store_waiter_add(s->store, key, kind, deadline, s->ctx.data, s->ctx.len);
    return rc ? rc : 1; /* 1: no reply now */
}

static int h_wait_for(struct server *s, struct caller *c, struct req *r)
{
    struct term key, val;
    int64_t deadline;
    if (canon(s, 0, r->args[0], &key) || arg_timeout(r->args[1], now_ms(s), &deadline))
        return -EINVAL;
    if (store_lease_get(s->store, key, &val, NULL) == 0) {
        int rc = enc_tuple(&s->reply, 2);
        if (!rc)
            rc = enc_atom(&s->reply, "ok");
        return rc ? rc : enc_raw(&s->reply, val);
    }
    return add_waiter(s, c, key, STORE_WAIT_FOR, deadline);
}

static int h_wait_for_release(struct server *s, struct caller *c, struct req *r)
{
    struct term key, val;
    int64_t deadline;
    if (canon(s, 0, r->args[0], &key) || arg_timeout(r->args[1], now_ms(s), &deadline))
        return -EINVAL;
    /* Not held (any more): it is released, say so rather than let the
     * caller wait out its timeout for an event that already happened. */
    if (store_lease_get(s->store, key, &val, NULL) != 0)
        return enc_atom_pair(&s->reply, "ok", "released");
    return add_waiter(s, c, key, STORE_WAIT_RELEASE, deadline);
}

/* {dirty_read, Key}: the local table, as locker:dirty_read/1 reads it. */
static int h_dirty_read(struct server *s, struct caller *c, struct req *r)
{
    (void)c;
    struct term key, val;
    if (canon(s, 0, r->args[0], &key))
        return -EINVAL;
    if (store_lease_get(s->store, key, &val, NULL) != 0)
        return reply_error(s, "not_found");
    int rc = enc_tuple(&s->reply, 2);
    if (!rc)
        rc = enc_atom(&s->reply, "ok");
    return rc ? rc : enc_raw(&s->reply, val);
}

/* ---- cluster changes: who made them, and whether a quorum is left ---- */

/* Who sent a request, for the log: its node, or "an rpc call". */
static const char *sender(const struct caller *c)
{
    return c && c->conn ? c->conn->peer : "an rpc call";
}

/* A warning when W masters' votes cannot be had or are not a majority
 * (two disjoint groups could then both lock the same key). */
static void warn_quorum(const struct server *s, const char *who)
{
    if ((size_t)s->w > s->nmasters)
        log_warn("write quorum %d exceeds the %zu masters (set by %s): no lock can be taken "
                 "until the masters or W change", s->w, s->nmasters, who);
    else if ((size_t)s->w * 2 <= s->nmasters)
        log_warn("write quorum %d is not a majority of the %zu masters (set by %s): two "
                 "groups of masters can grant the same lock", s->w, s->nmasters, who);
}

/* "a@h, b@h, ... (N)" for a log line; at most a few names. */
static const char *names_txt(char *buf, size_t cap, char *const *v, size_t n)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && i < 5 && o + 1 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", v[i]);
    if (n > 5 && o + 1 < cap)
        snprintf(buf + o, cap - o, ", ... (%zu)", n);
    return o || n ? buf : "none";
}

static int h_set_w(struct server *s, struct caller *c, struct req *r)
{
    int64_t w;
    if (arg_int(r->args[0], &w) || w < 1 || w > 1000000)
        return -EINVAL;
    int old = s->w;
    s->w = (int)w;
    log_info("write quorum set by %s: %d -> %d (%zu masters)", sender(c), old, s->w,
             s->nmasters);
    warn_quorum(s, sender(c));
    return reply_ok(s);
}

/* ---- meta ---- */

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, deduplicated copy (atoms of UTF-8 names order as their bytes). */
static int names_set(char *const *in, size_t n, char ***out, size_t *count)
{
    char **v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = strdup(in[i]))) {
            free_names(v, i);
            return -ENOMEM;
        }
    qsort(v, n, sizeof *v, cmp_names);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && strcmp(v[k - 1], v[i]) == 0)
            free(v[i]);
        else
            v[k++] = v[i];
    }
    *out = v;
    *count = k;
    return 0;
}

/* A list of atoms into a NULL-terminated array of names. */
static int arg_names(struct term raw, char ***out, size_t *count)
{
    size_t pos = 0;
    uint32_t n;
    if (term_get_list(raw.p, raw.len, &pos, &n) || n > 4096)
        return -EINVAL;
    char **v = calloc(n + 1, sizeof *v);
    if (!v)
        return -ENOMEM;
    char name[CTRL_NAME_MAX];
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        rc = term_get_atom(raw.p, raw.len, &pos, name, sizeof name);
        if (!rc && !(v[i] = strdup(name)))
            rc = -ENOMEM;
    }
    if (!rc && n && term_peek(raw.p, raw.len, pos) != TT_NIL)
        rc = -EINVAL; /* improper list */
    if (rc) {
        free_names(v, n);
        return rc;
    }
    *out = v;
    *count = n;
    return 0;
}

static int set_meta(struct server *s, char *const *m, size_t nm, char *const *r, size_t nr)
{
    char **mm, **rr;
    size_t cm, cr;
    if (names_set(m, nm, &mm, &cm))
        return -ENOMEM;
    if (names_set(r, nr, &rr, &cr)) {
        free_names(mm, cm);
        return -ENOMEM;
    }
    free_names(s->masters, s->nmasters);
    free_names(s->replicas, s->nreplicas);
    s->masters = mm;
    s->nmasters = cm;
    s->replicas = rr;
    s->nreplicas = cr;
    return repl_set_replicas(s->repl, rr, cr);
}

static int h_set_nodes(struct server *s, struct caller *c, struct req *r)
{
    char **m, **rp;
    size_t nm, nr;
    if (arg_names(r->args[0], &m, &nm))
        return -EINVAL;
    if (arg_names(r->args[1], &rp, &nr)) {
        free_names(m, nm);
        return -EINVAL;
    }
    char was[320], now[320];
    names_txt(was, sizeof was, s->masters, s->nmasters);
    int rc = set_meta(s, m, nm, rp, nr);
    free_names(m, nm);
    free_names(rp, nr);
    if (!rc) {
        log_info("nodes set by %s: masters [%s] -> [%s], %zu replicas", sender(c), was,
                 names_txt(now, sizeof now, s->masters, s->nmasters), s->nreplicas);
        warn_quorum(s, sender(c));
    }
    return rc ? rc : reply_ok(s);
}

static int enc_names(struct buf *b, char *const *v, size_t n)
{
    int rc = n ? enc_list(b, (uint32_t)n) : 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = enc_atom(b, v[i]);
    return rc ? rc : enc_nil(b);
}

/* {Masters, Replicas, W}, as locker:get_meta/0 returns it. */
static int h_get_meta(struct server *s, struct caller *c, struct req *r)
{
    (void)c;
    (void)r;
    int rc = enc_tuple(&s->reply, 3);
    if (!rc)
        rc = enc_names(&s->reply, s->masters, s->nmasters);
    if (!rc)
        rc = enc_names(&s->reply, s->replicas, s->nreplicas);
    return rc ? rc : enc_long(&s->reply, s->w);
}

/* ---- debug state ---- */

/* ExpireAt as the reference reports it: whole seconds of wall-clock time.
 * A write lock's is the second it was taken + its lifetime in seconds
 * (exact: its creation time is its expiry minus the lifetime). A lease's
 * is the second in which lockerd expires it; the reference computes
 * trunc(WriteSecond + Len / 1000), which is the same or one less when the
 * two fractions add up past a second (docs/protocol.md, D8). */
struct dbg {
    struct buf *b;
    uint32_t n;
    int64_t wall_offset;
    int64_t back_ms;         /* write locks: lifetime, to find the creation */
    int rc;
};

static int64_t wall_offset(struct server *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return wall - now_ms(s);
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

static int dbg_triple(struct dbg *d, struct term a, struct term b, int64_t expire_at)
{
    int rc = enc_tuple(d->b, 3);
    if (!rc)
        rc = enc_raw(d->b, a);
    if (!rc)
        rc = enc_raw(d->b, b);
    int64_t wall = expire_at + d->wall_offset - d->back_ms;
    int64_t secs = floor_div(wall, 1000) + d->back_ms / 1000;
    if (!rc)
        rc = enc_long(d->b, expire_at == CLOCK_NEVER ? expire_at : secs);
    d->rc = rc;
    d->n++;
    return rc;
}

static int dbg_lease(void *ud, struct term key, struct term val, int64_t expire_at)
{
    return dbg_triple(ud, key, val, expire_at);
}

static int dbg_wlock(void *ud, struct term key, struct term tag, int64_t expire_at)
{
    return dbg_triple(ud, key, tag, expire_at);
}

/* A list whose length is known only after the walk: header patched. */
static int dbg_list(struct server *s, int leases)
{
    struct dbg d = {.b = &s->reply, .wall_offset = wall_offset(s),
                    .back_ms = leases ? 0 : s->cfg.write_lock_ms};
    size_t mark = s->reply.len;
    int rc = enc_list(&s->reply, 0);
    if (rc)
        return rc;
    if (leases)
        store_foreach_lease(s->store, dbg_lease, &d);
    else
        store_foreach_wlock(s->store, dbg_wlock, &d);
    if (d.rc)
        return d.rc;
    if (d.n == 0)
        s->reply.len = mark;
    else
        put_u32(s->reply.data + mark + 1, d.n);
    return enc_nil(&s->reply);
}

static int h_get_debug_state(struct server *s, struct caller *c, struct req *r)
{
    (void)c;
    (void)r;
    int rc = enc_tuple(&s->reply, 6);
    if (!rc)
        rc = enc_atom(&s->reply, "ok");
    if (!rc)
        rc = dbg_list(s, 0);
    if (!rc)
        rc = dbg_list(s, 1);
    /* R1..R3: {interval, Ref}, the shape of timer:send_interval/2's
     * handles, which timer:cancel/1 by rpc accepts (server_cancel_job). */
    for (int i = 0; i < SERVER_JOBS && !rc; i++) {
        rc = enc_tuple(&s->reply, 2);
        if (!rc)
            rc = enc_atom(&s->reply, "interval");
        if (!rc)
            rc = enc_raw(&s->reply, s->job_ref[i]);
    }
    return rc;
}

static int h_summary(struct server *s, struct caller *c, struct req *r)
{
    (void)c;
    (void)r;
    int rc = enc_list(&s->reply, 2);
    const char *names[2] = {"write_locks", "leases"};
    size_t counts[2] = {store_wlock_count(s->store), store_lease_count(s->store)};
    for (int i = 0; i < 2 && !rc; i++) {
        rc = enc_tuple(&s->reply, 2);
        if (!rc)
            rc = enc_atom(&s->reply, names[i]);
        if (!rc)
            rc = enc_long(&s->reply, (int64_t)counts[i]);
    }
    return rc ? rc : enc_nil(&s->reply);
}

/* ---- dispatch ---- */

typedef int (*handler_fn)(struct server *, struct caller *, struct req *);

static const struct {
    const char *op;
    uint32_t nargs;
    handler_fn fn;
} handlers[] = {
    {"get_write_lock", 3, h_get_write_lock},
    {"release_write_lock", 1, h_release_write_lock},
    {"write", 4, h_write},
    {"update", 3, h_update},
    {"extend_lease", 4, h_extend_lease},
    {"release", 3, h_release},
    {"wait_for", 2, h_wait_for},
    {"wait_for_release", 2, h_wait_for_release},
    {"set_w", 1, h_set_w},
    {"set_nodes", 2, h_set_nodes},
    {"get_debug_state", 0, h_get_debug_state},
    {"get_meta", 0, h_get_meta},
    {"summary", 0, h_summary},
    {"dirty_read", 1, h_dirty_read},
};

/* Request term: an atom, or a tuple {Atom, Args...} (request.c). */
static int req_parse(struct server *s, struct term t, struct req *r)
{
    r->whole = t;
    r->nargs = 0;
    buf_reset(&s->args);
    return server_decode_request(t, r->op, sizeof r->op, r->args, &r->nargs, &s->args);
}

/* Run the handler for r; 1 = reply deferred, <0 = unknown/bad. */
static int dispatch(struct server *s, struct caller *c, struct term req)
{
    struct req r;
    buf_reset(&s->reply);
    int rc = req_parse(s, req, &r);
    size_t kind = SERVER_REQ_UNKNOWN;
    if (rc)
        rc = rc == -ENOMEM ? rc : -ENOENT;
    for (size_t i = 0; !rc && i < sizeof handlers / sizeof handlers[0]; i++)
        if (handlers[i].nargs == r.nargs && strcmp(handlers[i].op, r.op) == 0) {
            rc = handlers[i].fn(s, c, &r);
            kind = i;
            break;
        }
    if (kind == SERVER_REQ_UNKNOWN && !rc)
        rc = -ENOENT;
    server__count(&s->stats, kind, rc, &s->reply);
    return rc;
}

const char *server_request_name(size_t i)
{
    _Static_assert(sizeof handlers / sizeof handlers[0] < SERVER_REQ_KINDS, "request kinds");
    return i < sizeof handlers / sizeof handlers[0] ? handlers[i].op
           : i == SERVER_REQ_UNKNOWN                ? "unknown"
                                                    : NULL;
}

int server_eval(struct server *s, struct term req, struct buf *out)
{
    store_advance(s->store, now_ms(s), 0);
    int rc = dispatch(s, NULL, req);
    if (rc)
        return rc < 0 ? rc : -EAGAIN;
    return buf_append(out, s->reply.data, s->reply.len);
}

static void send_reply(struct server *s, struct caller *c)
{
    struct term reply = {s->reply.data, (uint32_t)s->reply.len};
    int rc = node_reply(s->node, c->conn, s->pid, c->g.from_pid, c->g.tag, reply);
    if (rc)
        log_warn("reply to %s not sent: %s", c->conn->peer, strerror(-rc));
}

/* The request arrived unchecked: is it exactly one well-formed term? */
static int whole_term(struct term t)
{
    size_t pos = 0;
    return term_skip(t.p, t.len, &pos) == 0 && pos == t.len;
}

static void handle_call(struct server *s, struct caller *c)
{
    int rc = dispatch(s, c, c->g.req);
    if (rc == 1)
        return; /* a waiter: the reply comes later or never */
    if (rc < 0 && !whole_term(c->g.req)) {
        /* Never echoed back: a malformed term makes a BEAM peer drop the
         * whole connection. */
        conn_warn(c->conn, "malformed request from %s (%u bytes) ignored", c->conn->peer,
                  c->g.req.len);
        return;
    }
    if (rc < 0) {
        int err = rc;
        if (err == -ENOMEM)
            log_error("out of memory serving a call from %s", c->conn->peer);
        else
            conn_warn(c->conn, "unknown or malformed request from %s (%u bytes)",
                      c->conn->peer, c->g.req.len);
        buf_reset(&s->reply);
        rc = enc_tuple(&s->reply, 2);
        if (!rc)
            rc = enc_atom(&s->reply, "error");
        if (!rc)
            rc = enc_tuple(&s->reply, 2);
        if (!rc)
            rc = enc_atom(&s->reply, err == -ENOMEM ? "out_of_memory" : "unknown_request");
        if (!rc)
            rc = enc_raw(&s->reply, c->g.req);
        if (rc)
            return;
    }
    send_reply(s, c);
}

/* ---- fencing tokens (the lockerd_fence process) ----
 *
 * The same votes and commits as `locker`, plus a counter: an ok vote is
 * {ok, Counter}; a commit carries the coordinator's token (one more than
 * the largest counter among W ok votes) as its last element and raises
 * the counter to it. The counter's high bits are the epoch this start
 * recorded in the state file (quiet.c), so after a restart that lost the
 * counter it still exceeds every token minted before; a commit whose
 * token carries a larger epoch records that epoch before it is
 * acknowledged. Only lockerd answers here: a BEAM master has no such
 * process, so its monitor says noproc and the coordinator reports tokens
 * unavailable instead of sending it a request it would crash on. */
#define FENCE_SEQ_BITS 40
/* A token may carry an epoch at most this far ahead of ours (masters
 * restart a few times, not millions): a peer cannot make this node record
 * an epoch that would use up the space of epochs. */
#define FENCE_EPOCH_LEAD 65536

static int fence_raise(struct server *s, struct term raw)
{
    int64_t token;
    if (arg_int(raw, &token) || token <= 0)
        return -EINVAL;
    if ((uint64_t)token <= s->fence)
        return 0;
    if ((token >> FENCE_SEQ_BITS) > (int64_t)(s->fence >> FENCE_SEQ_BITS) + FENCE_EPOCH_LEAD)
        return -ERANGE;
    int rc = quiet_note_epoch(s->quiet, token >> FENCE_SEQ_BITS);
    if (rc)
        return rc;
    s->fence = (uint64_t)token;
    return 0;
}

/* Run a fenced request; 0 with s->reply set, or <0 (unknown/bad). */
static int fence_dispatch(struct server *s, struct caller *c, struct req *r)
{
    if (!quiet_epoch(s->quiet))
        return reply_error(s, "fencing_needs_state_file");
    if (!strcmp(r->op, "get_write_lock") && r->nargs == 3) {
        int rc = h_get_write_lock(s, c, r);
        if (rc || !term_is_atom(s->reply.data, s->reply.len, 0, "ok"))
            return rc;
        buf_reset(&s->reply);
        rc = enc_tuple(&s->reply, 2);
        if (!rc)
            rc = enc_atom(&s->reply, "ok");
        return rc ? rc : enc_long(&s->reply, (int64_t)s->fence);
    }
    if (!strcmp(r->op, "release_write_lock") && r->nargs == 1)
        return h_release_write_lock(s, c, r);
    handler_fn fn = !strcmp(r->op, "write") && r->nargs == 5          ? h_write
                    : !strcmp(r->op, "extend_lease") && r->nargs == 5 ? h_extend_lease
                    : !strcmp(r->op, "update") && r->nargs == 4       ? h_update
                                                                      : NULL;
    if (!fn)
        return -ENOENT;
    int rc = fence_raise(s, r->args[r->nargs - 1]);
    if (rc == -EINVAL)
        return -ENOENT;
    if (rc == -ERANGE) {
        uint32_t dropped;
        if (conn_ratelim_pass(&s->holder_rl, now_ms(s), 1, &dropped))
            log_warn("fenced commit from %s refused: its token's epoch is far ahead of ours",
                     c->conn->peer);
        return reply_error(s, "bad_token");
    }
    if (rc) {
        /* Not acknowledged: the epoch it carries could not be recorded. */
        log_error("fenced commit refused: the state file cannot record its fencing epoch: %s",
                  strerror(-rc));
        return reply_error(s, "state_file");
    }
    r->nargs--;
    return fn(s, c, r);
}

static void fence_on_msg(void *ud, struct conn *c, const struct ctrl *m)
{
    struct server *s = ud;
    struct caller call = {.conn = c};
    store_advance(s->store, now_ms(s), 0);
    if (gen_call_parse_head(m->payload, m->from, &call.g)) {
        log_debug("lockerd_fence: unexpected message from %s ignored", c->peer);
        return;
    }
    struct req r;
    buf_reset(&s->reply);
    int rc = req_parse(s, call.g.req, &r);
    if (!rc)
        rc = fence_dispatch(s, &call, &r);
    if (rc < 0) {
        if (!whole_term(call.g.req))
            return;
        buf_reset(&s->reply);
        rc = enc_tuple(&s->reply, 2);
        if (!rc) rc = enc_atom(&s->reply, "error");
        if (!rc) rc = enc_tuple(&s->reply, 2);
        if (!rc) rc = enc_atom(&s->reply, "unknown_request");
        if (!rc) rc = enc_raw(&s->reply, call.g.req);
        if (rc)
            return;
    }
    node_reply(s->node, c, s->fence_pid, call.g.from_pid, call.g.tag,
               (struct term){s->reply.data, (uint32_t)s->reply.len});
}

uint64_t server_fence(const struct server *s) { return s->fence; }

/* ---- transaction log replay (replica side) ---- */

static int replay_entry(struct server *s, const uint8_t *p, size_t len, size_t *pos)
{
    size_t start = *pos;
    if (term_skip(p, len, pos))
        return -EINVAL;
    struct req r;
    if (req_parse(s, (struct term){p + start, (uint32_t)(*pos - start)}, &r))
        return -EINVAL;
    struct term key, val;
    int64_t l;
    if (r.nargs < 1 || canon(s, 0, r.args[0], &key))
        return -EINVAL;
    if ((strcmp(r.op, "write") == 0 || strcmp(r.op, "extend_lease") == 0) && r.nargs == 3) {
        if (canon(s, 1, r.args[1], &val) || arg_int(r.args[2], &l))
            return -EINVAL;
        int lim = store_lease_get(s->store, key, NULL, NULL) == 0 ? -1 : lease_limit(s);
        if (lim >= 0)
            limit_log(s, lim, "replicated lease applied over the limit");
        quiet_note_lease(s->quiet, l);
        int rc = store_lease_put(s->store, key, val, clock_add(now_ms(s), l < 0 ? 0 : l));
        if (!rc)
            watch(s, key, val);
        return rc;
    }
    if (strcmp(r.op, "update") == 0 && r.nargs == 2) {
        if (canon(s, 1, r.args[1], &val))
            return -EINVAL;
        if (store_lease_update(s->store, key, val) == 0)
            watch(s, key, val);
        return 0;
    }
    if (strcmp(r.op, "release") == 0 && r.nargs == 1) {
        store_lease_delete(s->store, key);
        unwatch(s, key);
        return 0;
    }
    return -EINVAL;
}

/* {trans_log, FromNode, Entries}: replayed in order. */
static void replay(struct server *s, struct conn *c, struct term cast)
{
    size_t pos = 0;
    uint32_t ar, n;
    if (term_get_tuple(cast.p, cast.len, &pos, &ar) || ar != 3 ||
        !term_is_atom(cast.p, cast.len, pos, "trans_log") || term_skip(cast.p, cast.len, &pos) ||
        term_skip(cast.p, cast.len, &pos)) {
        conn_warn(c, "unknown cast from %s ignored", c->peer);
        return;
    }
    if (term_peek(cast.p, cast.len, pos) == TT_NIL)
        return;
    if (term_get_list(cast.p, cast.len, &pos, &n)) {
        conn_warn(c, "trans_log from %s without an entry list ignored", c->peer);
        return;
    }
    size_t bad = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t before = pos;
        if (replay_entry(s, cast.p, cast.len, &pos)) {
            bad++;
            pos = before;
            if (term_skip(cast.p, cast.len, &pos))
                break;
        }
    }
    if (bad)
        conn_warn(c, "trans_log from %s: %zu malformed entries skipped", c->peer, bad);
}

/* ---- waking waiters ---- */

/* Internal waiters (rpc callers): ctx = WAIT_INTERNAL:32 | Id:64; the
 * waker finds its waiter by id, so a wake after it gave up finds nothing. */
#define WAIT_INTERNAL 0xffffffffu

int server_wait(struct server *s, struct term key_raw, int kind,
                int64_t deadline, uint64_t id)
{
    struct term key;
    size_t pos = 0;
    buf_reset(&s->key);
    if (term_canon_span(key_raw.p, key_raw.len, &pos, &s->key, &key) || pos != key_raw.len)
        return -EINVAL;
    if (waiter_limit(s)) {
        s->stats.refused[LIM_WAITERS]++;
        limit_log(s, LIM_WAITERS, "rpc wait refused");
        return -EBUSY;
    }
    uint8_t ctx[12];
    put_u32(ctx, WAIT_INTERNAL);
    put_u32(ctx + 4, (uint32_t)(id >> 32));
    put_u32(ctx + 8, (uint32_t)id);
    return store_waiter_add(s->store, key, (enum store_wait_kind)kind, deadline, ctx, sizeof ctx);
}

static int internal_id_is(void *ud, const void *ctx, size_t len)
{
    const uint8_t *p = ctx;
    uint64_t id = *(const uint64_t *)ud;
    return len == 12 && get_u32(p) == WAIT_INTERNAL &&
           ((uint64_t)get_u32(p + 4) << 32 | get_u32(p + 8)) == id;
}

void server_wait_cancel(struct server *s, uint64_t id)
{
    store_waiter_drop_if(s->store, internal_id_is, &id);
}

void server_set_waker(struct server *s, server_wake_fn fn, void *ud)
{
    s->waker = fn;
    s->waker_ud = ud;
}

static void on_wake(void *ud, enum store_wait_kind kind, const void *ctx, size_t ctxlen,
                    struct term value)
{
    struct server *s = ud;
    const uint8_t *p = ctx;
    if (ctxlen == 12 && get_u32(p) == WAIT_INTERNAL) {
        if (s->waker)
            s->waker(s->waker_ud, (uint64_t)get_u32(p + 4) << 32 | get_u32(p + 8), kind, value);
        return;
    }
    if (ctxlen < 8)
        return;
    struct term pid = {p + 4, get_u32(p)};
    if ((size_t)pid.len + 8 > ctxlen)
        return;
    struct term tag = {p + 8 + pid.len, get_u32(p + 4 + pid.len)};
    struct conn *c = node_conn_for(s->node, pid);
    if (!c)
        return; /* the caller's node is gone: nobody to tell */
    struct buf *b = &s->ctx;
    buf_reset(b);
    int rc;
    if (kind == STORE_WAIT_FOR) {
        rc = enc_tuple(b, 2);
        if (!rc)
            rc = enc_atom(b, "ok");
        if (!rc)
            rc = enc_raw(b, value);
    } else {
        rc = enc_atom_pair(b, "ok", "released");
    }
    if (!rc)
        node_reply(s->node, c, s->pid, pid, tag, (struct term){b->data, (uint32_t)b->len});
}

/* ---- the process ---- */

static void run_job(struct server *s, const char *job)
{
    if (strcmp(job, "push_trans_log") == 0) {
        repl_push(s->repl); /* also when the push job was cancelled */
    } else {
        /* expire_leases / expire_locks: expiry is exact already; reclaim
         * what is due now, bounded like the periodic hook. */
        store_advance(s->store, now_ms(s), (size_t)s->cfg.expire_budget);
    }
}

static void server_on_msg(void *ud, struct conn *c, const struct ctrl *m)
{
    struct server *s = ud;
    struct caller call = {.conn = c};
    if (m->op == CTRL_MONITOR_P_EXIT) {
        holder_exit(s, m);
        return;
    }
    store_advance(s->store, now_ms(s), 0);
    /* m->payload is unchecked (node_spawn_raw): every reader below
     * validates what it takes. */
    if (gen_call_parse_head(m->payload, m->from, &call.g) == 0) {
        handle_call(s, &call);
        return;
    }
    struct term cast;
    if (gen_cast_parse(m->payload, &cast) == 0) {
        replay(s, c, cast);
        return;
    }
    char atom[64];
    size_t pos = 0;
    if (term_get_atom(m->payload.p, m->payload.len, &pos, atom, sizeof atom) == 0 &&
        pos == m->payload.len &&
        (strcmp(atom, "expire_leases") == 0 || strcmp(atom, "expire_locks") == 0 ||
         strcmp(atom, "push_trans_log") == 0)) {
        run_job(s, atom);
        return;
    }
    log_debug("locker: unexpected message from %s ignored", c->peer);
}

/* Per iteration: reclaim expired entries within budget; keep a timer at
 * the next deadline so an idle loop wakes for it. */
static int server_expiry_hook(struct loop *l, void *ud)
{
    struct server *s = ud;
    size_t budget = (size_t)s->cfg.expire_budget;
    size_t done = store_advance(s->store, loop_now(l), budget);
    int64_t next = store_next_deadline(s->store);
    if (next != CLOCK_NEVER)
        loop_timer_arm(l, &s->expiry_timer, next);
    else
        loop_timer_stop(l, &s->expiry_timer);
    return done >= budget;
}

static void expiry_timer_fn(struct loop *l, struct loop_timer *t)
{
    (void)l;
    (void)t; /* the hook does the work; the timer only wakes the loop */
}

static void push_timer_fn(struct loop *l, struct loop_timer *t)
{
    struct server *s = t->ud;
    repl_push(s->repl);
    loop_timer_arm(l, t, loop_now(l) + s->cfg.push_interval_ms);
}

void server_set_eager_push(struct server *s, int on)
{
    s->cfg.eager_push = on != 0;
    log_info("eager push %s", on ? "on" : "off");
}

/* ---- the process's life: job handles, exit, start_link ---- */

/* Fresh handles for the three jobs (a new server incarnation). */
static int make_job_refs(struct server *s)
{
    buf_reset(&s->job_refs);
    size_t at[SERVER_JOBS + 1];
    for (int i = 0; i < SERVER_JOBS; i++) {
        at[i] = s->job_refs.len;
        int rc = node_make_ref(s->node, &s->job_refs);
        if (rc)
            return rc;
    }
    at[SERVER_JOBS] = s->job_refs.len;
    for (int i = 0; i < SERVER_JOBS; i++)
        s->job_ref[i] = (struct term){s->job_refs.data + at[i], (uint32_t)(at[i + 1] - at[i])};
    return 0;
}

int server_cancel_job(struct server *s, struct term ref)
{
    for (int i = 0; i < SERVER_JOBS; i++) {
        if (!s->job_ref[i].len || !term_eq(s->job_ref[i], ref))
            continue;
        if (i == SERVER_JOB_PUSH && !s->push_cancelled) {
            /* Every push stops, eager ones included: from now on the log
             * leaves only when a push_trans_log message asks for it. */
            s->push_cancelled = 1;
            loop_timer_stop(s->loop, &s->push_timer);
            log_info("transaction-log push cancelled (timer:cancel); push_trans_log pushes");
        }
        /* The expiry jobs: lockerd expires each lease at its own
         * millisecond without a job, so there is nothing to stop. */
        return 0;
    }
    return -ENOENT;
}

int server_alive(const struct server *s) { return !s->dead; }
const struct server_stats *server_stats(const struct server *s) { return &s->stats; }
int64_t server_quiet_until(const struct server *s) { return quiet_until(s->quiet); }
const struct repl *server_repl(const struct server *s) { return s->repl; }
struct term server_pid(const struct server *s) { return s->pid; }

struct latest {
    int64_t t;
};

static int latest_lease(void *ud, struct term k, struct term v, int64_t expire_at)
{
    (void)k;
    (void)v;
    struct latest *l = ud;
    if (expire_at > l->t)
        l->t = expire_at;
    return 0;
}

void server_kill(struct server *s, const char *why)
{
    if (s->dead)
        return;
    /* What the old incarnation granted or voted for may still stand on
     * the other masters; a later start refuses votes until the last of it
     * has ended (the safe-restart rule, but exact: we know what it was). */
    struct latest l = {0};
    store_foreach_lease(s->store, latest_lease, &l);
    store_foreach_wlock(s->store, latest_lease, &l);
    s->dead_until = l.t;
    holders_clear(s->holders, s->pid, 1);
    node_exit(s->node, s->fence_pid);
    node_exit(s->node, s->pid);
    s->dead = 1;
    loop_timer_stop(s->loop, &s->push_timer);
    log_warn("locker server killed (%s): %zu leases and %zu write locks dropped", why,
             store_lease_count(s->store), store_wlock_count(s->store));
}

static void server_on_msg(void *ud, struct conn *c, const struct ctrl *m);

/* Each start under a new pid keeps the old pids' slots (node_exit): a
 * bound, so a peer looping exit/start_link cannot grow the process table. */
#define SERVER_MAX_RESTARTS 10000

int server_start(struct server *s, int w, const int64_t *push_interval_ms)
{
    if (w > 0)
        s->w = w;
    if (push_interval_ms && *push_interval_ms > 0)
        s->cfg.push_interval_ms = *push_interval_ms;
    if (!s->dead) {
        if (push_interval_ms && *push_interval_ms > 0 && !s->push_cancelled)
            loop_timer_arm(s->loop, &s->push_timer, loop_now(s->loop) + s->cfg.push_interval_ms);
        return 0;
    }
    if (s->restarts >= SERVER_MAX_RESTARTS) {
        log_warn("locker server not started again: %d restarts in this process already",
                 s->restarts);
        return -EMLINK;
    }
    struct store_cfg sc = {.on_wake = on_wake, .ud = s};
    struct store *st = store_new(&sc);
    if (!st)
        return -ENOMEM;
    int rc = make_job_refs(s);
    if (!rc)
        rc = node_spawn_raw(s->node, "locker", server_on_msg, s, &s->pid);
    if (!rc && (rc = node_spawn_raw(s->node, "lockerd_fence", fence_on_msg, s, &s->fence_pid)))
        node_exit(s->node, s->pid);
    if (rc) {
        store_free(st);
        return rc;
    }
    store_free(s->store);
    s->store = st;
    waitown_set_store(s->own, st);
    repl_drop_log(s->repl);
    int64_t now = now_ms(s);
    quiet_set_until(s->quiet, s->dead_until > now ? s->dead_until : 0);
    if (s->dead_until > now)
        loop_timer_arm(s->loop, &s->quiet_timer, s->dead_until);
    s->dead = 0;
    s->restarts++;
    s->push_cancelled = 0;
    loop_timer_arm(s->loop, &s->push_timer, now + s->cfg.push_interval_ms);
    log_info("locker server started again (W=%d)%s", s->w,
               s->dead_until > now ? "; votes on unknown keys refused until what the last one "
                                     "granted has ended" : "");
    return 0;
}

/* Only to log the end of the quiet period on time. */
static void quiet_timer_fn(struct loop *l, struct loop_timer *t)
{
    struct server *s = t->ud;
    quiet_active(s->quiet, loop_now(l));
}

struct server *server_new(struct node *n, const struct server_cfg *cfg, char *err,
                          size_t errlen)
{
    struct server *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->node = n;
    s->loop = node_loop(n);
    s->cfg = *cfg;
    loop_timer_init(&s->expiry_timer, expiry_timer_fn, s);
    loop_timer_init(&s->push_timer, push_timer_fn, s);
    loop_timer_init(&s->quiet_timer, quiet_timer_fn, s);
    s->w = cfg->w;
    buf_init(&s->job_refs);
    buf_init(&s->args);
    buf_init(&s->key);
    buf_init(&s->reply);
    buf_init(&s->entry);
    buf_init(&s->ctx);
    struct store_cfg sc = {.on_wake = on_wake, .ud = s};
    if (!(s->store = store_new(&sc)) || make_job_refs(s) ||
        !(s->holders = holders_new(n, cfg->max_monitors ? cfg->max_monitors : 1000000)) ||
        node_subscribe(n, server_on_conn, s))
        goto oom;
    if (!(s->quiet = quiet_open(cfg->state_file, cfg->quiet_ms, cfg->write_lock_ms,
                                loop_now(s->loop), err, errlen)))
        goto fail;
    if (quiet_until(s->quiet) && loop_timer_arm(s->loop, &s->quiet_timer, quiet_until(s->quiet)))
        goto oom;
    /* Raw: the request path validates each payload while parsing it. */
    int rc = node_spawn_raw(n, "locker", server_on_msg, s, &s->pid);
    if (!rc)
        rc = node_spawn_raw(n, "lockerd_fence", fence_on_msg, s, &s->fence_pid);
    if (rc) {
        snprintf(err, errlen, "cannot register locker: %s", strerror(-rc));
        goto fail;
    }
    s->fence = (uint64_t)quiet_epoch(s->quiet) << FENCE_SEQ_BITS;
    struct repl_cfg rc_ = {.push_interval_ms = cfg->push_interval_ms,
                           .max_backlog = cfg->max_backlog};
    if (!(s->repl = repl_new(n, s->pid, &rc_)))
        goto oom;
    if (set_meta(s, cfg->masters, cfg->nmasters, cfg->replicas, cfg->nreplicas))
        goto oom;
    if (!(s->own = waitown_new(n, s->store)))
        goto oom;
    if (loop_hook_add(s->loop, server_expiry_hook, s) ||
        loop_timer_arm(s->loop, &s->push_timer, loop_now(s->loop) + cfg->push_interval_ms))
        goto oom;
    return s;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    server_free(s);
    return NULL;
}

void server_free(struct server *s)
{
    if (!s)
        return;
    loop_timer_stop(s->loop, &s->expiry_timer);
    loop_timer_stop(s->loop, &s->push_timer);
    loop_timer_stop(s->loop, &s->quiet_timer);
    quiet_free(s->quiet);
    holders_free(s->holders);
    waitown_free(s->own);
    repl_free(s->repl);
    store_free(s->store);
    free_names(s->masters, s->nmasters);
    free_names(s->replicas, s->nreplicas);
    buf_free(&s->args);
    buf_free(&s->key);
    buf_free(&s->reply);
    buf_free(&s->entry);
    buf_free(&s->ctx);
    buf_free(&s->job_refs);
    free(s);
}

int server_w(const struct server *s) { return s->w; }
char *const *server_masters(const struct server *s, size_t *count)
{
    *count = s->nmasters;
    return s->masters;
}
char *const *server_replicas(const struct server *s, size_t *count)
{
    *count = s->nreplicas;
    return s->replicas;
}
struct store *server_store(const struct server *s) { return s->store; }
const char *server_node_name(const struct server *s) { return node_name(s->node); }

int server_is_master(const struct server *s)
{
    for (size_t i = 0; i < s->nmasters; i++)
        if (strcmp(s->masters[i], node_name(s->node)) == 0)
            return 1;
    return 0;
}
