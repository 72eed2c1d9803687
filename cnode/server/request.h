/*
 * The shape of a locker request term, decoded without a server: an atom
 * (`get_meta`), or a tuple {Op, Arg1, ..., ArgN} with an atom Op and at most
 * SERVER_REQ_MAX_ARGS arguments. Pure: no allocation, no server state, so
 * the request path can be unit-tested and fuzzed on its own.
 */
#ifndef LOCKERD_REQUEST_H
#define LOCKERD_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "../../ei_glue/term.h"

#define SERVER_REQ_MAX_ARGS 5

/*
 * Decode req (the whole request term, sender's encoding, nothing after it).
 * op gets the operation atom (UTF-8, NUL-terminated, opcap bytes at most);
 * args[0..*nargs) get spans of the arguments, pointing into req and still in
 * the sender's encoding (the caller canonicalises what it stores); args must
 * have room for SERVER_REQ_MAX_ARGS. Returns 0, or -EINVAL when req is not
 * such a term (unknown shape, op not an atom or too long for opcap, too many
 * arguments, a malformed argument, trailing bytes).
 */
int server_decode_request(struct term req, char *op, size_t opcap, struct term *args,
                          uint32_t *nargs);

#endif
