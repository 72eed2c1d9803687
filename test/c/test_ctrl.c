/*
 * Control-message decoding and encoding (ei_glue/ctrl.c, ei_glue/call.c).
 * Vectors are frame bodies produced by OTP 25's term_to_binary (with the
 * 112 pass-through byte in front), as a BEAM peer sends them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>

#include "ei_glue/call.h"
#include "ei_glue/ctrl.h"
#include "ei_glue/enc.h"

static const uint8_t v_reg_send[] = {112,131,104,4,97,6,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,100,0,0,100,0,6,108,111,99,107,101,114,131,104,3,100,0,9,36,103,101,110,95,99,97,108,108,104,2,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,108,0,0,0,1,100,0,5,97,108,105,97,115,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211,104,4,100,0,14,103,101,116,95,119,114,105,116,101,95,108,111,99,107,104,2,100,0,4,117,115,101,114,97,42,100,0,9,110,111,116,95,102,111,117,110,100,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211};
static const uint8_t v_reg_send_mc[] = {112,131,104,4,97,6,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,100,0,0,100,0,6,108,111,99,107,101,114,131,104,3,100,0,9,36,103,101,110,95,99,97,108,108,104,2,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,104,2,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211,100,0,3,97,64,98,100,0,15,103,101,116,95,100,101,98,117,103,95,115,116,97,116,101};
static const uint8_t v_send[] = {112,131,104,3,97,2,100,0,0,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,131,100,0,5,104,101,108,108,111};
static const uint8_t v_monitor_name[] = {112,131,104,4,97,19,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,100,0,6,110,111,115,117,99,104,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211};
static const uint8_t v_monitor_pid[] = {112,131,104,4,97,19,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211};
static const uint8_t v_demonitor[] = {112,131,104,4,97,20,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,100,0,6,108,111,99,107,101,114,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211};
static const uint8_t v_unlink_id[] = {112,131,104,4,97,35,97,7,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0};
static const uint8_t v_exit[] = {112,131,104,4,97,3,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,100,0,6,107,105,108,108,101,100};
static const uint8_t v_alias_send[] = {112,131,104,3,97,33,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211,131,104,2,108,0,0,0,1,100,0,5,97,108,105,97,115,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211,100,0,2,111,107};
static const uint8_t v_spawn[] = {112,131,104,6,97,29,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,104,3,100,0,4,101,114,112,99,100,0,12,101,120,101,99,117,116,101,95,99,97,108,108,97,4,108,0,0,0,1,100,0,7,109,111,110,105,116,111,114,106,131,108,0,0,0,4,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211,100,0,6,108,111,99,107,101,114,100,0,10,100,105,114,116,121,95,114,101,97,100,108,0,0,0,1,100,0,1,107,106,106};
static const uint8_t v_bad_arity[] = {112,131,104,3,97,6,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,100,0,6,108,111,99,107,101,114};
static const uint8_t v_unknown_op[] = {112,131,104,3,97,99,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0};
static const uint8_t v_wrong_type[] = {112,131,104,4,97,6,100,0,7,110,111,116,97,112,105,100,100,0,0,100,0,6,108,111,99,107,101,114,131,100,0,1,120};
static const uint8_t v_missing_payload[] = {112,131,104,4,97,6,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,100,0,0,100,0,6,108,111,99,107,101,114};
static const uint8_t v_extra_after_payload[] = {112,131,104,3,97,2,100,0,0,88,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,85,0,0,0,0,0,0,0,0,131,100,0,1,97,131,100,0,1,120};
static const uint8_t v_gen_cast[] = {131,104,2,100,0,9,36,103,101,110,95,99,97,115,116,104,3,100,0,9,116,114,97,110,115,95,108,111,103,100,0,3,97,64,98,108,0,0,0,1,104,4,100,0,5,119,114,105,116,101,100,0,1,107,100,0,1,118,97,100,106};
static const uint8_t v_tag_mc26[] = {131,108,0,0,0,1,108,0,0,0,1,100,0,5,97,108,105,97,115,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211};
static const uint8_t v_tag_alias[] = {131,108,0,0,0,1,100,0,5,97,108,105,97,115,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211};
static const uint8_t v_tag_plain[] = {131,104,2,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211,100,0,3,97,64,98};
static const uint8_t v_ref[] = {131,90,0,3,100,0,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,3,19,164,246,192,0,1,250,100,212,211};

#define DEC(v, c) ctrl_decode((v), sizeof(v), (c), &why)

static struct term span(const uint8_t *p, size_t n) { return (struct term){p, (uint32_t)n}; }

static void test_reg_send_call(void **st)
{
    (void)st;
    struct ctrl c;
    const char *why;
    assert_int_equal(DEC(v_reg_send, &c), 0);
    assert_int_equal(c.op, CTRL_REG_SEND);
    assert_true(c.to_is_name);
    assert_string_equal(c.to_name, "locker");
    assert_non_null(c.payload.p);
    struct gen_call g;
    assert_int_equal(gen_call_parse(c.payload, &g), 0);
    assert_true(term_eq(g.from_pid, c.from));
    struct term alias;
    assert_int_equal(gen_tag_alias(g.tag, &alias), 1);
    /* The alias is the ref itself (v_ref without its 131). */
    assert_true(term_eq(alias, span(v_ref + 1, sizeof v_ref - 1)));
    char node[CTRL_NAME_MAX];
    assert_int_equal(ctrl_term_node(g.from_pid, node, sizeof node), 0);
    assert_string_equal(node, "nonode@nohost");
}

