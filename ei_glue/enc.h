/*
 * Term encoders appending external-format bytes (no 131 version byte) to a
 * buf. Scalars go through ei's encoders; structure headers and pre-encoded
 * canonical spans are written directly. Each returns 0 or -ENOMEM.
 */
#ifndef LOCKERD_ENC_H
#define LOCKERD_ENC_H

#include <stdint.h>

#include "term.h"

int enc_atom(struct buf *b, const char *name);
int enc_long(struct buf *b, int64_t v);
int enc_tuple(struct buf *b, uint32_t arity);
int enc_list(struct buf *b, uint32_t n); /* LIST_EXT header; elements + tail follow */
int enc_nil(struct buf *b);
int enc_raw(struct buf *b, struct term t);
int enc_binary(struct buf *b, const void *p, uint32_t n);
int enc_pid(struct buf *b, const char *node, uint32_t id, uint32_t serial, uint32_t creation);
int enc_ref(struct buf *b, const char *node, uint32_t creation, const uint32_t ids[3]);
/* {A, B} where both are atoms: common reply shape {error, Reason}. */
int enc_atom_pair(struct buf *b, const char *a, const char *c);

#endif
