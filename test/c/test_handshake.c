/*
 * Handshake state machine: both roles against each other in memory, then
 * hand-built byte vectors for every message, refusal and malformed case.
 * The digest known answer was computed with OTP 25:
 *   erlang:md5(["mycookie", integer_to_list(12345)]).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cnode/dist/handshake.h"

#define A_NAME "lockerd@host"
#define I_NAME "peer@host"
#define COOKIE "mycookie"
#define A_CREATION 0x0a0b0c0du
#define I_CREATION 0x11223344u

static const uint8_t md5_12345[16] = {181, 10,  144, 231, 75,  87,  60,  8,
                                      244, 155, 179, 131, 1,   150, 230, 31};

static struct hs_cfg acceptor_cfg(void)
{
    struct hs_cfg c = {.my_name = A_NAME, .cookie = COOKIE, .my_flags = DF_LOCKERD,
                       .required_flags = DF_MANDATORY, .my_creation = A_CREATION};
    return c;
}

static struct hs_cfg initiator_cfg(void)
{
    struct hs_cfg c = {.my_name = I_NAME, .cookie = COOKIE,
                       .my_flags = DF_LOCKERD | DF_PUBLISHED | DF_NAME_ME,
                       .required_flags = DF_MANDATORY, .my_creation = I_CREATION};
    return c;
}

/* ---- message builders --------------------------------------------------- */

/* A framed message under construction: body bytes, prefixed on finish. */
struct msg {
    uint8_t b[8192];
    size_t n;
};

