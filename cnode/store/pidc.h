/*
 * Pid compaction: the stored form of lease values, with node names
 * interned.
 *
 * Model. Nearly every lease value is a pid, and the pids of one node
 * differ only in their id and serial: the node atom (most of the ~35
 * bytes) and the creation repeat in every one. A value that is exactly
 * one pid, NEW_PID_EXT or PID_EXT, is stored as
 *
 *     0x00, varint node index, varint id, varint serial    (4..14 bytes)
 *
 * where the node index names an interned (pid tag, atom bytes, creation)
 * triple. The atom and creation bytes are kept verbatim, whatever atom
 * encoding the value used, so unpacking rebuilds the original bytes
 * exactly: values read back are byte-identical to what was stored, which
 * is what makes them canonical terms still. Any other value is stored as
 * it is, behind a 0x01 escape byte when its own first byte is 0x00 or 0x01
 * (no canonical term starts with either: tags are >= 70).
 *
 * Interned nodes are reference counted, one reference per packed value,
 * and freed with their last value, so a peer cycling through node names
 * costs nothing once its leases are gone. At most PIDC_MAX_NODES nodes
 * are interned at once; past that (or without memory, or for atoms longer
 * than PIDC_MAX_ATOM bytes) values are simply stored as they are.
 *
 * Varints: 7 bits per byte, low bits first, high bit set on all but the
 * last byte (LEB128), at most 5 bytes for 32 bits.
 */
#ifndef LOCKERD_STORE_PIDC_H
#define LOCKERD_STORE_PIDC_H

#include <stddef.h>
#include <stdint.h>

#include "../../ei_glue/term.h"

#define PIDC_MAX_NODES 65536u
#define PIDC_MAX_ATOM 1023u                                /* atom encoding incl. header */
#define PIDC_MAX_PACKED 14u                                /* 1 + 3 + 5 + 5 */
#define PIDC_MAX_PID (1u + PIDC_MAX_ATOM + 4 + 4 + 4)      /* largest unpacked pid */

struct pidc;

struct pidc *pidc_new(uint64_t seed); /* NULL on ENOMEM */
void pidc_free(struct pidc *pc);      /* NULL ok */

/* Pack val into out if it is a pid that can be interned: returns the
 * packed length (taking a reference on its node) or 0 (then store it
 * raw: see pidc_raw_len/pidc_put_raw). */
size_t pidc_pack(struct pidc *pc, struct term val, uint8_t out[PIDC_MAX_PACKED]);
/* Stored length and bytes of a value that is not packed. */
size_t pidc_raw_len(struct term val);
void pidc_put_raw(uint8_t *dst, struct term val);
/* Drop the reference a stored value holds, if it is a packed one. */
void pidc_drop(struct pidc *pc, const uint8_t *stored, size_t len);
/* The value a stored form stands for. A packed pid is rebuilt in a buffer
 * of pc's, valid until the next pidc_unpack; otherwise the span points
 * into `stored`. */
struct term pidc_unpack(struct pidc *pc, const uint8_t *stored, size_t len);

/* Interned nodes now, and the bytes they hold. */
size_t pidc_node_count(const struct pidc *pc);
size_t pidc_mem_bytes(const struct pidc *pc);

/* Varints (also used for the lengths in a lease): bytes written / read,
 * 0 if the input ends early or runs past 5 bytes. */
size_t pidc_varint_put(uint8_t *out, uint32_t v);
size_t pidc_varint_len(uint32_t v);
size_t pidc_varint_get(const uint8_t *in, size_t len, uint32_t *v);

#endif
