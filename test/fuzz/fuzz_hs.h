/*
 * Shared driver of the two handshake fuzz targets (fuzz_hs_acceptor.c,
 * fuzz_hs_initiator.c); static functions only, included once per target.
 *
 * Input: Challenge:32 | Cfg:8 | [initiator: PeerNode NUL] | Stream, where
 * Cfg bit 0 = 4-byte lengths (TLS), bits 1-3 = the acceptor's decide()
 * answer (5..7 an out-of-range value), bit 4 = require only HANDSHAKE_23
 * instead of the OTP 25 mandatory set, bit 5 = advertise PUBLISHED too,
 * bits 6-7 = largest chunk (1, 7, 64 bytes or all at once).
 *
 * The stream is fed the way conn.c does: in chunks (sizes from a PRNG seeded
 * by the input), the unconsumed tail presented again with the next chunk.
 * Checked after every call:
 * - *consumed <= bytes presented; the return value agrees with the state
 *   (1 DONE, -1 FAILED with a reason, 0 one of the role's waiting states);
 * - the state never moves backwards; a waiting hs left no whole message
 *   unprocessed; a finished hs consumes nothing more and keeps its answer;
 * - h->out is always a sequence of whole length-prefixed messages, with the
 *   tags the role sends in its order;
 * - at DONE: negotiated flags = ours & theirs and theirs include the
 *   required ones;
 * - the outcome (state, consumed, out bytes, reason, flags, peer) is the
 *   same when the whole stream arrives at once.
 * Captured seeds replay real handshakes to DONE: Challenge is the one
 * lockerd used in the capture and the cookie is the capture's.
 */
#ifndef LOCKERD_FUZZ_HS_H
#define LOCKERD_FUZZ_HS_H

#include <errno.h>
#include <string.h>

#include "cnode/dist/handshake.h"
#include "fuzz.h"

#define FUZZ_COOKIE "fuzzcookie"
#define FUZZ_MY_NAME "fz@fuzz"

static enum hs_status fuzz_decide(void *ud, const char *peer_name, uint64_t peer_flags)
{
    (void)peer_flags;
    FUZZ_CHECK(peer_name && peer_name[0]);
    return (enum hs_status)(*(const uint8_t *)ud >> 1 & 7);
}

static void fuzz_hs_cfg(struct hs_cfg *cfg, const uint8_t *cfgbyte)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->my_name = FUZZ_MY_NAME;
    cfg->cookie = FUZZ_COOKIE;
    cfg->my_flags = DF_LOCKERD | ((*cfgbyte & 0x20) ? DF_PUBLISHED : 0);
    cfg->required_flags = (*cfgbyte & 0x10) ? DF_HANDSHAKE_23 : DF_MANDATORY;
    cfg->my_creation = 0x5eed;
    cfg->len4 = *cfgbyte & 1;
    cfg->decide = fuzz_decide;
    cfg->ud = (void *)cfgbyte;
}

static int fuzz_hs_waiting(const struct hs *h)
{
    if (h->role == HS_INITIATOR)
        return h->state == HS_I_WAIT_STATUS || h->state == HS_I_WAIT_CHALLENGE ||
               h->state == HS_I_WAIT_ACK;
    return h->state == HS_A_WAIT_NAME || h->state == HS_A_WAIT_REPLY;
}

/* h->out holds whole messages only, tagged in the order the role sends. */
static void fuzz_hs_check_out(const struct hs *h)
{
    static const char initiator_tags[] = "Nr", acceptor_tags[] = "sNa";
    const char *tags = h->role == HS_INITIATOR ? initiator_tags : acceptor_tags;
    size_t hdr = h->cfg.len4 ? 4 : 2, pos = 0, count = 0;
    size_t len = buf_size(&h->out);
    const uint8_t *p = len ? buf_head(&h->out) : NULL; /* NULL + 0 is UB */
    while (pos < len) {
        FUZZ_CHECK(len - pos >= hdr);
        size_t n = h->cfg.len4 ? get_u32(p + pos) : get_u16(p + pos);
        FUZZ_CHECK(n >= 1 && n <= len - pos - hdr);
        FUZZ_CHECK(count < strlen(tags) && p[pos + hdr] == (uint8_t)tags[count]);
        pos += hdr + n;
        count++;
    }
    if (h->state == HS_DONE)
        FUZZ_CHECK(count == strlen(tags));
}

/* After a call returned rc: the state agrees with rc, and what is left
 * unconsumed in a waiting hs is not yet a whole message. */