static void test_multi_call_tags(void **st)
{
    (void)st;
    struct ctrl c;
    const char *why;
    assert_int_equal(DEC(v_reg_send_mc, &c), 0);
    struct gen_call g;
    assert_int_equal(gen_call_parse(c.payload, &g), 0);
    struct term alias;
    assert_int_equal(gen_tag_alias(g.tag, &alias), 0); /* OTP 25 multi_call: {Ref, Node} */
    assert_int_equal(gen_tag_alias(span(v_tag_plain + 1, sizeof v_tag_plain - 1), &alias), 0);
    /* OTP 26+ multi_call tag [[alias|Alias]|Mon] replies to Alias. */
    assert_int_equal(gen_tag_alias(span(v_tag_mc26 + 1, sizeof v_tag_mc26 - 1), &alias), 1);
    assert_true(term_eq(alias, span(v_ref + 1, sizeof v_ref - 1)));
    assert_int_equal(gen_tag_alias(span(v_tag_alias + 1, sizeof v_tag_alias - 1), &alias), 1);
}

static void test_signals(void **st)
{
    (void)st;
    struct ctrl c;
    const char *why;
    assert_int_equal(DEC(v_send, &c), 0);
    assert_int_equal(c.op, CTRL_SEND);
    assert_false(c.to_is_name);
    assert_int_equal(c.to.p[0], TT_NEW_PID);
    assert_int_equal(DEC(v_monitor_name, &c), 0);
    assert_int_equal(c.op, CTRL_MONITOR_P);
    assert_true(c.to_is_name);
    assert_string_equal(c.to_name, "nosuch");
    assert_true(term_eq(c.ref, span(v_ref + 1, sizeof v_ref - 1)));
    assert_null(c.payload.p);
    assert_int_equal(DEC(v_monitor_pid, &c), 0);
    assert_false(c.to_is_name);
    assert_int_equal(DEC(v_demonitor, &c), 0);
    assert_int_equal(c.op, CTRL_DEMONITOR_P);
    assert_int_equal(DEC(v_unlink_id, &c), 0);
    assert_int_equal(c.op, CTRL_UNLINK_ID);
    int64_t id;
    size_t pos = 0;
    assert_int_equal(term_get_int64(c.id.p, c.id.len, &pos, &id), 0);
    assert_int_equal(id, 7);
    assert_int_equal(DEC(v_exit, &c), 0);
    assert_int_equal(c.op, CTRL_EXIT);
    assert_true(term_is_atom(c.reason.p, c.reason.len, 0, "killed"));
    assert_int_equal(DEC(v_alias_send, &c), 0);
    assert_int_equal(c.op, CTRL_ALIAS_SEND);
    assert_true(term_eq(c.to, span(v_ref + 1, sizeof v_ref - 1)));
    assert_non_null(c.payload.p);
}

