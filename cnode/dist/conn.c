/*
 * Distribution connections; see conn.h for the state model and bounds.
 *
 * Everything is non-blocking. Each connection has one epoll watcher whose
 * interest follows its needs: always readable, writable only while output
 * is queued or a connect() is in flight. A connection that fails is closed
 * through conn_close(), which unhooks it from the loop at once and frees it
 * after the iteration, so callbacks further down the same batch see a
 * CLOSED connection, never freed memory.
 */
#include "conn.h"
#include "conn_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"
#include "epmd.h"
#include "frame.h"

#define READ_CHUNK 65536
/* Warnings about one peer's input logged before the rate limit applies. */
#define WARN_BURST 10
/* Failures of incoming connections that never named themselves. */
#define ANON_FAIL_BURST 10
/* Failed handshakes of peers that named themselves (wrong cookie, refused
 * by policy): anyone can provoke them, before any authentication. */
#define HS_FAIL_BURST 10
/* One line about a throttled peer per this period at most. */
#define THROTTLE_LOG_MS 10000


static void conn_on_io(struct loop *l, struct loop_io *io, uint32_t events);

uint32_t conn__random(struct conn_set *s)
{
    /* xorshift seeded from the clock and pid: challenges only need to be
     * unpredictable enough to stop replay, the cookie is the secret. */
    uint32_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->rng = x;
    return x;
}

int conn__nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}


/* ---- transport: plain TCP, or TLS (tls.h) ---- */

static ssize_t conn_send(struct conn *c, const void *p, size_t n)
{
    return c->tls ? tls_write(c->tls, p, n) : send(c->io.fd, p, n, MSG_NOSIGNAL);
}

static ssize_t conn_recv(struct conn *c, void *p, size_t n)
{
    return c->tls ? tls_read(c->tls, p, n) : recv(c->io.fd, p, n, 0);
}

/* Why a send/recv failed: TLS knows better than errno. */
static const char *conn_io_error(struct conn *c, int err)
{
    return c->tls && tls_error(c->tls)[0] ? tls_error(c->tls) : strerror(err);
}

static void conn_watch(struct conn *c)
{
    uint32_t ev = c->throttled ? 0 : EPOLLIN;
    /* TLS waits for writability only when OpenSSL says so: queued output
     * may be blocked on the peer's handshake bytes instead. */
    int out = c->tls ? tls_want_write(c->tls) : buf_size(&c->out) != 0;
    if (out || c->state == CONN_CONNECTING || c->state == CONN_EPMD)
        ev |= EPOLLOUT;
    loop_io_mod(c->set->loop, &c->io, ev);
}

struct conn *conn__alloc(struct conn_set *s, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->set = s;
    c->io.fd = fd;
    c->id = ++s->next_id;
    buf_init(&c->in);
    buf_init(&c->out);
    buf_init(&c->held);
    c->last_rx = c->last_tx = loop_now(s->loop);
    c->deadline = c->last_rx + s->cfg.handshake_ms;
    if (loop_io_add(s->loop, &c->io, fd, EPOLLIN, conn_on_io, c) < 0) {
        free(c);
        return NULL;
    }
    c->next = s->head;
    if (s->head)
        s->head->prev = c;
    s->head = c;
    s->count++;
    return c;
}

static void conn_free(void *p)
{
    struct conn *c = p;
    hs_free(&c->hs);
    tls_free(c->tls);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->held);
    free(c);
}

/* Only incoming connections are counted as handshakes: ours are bounded
 * by what lockerd itself decides to dial. */
int conn__is_incoming_hs(const struct conn *c)
{
    return c->state == CONN_HANDSHAKE && !c->initiator && !c->loopback;
}

/* Failures of incoming connections are logged under a rate limit: anyone
 * can open sockets and say nothing, or name themselves and fail the
 * cookie check, as fast as they like. */
