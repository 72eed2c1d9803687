/*
 * Distribution framing after the handshake (plain TCP): every packet is
 * Len:32 | Len bytes; Len 0 is a tick. Pure: no allocation, no I/O.
 */
#ifndef LOCKERD_FRAME_H
#define LOCKERD_FRAME_H

#include <stddef.h>
#include <stdint.h>

/*
 * Split one frame off the front of in[0..len).
 * Returns > 0: bytes consumed (4 + body); *body and *body_len set (body_len 0 = tick).
 *           0: need more bytes (every proper prefix of a frame gives 0).
 *   -EMSGSIZE: the header announces a body larger than max_body: the caller
 *              closes the connection; decided from the 4 header bytes alone,
 *              before any of the body is buffered.
 */
int frame_split(const uint8_t *in, size_t len, size_t max_body, const uint8_t **body,
                size_t *body_len);

/* Pass-through header byte every non-tick frame starts with (no atom cache). */
#define FRAME_PASS_THROUGH 112

#endif