static void fuzz_hs_check_state(const struct hs *h, int rc, const uint8_t *rest, size_t nrest)
{
    FUZZ_CHECK(rc == 1 || rc == 0 || rc == -1);
    FUZZ_CHECK((rc == 1) == (h->state == HS_DONE));
    FUZZ_CHECK((rc == -1) == (h->state == HS_FAILED));
    if (rc == -1)
        FUZZ_CHECK(h->err[0] != '\0' && memchr(h->err, '\0', sizeof h->err));
    if (rc == 0) {
        size_t hdr = h->cfg.len4 ? 4 : 2;
        FUZZ_CHECK(fuzz_hs_waiting(h));
        if (nrest >= hdr) {
            size_t n = h->cfg.len4 ? get_u32(rest) : get_u16(rest);
            FUZZ_CHECK(n >= 1 && n <= HS_MSG_MAX && nrest - hdr < n);
        }
    }
    if (rc == 1) {
        uint64_t need = h->cfg.required_flags | DF_HANDSHAKE_23;
        FUZZ_CHECK((h->peer_flags & need) == need);
        FUZZ_CHECK(h->flags == (h->cfg.my_flags & h->peer_flags));
        FUZZ_CHECK(h->peer_name[0] && strchr(h->peer_name, '@'));
    }
    fuzz_hs_check_out(h);
}

/* Feed stream in chunks; returns the last rc, total consumed in *total. */
static int fuzz_hs_feed(struct hs *h, const uint8_t *s, size_t len, uint32_t seed,
                        size_t max_chunk, size_t *total)
{
    size_t delivered = 0, off = 0;
    int rc = 0;
    enum hs_state last = h->state;
    for (;;) {
        size_t step = max_chunk ? 1 + fuzz_rand(&seed) % max_chunk : len;
        delivered = step > len - delivered ? len : delivered + step;
        size_t consumed = (size_t)-1;
        rc = hs_input(h, s + off, delivered - off, &consumed);
        FUZZ_CHECK(consumed <= delivered - off);
        off += consumed;
        FUZZ_CHECK(h->state >= last);
        last = h->state;
        fuzz_hs_check_state(h, rc, s + off, delivered - off);
        if (rc != 0 || delivered == len)
            break;
    }
    if (rc != 0) {
        /* Terminal: more input changes nothing. */
        size_t before = buf_size(&h->out), consumed = (size_t)-1;
        FUZZ_CHECK(hs_input(h, s + off, len - off, &consumed) == rc);
        FUZZ_CHECK(consumed == 0 && buf_size(&h->out) == before);
    }
    *total = off;
    return rc;
}

static void fuzz_hs_same(const struct hs *a, const struct hs *b)
{
    FUZZ_CHECK(a->state == b->state);
    FUZZ_CHECK(buf_size(&a->out) == buf_size(&b->out));
    if (buf_size(&a->out))
        FUZZ_CHECK(memcmp(buf_head(&a->out), buf_head(&b->out), buf_size(&a->out)) == 0);
    FUZZ_CHECK(strcmp(a->err, b->err) == 0);
    FUZZ_CHECK(strcmp(a->peer_name, b->peer_name) == 0);
    if (a->state == HS_DONE)
        FUZZ_CHECK(a->flags == b->flags && a->peer_flags == b->peer_flags &&
                   a->peer_creation == b->peer_creation);
}

/* peer: node dialled (initiator) or NULL (acceptor). */
static void fuzz_hs_run(const uint8_t cfgbyte, uint32_t challenge, const char *peer,
                        const uint8_t *s, size_t len)
{
    static const size_t chunks[4] = {1, 7, 64, 0};
    uint8_t cb = cfgbyte;
    struct hs_cfg cfg;
    struct hs chunked, whole;
    fuzz_hs_cfg(&cfg, &cb);
    int init_rc = peer ? hs_init_initiator(&chunked, &cfg, peer, challenge)
                       : hs_init_acceptor(&chunked, &cfg, challenge);
    if (init_rc) {
        /* Only a name that is not alive@host may be refused; a refused hs
         * must not look usable. */
        FUZZ_CHECK(peer && init_rc == -EINVAL && chunked.state == HS_FAILED);
        size_t consumed = (size_t)-1;
        FUZZ_CHECK(hs_input(&chunked, s, len, &consumed) == -1 && consumed == 0);
        hs_free(&chunked);
        return;
    }
    fuzz_hs_check_state(&chunked, 0, NULL, 0);
    size_t total_chunked, total_whole;
    int rc_chunked = fuzz_hs_feed(&chunked, s, len, challenge ^ cfgbyte,
                                  chunks[cfgbyte >> 6], &total_chunked);
    FUZZ_CHECK((peer ? hs_init_initiator(&whole, &cfg, peer, challenge)
                     : hs_init_acceptor(&whole, &cfg, challenge)) == 0);
    int rc_whole = fuzz_hs_feed(&whole, s, len, 0, 0, &total_whole);
    FUZZ_CHECK(rc_chunked == rc_whole && total_chunked == total_whole);
    fuzz_hs_same(&chunked, &whole);
    hs_free(&chunked);
    hs_free(&whole);
}

#endif
