/*
 * The operations endpoint; see endpoint.h for the model.
 *
 * A connection's life: READ (head bytes into `in`) -> WRITE (the response
 * in `out`) -> closed. Every transition is a function below; the only
 * timer is one per endpoint that sweeps connections past their deadline
 * (at most EP_MAX_CONNS to look at), armed while any connection exists.
 */
#include "endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"

enum ep_state { EP_READ, EP_WRITE, EP_CLOSED };

struct ep_conn {
    struct endpoint *ep;
    struct loop_io io;
    enum ep_state state;
    int64_t deadline;
    size_t inlen;
    char in[EP_MAX_HEAD];
    struct buf out;
};

static const int counted_status[] = {200, 400, 404, 405, 408, 431, 500, 503};
#define NSTATUS (sizeof counted_status / sizeof counted_status[0])

struct endpoint {
    struct loop *loop;
    ep_serve_fn serve;
    void *ud;
    int fd;
    struct loop_io io;
    struct loop_timer sweep;
    struct ep_conn *conns[EP_MAX_CONNS];
    size_t nconns;
    char addr[80];
    uint64_t sent[NSTATUS];
    struct buf body; /* the handler's output, reused */
};

int ep_split_addr(const char *s, char *host, size_t cap, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || !colon[1])
        return -EINVAL;
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (hlen && s[0] == '[') {
        if (hlen < 2 || colon[-1] != ']')
            return -EINVAL;
        h = s + 1;
        hlen -= 2;
    } else if (memchr(s, ':', hlen)) {
        return -EINVAL; /* an IPv6 address needs brackets */
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || hlen >= cap)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

uint64_t ep_count_of(const struct endpoint *e, int status)
{
    for (size_t i = 0; i < NSTATUS; i++)
        if (counted_status[i] == status)
            return e->sent[i];
    return 0;
}

size_t ep_conns(const struct endpoint *e) { return e->nconns; }
const char *ep_address(const struct endpoint *e) { return e->addr; }

/* ---- connections ---- */

static void conn_free_cb(void *p)
{
    struct ep_conn *c = p;
    buf_free(&c->out);
    free(c);
}

static void ep_conn_close(struct ep_conn *c)
{
    if (c->state == EP_CLOSED)
        return;
    struct endpoint *e = c->ep;
    c->state = EP_CLOSED;
    loop_io_del(e->loop, &c->io);
    close(c->io.fd);
    for (size_t i = 0; i < e->nconns; i++)
        if (e->conns[i] == c) {
            e->conns[i] = e->conns[--e->nconns];
            break;
        }
    loop_defer_free(e->loop, conn_free_cb, c);
}

static void ep_write(struct ep_conn *c)
{
    while (buf_size(&c->out)) {
        ssize_t n = send(c->io.fd, buf_head(&c->out), buf_size(&c->out), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* LOOP_OUT is on: we come back */
        if (n <= 0)
            break;
        buf_consume(&c->out, (size_t)n);
    }
    ep_conn_close(c);
}

/* Queue the response and start writing it. */
static void ep_respond(struct ep_conn *c, int status, const char *ctype, const char *extra,
                       const struct buf *body, int head_only)
{
    struct endpoint *e = c->ep;
    for (size_t i = 0; i < NSTATUS; i++)
        if (counted_status[i] == status)
            e->sent[i]++;
    char hdr[512];
    size_t blen = body ? buf_size(body) : 0;
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                     status, http_reason(status), ctype, blen, extra ? extra : "");
    buf_reset(&c->out);
    if (n < 0 || (size_t)n >= sizeof hdr || buf_append(&c->out, hdr, (size_t)n) ||
        (blen && !head_only && buf_append(&c->out, buf_head(body), blen))) {
        ep_conn_close(c);
        return;
    }
    c->state = EP_WRITE;
    loop_io_mod(e->loop, &c->io, LOOP_OUT);
    ep_write(c);
}

static void ep_respond_text(struct ep_conn *c, int status, const char *extra, const char *text)
{
    struct buf b;
    buf_init(&b);
    if (buf_append(&b, text, strlen(text)))
        buf_reset(&b);
    ep_respond(c, status, "text/plain; charset=utf-8", extra, &b, 0);
    buf_free(&b);
}

static void ep_dispatch(struct ep_conn *c, const struct http_req *r)
{
    struct endpoint *e = c->ep;
    if (r->method == HTTP_OTHER) {
        ep_respond_text(c, 405, "Allow: GET, HEAD\r\n", "method not allowed\n");
        return;
    }
    if (r->has_body) {
        ep_respond_text(c, 400, NULL, "a GET here has no body\n");
        return;
    }
    buf_reset(&e->body);
    const char *ctype = "text/plain; charset=utf-8";
    int status = e->serve(e->ud, r, &e->body, &ctype);
    if (buf_size(&e->body) > EP_MAX_BODY) {
        log_warn("metrics endpoint: a %zu-byte response is over the cap; 500 sent",
                 buf_size(&e->body));
        buf_reset(&e->body);
        status = 500;
    }
    ep_respond(c, status, ctype, NULL, &e->body, r->method == HTTP_HEAD);
}

