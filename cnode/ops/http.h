/*
 * The HTTP/1.x request head parser of the operations endpoint (metrics and
 * health), pure: bytes in, a small struct out, no allocation, no I/O.
 *
 * Model. The endpoint serves one request per connection and answers it
 * with "Connection: close", so all it needs from a request is the method,
 * the path (query string dropped) and whether a body follows (which a
 * GET here never has: such a request is refused). The parser is called
 * with everything received so far and answers like picohttpparser: the
 * head's length once it is complete, 0 while more is needed (every proper
 * prefix of a valid head is "need more"), or an error. The head is bounded
 * by the caller's max_head: a head not complete within that many bytes is
 * -E2BIG, so a client can never make the endpoint buffer more.
 *
 * Accepted: request line "METHOD SP origin-form SP HTTP/1.0|1.1" and
 * header lines "Name: value", each ended by CRLF (a bare LF is taken too),
 * the head ended by an empty line. Anything else is -EINVAL.
 */
#ifndef LOCKERD_HTTP_H
#define LOCKERD_HTTP_H

#include <stddef.h>

#define HTTP_PATH_MAX 256

enum http_method { HTTP_GET, HTTP_HEAD, HTTP_OTHER };

struct http_req {
    enum http_method method;
    char path[HTTP_PATH_MAX];   /* NUL-terminated, without the query */
    int minor;                  /* HTTP/1.minor */
    int has_body;               /* Content-Length > 0 or Transfer-Encoding */
};

/* >0: head length, 0: need more, -EINVAL: malformed, -E2BIG: head (or
 * path) too long. */
int http_parse(const char *p, size_t n, size_t max_head, struct http_req *r);

/* Standard reason phrase of the few statuses the endpoint sends. */
const char *http_reason(int status);

#endif