static void conn_log_close(struct conn *c, enum conn_state was, const char *why)
{
    struct conn_set *s = c->set;
    uint32_t dropped;
    if (c->warn_rl.suppressed)
        log_warn("%u further warnings about %s were suppressed (rate limit)",
                 c->warn_rl.suppressed, c->peer);
    if (was == CONN_UP) {
        log_info("connection to %s closed: %s", c->peer, why);
        return;
    }
    if (c->initiator) {
        log_info("connection to %s failed: %s", c->peer, why);
        return;
    }
    struct conn_ratelim *rl = c->peer[0] ? &s->hsfail_rl : &s->anon_rl;
    if (!conn_ratelim_pass(rl, loop_now(s->loop), c->peer[0] ? HS_FAIL_BURST : ANON_FAIL_BURST,
                           &dropped))
        return;
    char more[80] = "";
    if (dropped)
        snprintf(more, sizeof more, " (%u more such failures not logged)", dropped);
    log_info("connection from %s [%s] failed: %s%s", c->peer[0] ? c->peer : "(unnamed peer)",
             c->src_txt[0] ? c->src_txt : "?", why, more);
}

/* The set's total of queued output follows c's. */
static void conn_account(struct conn *c)
{
    size_t now = c->state == CONN_CLOSED ? 0 : buf_size(&c->out);
    c->set->out_total = c->set->out_total - c->out_acct + now;
    c->out_acct = now;
}

void conn_close(struct conn *c, const char *why)
{
    if (c->state == CONN_CLOSED)
        return;
    struct conn_set *s = c->set;
    enum conn_state was = c->state;
    if (conn__is_incoming_hs(c))
        s->handshakes--;
    c->state = CONN_CLOSED;
    loop_io_del(s->loop, &c->io);
    tls_shutdown(c->tls);
    close(c->io.fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->count--;
    conn_account(c);
    if (was == CONN_HANDSHAKE && !c->loopback)
        s->stats.hs_failed[conn_hs_fail_class(why)]++;
    conn_log_close(c, was, why);
    if (s->ops.on_down)
        s->ops.on_down(s->ud, c, why);
    /* The dirty list may still point at c: the flush hook skips CLOSED
     * connections and the free happens after the hooks ran. */
    loop_defer_free(s->loop, conn_free, c);
}

void conn_warn(struct conn *c, const char *fmt, ...)
{
    uint32_t dropped;
    if (!conn_ratelim_pass(&c->warn_rl, loop_now(c->set->loop), WARN_BURST, &dropped))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (dropped)
        log_warn("%s (%u similar warnings about %s suppressed before this one)", msg, dropped,
                 c->peer);
    else
        log_warn("%s", msg);
}

void conn_mark_dirty(struct conn *c)
{
    if (c->dirty || c->state == CONN_CLOSED)
        return;
    c->dirty = 1;
    c->dirty_next = c->set->dirty;
    c->set->dirty = c;
}

/* Over its cap: a peer that does not read what is not a reply to it
 * (pushes, wake-ups), since replies stop coming once it is throttled. An
 * oversize reply being sent is the exception (out_allow). */
static int conn_out_over_cap(struct conn *c)
{
    size_t out = buf_size(&c->out);
    if (out <= c->set->cfg.max_out) {
        c->out_allow = 0;
        return 0;
    }
    return out > c->out_allow;
}

/* Write what we can; 0, or -errno when the connection must close. */
static int conn_flush(struct conn *c)
{
    while (buf_size(&c->out)) {
        ssize_t n = conn_send(c, buf_head(&c->out), buf_size(&c->out));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_account(c);
            return -errno;
        }
        buf_consume(&c->out, (size_t)n);
        c->set->stats.bytes_out += (uint64_t)n;
        c->last_tx = loop_now(c->set->loop);
    }
    conn_account(c);
    if (conn_out_over_cap(c))
        return -ENOBUFS;
    conn_watch(c);
    return 0;
}

/* A throttled connection whose output drained below its mark is read
 * again, starting with the frames that waited in its input. */
static void conn_process_frames(struct conn *c);

static void conn_maybe_resume(struct conn *c)
{
    struct conn_set *s = c->set;
    if (!c->throttled || c->state != CONN_UP ||
        conn_over_water(&s->water, buf_size(&c->out), s->out_total, 1))
        return;
    c->throttled = 0;
    conn_watch(c);
    conn_process_frames(c);
}

/* Frames to ourselves: deliver them. Handlers may write more frames to
 * the loopback while we walk these, so walk a detached copy. */
