/*
 * Distribution connections: one listening socket and every peer
 * connection, driven by the event loop.
 *
 * Model. A conn_set owns all connections. A connection goes
 *   outgoing: EPMD (PORT_PLEASE2 to the peer host) -> CONNECTING -> HANDSHAKE
 *   incoming: HANDSHAKE
 * then UP (frames delivered to ops->on_frame) and finally CLOSED (ops->on_down
 * called once, memory freed after the loop iteration). Writers append
 * frames to conn_out(c) and call conn_mark_dirty(c); a loop hook flushes
 * every dirty connection once per iteration, so replies produced by one
 * read batch leave in one write.
 *
 * Bounds: a frame whose header announces more than cfg.max_frame bytes
 * closes its connection before any body byte is buffered; a handshake not
 * done within cfg.handshake_ms is dropped; at most cfg.max_conns
 * connections exist, at most cfg.max_handshakes of them are incoming
 * handshakes in progress and at most cfg.max_hs_per_source of those come
 * from one address, so sockets that connect and stay silent (slow loris)
 * hold a bounded share that is freed within handshake_ms, can never take
 * the slots of established peers, and one source cannot take them all.
 * Reads are at most 64 KiB per readiness event per connection, so one busy
 * peer cannot starve the others.
 *
 * Backpressure (struct conn_water): a connection whose queued output
 * reaches half of cfg.max_out is throttled: it is not read, and frames it
 * sent that were read already wait unanswered in its input, until its
 * output drains below a quarter. While all connections together hold more
 * than half of cfg.max_out_total, every one holding more than
 * CONN_WATER_FLOOR is throttled the same way, so peers that read what they
 * are sent keep being served. A reply is never cut: one that alone is
 * larger than max_out is sent whole and logged. Output that is not a
 * reply (pushes, wake-ups) beyond max_out closes the connection. A
 * throttled peer that makes no progress reading for the dead-peer time is
 * closed like a silent one.
 *
 * Logs a peer can provoke are rate-limited (struct conn_ratelim): refused
 * accepts and failures of still-unnamed incoming connections per set,
 * warnings about a peer's input per connection (conn_warn), so a hostile
 * peer cannot fill the disk. Suppressed lines are counted and reported.
 *
 * Ticks: an UP connection that has sent nothing for tick_ms sends a
 * zero-length frame; one that has received nothing for dead_ms is closed.
 *
 * TLS (cfg.tls set): every connection to or from a node runs TLS from its
 * first byte on the node's port (epmd stays plain), and the handshake
 * messages carry 4-byte lengths, as with erl -proto_dist inet_tls. The TLS
 * handshake is part of CONN_HANDSHAKE and shares its deadline.
 */
#ifndef LOCKERD_CONN_H
#define LOCKERD_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"
#include "../core/loop.h"
#include "handshake.h"
#include "tls.h"

enum conn_state {
    CONN_EPMD,        /* connecting to the peer host's epmd */
    CONN_EPMD_REPLY,  /* PORT_PLEASE2 sent, awaiting the port */
    CONN_CONNECTING,  /* connecting to the node's port */
    CONN_HANDSHAKE,
    CONN_UP,
    CONN_CLOSED
};

struct conn;

/*
 * Rate limiter for log lines, pure (the caller passes the time): the first
 * `burst` events pass, then at most one per CONN_RATELIM_MS; the one that
 * passes learns how many were suppressed since the previous one.
 */
#define CONN_RATELIM_MS 1000
struct conn_ratelim {
    uint32_t passed;      /* events let through so far (saturates at burst) */
    uint32_t suppressed;  /* since the last event let through */
    int64_t next_at;      /* after the burst: earliest time of the next one */
};
/* 1: log this event (*suppressed = events dropped before it), 0: drop it. */
int conn_ratelim_pass(struct conn_ratelim *r, int64_t now, uint32_t burst, uint32_t *suppressed);
/* Suppressed events not yet reported whose quiet period is over: returns
 * their count and resets it (0: nothing to report yet). */
uint32_t conn_ratelim_flush(struct conn_ratelim *r, int64_t now);

/* Admission of an accepted socket, pure: CONN_ADMIT or the limit hit. */
enum conn_admit { CONN_ADMIT, CONN_REFUSE_CONNS, CONN_REFUSE_HANDSHAKES, CONN_REFUSE_SOURCE };
/* max_handshakes 0 = no cap on handshakes. */
enum conn_admit conn_admit(size_t conns, size_t max_conns, size_t handshakes,
                           size_t max_handshakes);
/* from_source: incoming handshakes in progress from the socket's address;
 * max_per_source 0 = no cap. */
enum conn_admit conn_admit_source(size_t from_source, size_t max_per_source);

/* Output backpressure marks, pure (see the model above). */
#define CONN_WATER_FLOOR ((size_t)256 << 10)
struct conn_water {
    size_t high, low;             /* one connection's output */
    size_t total_high, total_low; /* all connections' output; 0 = no total cap */
    size_t floor;                 /* under the total marks, smaller queues are read */
};
void conn_water_init(struct conn_water *w, size_t max_out, size_t max_out_total);
/* 1: a connection holding `out` bytes of output while all hold `total`
 * must not be read; `throttled` is its current state (hysteresis). */
int conn_over_water(const struct conn_water *w, size_t out, size_t total, int throttled);

struct conn_ops {
    void (*on_up)(void *ud, struct conn *c);
    void (*on_frame)(void *ud, struct conn *c, const uint8_t *body, size_t len);
    void (*on_down)(void *ud, struct conn *c, const char *why);
    /* Incoming handshake: status for this peer (simultaneous connect etc.). */
    enum hs_status (*decide)(void *ud, struct conn *c, const char *peer, uint64_t flags);
};

