/*
 * epmd wire codec (pure; the socket side lives in dist/conn and node).
 * Requests carry a 2-byte length; replies do not.
 */
#ifndef LOCKERD_EPMD_H
#define LOCKERD_EPMD_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"

#define EPMD_PORT 4369
#define EPMD_NODE_HIDDEN 72

/* ALIVE2_REQ for a hidden node, protocol 0, versions 6..6. */
int epmd_alive2_req(struct buf *out, const char *alive, uint16_t port);
/* Parse ALIVE2_X_RESP (118, 6 bytes) or ALIVE2_RESP (121, 4 bytes).
 * > 0 consumed, 0 need more, -EINVAL bad tag, -EADDRINUSE result != 0
 * (name taken). *creation set on success. */
int epmd_alive2_resp(const uint8_t *in, size_t len, uint32_t *creation);
/* PORT_PLEASE2_REQ. */
int epmd_port_please2_req(struct buf *out, const char *alive);
/* Parse PORT2_RESP. > 0 consumed, 0 need more (epmd closes after replying,
 * so a short read at EOF is an error for the caller), -ENOENT result != 0
 * (no such node), -EINVAL malformed. *port set; *highest and *lowest (may be NULL)
 * the versions the node speaks. */
int epmd_port2_resp(const uint8_t *in, size_t len, uint16_t *port, uint16_t *highest,
                    uint16_t *lowest);

#endif