static void conn_loopback_deliver(struct conn *c)
{
    struct buf work = c->out;
    buf_init(&c->out);
    c->batch = c->batch_senders = 0;
    size_t pos = work.off;
    while (pos < work.len) {
        const uint8_t *body;
        size_t blen;
        int n = frame_split(work.data + pos, work.len - pos, SIZE_MAX, &body, &blen);
        if (n <= 0)
            break; /* we wrote whole frames; cannot happen */
        if (blen)
            c->set->ops.on_frame(c->set->ud, c, body, blen);
        pos += (size_t)n;
    }
    buf_free(&work);
}

static int conn_flush_hook(struct loop *l, void *ud)
{
    (void)l;
    struct conn_set *s = ud;
    struct conn *c = s->dirty;
    s->dirty = NULL;
    while (c) {
        struct conn *next = c->dirty_next;
        c->dirty = 0;
        if (c->loopback) {
            conn_loopback_deliver(c);
        } else if (c->state != CONN_CLOSED) {
            int rc = conn_flush(c);
            if (rc == -ENOBUFS)
                conn_close(c, "output queue over its cap (peer not reading)");
            else if (rc)
                conn_close(c, conn_io_error(c, -rc));
            else
                conn_maybe_resume(c);
        }
        c = next;
    }
    return s->dirty != NULL; /* loopback replies queued: run again */
}

/* ---- handshake ---- */

enum hs_status conn__decide(void *ud, const char *peer, uint64_t flags)
{
    struct conn *c = ud;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    if (!c->set->ops.decide)
        return HS_OK;
    return c->set->ops.decide(c->set->ud, c, peer, flags);
}

struct hs_cfg conn__hs_cfg(struct conn_set *s)
{
    struct hs_cfg h = {
        .my_name = s->cfg.my_name,
        .cookie = s->cfg.cookie,
        .my_flags = s->cfg.flags,
        .required_flags = s->cfg.required_flags,
        .my_creation = s->cfg.creation,
        .len4 = s->cfg.tls != NULL,
    };
    return h;
}

static void conn_hs_out(struct conn *c)
{
    if (buf_size(&c->hs.out)) {
        buf_append(&c->out, buf_head(&c->hs.out), buf_size(&c->hs.out));
        buf_reset(&c->hs.out);
        conn_mark_dirty(c);
    }
}

static void conn_up(struct conn *c)
{
    if (conn__is_incoming_hs(c))
        c->set->handshakes--;
    c->state = CONN_UP;
    snprintf(c->peer, sizeof c->peer, "%s", c->hs.peer_name);
    c->flags = c->hs.flags;
    c->peer_creation = c->hs.peer_creation;
    c->deadline = 0;
    if (buf_size(&c->held)) {
        if (buf_append(&c->out, buf_head(&c->held), buf_size(&c->held)) == 0)
            conn_mark_dirty(c);
        buf_free(&c->held);
    }
    char tls[256] = "";
    if (c->tls)
        tls_describe(c->tls, tls, sizeof tls);
    log_info("connected %s %s%s%s%s", c->initiator ? "to" : "from", c->peer, tls[0] ? " (" : "",
             tls, tls[0] ? ")" : "");
    if (c->set->ops.on_up)
        c->set->ops.on_up(c->set->ud, c);
}

static void conn_handshake_input(struct conn *c)
{
    size_t used = 0;
    int rc = hs_input(&c->hs, buf_head(&c->in), buf_size(&c->in), &used);
    buf_consume(&c->in, used);
    conn_hs_out(c);
    if (rc < 0) {
        /* Let a final status such as "snot_allowed" reach the peer. */
        conn_flush(c);
        conn_close(c, c->hs.err[0] ? c->hs.err : "handshake failed");
        return;
    }
    if (rc == 1) {
        conn_up(c);
        if (c->state == CONN_UP)
            conn_process_frames(c);
    }
}

/* ---- frames ---- */

/* 1 when c must stop being read: its output (or all output) is over the
 * mark. Logged once per throttling, rate-limited per peer. */
static int conn_throttle_check(struct conn *c)
{
    struct conn_set *s = c->set;
    if (c->loopback || !conn_over_water(&s->water, buf_size(&c->out), s->out_total, 0))
        return 0;
    c->throttled = 1;
    conn_watch(c);
    /* A peer whose replies are each over the mark is throttled after
     * every one: a line per episode would be a line per call. */
    int64_t now = loop_now(s->loop);
    c->throttles++;
    if (now >= c->throttle_log_at) {
        log_warn("not reading from %s until it reads: %zu bytes queued for it (%zu for all "
                 "peers; --max-out %zu, --max-out-total %zu); throttled %u times since the "
                 "last such line", c->peer, buf_size(&c->out), s->out_total, s->cfg.max_out,
                 s->cfg.max_out_total, c->throttles);
        c->throttles = 0;
        c->throttle_log_at = now + THROTTLE_LOG_MS;
    }
    return 1;
}

