/*
 * Locker request decoding; see request.h.
 *
 * Every argument is validated whole (term_next) before the request is
 * accepted, so handlers only ever see spans of well-formed terms; *nargs is
 * set only on success, so a caller never reads a half-filled args array.
 */
#include "request.h"

#include <errno.h>

int server_decode_request(struct term req, char *op, size_t opcap, struct term *args,
                          uint32_t *nargs)
{
    size_t pos = 0;
    int tag = term_peek(req.p, req.len, 0);
    if (tag != TT_SMALL_TUPLE && tag != TT_LARGE_TUPLE) {
        if (term_get_atom(req.p, req.len, &pos, op, opcap) || pos != req.len)
            return -EINVAL;
        *nargs = 0;
        return 0;
    }
    uint32_t ar;
    if (term_get_tuple(req.p, req.len, &pos, &ar) || ar < 1 || ar > SERVER_REQ_MAX_ARGS + 1 ||
        term_get_atom(req.p, req.len, &pos, op, opcap))
        return -EINVAL;
    for (uint32_t i = 0; i + 1 < ar; i++)
        if (term_next(req.p, req.len, &pos, &args[i]))
            return -EINVAL;
    if (pos != req.len)
        return -EINVAL;
    *nargs = ar - 1;
    return 0;
}
