/*
 * Distribution handshake, version 6 (DFLAG_HANDSHAKE_23), both roles, as a
 * pure state machine: bytes in -> state + bytes out. No sockets, no clock,
 * no randomness of its own (the caller supplies the challenge), so byte
 * vectors test every path.
 *
 * Plain TCP: every handshake message carries a 2-byte length (hs_cfg.len4
 * selects the 4-byte form used inside TLS).
 *
 * Initiator: send_name 'N' -> status 's'... -> challenge 'N' (peer name must
 *   equal the node dialled) -> reply 'r' (our challenge + digest of theirs)
 *   -> ack 'a' (digest of ours checked) -> done.
 * Acceptor: name 'N' (old 'n' refused) -> status via cfg.decide (ok,
 *   ok_simultaneous, nok, not_allowed, alive) -> challenge 'N' -> reply 'r'
 *   (digest checked) -> ack 'a' -> done.
 * Digest = MD5(cookie ++ decimal ASCII of the challenge as unsigned 32-bit).
 * Negotiated flags = ours & theirs; a peer lacking any of cfg.required_flags
 * gets "not_allowed" (acceptor) / is dropped (initiator).
 */
#ifndef LOCKERD_HANDSHAKE_H
#define LOCKERD_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"

/* Flags (docs/distribution.md section 3). */
#define DF_PUBLISHED 0x1ULL
#define DF_EXTENDED_REFERENCES 0x4ULL
#define DF_DIST_MONITOR 0x8ULL
#define DF_FUN_TAGS 0x10ULL
#define DF_DIST_MONITOR_NAME 0x20ULL
#define DF_NEW_FUN_TAGS 0x80ULL
#define DF_EXTENDED_PIDS_PORTS 0x100ULL
#define DF_EXPORT_PTR_TAG 0x200ULL
#define DF_BIT_BINARIES 0x400ULL
#define DF_NEW_FLOATS 0x800ULL
#define DF_SMALL_ATOM_TAGS 0x4000ULL
#define DF_UTF8_ATOMS 0x10000ULL
#define DF_MAP_TAG 0x20000ULL
#define DF_BIG_CREATION 0x40000ULL
#define DF_HANDSHAKE_23 0x1000000ULL
#define DF_UNLINK_ID 0x2000000ULL
#define DF_MANDATORY_25_DIGEST 0x4000000ULL
#define DF_SPAWN (1ULL << 32)
#define DF_NAME_ME (2ULL << 32)
#define DF_V4_NC (4ULL << 32)
#define DF_ALIAS (8ULL << 32)

/* What OTP 25 insists on; lockerd needs the same from its peers. */
#define DF_MANDATORY                                                                        \
    (DF_EXTENDED_REFERENCES | DF_FUN_TAGS | DF_NEW_FUN_TAGS | DF_EXTENDED_PIDS_PORTS |      \
     DF_EXPORT_PTR_TAG | DF_BIT_BINARIES | DF_NEW_FLOATS | DF_UTF8_ATOMS | DF_MAP_TAG |     \
     DF_BIG_CREATION | DF_HANDSHAKE_23)
/* lockerd's advertised set (hidden: no PUBLISHED) = 0xD07074FBC. */
#define DF_LOCKERD                                                                          \
    (DF_MANDATORY | DF_DIST_MONITOR | DF_DIST_MONITOR_NAME | DF_SMALL_ATOM_TAGS |          \
     DF_UNLINK_ID | DF_V4_NC | DF_MANDATORY_25_DIGEST | DF_SPAWN | DF_ALIAS)

#define HS_NAME_MAX 255
/* Longest handshake message accepted (body, without the length prefix). */
#define HS_MSG_MAX 4096

enum hs_role { HS_INITIATOR, HS_ACCEPTOR };

/* Acceptor's answer once the peer's name is known (simultaneous connect,
 * duplicates, allowlist are the caller's policy). */
enum hs_status { HS_OK, HS_OK_SIMULTANEOUS, HS_NOK, HS_NOT_ALLOWED, HS_ALIVE };

struct hs_cfg {
    const char *my_name;      /* alive@host */
    const char *cookie;
    uint64_t my_flags;        /* DF_LOCKERD */
    uint64_t required_flags;  /* DF_MANDATORY */
    uint32_t my_creation;
    int len4;                 /* 1: 4-byte lengths (TLS) */
    /* Acceptor only: decide the status for a peer name. NULL = HS_OK. */
    enum hs_status (*decide)(void *ud, const char *peer_name, uint64_t peer_flags);
    void *ud;
};

enum hs_state {
    HS_I_SEND_NAME, HS_I_WAIT_STATUS, HS_I_WAIT_CHALLENGE, HS_I_WAIT_ACK,
    HS_A_WAIT_NAME, HS_A_WAIT_REPLY,
    HS_DONE, HS_FAILED
};

struct hs {
    enum hs_role role;
    enum hs_state state;
    struct hs_cfg cfg;
    char peer_name[HS_NAME_MAX + 1]; /* initiator: the node dialled; then confirmed */
    uint64_t peer_flags;
    uint64_t flags;           /* negotiated: my_flags & peer_flags */
    uint32_t peer_creation;
    uint32_t my_challenge;
    struct buf out;           /* bytes to send; the caller drains it */
    char err[160];            /* reason once HS_FAILED */
};

/* Initiator: peer_node is the node dialled. Queues send_name in h->out.
 * my_challenge: a random 32-bit value from the caller. 0 or -EINVAL/-ENOMEM. */
int hs_init_initiator(struct hs *h, const struct hs_cfg *cfg, const char *peer_node,
                      uint32_t my_challenge);
int hs_init_acceptor(struct hs *h, const struct hs_cfg *cfg, uint32_t my_challenge);
void hs_free(struct hs *h); /* frees h->out */

/*
 * Feed received bytes. Processes every complete message in in[0..len),
 * sets *consumed, appends replies to h->out.
 * Returns 0 (need more input), 1 (HS_DONE: bytes after *consumed are the
 * first frames), -1 (HS_FAILED: h->err says why; h->out may still hold a
 * final status message such as "snot_allowed" that should be sent).
 * A message longer than 4096 bytes fails the handshake.
 */
int hs_input(struct hs *h, const uint8_t *in, size_t len, size_t *consumed);

/* What the peer closing the connection in h's current state means, for
 * logs and for the client library's answer to "why could it not connect".
 * A BEAM acceptor whose cookie differs from ours says nothing: it checks
 * the digest of our challenge reply and closes, so an initiator that loses
 * the connection while waiting for the ack almost certainly has the wrong
 * cookie. */
void hs_describe_eof(const struct hs *h, char *out, size_t n);

/* MD5(cookie ++ decimal(challenge)) into out[16]. */
void hs_digest(const char *cookie, uint32_t challenge, uint8_t out[16]);

#endif
