/*
 * The listening side of the connection layer: accepting sockets and
 * admitting them (--max-conns, --max-handshakes, --max-handshakes-per-
 * source), refusals logged under a rate limit. See conn.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"
#include "conn_int.h"

/* ---- listening ---- */

/* Close a socket accepted over a limit. Closing at once (rather than
 * leaving it in the backlog) frees the kernel's queue for honest peers
 * and tells the client now instead of after its own timeout. */
static void conn_refuse(struct conn_set *s, int fd, enum conn_admit why, const char *src)
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
    else if (why == CONN_REFUSE_SOURCE)
        log_warn("refusing connection from %s: %zu handshakes from that address in progress "
                 "(--max-handshakes-per-source)%s", src, s->cfg.max_hs_per_source, more);
    else
        log_warn("refusing connection: %zu handshakes in progress (--max-handshakes)%s",
                 s->handshakes, more);
}

/* The peer's address as bytes (compared) and text (logged); srclen 0
 * for a family other than IPv4 / IPv6. */
static void sockaddr_src(const struct sockaddr_storage *sa, uint8_t *src, uint8_t *srclen,
                         char *txt, size_t cap)
{
    const void *a = NULL;
    *srclen = 0;
    if (sa->ss_family == AF_INET) {
        a = &((const struct sockaddr_in *)sa)->sin_addr;
        *srclen = 4;
    } else if (sa->ss_family == AF_INET6) {
        a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        *srclen = 16;
    }
    if (!a || !inet_ntop(sa->ss_family, a, txt, (socklen_t)cap))
        snprintf(txt, cap, "?");
    if (a)
        memcpy(src, a, *srclen);
}

/* Incoming handshakes in progress from one address. */
static size_t conn_hs_from(const struct conn_set *s, const uint8_t *src, uint8_t srclen)
{
    size_t n = 0;
    for (const struct conn *o = s->head; o; o = o->next)
        if (conn__is_incoming_hs(o) && o->srclen == srclen && memcmp(o->src, src, srclen) == 0)
            n++;
    return n;
}

static void conn_on_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    (void)events;
    struct conn_set *s = io->ud;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        int fd = accept4(s->listen_fd, (struct sockaddr *)&sa, &salen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("accept failed: %s", strerror(errno));
            return;
        }
        uint8_t src[16], srclen;
        char txt[48];
        sockaddr_src(&sa, src, &srclen, txt, sizeof txt);
        enum conn_admit adm = conn_admit(s->count, s->cfg.max_conns, s->handshakes,
                                         s->cfg.max_handshakes);
        if (adm == CONN_ADMIT && srclen)
            adm = conn_admit_source(conn_hs_from(s, src, srclen), s->cfg.max_hs_per_source);
        if (adm != CONN_ADMIT) {
            conn_refuse(s, fd, adm, txt);
            continue;
        }
        conn__nonblock(fd);
        struct conn *c = conn__alloc(s, fd);
        if (!c) {
            close(fd);
            continue;
        }
        memcpy(c->src, src, sizeof src);
        c->srclen = srclen;
        memcpy(c->src_txt, txt, sizeof txt);
        c->state = CONN_HANDSHAKE;
        s->handshakes++;
        struct hs_cfg hc = conn__hs_cfg(s);
        hc.decide = conn__decide;
        hc.ud = c;
        if (hs_init_acceptor(&c->hs, &hc, conn__random(s)) < 0)
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

