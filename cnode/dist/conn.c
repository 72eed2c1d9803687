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
    struct conn_stats stats;        /* metrics (conn_stats.c) */
};

/* ---- limits (pure) ---- */

int conn_ratelim_pass(struct conn_ratelim *r, int64_t now, uint32_t burst, uint32_t *suppressed)
{
    *suppressed = 0;
    if (r->passed < burst) {
        /* The quiet period starts with the last event of the burst, so a
         * burst is followed by at most one line per period. */
        if (++r->passed == burst)
            r->next_at = now + CONN_RATELIM_MS;
        return 1;
    }
    if (now < r->next_at) {
        if (r->suppressed < UINT32_MAX)
            r->suppressed++;
        return 0;
    }
    *suppressed = r->suppressed;
    r->suppressed = 0;
    r->next_at = now + CONN_RATELIM_MS;
    return 1;
}

uint32_t conn_ratelim_flush(struct conn_ratelim *r, int64_t now)
{
    if (!r->suppressed || now < r->next_at)
        return 0;
    uint32_t n = r->suppressed;
    r->suppressed = 0;
    r->next_at = now + CONN_RATELIM_MS;
    return n;
}

enum conn_admit conn_admit(size_t conns, size_t max_conns, size_t handshakes,
                           size_t max_handshakes)
{
    if (conns >= max_conns)
        return CONN_REFUSE_CONNS;
    if (max_handshakes && handshakes >= max_handshakes)
        return CONN_REFUSE_HANDSHAKES;
    return CONN_ADMIT;
}

static void conn_on_io(struct loop *l, struct loop_io *io, uint32_t events);

static uint32_t set_random(struct conn_set *s)
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

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

static struct hs_cfg hs_cfg_of(struct conn_set *s);

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
    uint32_t ev = EPOLLIN;
    /* TLS waits for writability only when OpenSSL says so: queued output
     * may be blocked on the peer's handshake bytes instead. */
    int out = c->tls ? tls_want_write(c->tls) : buf_size(&c->out) != 0;
    if (out || c->state == CONN_CONNECTING || c->state == CONN_EPMD)
        ev |= EPOLLOUT;
    loop_io_mod(c->set->loop, &c->io, ev);
}

static struct conn *conn_alloc(struct conn_set *s, int fd)
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
static int conn_is_incoming_hs(const struct conn *c)
{
    return c->state == CONN_HANDSHAKE && !c->initiator && !c->loopback;
}

static void conn_log_close(struct conn *c, enum conn_state was, const char *why)
{
    struct conn_set *s = c->set;
    uint32_t dropped;
    if (c->warn_rl.suppressed)
        log_warn("%u further warnings about %s were suppressed (rate limit)",
                 c->warn_rl.suppressed, c->peer);
    if (was == CONN_UP) {
        log_info("connection to %s closed: %s", c->peer, why);
    } else if (c->initiator || c->peer[0]) {
        log_info("connection %s%s failed: %s", c->initiator ? "to " : "from ",
                 c->peer[0] ? c->peer : "(unnamed peer)", why);
    } else if (conn_ratelim_pass(&s->anon_rl, loop_now(s->loop), ANON_FAIL_BURST, &dropped)) {
        /* Anyone can open sockets and say nothing: bounded log. */
        if (dropped)
            log_info("connection from (unnamed peer) failed: %s (%u more such failures "
                     "not logged)", why, dropped);
        else
            log_info("connection from (unnamed peer) failed: %s", why);
    }
}

void conn_close(struct conn *c, const char *why)
{
    if (c->state == CONN_CLOSED)
        return;
    struct conn_set *s = c->set;
    enum conn_state was = c->state;
    if (conn_is_incoming_hs(c))
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
            return -errno;
        }
        buf_consume(&c->out, (size_t)n);
        c->set->stats.bytes_out += (uint64_t)n;
        c->last_tx = loop_now(c->set->loop);
    }
    if (buf_size(&c->out) > c->set->cfg.max_out)
        return -ENOBUFS;
    conn_watch(c);
    return 0;
}

/* Frames to ourselves: deliver them. Handlers may write more frames to
 * the loopback while we walk these, so walk a detached copy. */
static void conn_loopback_deliver(struct conn *c)
{
    struct buf work = c->out;
    buf_init(&c->out);
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
        }
        c = next;
    }
    return s->dirty != NULL; /* loopback replies queued: run again */
}

/* ---- handshake ---- */

static enum hs_status conn_decide(void *ud, const char *peer, uint64_t flags)
{
    struct conn *c = ud;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    if (!c->set->ops.decide)
        return HS_OK;
    return c->set->ops.decide(c->set->ud, c, peer, flags);
}

