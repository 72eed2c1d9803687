/*
 * Locker request decoding; see request.h.
 *
 * Every argument is validated whole while it is canonicalised, before the
 * request is accepted, so handlers only ever see spans of well-formed
 * canonical terms; *nargs is set only on success, so a caller never reads
 * a half-filled args array. Rewritten arguments are appended to `canon`,
 * which may move while later ones are appended: their positions are kept
 * as offsets and turned into pointers at the end.
 */
#include "request.h"

#include <errno.h>

int server_decode_request(struct term req, char *op, size_t opcap, struct term *args,
                          uint32_t *nargs, struct buf *canon)
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
    size_t off[SERVER_REQ_MAX_ARGS];
    if (term_get_tuple(req.p, req.len, &pos, &ar) || ar < 1 || ar > SERVER_REQ_MAX_ARGS + 1 ||
        term_get_atom(req.p, req.len, &pos, op, opcap))
        return -EINVAL;
    for (uint32_t i = 0; i + 1 < ar; i++) {
        size_t before = canon->len;
        int rc = term_canon_span(req.p, req.len, &pos, canon, &args[i]);
        if (rc)
            return rc == -ENOMEM ? rc : -EINVAL;
        off[i] = canon->len != before ? before : SIZE_MAX;
    }
    if (pos != req.len)
        return -EINVAL;
    for (uint32_t i = 0; i + 1 < ar; i++)
        if (off[i] != SIZE_MAX)
            args[i].p = canon->data + off[i];
    *nargs = ar - 1;
    return 0;
}