static void test_spawn_request(void **st)
{
    (void)st;
    struct ctrl c;
    const char *why;
    assert_int_equal(DEC(v_spawn, &c), 0);
    assert_int_equal(c.op, CTRL_SPAWN_REQUEST);
    assert_string_equal(c.mod, "erpc");
    assert_string_equal(c.fun, "execute_call");
    assert_int_equal(c.arity, 4);
    assert_true(term_eq(c.ref, span(v_ref + 1, sizeof v_ref - 1)));
    uint32_t n;
    size_t pos = 0;
    assert_int_equal(term_get_list(c.payload.p, c.payload.len, &pos, &n), 0);
    assert_int_equal(n, 4);
}

static void test_malformed(void **st)
{
    (void)st;
    struct ctrl c;
    const char *why;
    assert_int_equal(DEC(v_bad_arity, &c), -EINVAL);
    assert_int_equal(DEC(v_unknown_op, &c), -ENOTSUP);
    assert_int_equal(DEC(v_wrong_type, &c), -EINVAL);
    assert_int_equal(DEC(v_missing_payload, &c), -EINVAL);
    assert_int_equal(DEC(v_extra_after_payload, &c), -EINVAL);
    static const uint8_t no_pass_through[] = {131, 104, 1, 97, 2};
    assert_int_equal(DEC(no_pass_through, &c), -EINVAL);
    assert_int_equal(ctrl_decode(v_reg_send, 0, &c, &why), -EINVAL);
}

/* Every truncated prefix of a valid frame is refused, never over-read
 * (run under ASan: a read past `len` would be reported). */
static void test_truncations(void **st)
{
    (void)st;
    const struct {
        const uint8_t *p;
        size_t n;
    } vs[] = {{v_reg_send, sizeof v_reg_send}, {v_spawn, sizeof v_spawn},
              {v_monitor_name, sizeof v_monitor_name}, {v_alias_send, sizeof v_alias_send}};
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++)
        for (size_t n = 0; n < vs[k].n; n++) {
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, vs[k].p, n);
            struct ctrl c;
            const char *why;
            assert_true(ctrl_decode(copy, n, &c, &why) < 0);
            free(copy);
        }
}

static void test_gen_envelopes(void **st)
{
    (void)st;
    struct term req;
    assert_int_equal(gen_cast_parse(span(v_gen_cast + 1, sizeof v_gen_cast - 1), &req), 0);
    size_t pos = 0;
    uint32_t ar;
    assert_int_equal(term_get_tuple(req.p, req.len, &pos, &ar), 0);
    assert_int_equal(ar, 3);
    assert_true(term_is_atom(req.p, req.len, pos, "trans_log"));
    struct gen_call g;
    assert_int_equal(gen_call_parse(span(v_gen_cast + 1, sizeof v_gen_cast - 1), &g), -EINVAL);
}

/* The head decoder leaves the payload to its receiver: the same fields as
 * ctrl_decode, the payload span unchecked (ctrl_check_payload does the
 * rest), and the call envelope parsed without its request. */