static struct hs_cfg hs_cfg_of(struct conn_set *s)
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
    if (conn_is_incoming_hs(c))
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

static void conn_process_frames(struct conn *c);

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

static void conn_process_frames(struct conn *c)
{
    struct conn_set *s = c->set;
    while (c->state == CONN_UP && buf_size(&c->in)) {
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
            loop_note_work(s->loop, 1);
            s->ops.on_frame(s->ud, c, body, blen);
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
    struct conn *c = conn_alloc(s, fd);
    if (!c) {
        close(fd);
        *err = -ENOMEM;
        return NULL;
    }
    c->initiator = 1;
    c->state = CONN_EPMD;
    snprintf(c->peer, sizeof c->peer, "%s", node);
    struct hs_cfg hc = hs_cfg_of(s);
    if (hs_init_initiator(&c->hs, &hc, node, set_random(s)) < 0) {
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
        if (c->state == CONN_EPMD_REPLY)
            conn_epmd_input(c, 1);
        else
            conn_close(c, "peer closed the connection");
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
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        do
            conn_read(c);
        while (c->tls && c->state != CONN_CLOSED && tls_pending(c->tls));
    }
    if (c->state != CONN_CLOSED && (events & EPOLLOUT)) {
        int rc = conn_flush(c);
        if (rc)
            conn_close(c, rc == -ENOBUFS ? "output queue over its cap" : conn_io_error(c, -rc));
    }
}

/* ---- listening ---- */

/* Close a socket accepted over a limit. Closing at once (rather than
 * leaving it in the backlog) frees the kernel's queue for honest peers
 * and tells the client now instead of after its own timeout. */
static void conn_refuse(struct conn_set *s, int fd, enum conn_admit why)
{
    close(fd);
    s->stats.refused[why]++;
    uint32_t dropped;
    if (!conn_ratelim_pass(&s->refuse_rl, loop_now(s->loop), 0, &dropped))
        return;
    char more[64] = "";
    if (dropped)
        snprintf(more, sizeof more, "; %u more refused since the last such line", dropped);
    if (why == CONN_REFUSE_CONNS)
        log_warn("refusing connection: %zu connections already (--max-conns)%s", s->count,
                 more);
    else
        log_warn("refusing connection: %zu handshakes in progress (--max-handshakes)%s",
                 s->handshakes, more);
}

static void conn_on_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    (void)events;
    struct conn_set *s = io->ud;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("accept failed: %s", strerror(errno));
            return;
        }
        enum conn_admit adm = conn_admit(s->count, s->cfg.max_conns, s->handshakes,
                                         s->cfg.max_handshakes);
        if (adm != CONN_ADMIT) {
            conn_refuse(s, fd, adm);
            continue;
        }
        set_nonblock(fd);
        struct conn *c = conn_alloc(s, fd);
        if (!c) {
            close(fd);
            continue;
        }
        c->state = CONN_HANDSHAKE;
        s->handshakes++;
        struct hs_cfg hc = hs_cfg_of(s);
        hc.decide = conn_decide;
        hc.ud = c;
        if (hs_init_acceptor(&c->hs, &hc, set_random(s)) < 0)
            conn_close(c, "handshake set-up failed");
        else if (s->cfg.tls && !(c->tls = tls_new(s->cfg.tls, fd, 1, NULL)))
            conn_close(c, "TLS set-up failed");
    }
}

int conn_set_listen(struct conn_set *s, const char *addr, uint16_t port, uint16_t *port_out,
                    char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    if (addr && inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        snprintf(err, errlen, "bad listen address %s", addr);
        close(fd);
        return -EINVAL;
    }
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 512) < 0)
        goto fail;
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    *port_out = ntohs(sin.sin_port);
    s->listen_fd = fd;
    return loop_io_add(s->loop, &s->listen_io, fd, EPOLLIN, conn_on_accept, s);
fail:;
    int e = errno;
    snprintf(err, errlen, "cannot listen on port %u: %s", port, strerror(e));
    if (fd >= 0)
        close(fd);
    return -e;
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
        } else if (now - c->last_rx >= s->cfg.dead_ms) {
            conn_close(c, "no traffic within the net tick time: peer declared dead");
        } else if (now - c->last_tx >= s->cfg.tick_ms && !buf_size(&c->out)) {
            static const uint8_t tick[4] = {0, 0, 0, 0};
            buf_append(&c->out, tick, 4);
            conn_mark_dirty(c);
        }
        c = next;
    }
}
