/*
 * Distribution handshake v6 as a pure state machine (see handshake.h).
 *
 * Model: hs_input() walks the caller's bytes one length-prefixed message at
 * a time. A message is only looked at once all of it is present, so a
 * truncated message consumes nothing and produces nothing; the caller
 * simply calls again with more bytes. Each state accepts exactly one
 * message type; anything else fails the handshake with a reason in h->err.
 *
 * Invariants:
 * - state only moves forward; HS_DONE and HS_FAILED are terminal.
 * - processing stops at HS_DONE, so bytes after the last handshake message
 *   (the peer's first frames) are never consumed here.
 * - every outgoing message is built whole on the stack and appended in one
 *   buf_append(), so h->out never holds half a message, even on -ENOMEM.
 * - h->flags, h->peer_flags and h->peer_creation are final only at HS_DONE;
 *   h->peer_name is the node dialled (initiator) or the announced name
 *   (acceptor, once the name message passed validation).
 * - cfg's strings are borrowed: my_name and cookie must outlive the hs.
 *
 * Peer flags are read the way OTP 25+ reads them: DF_MANDATORY_25_DIGEST
 * stands for the whole OTP 25 mandatory set (DF_MANDATORY), so h->peer_flags
 * holds the announced flags with that shorthand expanded.
 *
 * An acceptor answering "alive" would, in OTP, wait for the initiator's
 * "strue"/"sfalse" and possibly replace the old connection. lockerd does not
 * take part in that re-negotiation: it sends "salive" and fails, and the
 * initiator's next attempt succeeds once the old connection is gone. For the
 * same reason an initiator receiving "alive" fails instead of answering.
 */
#include "handshake.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#define HS_TAG_NAME 'N'
#define HS_TAG_OLD_NAME 'n'
#define HS_TAG_STATUS 's'
#define HS_TAG_REPLY 'r'
#define HS_TAG_ACK 'a'

/* 'N' | Flags:64 | Creation:32 | Nlen:16 */
#define HS_NAME_FIXED 15
/* 'N' | Flags:64 | Challenge:32 | Creation:32 | Nlen:16 */
#define HS_CHALLENGE_FIXED 19
#define HS_REPLY_LEN 21 /* 'r' | Challenge:32 | Digest:16 */
#define HS_ACK_LEN 17   /* 'a' | Digest:16 */
#define HS_DIGEST_LEN 16
/* Largest message we send (a challenge with the longest name) plus prefix. */
#define HS_OUT_MAX (4 + HS_CHALLENGE_FIXED + HS_NAME_MAX)

/* ---- helpers ------------------------------------------------------------ */

static int hs_fail(struct hs *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record why the handshake ended; always returns -1 so callers can
 * `return hs_fail(...)`. */
static int hs_fail(struct hs *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->err, sizeof h->err, fmt, ap);
    va_end(ap);
    h->state = HS_FAILED;
    return -1;
}

/* Copy peer-supplied bytes into dst for an error message: anything not
 * printable ASCII becomes '?', so a hostile peer cannot inject control
 * characters into our logs. */
static const char *hs_printable(char *dst, size_t cap, const uint8_t *src, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
    dst[i] = '\0';
    return dst;
}

/* Append one message with its length prefix, whole or not at all. */
static int hs_emit(struct hs *h, const uint8_t *body, size_t n)
{
    uint8_t msg[HS_OUT_MAX];
    size_t hdr = h->cfg.len4 ? 4 : 2;
    if (n > sizeof msg - hdr)
        return hs_fail(h, "internal: outgoing message too long (%zu bytes)", n);
    if (h->cfg.len4) {
        put_u32(msg, (uint32_t)n);
    } else {
        msg[0] = (uint8_t)(n >> 8);
        msg[1] = (uint8_t)n;
    }
    memcpy(msg + hdr, body, n);
    if (buf_append(&h->out, msg, hdr + n))
        return hs_fail(h, "out of memory queueing a handshake message");
    return 0;
}

static int hs_emit_status(struct hs *h, const char *text)
{
    uint8_t body[32];
    size_t n = strlen(text);
    if (n + 1 > sizeof body)
        return hs_fail(h, "internal: status text too long");
    body[0] = HS_TAG_STATUS;
    memcpy(body + 1, text, n);
    return hs_emit(h, body, n + 1);
}

/* A node name as OTP accepts it for a static (non NAME_ME) node: alive@host
 * with both parts non-empty, exactly one '@', no NUL, at most HS_NAME_MAX. */