static void ep_read(struct ep_conn *c)
{
    for (;;) {
        if (c->inlen == sizeof c->in) {
            ep_respond_text(c, 431, NULL, "request head too large\n");
            return;
        }
        ssize_t n = recv(c->io.fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            ep_conn_close(c);
            return;
        }
        c->inlen += (size_t)n;
        struct http_req r;
        int rc = http_parse(c->in, c->inlen, sizeof c->in, &r);
        if (rc == 0)
            continue;
        if (rc == -E2BIG)
            ep_respond_text(c, 431, NULL, "request head too large\n");
        else if (rc < 0)
            ep_respond_text(c, 400, NULL, "bad request\n");
        else
            ep_dispatch(c, &r);
        return;
    }
}

static void ep_on_conn(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    struct ep_conn *c = io->ud;
    if (c->state == EP_READ && (events & (LOOP_IN | LOOP_HUP | LOOP_ERR)))
        ep_read(c);
    else if (c->state == EP_WRITE)
        ep_write(c);
}

/* ---- listening, deadlines ---- */

static void ep_sweep(struct loop *l, struct loop_timer *t)
{
    struct endpoint *e = t->ud;
    int64_t now = loop_now(l);
    for (size_t i = e->nconns; i-- > 0;) {
        struct ep_conn *c = e->conns[i];
        if (now < c->deadline)
            continue;
        if (c->state == EP_READ && c->inlen)
            ep_respond_text(c, 408, NULL, "request timeout\n");
        if (c->state != EP_CLOSED)
            ep_conn_close(c); /* silent, or not reading its response */
    }
    if (e->nconns)
        loop_timer_arm(l, t, now + 250);
}

static void ep_on_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)events;
    struct endpoint *e = io->ud;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(e->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("metrics endpoint: accept failed: %s", strerror(errno));
            return;
        }
        struct ep_conn *c = e->nconns < EP_MAX_CONNS ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            close(fd); /* at the cap: the client retries at its next scrape */
            continue;
        }
        c->ep = e;
        c->state = EP_READ;
        c->deadline = loop_now(l) + EP_DEADLINE_MS;
        buf_init(&c->out);
        if (loop_io_add(l, &c->io, fd, LOOP_IN, ep_on_conn, c)) {
            close(fd);
            free(c);
            continue;
        }
        e->conns[e->nconns++] = c;
        if (e->sweep.heap_idx == SIZE_MAX)
            loop_timer_arm(l, &e->sweep, loop_now(l) + 250);
    }
}

static int ep_listen(struct endpoint *e, const char *addr_port, char *err, size_t errlen)
{
    char host[64];
    uint16_t port;
    if (ep_split_addr(addr_port, host, sizeof host, &port)) {
        snprintf(err, errlen, "--metrics-listen %s: want ADDR:PORT", addr_port);
        return -EINVAL;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    struct addrinfo *ai = NULL;
    char ports[8];
    snprintf(ports, sizeof ports, "%u", port);
    if (getaddrinfo(host[0] ? host : "0.0.0.0", ports, &hints, &ai) || !ai) {
        snprintf(err, errlen, "--metrics-listen %s: not a numeric address", addr_port);
        return -EINVAL;
    }
    int one = 1, rc = 0;
    e->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (e->fd < 0 || setsockopt(e->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(e->fd, ai->ai_addr, ai->ai_addrlen) || listen(e->fd, 64)) {
        rc = -errno;
        snprintf(err, errlen, "--metrics-listen %s: %s", addr_port, strerror(errno));
    }
    freeaddrinfo(ai);
    if (rc)
        return rc;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    uint16_t bound = port;
    if (getsockname(e->fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
            bound = ntohs(s6->sin6_port);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
            bound = ntohs(s4->sin_port);
        }
    }
    snprintf(e->addr, sizeof e->addr, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, bound);
    return 0;
}

struct endpoint *ep_new(struct loop *l, const char *addr_port, ep_serve_fn fn, void *ud,
                        char *err, size_t errlen)
{
    struct endpoint *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->loop = l;
    e->serve = fn;
    e->ud = ud;
    e->fd = -1;
    buf_init(&e->body);
    loop_timer_init(&e->sweep, ep_sweep, e);
    if (ep_listen(e, addr_port, err, errlen))
        goto fail;
    if (loop_io_add(l, &e->io, e->fd, LOOP_IN, ep_on_accept, e)) {
        snprintf(err, errlen, "--metrics-listen: cannot watch the socket");
        goto fail;
    }
    return e;
fail:
    ep_free(e);
    return NULL;
}

void ep_free(struct endpoint *e)
{
    if (!e)
        return;
    while (e->nconns)
        ep_conn_close(e->conns[0]);
    loop_timer_stop(e->loop, &e->sweep);
    loop_io_del(e->loop, &e->io);
    if (e->fd >= 0)
        close(e->fd);
    buf_free(&e->body);
    free(e);
}
