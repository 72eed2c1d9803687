/*
 * epmd wire codec: request encoders and reply parsers, no sockets.
 *
 * Requests are Len:16 | body. Each encoder builds the whole request on the
 * stack and appends it in one buf_append(), so on -ENOMEM the output buffer
 * is unchanged and never holds half a request.
 *
 * Reply parsers follow the split convention used across dist/: > 0 bytes
 * consumed, 0 need more, negative errno. They decide an error as early as
 * the bytes allow: a non-zero result byte is final even before the rest of
 * the reply arrives, because epmd may close the socket right after it.
 */
#include "epmd.h"

#include <errno.h>
#include <string.h>

#define EPMD_ALIVE2_REQ 120
#define EPMD_ALIVE2_X_RESP 118
#define EPMD_ALIVE2_RESP 121
#define EPMD_PORT_PLEASE2_REQ 122
#define EPMD_PORT2_RESP 119

#define EPMD_PROTO_TCP 0
#define EPMD_DIST_VERSION 6
/* epmd keeps alive names in a fixed MAXSYMLEN (255) field. */
#define EPMD_ALIVE_MAX 255

/* Fixed part of a PORT2_RESP before the name: tag, result, port, type,
 * proto, highest, lowest, nlen. */
#define EPMD_PORT2_FIXED 12

/* An alive name is the part before '@': non-empty, short enough for epmd,
 * and free of '@' (a full node name here is a caller bug). */
static int epmd_alive_len(const char *alive, size_t *n)
{
    if (!alive)
        return -EINVAL;
    size_t len = strnlen(alive, EPMD_ALIVE_MAX + 1);
    if (len == 0 || len > EPMD_ALIVE_MAX || memchr(alive, '@', len))
        return -EINVAL;
    *n = len;
    return 0;
}

static size_t epmd_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

int epmd_alive2_req(struct buf *out, const char *alive, uint16_t port)
{
    size_t n;
    int rc = epmd_alive_len(alive, &n);
    if (rc)
        return rc;
    uint8_t req[2 + 13 + EPMD_ALIVE_MAX];
    size_t body = 13 + n;
    size_t o = epmd_put16(req, (uint16_t)body);
    req[o++] = EPMD_ALIVE2_REQ;
    o += epmd_put16(req + o, port);
    req[o++] = EPMD_NODE_HIDDEN;
    req[o++] = EPMD_PROTO_TCP;
    o += epmd_put16(req + o, EPMD_DIST_VERSION); /* highest */
    o += epmd_put16(req + o, EPMD_DIST_VERSION); /* lowest */
    o += epmd_put16(req + o, (uint16_t)n);
    memcpy(req + o, alive, n);
    o += n;
    o += epmd_put16(req + o, 0); /* no extra */
    return buf_append(out, req, o);
}

int epmd_alive2_resp(const uint8_t *in, size_t len, uint32_t *creation)
{
    if (len < 1)
        return 0;
    size_t need;
    if (in[0] == EPMD_ALIVE2_X_RESP)
        need = 6;
    else if (in[0] == EPMD_ALIVE2_RESP)
        need = 4;
    else
        return -EINVAL;
    if (len < 2)
        return 0;
    /* epmd gives no reason code; a taken name is by far the likeliest. */
    if (in[1] != 0)
        return -EADDRINUSE;
    if (len < need)
        return 0;
    uint32_t c = need == 6 ? get_u32(in + 2) : get_u16(in + 2);
    if (creation)
        *creation = c;
    return (int)need;
}

int epmd_port_please2_req(struct buf *out, const char *alive)
{
    size_t n;
    int rc = epmd_alive_len(alive, &n);
    if (rc)
        return rc;
    uint8_t req[2 + 1 + EPMD_ALIVE_MAX];
    size_t o = epmd_put16(req, (uint16_t)(1 + n));
    req[o++] = EPMD_PORT_PLEASE2_REQ;
    memcpy(req + o, alive, n);
    o += n;
    return buf_append(out, req, o);
}

int epmd_port2_resp(const uint8_t *in, size_t len, uint16_t *port, uint16_t *highest,
                    uint16_t *lowest)
{
    if (len < 1)
        return 0;
    if (in[0] != EPMD_PORT2_RESP)
        return -EINVAL;
    if (len < 2)
        return 0;
    if (in[1] != 0)
        return -ENOENT;
    if (len < EPMD_PORT2_FIXED)
        return 0;
    uint16_t hi = get_u16(in + 6), lo = get_u16(in + 8);
    if (lo > hi)
        return -EINVAL;
    size_t nlen = get_u16(in + 10);
    /* Name and extra are read past, not kept: the caller already knows
     * which alive it asked for. Both lengths are 16-bit, so the total fits
     * an int. */
    size_t elen_at = EPMD_PORT2_FIXED + nlen;
    if (len < elen_at + 2)
        return 0;
    size_t total = elen_at + 2 + get_u16(in + elen_at);
    if (len < total)
        return 0;
    if (port)
        *port = get_u16(in + 2);
    if (highest)
        *highest = hi;
    if (lowest)
        *lowest = lo;
    return (int)total;
}
