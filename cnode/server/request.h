/*
 * The shape of a locker request term, decoded without a server: an atom
 * (`get_meta`), or a tuple {Op, Arg1, ..., ArgN} with an atom Op and at most
 * SERVER_REQ_MAX_ARGS arguments. Pure: no server state, so the request path
 * can be unit-tested and fuzzed on its own.
 *
 * One pass: the request may arrive unvalidated (straight from a frame, see
 * node_spawn_raw), and each argument is validated and canonicalised by the
 * same walk (term_canon_span), so the bytes of a request are read once on
 * their way to the store.
 */
#ifndef LOCKERD_REQUEST_H
#define LOCKERD_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "../../ei_glue/term.h"

#define SERVER_REQ_MAX_ARGS 5

/*
 * Decode req (the whole request term, sender's encoding, nothing after it,
 * not necessarily validated). op gets the operation atom (UTF-8,
 * NUL-terminated, opcap bytes at most); args[0..*nargs) get the arguments
 * in canonical form: a span of req when the sender encoded the argument
 * canonically already, else a span of `canon`, where the rewritten ones are
 * appended (valid until canon is next modified; the caller resets it).
 * args must have room for SERVER_REQ_MAX_ARGS. Returns 0, -ENOMEM, or
 * -EINVAL when req is not such a term (unknown shape, op not an atom or
 * too long for opcap, too many arguments, a malformed argument, trailing
 * bytes); -EINVAL does not say whether req as a whole is a valid term.
 */
int server_decode_request(struct term req, char *op, size_t opcap, struct term *args,
                          uint32_t *nargs, struct buf *canon);

#endif