static int hs_name_ok(const uint8_t *name, size_t n)
{
    if (n == 0 || n > HS_NAME_MAX)
        return 0;
    /* Control characters (NUL, newline, ESC...) name no host and would
     * only serve to forge log lines or reach an operator's terminal. */
    for (size_t i = 0; i < n; i++)
        if (name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    const uint8_t *at = memchr(name, '@', n);
    if (!at || at == name || at == name + n - 1)
        return 0;
    return memchr(at + 1, '@', (size_t)(name + n - at - 1)) == NULL;
}

static int hs_cstr_name_ok(const char *s)
{
    return s && hs_name_ok((const uint8_t *)s, strnlen(s, HS_NAME_MAX + 1));
}

/* OTP 25+ treats DF_MANDATORY_25_DIGEST as shorthand for the OTP 25
 * mandatory set (which DF_MANDATORY equals); newer peers may rely on it. */
static uint64_t hs_expand_flags(uint64_t flags)
{
    return (flags & DF_MANDATORY_25_DIGEST) ? flags | DF_MANDATORY : flags;
}

/* Flags the peer must have but lacks; 0 when it is acceptable. Version 6
 * (DF_HANDSHAKE_23) is needed whatever the configuration says. */
static uint64_t hs_missing_flags(const struct hs *h, uint64_t peer_flags)
{
    uint64_t need = h->cfg.required_flags | DF_HANDSHAKE_23;
    return need & ~peer_flags;
}

/* MD5(cookie ++ decimal(challenge)); 0 or -ENOMEM/-EIO from OpenSSL. */
static int hs_md5(const char *cookie, uint32_t challenge, uint8_t out[HS_DIGEST_LEN])
{
    char dec[16];
    int dn = snprintf(dec, sizeof dec, "%" PRIu32, challenge);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -ENOMEM;
    unsigned int len = 0;
    int ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
             EVP_DigestUpdate(ctx, cookie, strlen(cookie)) &&
             EVP_DigestUpdate(ctx, dec, (size_t)dn) && EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
    return ok && len == HS_DIGEST_LEN ? 0 : -EIO;
}

void hs_digest(const char *cookie, uint32_t challenge, uint8_t out[16])
{
    /* The void contract cannot report a failure; an all-zero digest never
     * matches a real one, so a failure still ends the handshake safely. */
    if (hs_md5(cookie, challenge, out))
        memset(out, 0, HS_DIGEST_LEN);
}

/* Compare without an early exit, so timing does not tell a peer how many
 * leading bytes of its guess were right. */
static int hs_digest_eq(const uint8_t *a, const uint8_t *b)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < HS_DIGEST_LEN; i++)
        diff |= (uint8_t)(a[i] ^ b[i]);
    return diff == 0;
}

/* Check a received digest against MD5(cookie ++ decimal(challenge)). */
static int hs_check_digest(struct hs *h, const uint8_t *got, uint32_t challenge,
                           const char *what)
{
    uint8_t want[HS_DIGEST_LEN];
    if (hs_md5(h->cfg.cookie, challenge, want))
        return hs_fail(h, "MD5 unavailable while checking the %s", what);
    if (!hs_digest_eq(got, want))
        return hs_fail(h, "bad digest in %s from %s (cookie mismatch)", what, h->peer_name);
    return 0;
}

/* Queue 'r'/'a' style messages: tag [| challenge] | MD5 of their challenge. */
static int hs_emit_digest_msg(struct hs *h, uint8_t tag, int with_challenge,
                              uint32_t their_challenge)
{
    uint8_t body[HS_REPLY_LEN];
    size_t o = 0;
    body[o++] = tag;
    if (with_challenge) {
        put_u32(body + o, h->my_challenge);
        o += 4;
    }
    if (hs_md5(h->cfg.cookie, their_challenge, body + o))
        return hs_fail(h, "MD5 unavailable while answering the challenge");
    return hs_emit(h, body, o + HS_DIGEST_LEN);
}

/* ---- initiator ---------------------------------------------------------- */

static int hs_emit_send_name(struct hs *h)
{
    uint8_t body[HS_NAME_FIXED + HS_NAME_MAX];
    size_t n = strlen(h->cfg.my_name);
    body[0] = HS_TAG_NAME;
    put_u32(body + 1, (uint32_t)(h->cfg.my_flags >> 32));
    put_u32(body + 5, (uint32_t)h->cfg.my_flags);
    put_u32(body + 9, h->cfg.my_creation);
    body[13] = (uint8_t)(n >> 8);
    body[14] = (uint8_t)n;
    memcpy(body + HS_NAME_FIXED, h->cfg.my_name, n);
    return hs_emit(h, body, HS_NAME_FIXED + n);
}

