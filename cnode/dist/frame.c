/*
 * Post-handshake framing: Len:32 | Len bytes, Len 0 being a tick.
 *
 * Model: the caller keeps the unread bytes of a connection in one contiguous
 * buffer and calls frame_split() until it returns 0. The splitter never
 * copies or allocates; body points into the caller's buffer and stays valid
 * until the caller moves or frees those bytes.
 *
 * Invariant: the size limit is checked as soon as the 4 header bytes are
 * present, so a hostile length is refused before the caller reserves room
 * for (or waits on) a body it would never accept.
 */
#include "frame.h"

#include <errno.h>
#include <limits.h>

#include "../core/buf.h"

#define FRAME_HDR 4

int frame_split(const uint8_t *in, size_t len, size_t max_body, const uint8_t **body,
                size_t *body_len)
{
    if (len < FRAME_HDR)
        return 0;
    uint32_t n = get_u32(in);
    /* The result is an int: a body that cannot be reported as consumed
     * bytes is refused like any other oversize one. */
    if (n > max_body || n > (uint32_t)(INT_MAX - FRAME_HDR))
        return -EMSGSIZE;
    if (len - FRAME_HDR < n)
        return 0;
    if (body)
        *body = in + FRAME_HDR;
    if (body_len)
        *body_len = n;
    return (int)(FRAME_HDR + n);
}