struct conn_cfg {
    const char *my_name;
    const char *cookie;
    uint32_t creation;
    uint64_t flags;
    uint64_t required_flags;
    size_t max_frame;
    size_t max_out;
    size_t max_conns;
    size_t max_handshakes;   /* incoming handshakes in progress; 0 = no cap */
    size_t max_hs_per_source; /* of those, from one address; 0 = no cap */
    size_t max_out_total;    /* all connections' output; 0 = no cap */
    int64_t tick_ms;
    int64_t dead_ms;
    int64_t handshake_ms;
    struct tls_ctx *tls;     /* TLS distribution (tls.h), borrowed; NULL = plain TCP */
};

struct conn {
    struct conn *next, *prev;       /* all connections */
    struct conn *dirty_next;
    int dirty;
    struct conn_set *set;
    struct loop_io io;
    enum conn_state state;
    int initiator;
    int loopback;                   /* this node talking to itself */
    char peer[HS_NAME_MAX + 1];     /* known from the start when initiator */
    uint64_t flags;                 /* negotiated, once UP */
    uint32_t peer_creation;
    uint64_t id;                    /* unique per conn_set, never reused */
    struct hs hs;
    struct buf in, out;
    struct buf held;                /* frames queued before UP */
    int64_t last_rx, last_tx, deadline;
    uint16_t port;                  /* peer's dist port (outgoing) */
    struct conn_ratelim warn_rl;    /* conn_warn lines about this peer */
    int throttled;                  /* output over its mark: not read */
    uint32_t throttles;             /* since the last line about them */
    int64_t throttle_log_at;        /* earliest time of the next such line */
    size_t out_acct;                /* out's size as counted in the set's total */
    size_t out_allow;               /* > max_out: an oversize reply being sent */
    uint32_t batch;                 /* messages in the frames of the current read */
    uint32_t batch_senders;         /* of those, sender changes (runs by sender) */
    uint64_t batch_last_sender;     /* hash of the previous message's sender */
    uint8_t src[16];                /* incoming: the peer's address */
    uint8_t srclen;                 /* 4 or 16; 0 = not incoming */
    char src_txt[48];               /* the same as text, for logs */
    struct tls *tls;                /* TLS session once connected, NULL = plain */
    void *user;                     /* for the owner of the set */
};

struct conn_set;

struct conn_set *conn_set_new(struct loop *l, const struct conn_cfg *cfg,
                              const struct conn_ops *ops, void *ud);
void conn_set_free(struct conn_set *s); /* closes everything, no callbacks */
/* Listen on all loopback/any address (addr NULL = 0.0.0.0), port 0 = any.
 * *port_out gets the bound port. */
int conn_set_listen(struct conn_set *s, const char *addr, uint16_t port, uint16_t *port_out,
                    char *err, size_t errlen);
/* Start an outgoing connection to node "alive@host". */
struct conn *conn_connect(struct conn_set *s, const char *node, int *err);
struct conn *conn_find(struct conn_set *s, const char *node); /* any state but CLOSED */
/* The loopback connection: always UP, peer = this node; frames written to
 * it are delivered to ops->on_frame in the flush hook, with the same
 * encoding and decoding as any peer's (so a call to {locker, node()} from
 * inside lockerd takes the ordinary path). Owned by the set. */
struct conn *conn_loopback(struct conn_set *s);
struct conn *conn_first(struct conn_set *s);                    /* iteration */
size_t conn_count(const struct conn_set *s);
/* The creation epmd gave us, known only after listening + registering. */
void conn_set_creation(struct conn_set *s, uint32_t creation);

/* Where a frame for this peer goes: the socket's output once UP; before
 * that a holding buffer that is moved to the output when the handshake
 * completes (so callers may send to a node while connecting to it). */
static inline struct buf *conn_out(struct conn *c)
{
    return c->state == CONN_UP ? &c->out : &c->held;
}
void conn_mark_dirty(struct conn *c);
void conn_close(struct conn *c, const char *why); /* idempotent */
/* A warning about what this peer sent, rate-limited per connection (first
 * 10, then one per second carrying the count of those suppressed). */
void conn_warn(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Bytes of output queued on all connections, as last counted. */
size_t conn_out_total(const struct conn_set *s);
/*
 * Counters for the metrics endpoint (conn_stats.c). Bytes are what the
 * sockets carried (TLS: the plaintext), the loopback excluded. A handshake
 * failure is a connection closed while in CONN_HANDSHAKE, classified by
 * its close reason; refusals are accepts closed at once at a limit.
 */
enum conn_hs_fail {
    CONN_HSF_COOKIE, CONN_HSF_NOT_ALLOWED, CONN_HSF_TIMEOUT, CONN_HSF_TLS,
    CONN_HSF_CLOSED, CONN_HSF_IO, CONN_HSF_PROTOCOL, CONN_HSF_N
};
struct conn_stats {
    uint64_t bytes_in, bytes_out;
    uint64_t hs_failed[CONN_HSF_N];
    uint64_t refused[CONN_REFUSE_SOURCE + 1]; /* by enum conn_admit */
};
const struct conn_stats *conn_set_stats(const struct conn_set *s);
/* The class of a handshake's close reason, and its metric label. */
enum conn_hs_fail conn_hs_fail_class(const char *why);
const char *conn_hs_fail_name(enum conn_hs_fail f);

/* Periodic: ticks, dead peers, handshake deadlines. */
void conn_set_periodic(struct conn_set *s, int64_t now);

#endif