static void test_decode_head(void **st)
{
    (void)st;
    struct ctrl c, full;
    const char *why;
    assert_int_equal(ctrl_decode_head(v_reg_send, sizeof v_reg_send, &c, &why), 0);
    assert_int_equal(DEC(v_reg_send, &full), 0);
    assert_true(full.payload_checked);
    assert_false(c.payload_checked);
    assert_string_equal(c.to_name, "locker");
    assert_true(term_eq(c.from, full.from) && term_eq(c.payload, full.payload));
    assert_int_equal(ctrl_check_payload(&c, &why), 0);
    assert_true(c.payload_checked);
    /* Two terms where one belongs: the head is fine, the payload is not. */
    assert_int_equal(ctrl_decode_head(v_extra_after_payload, sizeof v_extra_after_payload, &c,
                                      &why), 0);
    assert_int_equal(ctrl_check_payload(&c, &why), -EINVAL);
    /* The envelope head, with and without the sender's pid as a shortcut:
     * the same spans; the request is the rest, unchecked. */
    struct gen_call g, h, v;
    assert_int_equal(DEC(v_reg_send, &c), 0);
    assert_int_equal(gen_call_parse(c.payload, &v), 0);
    assert_int_equal(gen_call_parse_head(c.payload, (struct term){NULL, 0}, &g), 0);
    assert_int_equal(gen_call_parse_head(c.payload, c.from, &h), 0);
    assert_true(term_eq(g.from_pid, v.from_pid) && term_eq(h.from_pid, v.from_pid));
    assert_true(term_eq(g.tag, v.tag) && term_eq(h.tag, v.tag));
    assert_true(term_eq(g.req, v.req) && term_eq(h.req, v.req));
    uint8_t bad[sizeof v_reg_send];
    memcpy(bad, v_reg_send, sizeof bad);
    bad[sizeof bad - 35] = 255; /* the request's Tag: no such term tag */
    assert_int_equal(DEC(bad, &c), -EINVAL);
    assert_int_equal(ctrl_decode_head(bad, sizeof bad, &c, &why), 0);
    assert_int_equal(gen_call_parse_head(c.payload, c.from, &h), 0);
    assert_int_equal(gen_call_parse(c.payload, &g), -EINVAL);
}

/* Encoders produce frames our own decoder (and so the BEAM) accepts. */
static void test_encode_roundtrip(void **st)
{
    (void)st;
    struct ctrl in, out;
    const char *why;
    assert_int_equal(DEC(v_monitor_name, &in), 0);
    struct buf b;
    buf_init(&b);
    size_t mark;
    assert_int_equal(ctrl_frame_begin(&b, &mark), 0);
    assert_int_equal(ctrl_enc_monitor_exit(&b, in.to, in.to_name, in.from, in.ref, "noproc"), 0);
    ctrl_frame_end(&b, mark);
    assert_int_equal(get_u32(b.data), b.len - 4);
    assert_int_equal(ctrl_decode(b.data + 4, b.len - 4, &out, &why), 0);
    assert_int_equal(out.op, CTRL_MONITOR_P_EXIT);
    assert_true(term_eq(out.to, in.from));
    assert_true(term_eq(out.ref, in.ref));
    assert_true(term_is_atom(out.reason.p, out.reason.len, 0, "noproc"));

    buf_reset(&b);
    assert_int_equal(ctrl_frame_begin(&b, &mark), 0);
    assert_int_equal(ctrl_enc_send(&b, in.from), 0);
    assert_int_equal(ctrl_payload_begin(&b), 0);
    assert_int_equal(enc_atom_pair(&b, "error", "not_found"), 0);
    ctrl_frame_end(&b, mark);
    assert_int_equal(ctrl_decode(b.data + 4, b.len - 4, &out, &why), 0);
    assert_int_equal(out.op, CTRL_SEND);
    assert_true(term_eq(out.to, in.from));

    size_t pos = 0;
    uint32_t ar;
    char atom[64];
    assert_int_equal(term_get_tuple(out.payload.p, out.payload.len, &pos, &ar), 0);
    assert_int_equal(term_get_atom(out.payload.p, out.payload.len, &pos, atom, sizeof atom), 0);
    assert_string_equal(atom, "error");
    buf_free(&b);
}

/* SPAWN_REQUEST as the client library sends it for erpc:call, and the
 * SPAWN_REPLY that answers it, both through our own decoder. */
