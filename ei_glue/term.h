/*
 * Erlang external term format: bounded validation, canonical form and small
 * bounded decoders.
 *
 * Model. Keys, values, tags and pids are carried through lockerd as byte
 * spans of *canonical* external format (no leading 131 version byte). Two
 * terms are =:= exactly when their canonical bytes are equal, whatever
 * encoding the sender chose, so the store compares and hashes bytes only.
 *
 * Canonical encoding rules (term_canon):
 *  - integers: 0..255 SMALL_INTEGER_EXT(97); other values in int32 range
 *    INTEGER_EXT(98); others SMALL_BIG_EXT(110) when <= 255 digit bytes,
 *    else LARGE_BIG_EXT(111); big digits trimmed of high zero bytes; a big
 *    zero (any sign) is SMALL_INTEGER_EXT 0.
 *  - atoms: always UTF-8: SMALL_ATOM_UTF8_EXT(119) if <= 255 bytes, else
 *    ATOM_UTF8_EXT(118); latin-1 ATOM_EXT(100)/SMALL_ATOM_EXT(115) are
 *    converted to UTF-8. Atoms longer than 255 characters are malformed.
 *  - lists: a proper list whose elements are all integers 0..255 and whose
 *    length is <= 65535 is STRING_EXT(107); NIL_EXT(106) for []; otherwise
 *    LIST_EXT(108) with canonical elements and canonical tail. A tail that is
 *    itself a list (LIST_EXT/STRING_EXT/NIL) is flattened into the outer list
 *    ([1|[2]] is [1,2]).
 *  - tuples: SMALL_TUPLE_EXT(104) when arity <= 255, else LARGE_TUPLE_EXT(105).
 *  - maps: MAP_EXT(116) with pairs ordered by the canonical bytes of their
 *    keys (memcmp over the common length, then shorter first); duplicate keys
 *    are malformed.
 *  - floats: NEW_FLOAT_EXT(70); the old FLOAT_EXT(99) text form is parsed.
 *  - binaries: BINARY_EXT(109); BIT_BINARY_EXT(77) with 8 used bits in the
 *    last byte (or zero length) becomes BINARY_EXT; otherwise unused low bits
 *    of the last byte are zeroed.
 *  - pids: NEW_PID_EXT(88) (PID_EXT(103) converted, creation widened);
 *    ports: V4_PORT_EXT(120) (PORT_EXT/NEW_PORT_EXT widened);
 *    refs: NEWER_REFERENCE_EXT(90) (REFERENCE_EXT/NEW_REFERENCE_EXT
 *    converted). The node atom inside is canonical too.
 *  - EXPORT_EXT(113): module and function atoms canonical, arity as is.
 *  - NEW_FUN_EXT(112) and FUN_EXT(117): copied verbatim after validation.
 *  - ATOM_CACHE_REF(82), DIST_HEADER, compressed(80) and LOCAL_EXT(121)
 *    terms are refused (-EINVAL): lockerd negotiates none of them.
 *
 * Corner cases (matching what OTP 25's binary_to_term accepts and =:=):
 *  - floats: -0.0 is written as 0.0 (0.0 =:= -0.0 up to OTP 26); NaN and
 *    infinities are malformed; FLOAT_EXT text must be [+-]D.D[e[+-]D] + NUL.
 *  - refs: high-order (trailing) zero id words are dropped, keeping at least
 *    one (BEAM ignores them in =:=); more than 5 id words is malformed.
 *  - the 1-byte creation of PID_EXT/PORT_EXT/REFERENCE_EXT/NEW_REFERENCE_EXT
 *    must be 0..3.
 *  - big integers: any non-zero sign byte means negative.
 *  - BIT_BINARY_EXT: 1..8 bits, or 0 bits with zero length.
 *  - LIST_EXT with zero elements is its tail ([ | T] is T).
 *  - atoms: UTF-8 must be strict (no overlong forms, surrogates or code
 *    points above U+10FFFF), else malformed.
 *  - EXPORT_EXT arity: any integer encoding of 0..255, written
 *    SMALL_INTEGER_EXT.
 *  - depth: the outermost term is level 1; a term with more than
 *    TERM_MAX_DEPTH levels gives -E2BIG.
 *  - funs being verbatim, one fun sent with latin-1 atoms inside and once
 *    with UTF-8 atoms gives two different canonical forms.
 *  - term_skip accepts exactly what term_canon accepts: a non-canonical term
 *    is validated by canonicalising it into scratch memory (-ENOMEM possible).
 *
 * Hostile input: every read is bounds-checked against `len`; nesting deeper
 * than TERM_MAX_DEPTH gives -E2BIG; declared counts larger than the bytes
 * that remain are refused before any allocation sized from them.
 *
 * All functions: return 0 on success or a negative errno (-EINVAL malformed,
 * -E2BIG too deep, -ENOMEM); on error *pos is unspecified and `out` may hold
 * a partial term beyond its previous length (callers truncate).
 */