static void m_u8(struct msg *m, uint8_t v) { m->b[m->n++] = v; }
static void m_u16(struct msg *m, uint16_t v) { m_u8(m, (uint8_t)(v >> 8)), m_u8(m, (uint8_t)v); }
static void m_u32(struct msg *m, uint32_t v)
{
    m_u16(m, (uint16_t)(v >> 16));
    m_u16(m, (uint16_t)v);
}
static void m_u64(struct msg *m, uint64_t v)
{
    m_u32(m, (uint32_t)(v >> 32));
    m_u32(m, (uint32_t)v);
}
static void m_bytes(struct msg *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

/* Start a message: room for the length prefix is reserved. */
static void m_begin(struct msg *m, int len4)
{
    m->n = len4 ? 4 : 2;
}

static void m_end(struct msg *m, int len4)
{
    size_t body = m->n - (len4 ? 4 : 2);
    if (len4) {
        m->b[0] = (uint8_t)(body >> 24);
        m->b[1] = (uint8_t)(body >> 16);
        m->b[2] = (uint8_t)(body >> 8);
        m->b[3] = (uint8_t)body;
    } else {
        m->b[0] = (uint8_t)(body >> 8);
        m->b[1] = (uint8_t)body;
    }
}

static void mk_status(struct msg *m, int len4, const char *text)
{
    m_begin(m, len4);
    m_u8(m, 's');
    m_bytes(m, text, strlen(text));
    m_end(m, len4);
}

static void mk_name_raw(struct msg *m, int len4, uint64_t flags, uint32_t creation,
                        const void *name, size_t nlen)
{
    m_begin(m, len4);
    m_u8(m, 'N');
    m_u64(m, flags);
    m_u32(m, creation);
    m_u16(m, (uint16_t)nlen);
    m_bytes(m, name, nlen);
    m_end(m, len4);
}

static void mk_name(struct msg *m, int len4, uint64_t flags, const char *name)
{
    mk_name_raw(m, len4, flags, I_CREATION, name, strlen(name));
}

static void mk_challenge(struct msg *m, int len4, uint64_t flags, uint32_t challenge,
                         const char *name)
{
    m_begin(m, len4);
    m_u8(m, 'N');
    m_u64(m, flags);
    m_u32(m, challenge);
    m_u32(m, A_CREATION);
    m_u16(m, (uint16_t)strlen(name));
    m_bytes(m, name, strlen(name));
    m_end(m, len4);
}

static void mk_reply(struct msg *m, int len4, uint32_t challenge, const uint8_t digest[16])
{
    m_begin(m, len4);
    m_u8(m, 'r');
    m_u32(m, challenge);
    m_bytes(m, digest, 16);
    m_end(m, len4);
}

static void mk_ack(struct msg *m, int len4, const uint8_t digest[16])
{
    m_begin(m, len4);
    m_u8(m, 'a');
    m_bytes(m, digest, 16);
    m_end(m, len4);
}

static void append(struct msg *dst, const struct msg *src)
{
    m_bytes(dst, src->b, src->n);
}

/* ---- drivers ------------------------------------------------------------ */

static int feed(struct hs *h, const struct msg *m, size_t *consumed)
{
    return hs_input(h, m->b, m->n, consumed);
}

static void assert_out(struct hs *h, const struct msg *want)
{
    assert_int_equal(buf_size(&h->out), want->n);
    assert_memory_equal(buf_head(&h->out), want->b, want->n);
    buf_consume(&h->out, want->n);
}

static void init_initiator(struct hs *h, struct hs_cfg *c, uint32_t challenge)
{
    assert_int_equal(hs_init_initiator(h, c, A_NAME, challenge), 0);
    assert_int_equal(h->state, HS_I_WAIT_STATUS);
}

/* Initiator that has sent its name and got "sok": waits for the challenge. */
static void initiator_at_challenge(struct hs *h, struct hs_cfg *c, uint32_t challenge)
{
    struct msg m;
    size_t used;
    init_initiator(h, c, challenge);
    buf_reset(&h->out);
    mk_status(&m, c->len4, "ok");
    assert_int_equal(feed(h, &m, &used), 0);
    assert_int_equal(used, m.n);
    assert_int_equal(h->state, HS_I_WAIT_CHALLENGE);
}

/* Acceptor that has answered a valid name: waits for the reply. */
static void acceptor_at_reply(struct hs *h, struct hs_cfg *c, uint32_t challenge)
{
    struct msg m;
    size_t used;
    assert_int_equal(hs_init_acceptor(h, c, challenge), 0);
    mk_name(&m, c->len4, DF_LOCKERD | DF_PUBLISHED, I_NAME);
    assert_int_equal(feed(h, &m, &used), 0);
    assert_int_equal(h->state, HS_A_WAIT_REPLY);
    buf_reset(&h->out);
}

/* One direction of a simulated connection: bytes sent but not delivered
 * yet, and bytes delivered but not consumed by the receiver yet. */
struct link {
    struct buf transit;
    struct buf inbox;
};

/* Take what `from` queued, deliver at most chunk bytes (0 = all) to `to`
 * and let it consume what it can. */
static int pass(struct hs *from, struct hs *to, size_t chunk, struct link *l)
{
    assert_int_equal(buf_append(&l->transit, buf_head(&from->out), buf_size(&from->out)), 0);
    buf_reset(&from->out);
    size_t n = buf_size(&l->transit);
    if (chunk && chunk < n)
        n = chunk;
    assert_int_equal(buf_append(&l->inbox, buf_head(&l->transit), n), 0);
    buf_consume(&l->transit, n);
    size_t used = 0;
    int rc = hs_input(to, buf_head(&l->inbox), buf_size(&l->inbox), &used);
    buf_consume(&l->inbox, used);
    return rc;
}

static void run_pair(struct hs *i, struct hs *a, size_t chunk)
{
    struct link to_a = {0}, to_i = {0};
    int ri = 0, ra = 0;
    for (int round = 0; round < 2000 && (ri != 1 || ra != 1); round++) {
        ra = pass(i, a, chunk, &to_a);
        ri = pass(a, i, chunk, &to_i);
        assert_true(ri >= 0 && ra >= 0);
    }
    assert_int_equal(ri, 1);
    assert_int_equal(ra, 1);
    struct buf *left[] = {&to_a.transit, &to_a.inbox, &to_i.transit, &to_i.inbox};
    for (size_t k = 0; k < 4; k++) {
        assert_int_equal(buf_size(left[k]), 0);
        buf_free(left[k]);
    }
}

static void check_pair(int len4, size_t chunk)
{
    struct hs_cfg ci = initiator_cfg(), ca = acceptor_cfg();
    ci.len4 = ca.len4 = len4;
    struct hs i, a;
    assert_int_equal(hs_init_initiator(&i, &ci, A_NAME, 0xdeadbeef), 0);
    assert_int_equal(hs_init_acceptor(&a, &ca, 4294967295u), 0);
    run_pair(&i, &a, chunk);
    assert_int_equal(i.state, HS_DONE);
    assert_int_equal(a.state, HS_DONE);
    uint64_t both = DF_LOCKERD & (DF_LOCKERD | DF_PUBLISHED | DF_NAME_ME);
    assert_true(i.flags == both && a.flags == both);
    assert_true(a.peer_flags == (DF_LOCKERD | DF_PUBLISHED | DF_NAME_ME));
    assert_true(i.peer_flags == DF_LOCKERD);
    assert_int_equal(i.peer_creation, A_CREATION);
    assert_int_equal(a.peer_creation, I_CREATION);
    assert_string_equal(i.peer_name, A_NAME);
    assert_string_equal(a.peer_name, I_NAME);
    assert_int_equal(buf_size(&i.out), 0);
    assert_int_equal(buf_size(&a.out), 0);
    hs_free(&i);
    hs_free(&a);
}

/* ---- both roles together ------------------------------------------------ */

static void test_pair_done(void **state)
{
    (void)state;
    check_pair(0, 0);
}

static void test_pair_done_byte_by_byte(void **state)
{
    (void)state;
    check_pair(0, 1);
    check_pair(0, 3);
}

static void test_pair_done_len4(void **state)
{
    (void)state;
    check_pair(1, 0);
    check_pair(1, 1);
}

/* ---- known answers and exact bytes -------------------------------------- */

static void test_known_digest(void **state)
{
    (void)state;
    uint8_t d[16];
    hs_digest(COOKIE, 12345, d);
    assert_memory_equal(d, md5_12345, 16);
    /* Unsigned decimal: 0xffffffff is "4294967295", not "-1". */
    static const uint8_t md5_max[16] = {92,  154, 243, 211, 178, 233, 7,  102,
                                        130, 47,  220, 38,  69,  235, 24, 118};
    hs_digest(COOKIE, 4294967295u, d);
    assert_memory_equal(d, md5_max, 16);
    assert_true(DF_LOCKERD == 0xD07074FBCULL);
}

static void test_send_name_bytes(void **state)
{
    (void)state;
    struct hs_cfg c = acceptor_cfg(); /* any config: my_name is lockerd's */
    struct hs h;
    assert_int_equal(hs_init_initiator(&h, &c, "peer@other", 1), 0);
    const uint8_t want[] = {
        0x00, 0x1b, 'N',
        0x00, 0x00, 0x00, 0x0d, 0x07, 0x07, 0x4f, 0xbc, /* DF_LOCKERD */
        0x0a, 0x0b, 0x0c, 0x0d,                         /* creation */
        0x00, 0x0c, 'l', 'o', 'c', 'k', 'e', 'r', 'd', '@', 'h', 'o', 's', 't',
    };
    assert_int_equal(buf_size(&h.out), sizeof want);
    assert_memory_equal(buf_head(&h.out), want, sizeof want);
    hs_free(&h);

    c.len4 = 1;
    assert_int_equal(hs_init_initiator(&h, &c, "peer@other", 1), 0);
    assert_int_equal(buf_size(&h.out), sizeof want + 2);
    const uint8_t len4[] = {0, 0, 0, 0x1b};
    assert_memory_equal(buf_head(&h.out), len4, 4);
    assert_memory_equal(buf_head(&h.out) + 4, want + 2, sizeof want - 2);
    hs_free(&h);
}

static void test_initiator_vectors(void **state)
{
    (void)state;
    struct hs_cfg c = initiator_cfg();
    struct hs h;
    struct msg in, m, want;
    size_t used;
    init_initiator(&h, &c, 0x01020304);
    buf_reset(&h.out);
    /* Status and challenge arrive together: both handled in one call. */
    mk_status(&in, 0, "ok");
    mk_challenge(&m, 0, DF_LOCKERD, 12345, A_NAME);
    append(&in, &m);
    assert_int_equal(feed(&h, &in, &used), 0);
    assert_int_equal(used, in.n);
    assert_int_equal(h.state, HS_I_WAIT_ACK);
    m_begin(&want, 0);
    m_u8(&want, 'r');
    m_u32(&want, 0x01020304);
    m_bytes(&want, md5_12345, 16);
    m_end(&want, 0);
    assert_int_equal(want.n, 23);
    assert_out(&h, &want);

    /* The ack, then the peer's first frame (a tick): the tick stays. */
    uint8_t d[16];
    hs_digest(COOKIE, 0x01020304, d);
    mk_ack(&in, 0, d);
    m_bytes(&in, "\0\0\0\0", 4);
    assert_int_equal(feed(&h, &in, &used), 1);
    assert_int_equal(used, in.n - 4);
    assert_int_equal(h.state, HS_DONE);
    assert_true(h.flags == DF_LOCKERD);
    assert_int_equal(h.peer_creation, A_CREATION);
    assert_int_equal(buf_size(&h.out), 0);
    /* Once done, nothing more is consumed. */
    assert_int_equal(hs_input(&h, in.b + used, 4, &used), 1);
    assert_int_equal(used, 0);
    hs_free(&h);
}

static void test_acceptor_vectors(void **state)
{
    (void)state;
    struct hs_cfg c = acceptor_cfg();
    struct hs h;
    struct msg in, want, m;
    size_t used;
    assert_int_equal(hs_init_acceptor(&h, &c, 12345), 0);
    assert_int_equal(buf_size(&h.out), 0);
    mk_name(&in, 0, DF_LOCKERD | DF_PUBLISHED, I_NAME);
    assert_int_equal(feed(&h, &in, &used), 0);
    assert_int_equal(used, in.n);
    assert_int_equal(h.state, HS_A_WAIT_REPLY);
    assert_string_equal(h.peer_name, I_NAME);
    mk_status(&want, 0, "ok");
    const uint8_t sok[] = {0x00, 0x03, 's', 'o', 'k'};
    assert_memory_equal(want.b, sok, sizeof sok);
    mk_challenge(&m, 0, DF_LOCKERD, 12345, A_NAME);
    append(&want, &m);
    assert_out(&h, &want);

    /* Reply with the known digest; a stray extra message is not eaten. */
    mk_reply(&in, 0, 777, md5_12345);
    mk_status(&m, 0, "stray");
    append(&in, &m);
    assert_int_equal(feed(&h, &in, &used), 1);
    assert_int_equal(used, 23);
    uint8_t d[16];
    hs_digest(COOKIE, 777, d);
    mk_ack(&want, 0, d);
    assert_out(&h, &want);
    assert_int_equal(h.peer_creation, I_CREATION);
    assert_true(h.flags == DF_LOCKERD);
    hs_free(&h);
}

/* ---- digests ------------------------------------------------------------ */

static void test_wrong_reply_digest(void **state)
{
    (void)state;
    struct hs_cfg c = acceptor_cfg();
    struct hs h;
    struct msg in;
    size_t used;
    acceptor_at_reply(&h, &c, 12345);
    uint8_t bad[16];
    memcpy(bad, md5_12345, 16);
    bad[15] ^= 1;
    mk_reply(&in, 0, 777, bad);
    assert_int_equal(feed(&h, &in, &used), -1);
    assert_int_equal(h.state, HS_FAILED);
    assert_int_equal(buf_size(&h.out), 0);
    assert_non_null(strstr(h.err, "digest"));
    /* Failed is terminal. */
    assert_int_equal(feed(&h, &in, &used), -1);
    assert_int_equal(used, 0);
    hs_free(&h);

    /* Other cookie, same challenge. */
    c.cookie = "othercookie";
    acceptor_at_reply(&h, &c, 12345);
    mk_reply(&in, 0, 777, md5_12345);
    assert_int_equal(feed(&h, &in, &used), -1);
    hs_free(&h);
}

static void test_wrong_ack_digest(void **state)
{
    (void)state;
    struct hs_cfg c = initiator_cfg();
    struct hs h;
    struct msg in;
    size_t used;
    initiator_at_challenge(&h, &c, 12345);
    mk_challenge(&in, 0, DF_LOCKERD, 1, A_NAME);
    assert_int_equal(feed(&h, &in, &used), 0);
    buf_reset(&h.out);
    uint8_t d[16];
    hs_digest(COOKIE, 12346, d); /* digest of the wrong challenge */
    mk_ack(&in, 0, d);
    assert_int_equal(feed(&h, &in, &used), -1);
    assert_int_equal(h.state, HS_FAILED);
    assert_non_null(strstr(h.err, "digest"));
    hs_free(&h);
}

/* A peer that closes while we wait for its ack: the cookie. */
static void test_eof_descriptions(void **state)
{
    (void)state;
    struct hs_cfg c = initiator_cfg();
    struct hs h;
    struct msg in;
    size_t used;
    char why[512];
    assert_int_equal(hs_init_initiator(&h, &c, A_NAME, 12345), 0);
    hs_describe_eof(&h, why, sizeof why);
    assert_non_null(strstr(why, "before answering our name"));
    hs_free(&h);
    initiator_at_challenge(&h, &c, 12345);
    hs_describe_eof(&h, why, sizeof why);
    assert_non_null(strstr(why, "before sending its challenge"));
    mk_challenge(&in, 0, DF_LOCKERD, 1, A_NAME);
    assert_int_equal(feed(&h, &in, &used), 0);
    assert_int_equal(h.state, HS_I_WAIT_ACK);
    hs_describe_eof(&h, why, sizeof why);
    assert_non_null(strstr(why, A_NAME));
    assert_non_null(strstr(why, "cookie does not match"));
    hs_free(&h);
}

/* ---- flags and refusals ------------------------------------------------- */

static void expect_refusal(uint64_t peer_flags, uint64_t required, const char *status)
{
    struct hs_cfg c = acceptor_cfg();
    c.required_flags = required;
    struct hs h;
    struct msg in, want;
    size_t used;
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    mk_name(&in, 0, peer_flags, I_NAME);
    assert_int_equal(feed(&h, &in, &used), -1);
    assert_int_equal(h.state, HS_FAILED);
    mk_status(&want, 0, status);
    assert_out(&h, &want);
    assert_true(h.err[0] != '\0');
    hs_free(&h);
}

static void test_acceptor_missing_flag(void **state)
{
    (void)state;
    /* Without the OTP 25 shorthand, each mandatory flag counts. */
    uint64_t plain = DF_LOCKERD & ~DF_MANDATORY_25_DIGEST;
    expect_refusal(plain & ~DF_MAP_TAG, DF_MANDATORY, "not_allowed");
    /* Version 6 is needed even when the configuration requires nothing. */
    expect_refusal(plain & ~DF_HANDSHAKE_23, 0, "not_allowed");
    /* A flag the configuration adds beyond OTP's set. */
    expect_refusal(DF_MANDATORY, DF_MANDATORY | DF_SPAWN, "not_allowed");
    /* The exact bytes of the refusal. */
    struct msg m;
    mk_status(&m, 0, "not_allowed");
    const uint8_t want[] = {0x00, 0x0c, 's', 'n', 'o', 't', '_', 'a', 'l', 'l', 'o', 'w', 'e', 'd'};
    assert_int_equal(m.n, sizeof want);
    assert_memory_equal(m.b, want, sizeof want);
}

/* Initiator fed a challenge announcing flags; rc is what hs_input says. */
static void initiator_at_challenge_flags(struct hs *h, struct hs_cfg *c, uint64_t flags,
                                         int rc)
{
    struct msg in;
    size_t used;
    initiator_at_challenge(h, c, 1);
    mk_challenge(&in, 0, flags, 5, A_NAME);
    assert_int_equal(feed(h, &in, &used), rc);
}

static void test_mandatory_25_shorthand(void **state)
{
    (void)state;
    struct hs_cfg c = acceptor_cfg();
    struct hs h;
    struct msg in;
    size_t used;
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    mk_name(&in, 0, DF_MANDATORY_25_DIGEST | DF_SPAWN, I_NAME);
    assert_int_equal(feed(&h, &in, &used), 0);
    assert_int_equal(h.state, HS_A_WAIT_REPLY);
    assert_true(h.flags == (DF_LOCKERD & (DF_MANDATORY | DF_MANDATORY_25_DIGEST | DF_SPAWN)));
    assert_true(h.flags & DF_MAP_TAG);
    hs_free(&h);

    /* The initiator reads a challenge the same way. */
    struct hs_cfg ci = initiator_cfg();
    initiator_at_challenge_flags(&h, &ci, DF_MANDATORY_25_DIGEST, 0);
    assert_true(h.flags & DF_UTF8_ATOMS);
    hs_free(&h);
    /* And without the shorthand, version 6 is still needed. */
    ci.required_flags = 0;
    initiator_at_challenge_flags(&h, &ci, DF_LOCKERD & ~DF_MANDATORY_25_DIGEST &
                                              ~DF_HANDSHAKE_23, -1);
    hs_free(&h);
}

/* The flags real nodes announce (captured from each release's acceptor
 * challenge): OTP 25.2 and 27.3 send 0xD07DF7FBD; OTP 29.1 adds
 * DFLAG_ALTACT_SIG (0x20 << 32) and DFLAG_NATIVE_RECORDS (0x40 << 32),
 * which lockerd does not announce, so they are never negotiated. And what
 * OTP 26+ requires of lockerd: V4_NC and UNLINK_ID, besides the OTP 25 set
 * (which OTP 27+ takes as DFLAG_MANDATORY_25_DIGEST). */
static void test_release_flags(void **state)
{
    (void)state;
    const uint64_t otp26_required = DF_V4_NC | DF_UNLINK_ID;
    assert_true((DF_LOCKERD & otp26_required) == otp26_required);
    assert_true(DF_LOCKERD & DF_MANDATORY_25_DIGEST);
    assert_true((DF_LOCKERD & DF_MANDATORY) == DF_MANDATORY);
    const uint64_t released[] = {0xD07DF7FBDULL /* OTP 25, 27 */, 0x6D07DF7FBDULL /* OTP 29 */};
    for (size_t k = 0; k < sizeof released / sizeof released[0]; k++) {
        struct hs_cfg c = acceptor_cfg();
        struct hs h;
        struct msg in;
        size_t used;
        assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
        mk_name(&in, 0, released[k], I_NAME);
        assert_int_equal(feed(&h, &in, &used), 0);
        assert_int_equal(h.state, HS_A_WAIT_REPLY);
        assert_true(h.flags == (DF_LOCKERD & released[k]));
        assert_true(h.flags == DF_LOCKERD); /* every flag lockerd announces */
        assert_false(h.flags & (0x60ULL << 32));
        hs_free(&h);

        struct hs_cfg ci = initiator_cfg();
        ci.my_flags = DF_LOCKERD;
        initiator_at_challenge_flags(&h, &ci, released[k], 0);
        assert_true(h.flags == DF_LOCKERD);
        hs_free(&h);
    }
}

static void test_initiator_missing_flag(void **state)
{
    (void)state;
    struct hs_cfg c = initiator_cfg();
    struct hs h;
    struct msg in;
    size_t used;
    initiator_at_challenge(&h, &c, 1);
    mk_challenge(&in, 0, DF_LOCKERD & ~DF_MANDATORY_25_DIGEST & ~DF_BIG_CREATION, 5, A_NAME);
    assert_int_equal(feed(&h, &in, &used), -1);
    assert_int_equal(buf_size(&h.out), 0);
    assert_non_null(strstr(h.err, "flags"));
    hs_free(&h);
}

static void test_old_name_refused(void **state)
{
    (void)state;
    struct hs_cfg c = acceptor_cfg();
    struct hs h;
    struct msg in, want;
    size_t used;
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    /* 'n' | Version:16 | Flags:32 | Name */
    m_begin(&in, 0);
    m_u8(&in, 'n');
    m_u16(&in, 5);
    m_u32(&in, (uint32_t)DF_LOCKERD);
    m_bytes(&in, I_NAME, strlen(I_NAME));
    m_end(&in, 0);
    assert_int_equal(feed(&h, &in, &used), -1);
    mk_status(&want, 0, "not_allowed");
    assert_out(&h, &want);
    assert_non_null(strstr(h.err, "'n'"));
    hs_free(&h);
}

static void expect_challenge_refused(const char *name)
{
    struct hs_cfg c = initiator_cfg();
    struct hs h;
    struct msg in;
    size_t used;
    initiator_at_challenge(&h, &c, 1);
    mk_challenge(&in, 0, DF_LOCKERD, 5, name);
    assert_int_equal(feed(&h, &in, &used), -1);
    assert_int_equal(buf_size(&h.out), 0);
    hs_free(&h);
}

static void test_challenge_wrong_name(void **state)
{
    (void)state;
    expect_challenge_refused("other@host");
    expect_challenge_refused("lockerd@hos");
    expect_challenge_refused("lockerd@hostx");
    expect_challenge_refused("LOCKERD@host");
    expect_challenge_refused("");
}

static void expect_status_fails(const char *status, const char *in_err)
{
    struct hs_cfg c = initiator_cfg();
    struct hs h;
    struct msg in;
    size_t used;
    init_initiator(&h, &c, 1);
    buf_reset(&h.out);
    mk_status(&in, 0, status);
    assert_int_equal(feed(&h, &in, &used), -1);
    assert_int_equal(h.state, HS_FAILED);
    assert_int_equal(buf_size(&h.out), 0);
    if (!strstr(h.err, in_err))
        fail_msg("status \"%s\": err \"%s\" lacks \"%s\"", status, h.err, in_err);
    hs_free(&h);
}

static void test_status_refusals(void **state)
{
    (void)state;
    expect_status_fails("nok", "nok");
    expect_status_fails("not_allowed", "not_allowed");
    expect_status_fails("alive", "alive");
    expect_status_fails("named:", "unexpected");
    expect_status_fails("okay", "unexpected");
    expect_status_fails("o", "unexpected");
    expect_status_fails("", "unexpected");
    expect_status_fails("ok\n\x01", "\"ok??\"");
}

static void test_status_ok_simultaneous(void **state)
{
    (void)state;
    struct hs_cfg c = initiator_cfg();
    struct hs h;
    struct msg in;
    size_t used;
    init_initiator(&h, &c, 1);
    mk_status(&in, 0, "ok_simultaneous");
    assert_int_equal(feed(&h, &in, &used), 0);
    assert_int_equal(used, in.n);
    assert_int_equal(h.state, HS_I_WAIT_CHALLENGE);
    hs_free(&h);
}

/* ---- decide ------------------------------------------------------------- */

struct decide_probe {
    enum hs_status answer;
    int calls;
    char name[HS_NAME_MAX + 1];
    uint64_t flags;
};

static enum hs_status probe_decide(void *ud, const char *peer_name, uint64_t peer_flags)
{
    struct decide_probe *p = ud;
    p->calls++;
    snprintf(p->name, sizeof p->name, "%s", peer_name);
    p->flags = peer_flags;
    return p->answer;
}

static void expect_decision(enum hs_status answer, const char *status, int rc_want)
{
    struct decide_probe p = {.answer = answer};
    struct hs_cfg c = acceptor_cfg();
    c.decide = probe_decide;
    c.ud = &p;
    struct hs h;
    struct msg in, want, m;
    size_t used;
    assert_int_equal(hs_init_acceptor(&h, &c, 12345), 0);
    mk_name(&in, 0, DF_LOCKERD | DF_PUBLISHED, I_NAME);
    assert_int_equal(feed(&h, &in, &used), rc_want);
    assert_int_equal(p.calls, 1);
    assert_string_equal(p.name, I_NAME);
    assert_true(p.flags == (DF_LOCKERD | DF_PUBLISHED));
    mk_status(&want, 0, status);
    if (rc_want == 0) {
        mk_challenge(&m, 0, DF_LOCKERD, 12345, A_NAME);
        append(&want, &m);
        assert_int_equal(h.state, HS_A_WAIT_REPLY);
    } else {
        assert_int_equal(h.state, HS_FAILED);
    }
    assert_out(&h, &want);
    hs_free(&h);
}

static void test_decide_results(void **state)
{
    (void)state;
    expect_decision(HS_OK, "ok", 0);
    expect_decision(HS_OK_SIMULTANEOUS, "ok_simultaneous", 0);
    expect_decision(HS_NOK, "nok", -1);
    expect_decision(HS_NOT_ALLOWED, "not_allowed", -1);
    expect_decision(HS_ALIVE, "alive", -1);
    expect_decision((enum hs_status)42, "not_allowed", -1);
}

/* ---- truncation and size ------------------------------------------------ */

/* Every proper prefix of m: need more, nothing consumed, nothing sent, and
 * the state untouched. */
static void check_prefixes(struct hs *h, const struct msg *m)
{
    enum hs_state st = h->state;
    size_t out = buf_size(&h->out);
    for (size_t i = 0; i < m->n; i++) {
        size_t used = 99;
        assert_int_equal(hs_input(h, m->b, i, &used), 0);
        assert_int_equal(used, 0);
        assert_int_equal(h->state, st);
        assert_int_equal(buf_size(&h->out), out);
    }
}

static void check_all_prefixes(int len4)
{
    struct hs_cfg ci = initiator_cfg(), ca = acceptor_cfg();
    ci.len4 = ca.len4 = len4;
    struct hs h;
    struct msg m;
    size_t used;
    uint8_t d[16];

    init_initiator(&h, &ci, 12345);
    mk_status(&m, len4, "ok_simultaneous");
    check_prefixes(&h, &m);
    assert_int_equal(feed(&h, &m, &used), 0);
    mk_challenge(&m, len4, DF_LOCKERD, 777, A_NAME);
    check_prefixes(&h, &m);
    assert_int_equal(feed(&h, &m, &used), 0);
    hs_digest(COOKIE, 12345, d);
    mk_ack(&m, len4, d);
    check_prefixes(&h, &m);
    assert_int_equal(feed(&h, &m, &used), 1);
    hs_free(&h);

    assert_int_equal(hs_init_acceptor(&h, &ca, 12345), 0);
    mk_name(&m, len4, DF_LOCKERD, I_NAME);
    check_prefixes(&h, &m);
    assert_int_equal(feed(&h, &m, &used), 0);
    mk_reply(&m, len4, 777, md5_12345);
    check_prefixes(&h, &m);
    assert_int_equal(feed(&h, &m, &used), 1);
    hs_free(&h);
}

static void test_truncated_prefixes(void **state)
{
    (void)state;
    check_all_prefixes(0);
}

static void test_len4_mode(void **state)
{
    (void)state;
    check_all_prefixes(1);
    /* A 2-byte-framed message in len4 mode reads as a huge length. */
    struct hs_cfg c = acceptor_cfg();
    c.len4 = 1;
    struct hs h;
    struct msg m;
    size_t used;
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    mk_name(&m, 0, DF_LOCKERD, I_NAME);
    assert_int_equal(feed(&h, &m, &used), -1);
    hs_free(&h);
}

/* A plain acceptor reached by a TLS peer names the mismatch. */
static void test_tls_hello_on_plain(void **state)
{
    (void)state;
    struct hs_cfg c = acceptor_cfg();
    struct hs h;
    size_t used;
    const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    assert_int_equal(hs_input(&h, hello, 1, &used), 0);
    assert_int_equal(hs_input(&h, hello, sizeof hello, &used), -1);
    assert_non_null(strstr(h.err, "TLS"));
    assert_int_equal(buf_size(&h.out), 0);
    hs_free(&h);
}

static void test_oversize(void **state)
{
    (void)state;
    struct hs_cfg c = acceptor_cfg();
    struct hs h;
    size_t used;
    const uint8_t over2[] = {0x10, 0x01};
    const uint8_t at2[] = {0x10, 0x00};
    const uint8_t over4[] = {0x00, 0x00, 0x10, 0x01};
    const uint8_t huge4[] = {0xff, 0xff, 0xff, 0xff};

    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    assert_int_equal(hs_input(&h, at2, 2, &used), 0); /* 4096: waits */
    assert_int_equal(hs_input(&h, over2, 1, &used), 0);
    assert_int_equal(hs_input(&h, over2, 2, &used), -1); /* header alone */
    assert_non_null(strstr(h.err, "4097"));
    assert_int_equal(buf_size(&h.out), 0);
    hs_free(&h);

    c.len4 = 1;
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    assert_int_equal(hs_input(&h, over4, 3, &used), 0);
    assert_int_equal(hs_input(&h, over4, 4, &used), -1);
    hs_free(&h);
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    assert_int_equal(hs_input(&h, huge4, 4, &used), -1);
    hs_free(&h);

    /* A full 4096-byte message is within the limit: the name message is
     * judged on its content (here, trailing bytes after the name). */
    c.len4 = 0;
    struct msg m;
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    mk_name(&m, 0, DF_LOCKERD, I_NAME);
    memset(m.b + m.n, 0, 4096 - (m.n - 2));
    m.n = 4098;
    m_end(&m, 0);
    assert_int_equal(feed(&h, &m, &used), 0);
    assert_int_equal(used, 4098);
    assert_int_equal(h.state, HS_A_WAIT_REPLY);
    hs_free(&h);
}

/* ---- malformed messages ------------------------------------------------- */

static void expect_name_rejected(const void *name, size_t nlen)
{
    struct hs_cfg c = acceptor_cfg();
    struct hs h;
    struct msg m;
    size_t used;
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    mk_name_raw(&m, 0, DF_LOCKERD, 1, name, nlen);
    assert_int_equal(feed(&h, &m, &used), -1);
    assert_int_equal(h.state, HS_FAILED);
    assert_int_equal(buf_size(&h.out), 0);
    hs_free(&h);
}

static void test_bad_peer_names(void **state)
{
    (void)state;
    expect_name_rejected("", 0);
    expect_name_rejected("nohost", 6);
    expect_name_rejected("a@b@c", 5);
    expect_name_rejected("@host", 5);
    expect_name_rejected("alive@", 6);
    expect_name_rejected("pe\0r@host", 9);
    char longname[256];
    memset(longname, 'h', sizeof longname);
    longname[0] = 'a';
    longname[1] = '@';
    expect_name_rejected(longname, 256);

    /* 255 bytes is fine. */
    struct hs_cfg c = acceptor_cfg();
    struct hs h;
    struct msg m;
    size_t used;
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    mk_name_raw(&m, 0, DF_LOCKERD, 1, longname, 255);
    assert_int_equal(feed(&h, &m, &used), 0);
    assert_int_equal(strlen(h.peer_name), 255);
    hs_free(&h);
}

/* Feed body (framed with a 2-byte length) to h and expect failure with no
 * output. */
static void expect_malformed(struct hs *h, const void *body, size_t n)
{
    struct msg m;
    size_t used;
    m_begin(&m, 0);
    m_bytes(&m, body, n);
    m_end(&m, 0);
    size_t out = buf_size(&h->out);
    assert_int_equal(feed(h, &m, &used), -1);
    assert_int_equal(h->state, HS_FAILED);
    assert_int_equal(buf_size(&h->out), out);
    assert_true(h->err[0] != '\0');
}

static void test_malformed_acceptor(void **state)
{
    (void)state;
    struct hs_cfg c = acceptor_cfg();
    struct hs h;
    static const uint8_t overrun[] = {'N', 0, 0, 0, 0x0d, 0x07, 0x07, 0x4f, 0xbc,
                                      0, 0, 0, 1, 0, 10, 'a', '@', 'b'};
    static const uint8_t short_name[] = {'N', 0, 0, 0, 0x0d, 0x07, 0x07, 0x4f, 0xbc, 0};
    static const uint8_t wrong_tag[] = {'r', 0, 0, 0, 1};

    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    expect_malformed(&h, overrun, sizeof overrun);
    hs_free(&h);
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    expect_malformed(&h, short_name, sizeof short_name);
    hs_free(&h);
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    expect_malformed(&h, wrong_tag, sizeof wrong_tag);
    hs_free(&h);
    assert_int_equal(hs_init_acceptor(&h, &c, 1), 0);
    expect_malformed(&h, "", 0); /* empty message */
    hs_free(&h);

    /* Reply of the wrong length, or something else than a reply. */
    uint8_t reply[22] = {'r'};
    memcpy(reply + 5, md5_12345, 16);
    acceptor_at_reply(&h, &c, 12345);
    expect_malformed(&h, reply, 20);
    hs_free(&h);
    acceptor_at_reply(&h, &c, 12345);
    expect_malformed(&h, reply, 22);
    hs_free(&h);
    acceptor_at_reply(&h, &c, 12345);
    reply[0] = 'a';
    expect_malformed(&h, reply, 21);
    hs_free(&h);
}

static void test_malformed_initiator(void **state)
{
    (void)state;
    struct hs_cfg c = initiator_cfg();
    struct hs h;
    uint8_t body[64] = {'N'};

    /* A challenge before any status. */
    init_initiator(&h, &c, 1);
    buf_reset(&h.out);
    expect_malformed(&h, body, 19);
    hs_free(&h);
    /* Challenge too short for its fixed part. */
    initiator_at_challenge(&h, &c, 1);
    expect_malformed(&h, body, 18);
    hs_free(&h);
    /* Name length overruns the message. */
    initiator_at_challenge(&h, &c, 1);
    body[18] = 12;
    memcpy(body + 19, A_NAME, 11);
    expect_malformed(&h, body, 30);
    hs_free(&h);
    /* Ack of the wrong length. */
    initiator_at_challenge(&h, &c, 1);
    struct msg m;
    size_t used;
    mk_challenge(&m, 0, DF_LOCKERD, 5, A_NAME);
    assert_int_equal(feed(&h, &m, &used), 0);
    uint8_t ack[18] = {'a'};
    expect_malformed(&h, ack, 16);
    hs_free(&h);
}

static void test_init_validation(void **state)
{
    (void)state;
    struct hs_cfg c = acceptor_cfg();
    struct hs h;
    size_t used;
    assert_int_equal(hs_init_initiator(&h, &c, "nohost", 1), -EINVAL);
    assert_int_equal(hs_input(&h, (const uint8_t *)"\0\3sok", 5, &used), -1);
    hs_free(&h);
    assert_int_equal(hs_init_initiator(&h, &c, NULL, 1), -EINVAL);
    hs_free(&h);
    assert_int_equal(hs_init_initiator(&h, NULL, A_NAME, 1), -EINVAL);
    hs_free(&h);
    c.cookie = NULL;
    assert_int_equal(hs_init_acceptor(&h, &c, 1), -EINVAL);
    hs_free(&h);
    c = acceptor_cfg();
    c.my_name = "bad";
    assert_int_equal(hs_init_acceptor(&h, &c, 1), -EINVAL);
    hs_free(&h);
    c = acceptor_cfg();
    c.my_flags &= ~DF_HANDSHAKE_23;
    assert_int_equal(hs_init_acceptor(&h, &c, 1), -EINVAL);
    hs_free(&h);
    hs_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pair_done),
        cmocka_unit_test(test_pair_done_byte_by_byte),
        cmocka_unit_test(test_pair_done_len4),
        cmocka_unit_test(test_known_digest),
        cmocka_unit_test(test_send_name_bytes),
        cmocka_unit_test(test_initiator_vectors),
        cmocka_unit_test(test_acceptor_vectors),
        cmocka_unit_test(test_wrong_reply_digest),
        cmocka_unit_test(test_wrong_ack_digest),
        cmocka_unit_test(test_eof_descriptions),
        cmocka_unit_test(test_acceptor_missing_flag),
        cmocka_unit_test(test_mandatory_25_shorthand),
        cmocka_unit_test(test_release_flags),
        cmocka_unit_test(test_initiator_missing_flag),
        cmocka_unit_test(test_old_name_refused),
        cmocka_unit_test(test_challenge_wrong_name),
        cmocka_unit_test(test_status_refusals),
        cmocka_unit_test(test_status_ok_simultaneous),
        cmocka_unit_test(test_decide_results),
        cmocka_unit_test(test_truncated_prefixes),
        cmocka_unit_test(test_len4_mode),
        cmocka_unit_test(test_tls_hello_on_plain),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_bad_peer_names),
        cmocka_unit_test(test_malformed_acceptor),
        cmocka_unit_test(test_malformed_initiator),
        cmocka_unit_test(test_init_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
