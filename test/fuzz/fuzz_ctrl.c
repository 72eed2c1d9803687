/*
 * Fuzz target: control-message decoding (ei_glue/ctrl.c).
 *
 * Input: a frame body (112 | 131 Control | [131 Payload]), as conn.c hands
 * it to ctrl_decode. When decoding succeeds:
 * - every span lies inside the body and holds exactly one valid term (the
 *   spans are echoed to peers verbatim, so they must stand on their own);
 * - the payload, for the ops that carry one, runs to the end of the body;
 * - ctrl_term_node reads a pid's node atom exactly (never cut short);
 * - what lockerd would send back is encoded and decoded again, and must
 *   decode to the same fields: MONITOR_P -> the noproc MONITOR_P_EXIT,
 *   UNLINK_ID -> UNLINK_ID_ACK, SPAWN_REQUEST -> SPAWN_REPLY and the same
 *   request re-encoded with its payload, REG_SEND / SEND / ALIAS_SEND ->
 *   the same message re-encoded, EXIT -> an EXIT back.
 */
#include <errno.h>
#include <string.h>

#include "ei_glue/ctrl.h"
#include "ei_glue/enc.h"
#include "fuzz.h"

static void check_span(struct term t, const uint8_t *body, size_t len)
{
    if (!t.p)
        return;
    FUZZ_CHECK(fuzz_inside(t.p, t.len, body, len));
    size_t pos = 0;
    FUZZ_CHECK(term_skip(t.p, t.len, &pos) == 0 && pos == t.len);
}

static int is_pid(struct term t) { return t.len && (t.p[0] == TT_NEW_PID || t.p[0] == TT_PID); }

/* A pid's node, as the router reads it, is the node atom inside the pid
 * (at offset 1 in both pid encodings); a node atom no C string can hold
 * (a NUL in it) is refused by both readers rather than cut short. */
static void check_node(struct term t)
{
    char node[CTRL_NAME_MAX], direct[CTRL_NAME_MAX];
    if (!is_pid(t))
        return;
    size_t pos = 1;
    int rc = ctrl_term_node(t, node, sizeof node);
    FUZZ_CHECK(rc == term_get_atom(t.p, t.len, &pos, direct, sizeof direct));
    if (rc == 0)
        FUZZ_CHECK(strcmp(node, direct) == 0 && term_is_atom(t.p, t.len, 1, node) == 1);
    else
        FUZZ_CHECK(rc == -EINVAL);
}

static int same(struct term a, struct term b) { return term_eq(a, b); }

/* Finish the frame in out, decode its body into d. */
static void redecode(struct buf *out, size_t mark, struct term payload, struct ctrl *d)
{
    const char *why = NULL;
    if (payload.p) {
        FUZZ_CHECK(ctrl_payload_begin(out) == 0 && enc_raw(out, payload) == 0);
    }
    ctrl_frame_end(out, mark);
    FUZZ_CHECK(get_u32(out->data + mark) == out->len - mark - 4);
    int rc = ctrl_decode(out->data + mark + 4, out->len - mark - 4, d, &why);
    if (rc)
        fprintf(stderr, "re-decode failed: %d %s\n", rc, why);
    FUZZ_CHECK(rc == 0);
}