static int hs_status_is(const uint8_t *text, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(text, want, n) == 0;
}

/* 's' ++ text. Only ok and ok_simultaneous let us go on. */
static int hs_on_status(struct hs *h, const uint8_t *m, size_t n)
{
    char txt[48];
    if (m[0] != HS_TAG_STATUS)
        return hs_fail(h, "expected a status message from %s, got tag %u", h->peer_name, m[0]);
    const uint8_t *s = m + 1;
    size_t sn = n - 1;
    if (hs_status_is(s, sn, "ok") || hs_status_is(s, sn, "ok_simultaneous")) {
        h->state = HS_I_WAIT_CHALLENGE;
        return 0;
    }
    if (hs_status_is(s, sn, "nok"))
        return hs_fail(h, "%s answered nok: its own connection attempt to us wins",
                       h->peer_name);
    if (hs_status_is(s, sn, "not_allowed"))
        return hs_fail(h, "%s answered not_allowed (flags or allow list)", h->peer_name);
    if (hs_status_is(s, sn, "alive"))
        return hs_fail(h, "%s answered alive: it already has a connection from a node "
                          "named %s; re-negotiation is not supported",
                       h->peer_name, h->cfg.my_name);
    return hs_fail(h, "%s sent unexpected status \"%s\"", h->peer_name,
                   hs_printable(txt, sizeof txt, s, sn));
}

/* 'N' | Flags:64 | Challenge:32 | Creation:32 | Nlen:16 | Name. Bytes after
 * the name are ignored, as OTP does. */
static int hs_on_challenge(struct hs *h, const uint8_t *m, size_t n)
{
    char txt[HS_NAME_MAX + 1];
    if (m[0] != HS_TAG_NAME || n < HS_CHALLENGE_FIXED)
        return hs_fail(h, "expected a challenge from %s, got tag %u length %zu",
                       h->peer_name, m[0], n);
    size_t nlen = get_u16(m + 17);
    if (nlen > n - HS_CHALLENGE_FIXED)
        return hs_fail(h, "challenge from %s: name length %zu overruns the message",
                       h->peer_name, nlen);
    const uint8_t *name = m + HS_CHALLENGE_FIXED;
    if (nlen != strlen(h->peer_name) || memcmp(name, h->peer_name, nlen) != 0)
        return hs_fail(h, "dialled %s but the challenge comes from \"%s\"", h->peer_name,
                       hs_printable(txt, sizeof txt, name, nlen));
    uint64_t flags = hs_expand_flags(get_u64(m + 1));
    uint64_t missing = hs_missing_flags(h, flags);
    if (missing)
        return hs_fail(h, "%s lacks required flags 0x%" PRIx64, h->peer_name, missing);
    h->peer_flags = flags;
    h->flags = h->cfg.my_flags & flags;
    h->peer_creation = get_u32(m + 13);
    if (hs_emit_digest_msg(h, HS_TAG_REPLY, 1, get_u32(m + 9)))
        return -1;
    h->state = HS_I_WAIT_ACK;
    return 0;
}

/* 'a' | Digest: the acceptor proves it knows the cookie too. */
static int hs_on_ack(struct hs *h, const uint8_t *m, size_t n)
{
    if (m[0] != HS_TAG_ACK || n != HS_ACK_LEN)
        return hs_fail(h, "expected a challenge ack from %s, got tag %u length %zu",
                       h->peer_name, m[0], n);
    if (hs_check_digest(h, m + 1, h->my_challenge, "challenge ack"))
        return -1;
    h->state = HS_DONE;
    return 0;
}

/* ---- acceptor ----------------------------------------------------------- */

static int hs_emit_challenge(struct hs *h)
{
    uint8_t body[HS_CHALLENGE_FIXED + HS_NAME_MAX];
    size_t n = strlen(h->cfg.my_name);
    body[0] = HS_TAG_NAME;
    put_u32(body + 1, (uint32_t)(h->cfg.my_flags >> 32));
    put_u32(body + 5, (uint32_t)h->cfg.my_flags);
    put_u32(body + 9, h->my_challenge);
    put_u32(body + 13, h->cfg.my_creation);
    body[17] = (uint8_t)(n >> 8);
    body[18] = (uint8_t)n;
    memcpy(body + HS_CHALLENGE_FIXED, h->cfg.my_name, n);
    return hs_emit(h, body, HS_CHALLENGE_FIXED + n);
}