#ifndef LOCKERD_TERM_H
#define LOCKERD_TERM_H

#include <stddef.h>
#include <stdint.h>

#include "../cnode/core/buf.h"

#define TERM_MAX_DEPTH 512

/* External format tags used across lockerd. */
enum {
    TT_NEW_FLOAT = 70, TT_BIT_BINARY = 77, TT_NEW_PID = 88, TT_NEW_PORT = 89,
    TT_NEWER_REF = 90, TT_SMALL_INT = 97, TT_INT = 98, TT_FLOAT = 99,
    TT_ATOM = 100, TT_REF = 101, TT_PORT = 102, TT_PID = 103,
    TT_SMALL_TUPLE = 104, TT_LARGE_TUPLE = 105, TT_NIL = 106, TT_STRING = 107,
    TT_LIST = 108, TT_BINARY = 109, TT_SMALL_BIG = 110, TT_LARGE_BIG = 111,
    TT_NEW_FUN = 112, TT_EXPORT = 113, TT_NEW_REF = 114, TT_SMALL_ATOM = 115,
    TT_MAP = 116, TT_FUN = 117, TT_ATOM_UTF8 = 118, TT_SMALL_ATOM_UTF8 = 119,
    TT_V4_PORT = 120, TT_VERSION = 131
};

/* A span of canonical term bytes (not owned). */
struct term {
    const uint8_t *p;
    uint32_t len;
};

/* Validate the term at in[*pos] (bounded, depth-limited); advance *pos past it. */
int term_skip(const uint8_t *in, size_t len, size_t *pos);

/* Validate the term at in[*pos], set *span to its bytes, advance *pos. */
int term_next(const uint8_t *in, size_t len, size_t *pos, struct term *span);

/* Append the canonical encoding of the term at in[*pos] to out; advance *pos. */
int term_canon(const uint8_t *in, size_t len, size_t *pos, struct buf *out);

/* Same as term_canon, but if the input term is already canonical nothing is
 * appended: *span is set to point into `in`. Otherwise the canonical bytes
 * are appended to out and *span points into out->data (valid until out is
 * next modified). Lets the hot path skip a copy for terms BEAM encodes
 * canonically already. */
int term_canon_span(const uint8_t *in, size_t len, size_t *pos, struct buf *out,
                    struct term *span);

/* Bounded decoders over (validated or not) input; each advances *pos.
 * They do not canonicalise; they accept every encoding of their type. */
int term_get_tuple(const uint8_t *in, size_t len, size_t *pos, uint32_t *arity);
int term_get_list(const uint8_t *in, size_t len, size_t *pos, uint32_t *count); /* LIST_EXT header or NIL (count 0); STRING_EXT is -EINVAL here */
/* Atom of any encoding into out (UTF-8, NUL-terminated); cap >= 256*4+1 is
 * always enough. -ENOSPC if it does not fit; -EINVAL for an atom containing
 * a NUL character, which no C string can hold. */
int term_get_atom(const uint8_t *in, size_t len, size_t *pos, char *out, size_t cap);
/* Integer of any encoding that fits in int64 (-ERANGE otherwise). */
int term_get_int64(const uint8_t *in, size_t len, size_t *pos, int64_t *v);
/* Does the term at in[pos] (not advanced) equal the atom `name`? 1 yes, 0 no. */
int term_is_atom(const uint8_t *in, size_t len, size_t pos, const char *name);
/* Tag byte at in[pos], or -EINVAL past the end. */
int term_peek(const uint8_t *in, size_t len, size_t pos);

/* Byte equality of canonical spans. */
static inline int term_eq(struct term a, struct term b);

/* 64-bit hash of bytes (fast, well-mixed; e.g. wyhash- or xxhash-like,
 * written here). Used for every hash table in lockerd. */
uint64_t term_hash(const void *p, size_t n);
/* Same with a caller-chosen seed. Tables that hostile peers can fill should
 * use a random per-process seed: an unseeded hash is public, so colliding
 * keys can be computed offline whatever its quality. */
uint64_t term_hash_seed(const void *p, size_t n, uint64_t seed);

#include <string.h>
static inline int term_eq(struct term a, struct term b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

#endif