/* A single frame whose answer alone is larger than --max-out: sent
 * whole, since cutting a reply breaks the peer's stream. */
static void conn_note_reply(struct conn *c, size_t before)
{
    size_t out = buf_size(&c->out), max = c->set->cfg.max_out;
    if (out <= max || before >= out)
        return;
    c->out_allow = out;
    if (out - before > max)
        conn_warn(c, "a reply of %zu bytes to %s is larger than --max-out %zu: sent whole",
                  out - before, c->peer, max);
}

static void conn_process_frames(struct conn *c)
{
    struct conn_set *s = c->set;
    /* messages among these frames and their senders, counted by on_frame */
    c->batch = c->batch_senders = 0;
    while (c->state == CONN_UP && buf_size(&c->in) && !c->throttled) {
        const uint8_t *body;
        size_t blen;
        int n = frame_split(buf_head(&c->in), buf_size(&c->in), s->cfg.max_frame, &body, &blen);
        if (n == 0)
            return;
        if (n < 0) {
            uint32_t announced = buf_size(&c->in) >= 4 ? get_u32(buf_head(&c->in)) : 0;
            log_warn("frame of %u bytes from %s exceeds --max-frame %zu: closing connection",
                     announced, c->peer, s->cfg.max_frame);
            conn_close(c, "oversize frame");
            return;
        }
        if (blen) {
            if (conn_throttle_check(c))
                return;
            size_t before = buf_size(&c->out);
            s->ops.on_frame(s->ud, c, body, blen);
            if (c->state == CONN_CLOSED)
                return;
            conn_note_reply(c, before);
            conn_account(c);
        }
        buf_consume(&c->in, (size_t)n);
    }
}

/* ---- outgoing: epmd lookup, connect ---- */

static int conn_host_addr(const char *node, uint16_t port, struct sockaddr_storage *sa,
                          socklen_t *salen)
{
    const char *at = strchr(node, '@');
    if (!at || !at[1])
        return -EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    /* Resolution is synchronous: node hosts are names from /etc/hosts or
     * literals in practice; a slow resolver would stall the loop here. */
    if (getaddrinfo(at + 1, portstr, &hints, &res) != 0)
        return -EHOSTUNREACH;
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* A non-blocking socket with connect() to node's host:port in flight. */
static int dial_socket(const char *node, uint16_t port, int *fd_out)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    int rc = conn_host_addr(node, port, &sa, &salen);
    if (rc)
        return rc;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, salen) < 0 && errno != EINPROGRESS) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* Second stage: leave epmd, dial the node's own port on a new socket. */
static int conn_dial(struct conn *c, uint16_t port)
{
    int fd, rc = dial_socket(c->peer, port, &fd);
    if (rc)
        return rc;
    loop_io_del(c->set->loop, &c->io);
    close(c->io.fd);
    c->io.fd = fd;
    rc = loop_io_add(c->set->loop, &c->io, fd, EPOLLOUT, conn_on_io, c);
    if (rc) {
        /* Keep io.fd valid for conn_close, which closes it. */
        return rc;
    }
    return 0;
}

static void conn_epmd_input(struct conn *c, int eof)
{
    uint16_t port, hi, lo;
    int rc = epmd_port2_resp(buf_head(&c->in), buf_size(&c->in), &port, &hi, &lo);
    if (rc == 0 && !eof)
        return;
    if (rc <= 0) {
        conn_close(c, rc == -ENOENT ? "node not registered in epmd" : "bad epmd reply");
        return;
    }
    buf_reset(&c->in);
    if (hi < 6 || lo > 6) {
        conn_close(c, "peer does not speak distribution version 6");
        return;
    }
    c->state = CONN_CONNECTING;
    c->port = port;
    rc = conn_dial(c, port);
    if (rc)
        conn_close(c, strerror(-rc));
}