/* Refuse with a status rather than a bare close, so the peer's log says
 * why (OTP reports recv_status_failed with the text); our side of the
 * story goes to h->err. */
static int hs_refuse(struct hs *h, const char *status, const char *why)
{
    if (hs_emit_status(h, status))
        return -1;
    return hs_fail(h, "refused %s: %s",
                   h->peer_name[0] ? h->peer_name : "(unnamed peer)", why);
}

/* Answer a validated name according to the caller's policy. */
static int hs_answer(struct hs *h)
{
    enum hs_status st =
        h->cfg.decide ? h->cfg.decide(h->cfg.ud, h->peer_name, h->peer_flags) : HS_OK;
    switch (st) {
    case HS_OK:
    case HS_OK_SIMULTANEOUS:
        if (hs_emit_status(h, st == HS_OK ? "ok" : "ok_simultaneous") ||
            hs_emit_challenge(h))
            return -1;
        h->state = HS_A_WAIT_REPLY;
        return 0;
    case HS_NOK:
        return hs_refuse(h, "nok", "nok (simultaneous connect, ours wins)");
    case HS_NOT_ALLOWED:
        return hs_refuse(h, "not_allowed", "not allowed by policy");
    case HS_ALIVE:
        return hs_refuse(h, "alive", "alive (already connected; re-negotiation "
                                     "not supported)");
    }
    return hs_refuse(h, "not_allowed", "decide() returned an unknown status");
}

/* 'N' | Flags:64 | Creation:32 | Nlen:16 | Name. The v5 'n' form gets
 * not_allowed (OTP 25.0-25.2 do the same); bytes after the name are
 * ignored, as OTP does. */
static int hs_on_name(struct hs *h, const uint8_t *m, size_t n)
{
    char txt[64];
    if (m[0] == HS_TAG_OLD_NAME)
        return hs_refuse(h, "not_allowed", "old 'n' (version 5) name message");
    if (m[0] != HS_TAG_NAME || n < HS_NAME_FIXED)
        return hs_fail(h, "expected a name message, got tag %u length %zu", m[0], n);
    size_t nlen = get_u16(m + 13);
    if (nlen > n - HS_NAME_FIXED)
        return hs_fail(h, "name message: name length %zu overruns the message", nlen);
    const uint8_t *name = m + HS_NAME_FIXED;
    if (!hs_name_ok(name, nlen))
        return hs_fail(h, "invalid peer node name \"%s\"",
                       hs_printable(txt, sizeof txt, name, nlen));
    memcpy(h->peer_name, name, nlen);
    h->peer_name[nlen] = '\0';
    h->peer_flags = hs_expand_flags(get_u64(m + 1));
    h->peer_creation = get_u32(m + 9);
    uint64_t missing = hs_missing_flags(h, h->peer_flags);
    if (missing) {
        snprintf(txt, sizeof txt, "lacks required flags 0x%" PRIx64, missing);
        return hs_refuse(h, "not_allowed", txt);
    }
    h->flags = h->cfg.my_flags & h->peer_flags;
    return hs_answer(h);
}

/* 'r' | Challenge:32 | Digest: check theirs, then prove ours with the ack. */
static int hs_on_reply(struct hs *h, const uint8_t *m, size_t n)
{
    if (m[0] != HS_TAG_REPLY || n != HS_REPLY_LEN)
        return hs_fail(h, "expected a challenge reply from %s, got tag %u length %zu",
                       h->peer_name, m[0], n);
    if (hs_check_digest(h, m + 5, h->my_challenge, "challenge reply"))
        return -1;
    if (hs_emit_digest_msg(h, HS_TAG_ACK, 0, get_u32(m + 1)))
        return -1;
    h->state = HS_DONE;
    return 0;
}

/* ---- driver ------------------------------------------------------------- */

/* Find the next whole message: > 0 bytes it spans (prefix included) with
 * *msg and *n set, 0 need more, -1 failed. The size limit is applied from the
 * prefix alone so a hostile length never makes the caller buffer more. */
static int hs_next_msg(struct hs *h, const uint8_t *in, size_t len, const uint8_t **msg,
                       size_t *n)
{
    size_t hdr = h->cfg.len4 ? 4 : 2;
    if (len < hdr)
        return 0;
    uint32_t body = h->cfg.len4 ? get_u32(in) : get_u16(in);
    /* A TLS record starts 0x16 0x03: a 2-byte length of 5635..5891. */
    if (!h->cfg.len4 && h->state == HS_A_WAIT_NAME && in[0] == 0x16 && in[1] == 0x03)
        return hs_fail(h, "the peer opened with a TLS hello: it uses TLS distribution "
                          "(-proto_dist inet_tls), this node plain TCP");
    if (body > HS_MSG_MAX)
        return hs_fail(h, "handshake message of %" PRIu32 " bytes exceeds %d", body,
                       HS_MSG_MAX);
    if (body == 0)
        return hs_fail(h, "empty handshake message");
    if (len - hdr < body)
        return 0;
    *msg = in + hdr;
    *n = body;
    return (int)(hdr + body);
}

