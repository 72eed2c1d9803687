/*
 * The operations endpoint: a tiny HTTP/1.x server on the event loop for
 * metrics and health probes (GET /metrics, /healthz, /readyz). Off unless
 * main.c is given --metrics-listen.
 *
 * Model. One listening socket and at most EP_MAX_CONNS connections. A
 * connection reads one request head into a fixed buffer (EP_MAX_HEAD
 * bytes: more is 431), gets one response (always "Connection: close") and
 * is closed once it is written; a connection not done within
 * EP_DEADLINE_MS of its accept is closed, so slow or silent clients hold a
 * bounded share for a bounded time, and the distribution side never waits
 * for them (nothing here blocks). Accepts beyond EP_MAX_CONNS are closed
 * at once. Methods other than GET and HEAD get 405, malformed heads and
 * requests with a body 400, unknown paths 404 (the handler decides).
 *
 * The handler builds the whole body into a buffer; responses larger than
 * EP_MAX_BODY are answered 500, so the output of a connection is bounded
 * too. Connections are freed after the loop iteration that closed them.
 */
#ifndef LOCKERD_ENDPOINT_H
#define LOCKERD_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"
#include "../core/loop.h"
#include "http.h"

#define EP_MAX_CONNS 16
#define EP_MAX_HEAD 4096
#define EP_DEADLINE_MS 5000
#define EP_MAX_BODY (8u << 20)

/* Fill body and *ctype for r (GET or HEAD, no body); return the status.
 * *ctype defaults to text/plain. */
typedef int (*ep_serve_fn)(void *ud, const struct http_req *r, struct buf *body,
                           const char **ctype);

struct endpoint;

/* Listen on "ADDR:PORT" ("127.0.0.1:9100", "[::1]:9100", ":9100" for all
 * IPv4 addresses; port 0: any). NULL with a reason in err. */
struct endpoint *ep_new(struct loop *l, const char *addr_port, ep_serve_fn fn, void *ud,
                        char *err, size_t errlen);
void ep_free(struct endpoint *e); /* NULL ok; closes every connection */
/* The bound address, as "ADDR:PORT". */
const char *ep_address(const struct endpoint *e);

/* Responses sent, by status (metrics); index by status / 100 - 1 .. as
 * ep_count_of(e, 200). */
uint64_t ep_count_of(const struct endpoint *e, int status);
size_t ep_conns(const struct endpoint *e);

/* Split "ADDR:PORT" (pure): host into host (brackets dropped), port.
 * 0 or -EINVAL. */
int ep_split_addr(const char *s, char *host, size_t cap, uint16_t *port);

#endif
