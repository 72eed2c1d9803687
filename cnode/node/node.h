/*
 * The node: lockerd's identity in the cluster and the router between the
 * distribution layer and the processes lockerd emulates.
 *
 * Model. The node owns the conn_set, the epmd registration (the socket
 * stays open for the node's lifetime) and a table of local "processes":
 * each has a pid of this node and optionally a registered name, and a
 * handler receiving every message sent to it (REG_SEND by name, SEND by
 * pid). Control signals are answered here so that callers never hang:
 * a monitor or link on a process that does not exist gets noproc at once,
 * UNLINK_ID is acked. Most processes never exit while the node runs, so
 * monitors on them need no bookkeeping: a peer learns of lockerd's end by
 * the connection closing. A process marked with node_track_monitors()
 * (a C service, whose pid holds a lease) keeps the monitors peers set on
 * it (bounded per process, dropped with their peer's connection) and
 * fires them with reason normal when it exits.
 *
 * Outgoing messages are encoded straight into the peer's output buffer and
 * leave in the connection layer's once-per-iteration flush.
 *
 * Allowlist (like net_kernel:allow/1): when cfg.allow is set, a handshake
 * from a node not on it is answered not_allowed and logged by name, and
 * lockerd never dials such a node itself.
 */
#ifndef LOCKERD_NODE_H
#define LOCKERD_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "../../ei_glue/call.h"
#include "../../ei_glue/ctrl.h"
#include "../core/loop.h"
#include "../dist/conn.h"

struct node;

/* A message for a local process: m->payload is the message term. */
typedef void (*node_msg_fn)(void *ud, struct conn *c, const struct ctrl *m);
/* Connection events for subscribers (replication, coordinator). */
typedef void (*node_conn_fn)(void *ud, struct conn *c, int up);

struct node_cfg {
    const char *name;         /* alive@host */
    const char *cookie;
    uint16_t port;            /* 0 = any */
    const char *listen_addr;  /* NULL = all addresses */
    size_t max_frame;
    size_t max_out;
    size_t max_conns;
    size_t max_handshakes;    /* incoming handshakes in progress; 0 = no cap */
    size_t max_hs_per_source; /* of those, from one address; 0 = no cap */
    size_t max_out_total;     /* output queued for all peers; 0 = no cap */
    int net_ticktime_s;
    int64_t handshake_ms;
    char *const *allow;       /* node names; NULL = every node (caller owns,
                               * must outlive the node) */
    size_t nallow;
    const struct tls_cfg *tls; /* TLS distribution when set and enabled; read
                                * by node_start only (its files loaded there) */
};

struct node *node_new(struct loop *l, const struct node_cfg *cfg, char *err, size_t errlen);
void node_free(struct node *n); /* closes connections, unregisters from epmd */
/* Listen and register with the local epmd (blocks up to a few seconds at
 * start-up only). */
int node_start(struct node *n, char *err, size_t errlen);

const char *node_name(const struct node *n);
uint32_t node_creation(const struct node *n);
uint16_t node_port(const struct node *n);
struct loop *node_loop(const struct node *n);
struct conn_set *node_conns(const struct node *n);

/* Spawn a local process; name may be NULL. *pid (canonical bytes, owned by
 * the node) identifies it. */
int node_spawn(struct node *n, const char *name, node_msg_fn fn, void *ud, struct term *pid);
/* Same, for a process that validates what it reads: its handler gets
 * SEND / REG_SEND payloads unchecked (m->payload may be malformed; drop
 * what does not parse, never echo unchecked bytes to a peer). Saves the
 * node's own walk over every payload on hot paths. */
int node_spawn_raw(struct node *n, const char *name, node_msg_fn fn, void *ud,
                   struct term *pid);
/* Hand a message to the local process m names (by name or pid); its
 * payload is validated first unless the process is raw. */
void node_deliver_local(struct node *n, struct conn *c, const struct ctrl *m);
int node_whereis(const struct node *n, const char *name, struct term *pid); /* 0 / -ENOENT */
/* The process pid exits: its name is freed, messages to it are dropped,
 * monitors on it get noproc. */
int node_exit(struct node *n, struct term pid);
/* Keep monitors on pid and fire them at its exit (see the model). */
int node_track_monitors(struct node *n, struct term pid);
/* 1 if pid is a live local process (spawned, not exited), else 0. */
int node_is_alive(const struct node *n, struct term pid);
/* A fresh pid of this node with no process behind it (short-lived rpc
 * executors: messages to it are dropped, as to a dead process). */
int node_make_pid(struct node *n, struct buf *out);
/* A fresh reference of this node (canonical bytes into out). */
int node_make_ref(struct node *n, struct buf *out);
int node_subscribe(struct node *n, node_conn_fn fn, void *ud);
void node_set_spawn_handler(struct node *n, node_msg_fn fn, void *ud);
/* DEMONITOR_P signals for a local process (m->from, m->ref set); one
 * handler, fn NULL to remove it. */
void node_set_demonitor_handler(struct node *n, node_msg_fn fn, void *ud);

/* The connection to a node: existing (any state), or started now. NULL if
 * it cannot be started (bad name, limit). */
struct conn *node_connect(struct node *n, const char *peer);
/* Why the last connection this node dialled to peer failed before it came
 * up (epmd lookup, connect, TLS, handshake: the text logged), if it failed
 * since the last connection to peer that came up. 0 and the text in why,
 * or -ENOENT. A few peers are remembered, the oldest forgotten first. */
int node_last_failure(const struct node *n, const char *peer, char *why, size_t len);
/* 1 if the allowlist admits peer (always, when there is none). */
int node_allowed(const struct node *n, const char *peer);
/* The UP connection carrying messages to the owner of pid, or NULL. */
struct conn *node_conn_for(struct node *n, struct term pid);

/*
 * Message sends. Each writes a whole frame into c's output or nothing.
 * `msg` is the message term's bytes (no 131). 0 or -errno.
 */
int node_send(struct node *n, struct conn *c, struct term to_pid, struct term msg);
int node_reg_send(struct node *n, struct conn *c, struct term from_pid, const char *to_name,
                  struct term msg);
/* gen_server reply {Tag, Reply} to a caller: by alias when the tag carries
 * one and ALIAS was negotiated, else by pid. */
int node_reply(struct node *n, struct conn *c, struct term from_pid, struct term caller,
               struct term tag, struct term reply);
/* MONITOR_P_EXIT {21, From, To, Ref, Reason} with an arbitrary reason term. */
int node_send_exit_reason(struct conn *c, struct term from, struct term to, struct term ref,
                          struct term reason);
/* Raw control-only frame (e.g. SPAWN_REPLY, MONITOR_P_EXIT) built by fn. */
int node_send_ctrl(struct conn *c, int (*fn)(struct buf *out, void *arg), void *arg);

#endif