struct conn *conn_connect(struct conn_set *s, const char *node, int *err)
{
    *err = 0;
    if (strlen(node) > HS_NAME_MAX || !strchr(node, '@')) {
        *err = -EINVAL;
        return NULL;
    }
    if (s->count >= s->cfg.max_conns) {
        *err = -EMFILE;
        return NULL;
    }
    int fd, rc = dial_socket(node, EPMD_PORT, &fd);
    if (rc) {
        *err = rc;
        return NULL;
    }
    struct conn *c = conn__alloc(s, fd);
    if (!c) {
        close(fd);
        *err = -ENOMEM;
        return NULL;
    }
    c->initiator = 1;
    c->state = CONN_EPMD;
    snprintf(c->peer, sizeof c->peer, "%s", node);
    struct hs_cfg hc = conn__hs_cfg(s);
    if (hs_init_initiator(&c->hs, &hc, node, conn__random(s)) < 0) {
        conn_close(c, "handshake set-up failed");
        *err = -ENOMEM;
        return NULL;
    }
    loop_io_mod(s->loop, &c->io, EPOLLOUT);
    return c;
}

static void conn_connected(struct conn *c)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr) {
        conn_close(c, strerror(soerr));
        return;
    }
    if (c->state == CONN_EPMD) {
        /* Connected to epmd: send PORT_PLEASE2 for the alive part. */
        char alive[HS_NAME_MAX + 1];
        snprintf(alive, sizeof alive, "%s", c->peer);
        *strchr(alive, '@') = 0;
        epmd_port_please2_req(&c->out, alive);
        c->state = CONN_EPMD_REPLY;
        conn_flush(c);
        return;
    }
    if (c->set->cfg.tls &&
        !(c->tls = tls_new(c->set->cfg.tls, c->io.fd, 0, strchr(c->peer, '@') + 1))) {
        conn_close(c, "TLS set-up failed");
        return;
    }
    c->state = CONN_HANDSHAKE;
    conn_hs_out(c);
    conn_watch(c);
}

/* ---- I/O dispatch ---- */

static void conn_read(struct conn *c)
{
    size_t room = READ_CHUNK;
    if (buf_reserve(&c->in, room)) {
        conn_close(c, "out of memory");
        return;
    }
    ssize_t n = conn_recv(c, c->in.data + c->in.len, room);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_close(c, conn_io_error(c, errno));
        return;
    }
    if (n == 0) {
        if (c->state == CONN_EPMD_REPLY) {
            conn_epmd_input(c, 1);
        } else if (c->state == CONN_HANDSHAKE) {
            char why[HS_NAME_MAX + 160];
            hs_describe_eof(&c->hs, why, sizeof why);
            conn_close(c, why);
        } else {
            conn_close(c, "peer closed the connection");
        }
        return;
    }
    c->in.len += (size_t)n;
    c->set->stats.bytes_in += (uint64_t)n;
    c->last_rx = loop_now(c->set->loop);
    switch (c->state) {
    case CONN_EPMD_REPLY: conn_epmd_input(c, 0); break;
    case CONN_HANDSHAKE: conn_handshake_input(c); break;
    case CONN_UP: conn_process_frames(c); break;
    default: break;
    }
}

