/*
 * What conn.c and conn_listen.c share: the set's state and the internal
 * functions the accepting side uses to create connections. Not for other
 * modules (they see conn.h only).
 */
#ifndef LOCKERD_CONN_INT_H
#define LOCKERD_CONN_INT_H

#include "conn.h"

struct conn_set {
    struct loop *loop;
    struct conn_cfg cfg;
    struct conn_ops ops;
    void *ud;
    struct conn *head;
    struct conn *dirty;
    size_t count;
    uint64_t next_id;
    struct loop_io listen_io;
    int listen_fd;
    struct conn *self;
    uint32_t rng;
    size_t handshakes;              /* incoming, in CONN_HANDSHAKE */
    struct conn_ratelim refuse_rl;  /* accepts refused at a limit */
    struct conn_ratelim anon_rl;    /* unnamed incoming connections failing */
    struct conn_ratelim hsfail_rl;  /* named incoming handshakes failing */
    struct conn_water water;
    size_t out_total;               /* sum of every connection's out_acct */
    struct conn_stats stats;        /* metrics (conn_stats.c) */
};

uint32_t conn__random(struct conn_set *s);
int conn__nonblock(int fd);
struct hs_cfg conn__hs_cfg(struct conn_set *s);
/* A connection on fd, linked into the set and watched for input. */
struct conn *conn__alloc(struct conn_set *s, int fd);
enum hs_status conn__decide(void *ud, const char *peer, uint64_t flags);
int conn__is_incoming_hs(const struct conn *c);

#endif
