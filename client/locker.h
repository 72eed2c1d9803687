/*
 * lockerd client library: a C program joins a locker cluster as a hidden
 * Erlang node of its own (no daemon needed) and takes the same locks and
 * names as the BEAM code beside it.
 *
 * Model. lkc_open() starts a node in a background thread: it registers
 * with the local epmd as a hidden node, connects to the masters on demand
 * and runs the locker coordinator (quorum votes and commits, exactly as
 * the Erlang `locker` library does them). Every request is a task on that
 * thread; blocking calls wait for their task, *_async calls get a callback.
 *
 * Threads. An lkc handle is thread-safe: any thread may call any function
 * except lkc_close concurrently. Callbacks (async completions and service
 * handlers) run on the client's own thread: they must not block and must
 * not call blocking lkc functions (async ones and lkc_reply are fine).
 *
 * Terms. Keys, values and requests are Erlang terms in external format
 * (with or without the leading 131 version byte), compared by exact term
 * equality whatever their encoding. lkc_parse() builds one from Erlang
 * syntax ("{user, 42}", "<<\"job\">>"); lkc_format() prints one. Terms
 * the library hands out (lkc_parse, lkc_dirty_read, lkc_self,
 * lkc_service_pid, service callbacks) are canonical and start with 131.
 *
 * Errors. Every function returns 0 or a negative LKC_E* code;
 * lkc_strerror() gives its message. Functions taking `err` also fill it
 * with a human reason.
 */
#ifndef LOCKER_CLIENT_H
#define LOCKER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "nlock.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lkc_error {
    LKC_OK = 0,
    LKC_ENOQUORUM = -1001,  /* {error, no_quorum}: fewer than W masters agreed */
    LKC_ENOTFOUND = -1002,  /* no such key / name */
    LKC_ETIMEOUT = -1003,   /* no answer in time */
    LKC_EBADTERM = -1004,   /* a malformed term or term text */
    LKC_EINVAL = -1005,     /* a bad argument */
    LKC_ECONNECT = -1006,   /* epmd or the cluster cannot be reached */
    LKC_ECLOSED = -1007,    /* the handle is closing */
    LKC_ENOMEM = -1008,
    LKC_ENAMETAKEN = -1009, /* lkc_register: the name is held by someone else */
    LKC_EPROTO = -1010,     /* a peer answered something unexpected */
    LKC_ENOTOKEN = -1011,   /* lkc_lock_fenced: a master is not lockerd (no tokens) */
    LKC_EREMOTE = -1012,    /* lkc_rpc: the function raised (the result says how) */
};

const char *lkc_strerror(int code);

typedef struct lkc lkc;

struct lkc_opts {
    const char *node_name;  /* "alive@host", or "alive" (short host name
                               appended); NULL: "lkc<pid>" for the first
                               handle of a process, then "lkc<pid>_<n>" */
    const char *cookie;     /* NULL: ~/.erlang.cookie */
    const char *masters;    /* comma-separated node names (required) */
    const char *replicas;   /* comma-separated, or NULL */
    int w;                  /* write quorum; 0: majority of masters */
    int net_ticktime;       /* seconds; 0: 60 */
    const char *log_level;  /* "debug" | "info" | "warn" | "error" | NULL (warn);
                               the level is process-wide (log lines go to stderr) */
    const char *listen_addr; /* distribution listen address; NULL: all */
    /* TLS distribution, for clusters running erl -proto_dist inet_tls
     * (README "TLS distribution"); tls 0 = plain TCP. One certificate
     * serves both directions; peers are verified both ways, and a node
     * dialled must present a certificate naming its host. */
    int tls;
    const char *tls_cert;    /* PEM certificate (chain) */
    const char *tls_key;     /* PEM private key */
    const char *tls_ca;      /* PEM CA certificates peers must chain to */
    const char *tls_verify;  /* "peer" (NULL), "chain" (no host name check),
                                "none" (no checks) */
};

/* For programs taking erl-like options: -proto_dist inet_tls|inet_tcp,
 * --tls-cert, --tls-key, --tls-ca, --tls-verify MODE set the TLS fields of
 * o (val is kept, not copied). 1: opt was one of them, 0: it was not,
 * LKC_EINVAL: a bad value. val NULL only asks whether opt is one (1/0). */
int lkc_tls_option(struct lkc_opts *o, const char *opt, const char *val);

/* Start the client node. On failure *out is NULL and err says why
 * (LKC_ECONNECT: epmd is not running on this host). */
int lkc_open(const struct lkc_opts *o, lkc **out, char *err, size_t errlen);
/* Stop it: services are unregistered (their names released), pending
 * calls finish with LKC_ECLOSED, the node leaves epmd. NULL is fine. */
void lkc_close(lkc *c);
const char *lkc_node_name(const lkc *c);

/* ---- terms ---- */

typedef struct {
    const unsigned char *data;
    size_t len;
} lkc_term;

/* A term owned by the caller: free with lkc_buf_free. */
typedef struct {
    unsigned char *data;
    size_t len;
} lkc_buf;

