/*
 * Internals of the client library (not installed): the handle, the
 * command queue between user threads and the client thread, and the entry
 * points the library's files share (lkc__ prefix).
 *
 * Model. One background thread runs the event loop that owns the node, the
 * coordinator (cproc), the rpc process and the services. User threads never
 * touch those: they build a command (struct lkc_cmd, embedded first in a
 * per-operation struct), post it with lkc__submit, and either wait for it
 * (blocking calls) or let its completion call the user's callback on the
 * client thread (*_async). A command posted from the client thread itself
 * runs at once, so callbacks may start async work without a round trip.
 *
 * Command life: submitted -> run (loop thread) -> in flight (its task is
 * pending, it is on c->flight) -> lkc__finish exactly once. finish either
 * wakes the waiting thread (which then frees the command) or calls the
 * callback and frees it. At close every in-flight command is cancelled
 * (ops->cancel must end in lkc__finish(LKC_ECLOSED)).
 *
 * Locking: c->mu protects the queue, `closing`, `users`, the calls list and
 * the done flags of blocking commands. Everything else belongs to the
 * client thread.
 */
#ifndef LOCKERD_CLIENT_LKC_INT_H
#define LOCKERD_CLIENT_LKC_INT_H

#include <pthread.h>

#include "../cnode/coord/cproc.h"
#include "../cnode/core/buf.h"
#include "../cnode/core/loop.h"
#include "../cnode/node/node.h"
#include "locker.h"

#define LKC_DEFAULT_LEASE 2000
#define LKC_DEFAULT_TIMEOUT 5000
#define LKC_ADMIN_TIMEOUT 5000   /* set_nodes / set_w multi-calls */
#define LKC_RPC_ATTEMPT_MS 3000  /* one dirty_read attempt on one master */
#define LKC_CLOSE_WAIT_MS 2500   /* names released at close, at most this long */
#define LKC_SVC_LEASE 30000      /* lkc_register's default, as Locker.Registry */
#define LKC_SVC_MIN_LEASE 1000
#define LKC_SVC_AHEAD 500        /* extend this long before the lease ends */
#define LKC_SVC_RELEASE_MS 2000  /* releasing a name at unregister */

struct lkc_cmd;

struct lkc_cmd_ops {
    void (*run)(struct lkc_cmd *k);     /* start on the loop thread */
    void (*cancel)(struct lkc_cmd *k);  /* in flight at close: must finish it */
    void (*destroy)(struct lkc_cmd *k); /* free (NULL-safe parts only) */
};

struct lkc_cmd {
    struct lkc_cmd *next;            /* queue */
    struct lkc_cmd *fprev, *fnext;   /* in-flight list */
    int in_flight;
    const struct lkc_cmd_ops *ops;
    struct lkc *c;
    int sync;                        /* a thread waits on `done` */
    int done, rc;
    struct lkc_result res;
    lkc_done_fn done_fn;             /* async completion, may be NULL */
    void *ud;
};

struct lkc_svc_list;
struct lkc_rpc;
struct lkc_raw;

struct lkc {
    /* Immutable after lkc_open. */
    char name[256];
    struct buf self;                 /* 131 + the coordinator's pid */
    pthread_t thread;
    int efd;                         /* eventfd: commands are queued */

    /* Client thread only. */
    struct loop *loop;
    struct node *node;
    struct cproc *cproc;
    struct loop_io wake_io;
    char **masters, **replicas;
    size_t nmasters, nreplicas;
    int w;
    struct lkc_cmd *flight;          /* in-flight commands */
    struct lkc_rpc *rpc;             /* dirty_read process (rpcget.c) */
    struct lkc_raw *raw;             /* raw calls process (rawcall.c) */
    struct lkc_service *services;    /* registered services (service.c) */
    struct loop_timer close_timer;
    int stopping;                    /* close: waiting for names to be released */

    /* Under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct lkc_cmd *qhead, *qtail;
    int closing;
    int users;                       /* threads inside a blocking call */
    struct lkc_call *calls;          /* calls not answered yet */
};

/* ---- client.c ---- */

/* 1 if the calling thread is the client thread. */
int lkc__on_loop(const struct lkc *c);
/* Post k (run now if on the client thread). LKC_ECLOSED if closing; the
 * caller still owns k then. */
int lkc__submit(struct lkc *c, struct lkc_cmd *k);
/* Submit k and wait for it: the rc of lkc__finish, or a submit error.
 * k is destroyed afterwards unless keep is set (the caller reads it). */
int lkc__call(struct lkc *c, struct lkc_cmd *k, int keep);
void lkc__flight_add(struct lkc_cmd *k);
void lkc__finish(struct lkc_cmd *k, int rc);
/* User term (with or without 131) -> exactly one canonical term in out. */
int lkc__canon(lkc_term t, struct buf *out);
/* Canonical span -> freshly allocated 131 + bytes. */
int lkc__out(struct term t, lkc_buf *out);
/* "a@h,b@h" -> node names; -EINVAL for a name without '@'. */
int lkc__split_nodes(const char *s, char ***out, size_t *n);
void lkc__free_nodes(char **v, size_t n);
/* -ENOLCK etc. -> LKC_E*. */
int lkc__map_rc(int rc);
/* Close steps, called from service.c when the last name is released. */
void lkc__stop(struct lkc *c);

/* ---- ops.c ---- */
/* The coordinator meta of this handle (spans valid until set_nodes). */
void lkc__meta(const struct lkc *c, struct coord_meta *m);

/* ---- rpcget.c ---- */
int lkc__rpc_new(struct lkc *c);
void lkc__rpc_free(struct lkc *c);
/* Connection events: reads waiting on a lost peer move on. */
void lkc__rpc_conn(struct lkc *c, struct conn *conn, int up);

/* ---- rawcall.c ---- */
int lkc__raw_new(struct lkc *c);
void lkc__raw_free(struct lkc *c);
/* Connection events: calls waiting on a lost peer fail (LKC_ECONNECT). */
void lkc__raw_conn(struct lkc *c, struct conn *conn, int up);
/* Close: every call in flight ends with LKC_ECLOSED. */
void lkc__raw_close_all(struct lkc *c);

/* ---- service.c ---- */
/* Start releasing every name; returns how many are still pending. */
size_t lkc__svc_close_all(struct lkc *c);
/* Names not released within LKC_CLOSE_WAIT_MS: drop them. */
void lkc__svc_abandon_all(struct lkc *c);
/* After the loop stopped: free calls never answered. */
void lkc__calls_free_all(struct lkc *c);

#endif