static void conn_on_io(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    struct conn *c = io->ud;
    if ((c->state == CONN_CONNECTING || c->state == CONN_EPMD) &&
        (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        conn_connected(c);
        return;
    }
    /* A TLS read may wait for writability and a write for input; bytes
     * OpenSSL decrypted already are invisible to epoll (tls.h). */
    if (c->tls)
        events |= EPOLLIN | EPOLLOUT;
    if (c->throttled && (events & (EPOLLHUP | EPOLLERR))) {
        /* Not reading, so the error would be reported again and again. */
        conn_close(c, "connection error while its output was queued");
        return;
    }
    if (!c->throttled && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        do
            conn_read(c);
        while (c->tls && c->state != CONN_CLOSED && tls_pending(c->tls));
    }
    if (c->state != CONN_CLOSED && (events & EPOLLOUT)) {
        int rc = conn_flush(c);
        if (rc)
            conn_close(c, rc == -ENOBUFS ? "output queue over its cap" : conn_io_error(c, -rc));
        else
            conn_maybe_resume(c);
    }
}

/* ---- set ---- */

struct conn_set *conn_set_new(struct loop *l, const struct conn_cfg *cfg,
                              const struct conn_ops *ops, void *ud)
{
    struct conn_set *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = l;
    s->cfg = *cfg;
    s->ops = *ops;
    s->ud = ud;
    s->listen_fd = -1;
    conn_water_init(&s->water, cfg->max_out, cfg->max_out_total);
    s->rng = (uint32_t)loop_now(l) * 2654435761u ^ (uint32_t)getpid() ^ 0x9e3779b9u;
    if (!s->rng)
        s->rng = 1;
    if (loop_hook_add(l, conn_flush_hook, s) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

struct conn *conn_loopback(struct conn_set *s)
{
    if (s->self)
        return s->self;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->set = s;
    c->loopback = 1;
    c->state = CONN_UP;
    c->io.fd = -1;
    c->id = ++s->next_id;
    c->flags = s->cfg.flags;
    c->peer_creation = s->cfg.creation;
    snprintf(c->peer, sizeof c->peer, "%s", s->cfg.my_name);
    buf_init(&c->in);
    buf_init(&c->out);
    buf_init(&c->held);
    s->self = c;
    return c;
}

void conn_set_free(struct conn_set *s)
{
    if (!s)
        return;
    if (s->self)
        conn_free(s->self);
    s->ops.on_down = NULL;
    while (s->head) {
        struct conn *c = s->head;
        conn_flush(c);
        conn_close(c, "shutting down");
    }
    if (s->listen_fd >= 0) {
        loop_io_del(s->loop, &s->listen_io);
        close(s->listen_fd);
    }
    free(s);
}

struct conn *conn_find(struct conn_set *s, const char *node)
{
    struct conn *best = NULL;
    for (struct conn *c = s->head; c; c = c->next)
        if (strcmp(c->peer, node) == 0) {
            if (c->state == CONN_UP)
                return c;
            best = c;
        }
    return best;
}

struct conn *conn_first(struct conn_set *s) { return s->head; }
size_t conn_out_total(const struct conn_set *s) { return s->out_total; }
const struct conn_stats *conn_set_stats(const struct conn_set *s) { return &s->stats; }

size_t conn_count(const struct conn_set *s) { return s->count; }
void conn_set_creation(struct conn_set *s, uint32_t creation)
{
    s->cfg.creation = creation;
    if (s->self)
        s->self->peer_creation = creation;
}

/* Counts of rate-limited lines whose quiet second is over. */
static void conn_flush_ratelims(struct conn_set *s, int64_t now)
{
    uint32_t n = conn_ratelim_flush(&s->refuse_rl, now);
    if (n)
        log_warn("refused %u more connections at --max-conns / --max-handshakes", n);
    n = conn_ratelim_flush(&s->anon_rl, now);
    if (n)
        log_info("%u more incoming connections failed before naming themselves", n);
    n = conn_ratelim_flush(&s->hsfail_rl, now);
    if (n)
        log_info("%u more incoming handshakes failed (not logged one by one)", n);
}

/* A throttled peer is alive while it reads what it is sent. */
static int conn_dead(const struct conn *c, int64_t now, int64_t dead_ms)
{
    int64_t last = c->last_rx;
    if (c->throttled && c->last_tx > last)
        last = c->last_tx;
    return now - last >= dead_ms;
}

void conn_set_periodic(struct conn_set *s, int64_t now)
{
    conn_flush_ratelims(s, now);
    struct conn *c = s->head;
    while (c) {
        struct conn *next = c->next;
        if (c->state != CONN_UP) {
            if (c->deadline && now >= c->deadline)
                conn_close(c, "connection set-up timed out");
        } else if (conn_dead(c, now, s->cfg.dead_ms)) {
            conn_close(c, c->throttled ? "not reading its output within the net tick time: "
                                         "peer declared dead"
                                       : "no traffic within the net tick time: peer declared dead");
        } else if (c->throttled) {
            /* The total may have drained through other peers. */
            conn_maybe_resume(c);
        } else if (now - c->last_tx >= s->cfg.tick_ms && !buf_size(&c->out)) {
            static const uint8_t tick[4] = {0, 0, 0, 0};
            buf_append(&c->out, tick, 4);
            conn_mark_dirty(c);
        }
        c = next;
    }
}