void lkc_buf_free(lkc_buf *b);
static inline lkc_term lkc_term_of(const lkc_buf *b) { lkc_term t = {b->data, b->len}; return t; }
/* Erlang syntax -> term. On LKC_EBADTERM err shows the text with a caret
 * under the offending character. */
int lkc_parse(const char *text, lkc_buf *out, char *err, size_t errlen);
/* Term -> Erlang syntax (NUL-terminated in out->data; out->len excludes
 * the NUL). */
int lkc_format(lkc_term t, lkc_buf *out);
/* This client's pid: the usual lock value ("the holder is this node"). */
lkc_term lkc_self(const lkc *c);

/* ---- locks (PROTOCOL section 5) ---- */

struct lkc_result {
    int w;        /* the write quorum used */
    int votes;    /* masters that voted ok */
    int commits;  /* masters (and replicas for release) that applied it */
    uint64_t token; /* lkc_lock_fenced: the fencing token; 0 otherwise */
};

/* lease_ms / timeout_ms <= 0: the library defaults (2000 / 5000). */
int lkc_lock(lkc *c, lkc_term key, lkc_term value, int64_t lease_ms, int64_t timeout_ms,
             struct lkc_result *res);
int lkc_update(lkc *c, lkc_term key, lkc_term value, lkc_term new_value, int64_t timeout_ms,
               struct lkc_result *res);
/* lkc_lock with a fencing token (res->token): it strictly increases across
 * successive holders of the key, also across restarts of any masters, so
 * a resource that remembers the largest token it accepted can refuse a
 * holder whose lease ended without its knowing. Needs W commits, and every
 * master to be lockerd (with a state file): LKC_ENOTOKEN otherwise. */
int lkc_lock_fenced(lkc *c, lkc_term key, lkc_term value, int64_t lease_ms,
                    int64_t timeout_ms, struct lkc_result *res);
int lkc_extend_lease(lkc *c, lkc_term key, lkc_term value, int64_t lease_ms,
                     int64_t timeout_ms);
int lkc_release(lkc *c, lkc_term key, lkc_term value, int64_t timeout_ms,
                struct lkc_result *res);
/* The value of key as the first reachable master holds it (LKC_ENOTFOUND
 * if none does). *value must be freed with lkc_buf_free. */
int lkc_dirty_read(lkc *c, lkc_term key, lkc_buf *value);
/*
 * erpc:call(Node, Mod, Fun, Args, Timeout) from this client: Fun runs on
 * node (any node of the cluster, BEAM or lockerd) and *result (free with
 * lkc_buf_free) is what it returned: 0. When it raised, LKC_EREMOTE and
 * *result is {Class, Reason} (Class: error, exit or throw); a function
 * the node does not have raises {error, undef}. LKC_ETIMEOUT after
 * timeout_ms (<= 0: 5000), LKC_ECONNECT when the node cannot be reached
 * or went down, LKC_EPROTO when it refused the request. Up to 16
 * arguments; a blocking call (not from a callback).
 */
int lkc_rpc(lkc *c, const char *node, const char *mod, const char *fun, const lkc_term *args,
            size_t nargs, int64_t timeout_ms, lkc_buf *result);
/* Why this client's last attempt to connect to node failed, when it did
 * and no connection to node has come up since: the reason as text (epmd
 * lookup, connect, TLS, handshake; a peer that closes right after our
 * challenge reply has a different cookie). 0, or LKC_ENOTFOUND. */
int lkc_node_failure(lkc *c, const char *node, char *why, size_t len);
/* Block until key is released or expires on a master (0, also when it is
 * not held at all), or LKC_ETIMEOUT. */
int lkc_wait_for_release(lkc *c, lkc_term key, int64_t timeout_ms);
/* Meta on every node of the cluster (comma-separated names): 0 when every
 * node answered ok; this handle then uses the new masters / W too. */
int lkc_set_nodes(lkc *c, const char *cluster, const char *masters, const char *replicas);
int lkc_set_w(lkc *c, const char *cluster, int w);

/* Asynchronous variants: done(ud, rc, res) runs on the client thread. */
typedef void (*lkc_done_fn)(void *ud, int rc, const struct lkc_result *res);
int lkc_lock_async(lkc *c, lkc_term key, lkc_term value, int64_t lease_ms, int64_t timeout_ms,
                   lkc_done_fn done, void *ud);
int lkc_extend_lease_async(lkc *c, lkc_term key, lkc_term value, int64_t lease_ms,
                           int64_t timeout_ms, lkc_done_fn done, void *ud);
int lkc_release_async(lkc *c, lkc_term key, lkc_term value, int64_t timeout_ms,
                      lkc_done_fn done, void *ud);

/* ---- raw calls to one master (client/rawcall.c) ---- */