static int hs_dispatch(struct hs *h, const uint8_t *m, size_t n)
{
    switch (h->state) {
    case HS_I_WAIT_STATUS:
        return hs_on_status(h, m, n);
    case HS_I_WAIT_CHALLENGE:
        return hs_on_challenge(h, m, n);
    case HS_I_WAIT_ACK:
        return hs_on_ack(h, m, n);
    case HS_A_WAIT_NAME:
        return hs_on_name(h, m, n);
    case HS_A_WAIT_REPLY:
        return hs_on_reply(h, m, n);
    default:
        return hs_fail(h, "internal: message in state %d", (int)h->state);
    }
}

void hs_describe_eof(const struct hs *h, char *out, size_t n)
{
    static const struct {
        enum hs_state state;
        const char *what; /* after "<peer> closed the connection " */
    } why[] = {
        {HS_I_WAIT_STATUS, "before answering our name (a connection limit, or it does not "
                           "accept us)"},
        {HS_I_WAIT_CHALLENGE, "before sending its challenge"},
        {HS_I_WAIT_ACK, "after our challenge reply: the cookie does not match (it checks "
                        "our digest there)"},
        {HS_A_WAIT_REPLY, "before its challenge reply"},
    };
    for (size_t i = 0; i < sizeof why / sizeof why[0]; i++)
        if (why[i].state == h->state) {
            snprintf(out, n, "%s closed the connection %s",
                     h->peer_name[0] ? h->peer_name : "the peer", why[i].what);
            return;
        }
    snprintf(out, n, "peer closed the connection during the handshake");
}

int hs_input(struct hs *h, const uint8_t *in, size_t len, size_t *consumed)
{
    size_t pos = 0;
    while (h->state != HS_DONE && h->state != HS_FAILED) {
        const uint8_t *m = NULL;
        size_t n = 0;
        int rc = hs_next_msg(h, in + pos, len - pos, &m, &n);
        if (rc <= 0)
            break;
        pos += (size_t)rc;
        hs_dispatch(h, m, n);
    }
    if (consumed)
        *consumed = pos;
    if (h->state == HS_DONE)
        return 1;
    return h->state == HS_FAILED ? -1 : 0;
}

/* ---- construction ------------------------------------------------------- */

static int hs_init_common(struct hs *h, const struct hs_cfg *cfg, enum hs_role role,
                          uint32_t my_challenge)
{
    memset(h, 0, sizeof *h);
    buf_init(&h->out);
    /* A half-built hs must not look usable: hs_input() on it fails. */
    h->state = HS_FAILED;
    h->role = role;
    if (!cfg || !cfg->cookie || !hs_cstr_name_ok(cfg->my_name) ||
        !(cfg->my_flags & DF_HANDSHAKE_23)) {
        snprintf(h->err, sizeof h->err, "invalid handshake configuration");
        return -EINVAL;
    }
    h->cfg = *cfg;
    h->my_challenge = my_challenge;
    return 0;
}

int hs_init_initiator(struct hs *h, const struct hs_cfg *cfg, const char *peer_node,
                      uint32_t my_challenge)
{
    int rc = hs_init_common(h, cfg, HS_INITIATOR, my_challenge);
    if (rc)
        return rc;
    if (!hs_cstr_name_ok(peer_node)) {
        snprintf(h->err, sizeof h->err, "invalid node name to dial");
        return -EINVAL;
    }
    strcpy(h->peer_name, peer_node);
    h->state = HS_I_SEND_NAME;
    if (hs_emit_send_name(h)) {
        buf_free(&h->out);
        return -ENOMEM;
    }
    h->state = HS_I_WAIT_STATUS;
    return 0;
}

int hs_init_acceptor(struct hs *h, const struct hs_cfg *cfg, uint32_t my_challenge)
{
    int rc = hs_init_common(h, cfg, HS_ACCEPTOR, my_challenge);
    if (rc)
        return rc;
    h->state = HS_A_WAIT_NAME;
    return 0;
}

void hs_free(struct hs *h)
{
    if (h)
        buf_free(&h->out);
}