static void reencode(const struct ctrl *c)
{
    static const struct term none = {NULL, 0};
    struct buf out;
    struct ctrl *d = malloc(sizeof *d);
    size_t mark;
    buf_init(&out);
    FUZZ_CHECK(d && ctrl_frame_begin(&out, &mark) == 0);
    switch (c->op) {
    case CTRL_MONITOR_P:
        FUZZ_CHECK(ctrl_enc_monitor_exit(&out, c->to, c->to_is_name ? c->to_name : NULL,
                                         c->from, c->ref, "noproc") == 0);
        redecode(&out, mark, none, d);
        FUZZ_CHECK(d->op == CTRL_MONITOR_P_EXIT && d->to_is_name == c->to_is_name);
        FUZZ_CHECK(same(d->to, c->from) && same(d->ref, c->ref));
        if (!c->to_is_name)
            FUZZ_CHECK(same(d->from, c->to));
        break;
    case CTRL_UNLINK_ID:
        FUZZ_CHECK(ctrl_enc_unlink_id_ack(&out, c->id, c->to, c->from) == 0);
        redecode(&out, mark, none, d);
        FUZZ_CHECK(d->op == CTRL_UNLINK_ID_ACK && same(d->id, c->id));
        FUZZ_CHECK(same(d->from, c->to) && same(d->to, c->from));
        break;
    case CTRL_SPAWN_REQUEST:
        FUZZ_CHECK(ctrl_enc_spawn_reply(&out, c->ref, c->from, 2, c->from) == 0);
        redecode(&out, mark, none, d);
        FUZZ_CHECK(d->op == CTRL_SPAWN_REPLY && same(d->ref, c->ref) && same(d->to, c->from));
        FUZZ_CHECK(d->flags == 2 && same(d->reason, c->from));
        buf_reset(&out);
        FUZZ_CHECK(ctrl_frame_begin(&out, &mark) == 0);
        FUZZ_CHECK(ctrl_enc_spawn_request(&out, c->ref, c->from, c->group_leader, c->mod,
                                          c->fun, c->arity, c->opts) == 0);
        redecode(&out, mark, c->payload, d);
        FUZZ_CHECK(d->op == CTRL_SPAWN_REQUEST && same(d->ref, c->ref) &&
                   same(d->from, c->from) && same(d->group_leader, c->group_leader));
        FUZZ_CHECK(strcmp(d->mod, c->mod) == 0 && strcmp(d->fun, c->fun) == 0);
        FUZZ_CHECK(d->arity == c->arity && same(d->opts, c->opts) &&
                   same(d->payload, c->payload));
        break;
    case CTRL_REG_SEND:
        FUZZ_CHECK(ctrl_enc_reg_send(&out, c->from, c->to_name) == 0);
        redecode(&out, mark, c->payload, d);
        FUZZ_CHECK(d->op == CTRL_REG_SEND && same(d->from, c->from));
        FUZZ_CHECK(strcmp(d->to_name, c->to_name) == 0 && same(d->payload, c->payload));
        break;
    case CTRL_SEND:
        FUZZ_CHECK(ctrl_enc_send(&out, c->to) == 0);
        redecode(&out, mark, c->payload, d);
        FUZZ_CHECK(d->op == CTRL_SEND && same(d->to, c->to) && same(d->payload, c->payload));
        break;
    case CTRL_ALIAS_SEND:
        FUZZ_CHECK(ctrl_enc_alias_send(&out, c->from, c->to) == 0);
        redecode(&out, mark, c->payload, d);
        FUZZ_CHECK(d->op == CTRL_ALIAS_SEND && same(d->from, c->from) && same(d->to, c->to));
        FUZZ_CHECK(same(d->payload, c->payload));
        break;
    case CTRL_EXIT:
    case CTRL_EXIT2:
        FUZZ_CHECK(ctrl_enc_exit(&out, c->to, c->from, "noproc") == 0);
        redecode(&out, mark, none, d);
        FUZZ_CHECK(d->op == CTRL_EXIT && same(d->from, c->to) && same(d->to, c->from));
        break;
    default:
        break;
    }
    free(d);
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ctrl *c = malloc(sizeof *c);
    const char *why = NULL;
    FUZZ_CHECK(c);
    int rc = ctrl_decode(data, size, c, &why);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOTSUP || rc == -E2BIG || rc == -ENOMEM);
    if (rc) {
        FUZZ_CHECK(why && why[0]);
        free(c);
        return 0;
    }
    FUZZ_CHECK(size >= 2 && data[0] == 112 && data[1] == TT_VERSION);
    struct term spans[] = {c->from, c->to, c->ref, c->id, c->reason, c->group_leader, c->opts,
                           c->payload};
    for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++)
        check_span(spans[i], data, size);
    if (c->payload.p)
        FUZZ_CHECK(c->payload.p + c->payload.len == data + size &&
                   c->payload.p[-1] == TT_VERSION);
    if (c->to_is_name)
        FUZZ_CHECK(memchr(c->to_name, '\0', sizeof c->to_name) != NULL);
    check_node(c->from);
    check_node(c->to);
    reencode(c);
    free(c);
    return 0;
}