static void test_spawn_request_reply_encode(void **st)
{
    (void)st;
    struct ctrl in, out;
    const char *why;
    assert_int_equal(DEC(v_spawn, &in), 0);
    struct buf opts, b;
    buf_init(&opts);
    buf_init(&b);
    assert_int_equal(enc_list(&opts, 1), 0);
    assert_int_equal(enc_atom(&opts, "monitor"), 0);
    assert_int_equal(enc_nil(&opts), 0);
    size_t mark;
    assert_int_equal(ctrl_frame_begin(&b, &mark), 0);
    assert_int_equal(ctrl_enc_spawn_request(&b, in.ref, in.from, in.from, "erpc", "execute_call",
                                            4, span(opts.data, opts.len)),
                     0);
    assert_int_equal(ctrl_payload_begin(&b), 0);
    assert_int_equal(enc_raw(&b, in.payload), 0);
    ctrl_frame_end(&b, mark);
    assert_int_equal(ctrl_decode(b.data + 4, b.len - 4, &out, &why), 0);
    assert_int_equal(out.op, CTRL_SPAWN_REQUEST);
    assert_true(term_eq(out.ref, in.ref));
    assert_true(term_eq(out.from, in.from));
    assert_true(term_eq(out.group_leader, in.from));
    assert_string_equal(out.mod, "erpc");
    assert_string_equal(out.fun, "execute_call");
    assert_int_equal(out.arity, 4);
    assert_true(term_eq(out.opts, span(opts.data, opts.len)));
    assert_true(term_eq(out.payload, in.payload));
    /* Every truncated prefix of the encoded frame is refused. */
    for (size_t n = 0; n < b.len - 4; n++)
        assert_true(ctrl_decode(b.data + 4, n, &out, &why) < 0);

    buf_reset(&b);
    assert_int_equal(ctrl_frame_begin(&b, &mark), 0);
    assert_int_equal(ctrl_enc_spawn_reply(&b, in.ref, in.from, 2, in.from), 0);
    ctrl_frame_end(&b, mark);
    assert_int_equal(ctrl_decode(b.data + 4, b.len - 4, &out, &why), 0);
    assert_int_equal(out.op, CTRL_SPAWN_REPLY);
    assert_true(term_eq(out.ref, in.ref));
    assert_true(term_eq(out.to, in.from));
    assert_int_equal(out.flags, 2);
    assert_true(term_eq(out.reason, in.from));
    assert_null(out.payload.p);
    buf_free(&opts);
    buf_free(&b);
}

/* Found by fuzzing (test/fuzz/regress/ctrl): atoms holding a NUL are legal
 * in Erlang but used to be read cut at the NUL, so a REG_SEND to
 * 'locker\0x' was delivered to locker and a pid of node 'a@b\0c' was
 * routed as one of node 'a@b'. Both are now refused, not cut short. */
static void test_atoms_with_nul(void **st)
{
    (void)st;
    static const uint8_t reg_send_nul[] = {
        112, 131, 104, 4, 97, 6,
        88, 100, 0, 13, 'n', 'o', 'n', 'o', 'd', 'e', '@', 'n', 'o', 'h', 'o', 's', 't',
        0, 0, 0, 85, 0, 0, 0, 0, 0, 0, 0, 0,
        100, 0, 0, 100, 0, 8, 'l', 'o', 'c', 'k', 'e', 'r', 0, 'x',
        131, 100, 0, 1, 'x'};
    static const uint8_t pid_nul[] = {88, 100, 0, 5, 'a', '@', 'b', 0, 'c', 0, 0, 0, 1,
                                      0, 0, 0, 0, 0, 0, 0, 0};
    struct ctrl c;
    const char *why;
    assert_int_equal(DEC(reg_send_nul, &c), -EINVAL);
    char node[CTRL_NAME_MAX];
    assert_int_equal(ctrl_term_node(span(pid_nul, sizeof pid_nul), node, sizeof node), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reg_send_call),  cmocka_unit_test(test_multi_call_tags),
        cmocka_unit_test(test_signals),        cmocka_unit_test(test_spawn_request),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_gen_envelopes),  cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_spawn_request_reply_encode),
        cmocka_unit_test(test_decode_head),
        cmocka_unit_test(test_atoms_with_nul),
    };
    return cmocka_run_group_tests_name("ctrl", tests, NULL, NULL);
}