/*
 * gen_server:call({locker, Node}, Request, Timeout) without the quorum
 * coordinator: Request (any term) goes to one node as is and its reply
 * comes back. For pipelined bulk work (loading leases with `write`,
 * measuring a master): many calls may be in flight at once, and a call
 * started from a callback is written straight into the connection's
 * output, so replies to one read batch produce the next batch of requests
 * in one send.
 *
 * done(ud, rc, reply): rc 0 and the reply term (131 + canonical bytes,
 * valid during the callback only); or LKC_ETIMEOUT (no reply within
 * timeout_ms, <= 0: 5000), LKC_ECONNECT (node unreachable, its connection
 * lost, or no process registered as locker there), LKC_ECLOSED (lkc_close).
 * Returns 0 when the call was started (done then runs exactly once, on the
 * client thread), or an error (LKC_EBADTERM, LKC_EINVAL, LKC_ECLOSED,
 * LKC_ENOMEM; and from a client callback also LKC_ECONNECT) and done never
 * runs. At most LKC_CALL_MAX calls are in flight per handle (LKC_ENOMEM
 * beyond).
 */
#define LKC_CALL_MAX 262144
typedef void (*lkc_reply_fn)(void *ud, int rc, lkc_term reply);
int lkc_call_async(lkc *c, const char *node, lkc_term request, int64_t timeout_ms,
                   lkc_reply_fn done, void *ud);
/* Blocking form: *reply (free with lkc_buf_free) gets the reply term. */
int lkc_call_wait(lkc *c, const char *node, lkc_term request, int64_t timeout_ms, lkc_buf *reply);
/* A fresh reference of the client node (131 + canonical bytes), e.g. the
 * Tag of a write lock: make_ref() on the client. */
int lkc_make_ref(lkc *c, lkc_buf *out);

/* ---- named services (like Locker.Server + Locker.Registry) ---- */

typedef struct lkc_service lkc_service;
typedef struct lkc_call lkc_call;

struct lkc_service_ops {
    /* '$gen_call': answer with lkc_reply(call, ...) exactly once, now or
     * later from any thread. May be NULL (calls then get no answer). */
    void (*on_call)(void *ud, lkc_call *call, lkc_term request);
    void (*on_cast)(void *ud, lkc_term request);  /* '$gen_cast' */
    void (*on_info)(void *ud, lkc_term msg);      /* any other message */
    /* The lease could not be extended (no quorum): the name may now
     * belong to someone else. The service stays registered locally but
     * no longer owns the name; unregister it. */
    void (*on_lease_lost)(void *ud, int rc);
};

/* Lock name -> a pid of this node (lease lease_ms, extended every
 * lease_ms - 500 ms; <= 0: 30000, at least 1000), route messages for that
 * pid to ops. LKC_ENAMETAKEN: a master holds the name for someone else;
 * LKC_ENOQUORUM / LKC_ECONNECT: too few masters answered. */
int lkc_register(lkc *c, lkc_term name, int64_t lease_ms, const struct lkc_service_ops *ops,
                 void *ud, lkc_service **out);
/* The call is consumed (freed) unless LKC_EBADTERM / LKC_EINVAL is
 * returned. Do not use calls after lkc_close: it frees unanswered ones. */
int lkc_reply(lkc_call *call, lkc_term reply);
/* Release the name and stop routing; s is freed whatever the result. From
 * a client callback (e.g. on_lease_lost) it does not block: it starts the
 * release and returns 0. */
int lkc_unregister(lkc_service *s);
lkc_term lkc_service_pid(const lkc_service *s);

/* ---- administration (client/admin.c; used by lockerctl) ---- */

/* The meta this handle coordinates with: masters and replicas as
 * comma-separated names (malloc'd: free() them) and W. */
int lkc_get_meta(lkc *c, char **masters, char **replicas, int *w);

struct lkc_node_reply {
    char *node;       /* the node asked */
    int rc;           /* 0: it answered, reply holds the term (with 131);
                         LKC_ECONNECT: unreachable or went down before the
                         deadline; LKC_ETIMEOUT: no answer within timeout */
    lkc_buf reply;
};

/* gen_server:multi_call(Nodes, locker, Request, Timeout): request sent at
 * once to every node of `nodes` (comma-separated); one entry per node, in
 * list order. 0 when the call ran, whatever each node did; free *out with
 * lkc_node_replies_free. timeout_ms <= 0: 5000. */
int lkc_multi_call(lkc *c, const char *nodes, lkc_term request, int64_t timeout_ms,
                   struct lkc_node_reply **out, size_t *n);
void lkc_node_replies_free(struct lkc_node_reply *r, size_t n);

struct lkc_master_summary {
    char node[256];
    int rc;               /* as lkc_node_reply.rc; LKC_EPROTO: odd reply */
    int64_t write_locks;  /* counts from its get_debug_state (when rc == 0) */
    int64_t leases;
};

/* get_debug_state on every master at once: locker:summary() per master.
 * *out (free()) has one entry per master, in meta order. */
int lkc_summary(lkc *c, int64_t timeout_ms, struct lkc_master_summary **out, size_t *n);

#ifdef __cplusplus
}
#endif

#endif
