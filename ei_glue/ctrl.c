/*
 * Control message codec; see ctrl.h.
 *
 * Decoding is one pass over the control tuple: its fields are taken in
 * order by bounded readers that validate what they take (term_next for
 * spans, the term_get_* decoders for atoms and integers), so every byte of
 * the tuple is checked once and the tuple ends where its last field does.
 * Any field of the wrong type makes the frame malformed: lockerd then
 * drops the frame (the caller logs it), it never trusts a field it has not
 * checked. The payload is validated separately (ctrl_check_payload), so a
 * receiver that validates while it parses can skip that second walk.
 */
#include "ctrl.h"

#include <errno.h>
#include <string.h>

#include "enc.h"

struct rd {
    const uint8_t *in;
    size_t len;
    size_t pos;
};

static int rd_span(struct rd *r, struct term *t) { return term_next(r->in, r->len, &r->pos, t); }

static int is_pid_tag(int tag) { return tag == TT_NEW_PID || tag == TT_PID; }
static int is_ref_tag(int tag) { return tag == TT_NEWER_REF || tag == TT_NEW_REF || tag == TT_REF; }
static int is_atom_tag(int tag)
{
    return tag == TT_ATOM || tag == TT_SMALL_ATOM || tag == TT_ATOM_UTF8 ||
           tag == TT_SMALL_ATOM_UTF8;
}

static int rd_pid(struct rd *r, struct term *t)
{
    if (!is_pid_tag(term_peek(r->in, r->len, r->pos)))
        return -EINVAL;
    return rd_span(r, t);
}

static int rd_ref(struct rd *r, struct term *t)
{
    if (!is_ref_tag(term_peek(r->in, r->len, r->pos)))
        return -EINVAL;
    return rd_span(r, t);
}

/* A pid, or an atom name copied into name. */
static int rd_pid_or_name(struct rd *r, struct term *t, int *is_name, char *name)
{
    int tag = term_peek(r->in, r->len, r->pos);
    *is_name = is_atom_tag(tag);
    if (*is_name) {
        size_t start = r->pos;
        int rc = term_get_atom(r->in, r->len, &r->pos, name, CTRL_NAME_MAX);
        t->p = r->in + start;
        t->len = (uint32_t)(r->pos - start);
        return rc;
    }
    return rd_pid(r, t);
}

static int rd_atom(struct rd *r, char *name)
{
    return term_get_atom(r->in, r->len, &r->pos, name, CTRL_NAME_MAX);
}

/* Fields by op; the arity was checked by the caller against `want`. */
static int ctrl_fields(struct rd *r, struct ctrl *c)
{
    char unused[CTRL_NAME_MAX];
    switch (c->op) {
    case CTRL_LINK:
    case CTRL_UNLINK:
        return rd_pid(r, &c->from) || rd_pid(r, &c->to) ? -EINVAL : 0;
    case CTRL_SEND:
        /* {2, Unused, ToPid} */
        return rd_span(r, &c->from) || rd_pid(r, &c->to) ? -EINVAL : 0;
    case CTRL_EXIT:
    case CTRL_EXIT2:
        return rd_pid(r, &c->from) || rd_pid(r, &c->to) || rd_span(r, &c->reason) ? -EINVAL : 0;
    case CTRL_REG_SEND:
        if (rd_pid(r, &c->from) || rd_span(r, &c->ref) || rd_atom(r, c->to_name))
            return -EINVAL;
        c->to_is_name = 1;
        return 0;
    case CTRL_GROUP_LEADER:
        return rd_pid(r, &c->from) || rd_pid(r, &c->to) ? -EINVAL : 0;
    case CTRL_MONITOR_P:
    case CTRL_DEMONITOR_P:
        if (rd_pid(r, &c->from) || rd_pid_or_name(r, &c->to, &c->to_is_name, c->to_name))
            return -EINVAL;
        return rd_ref(r, &c->ref);
    case CTRL_MONITOR_P_EXIT:
        if (rd_pid_or_name(r, &c->from, &c->to_is_name, unused) || rd_pid(r, &c->to))
            return -EINVAL;
        return rd_ref(r, &c->ref) || rd_span(r, &c->reason) ? -EINVAL : 0;
    case CTRL_SPAWN_REQUEST: {
        uint32_t ar;
        if (rd_span(r, &c->ref) || rd_pid(r, &c->from) || rd_span(r, &c->group_leader))
            return -EINVAL;
        if (term_get_tuple(r->in, r->len, &r->pos, &ar) || ar != 3 || rd_atom(r, c->mod) ||
            rd_atom(r, c->fun) || term_get_int64(r->in, r->len, &r->pos, &c->arity))
            return -EINVAL;
        return rd_span(r, &c->opts);
    }
    case CTRL_SPAWN_REPLY:
        /* {31, ReqId, To, Flags, PidOrErrorAtom}: ReqId in ref, the
         * result in reason (a pid, or the atom saying why not). */
        if (rd_span(r, &c->ref) || rd_pid(r, &c->to) ||
            term_get_int64(r->in, r->len, &r->pos, &c->flags))
            return -EINVAL;
        return rd_span(r, &c->reason);
    case CTRL_ALIAS_SEND:
        return rd_pid(r, &c->from) || rd_ref(r, &c->to) ? -EINVAL : 0;
    case CTRL_UNLINK_ID:
    case CTRL_UNLINK_ID_ACK:
        return rd_span(r, &c->id) || rd_pid(r, &c->from) || rd_pid(r, &c->to) ? -EINVAL : 0;
    default:
        return -ENOTSUP;
    }
}

/* Arity of the control tuple per op, and whether a payload follows. */
static int ctrl_shape(int op, uint32_t *arity, int *has_payload)
{
    *has_payload = 0;
    switch (op) {
    case CTRL_LINK: case CTRL_UNLINK: case CTRL_GROUP_LEADER: *arity = 3; return 0;
    case CTRL_SEND: *arity = 3; *has_payload = 1; return 0;
    case CTRL_EXIT: case CTRL_EXIT2: *arity = 4; return 0;
    case CTRL_REG_SEND: *arity = 4; *has_payload = 1; return 0;
    case CTRL_MONITOR_P: case CTRL_DEMONITOR_P: *arity = 4; return 0;
    case CTRL_MONITOR_P_EXIT: *arity = 5; return 0;
    case CTRL_SPAWN_REQUEST: *arity = 6; *has_payload = 1; return 0;
    case CTRL_SPAWN_REPLY: *arity = 5; return 0;
    case CTRL_ALIAS_SEND: *arity = 3; *has_payload = 1; return 0;
    case CTRL_UNLINK_ID: case CTRL_UNLINK_ID_ACK: *arity = 4; return 0;
    default: return -ENOTSUP;
    }
}

/* Only the small fields: the name buffers are kilobytes each and every
 * frame is decoded, so they are emptied, not zeroed. */
static void ctrl_clear(struct ctrl *c)
{
    static const struct term none = {NULL, 0};
    c->op = 0;
    c->from = c->to = c->ref = c->id = c->reason = none;
    c->group_leader = c->opts = c->payload = none;
    c->to_is_name = 0;
    c->to_name[0] = c->mod[0] = c->fun[0] = 0;
    c->arity = c->flags = 0;
    c->payload_checked = 0;
}

int ctrl_decode_head(const uint8_t *body, size_t len, struct ctrl *c, const char **why)
{
    ctrl_clear(c);
    *why = "malformed control message";
    if (len < 2 || body[0] != 112 || body[1] != TT_VERSION) {
        *why = "frame without pass-through header";
        return -EINVAL;
    }
    /* One pass: each field is validated by the reader that takes it, so
     * the tuple ends where the last field does. */
    struct rd r = {body, len, 2};
    uint32_t arity, want;
    int64_t op;
    int has_payload;
    if (term_get_tuple(r.in, r.len, &r.pos, &arity) || arity < 1 ||
        term_get_int64(r.in, r.len, &r.pos, &op))
        return -EINVAL;
    c->op = (int)op;
    if (op < 0 || op > 255 || ctrl_shape(c->op, &want, &has_payload)) {
        *why = "unknown control op";
        return -ENOTSUP;
    }
    if (arity != want) {
        *why = "control tuple of the wrong arity";
        return -EINVAL;
    }
    int rc = ctrl_fields(&r, c);
    if (rc)
        return rc;
    size_t ctrl_end = r.pos;
    if (!has_payload)
        return ctrl_end == len ? 0 : -EINVAL;
    if (ctrl_end + 1 >= len || body[ctrl_end] != TT_VERSION) {
        *why = "missing payload";
        return -EINVAL;
    }
    c->payload.p = body + ctrl_end + 1;
    c->payload.len = (uint32_t)(len - ctrl_end - 1);
    return 0;
}

int ctrl_payload_valid(const struct ctrl *c, const char **why)
{
    if (!c->payload.p || c->payload_checked)
        return 0;
    size_t pos = 0;
    if (term_skip(c->payload.p, c->payload.len, &pos) || pos != c->payload.len) {
        *why = "malformed payload";
        return -EINVAL;
    }
    return 0;
}

int ctrl_check_payload(struct ctrl *c, const char **why)
{
    int rc = ctrl_payload_valid(c, why);
    if (!rc && c->payload.p)
        c->payload_checked = 1;
    return rc;
}

int ctrl_decode(const uint8_t *body, size_t len, struct ctrl *c, const char **why)
{
    int rc = ctrl_decode_head(body, len, c, why);
    return rc ? rc : ctrl_check_payload(c, why);
}

int ctrl_frame_begin(struct buf *out, size_t *mark)
{
    uint8_t h[6] = {0, 0, 0, 0, 112, TT_VERSION};
    *mark = out->len;
    return buf_append(out, h, sizeof h);
}

int ctrl_payload_begin(struct buf *out) { return buf_put_u8(out, TT_VERSION); }

void ctrl_frame_end(struct buf *out, size_t mark)
{
    put_u32(out->data + mark, (uint32_t)(out->len - mark - 4));
}

static int enc_op(struct buf *out, uint32_t arity, int op)
{
    int rc = enc_tuple(out, arity);
    return rc ? rc : enc_long(out, op);
}

int ctrl_enc_send(struct buf *out, struct term to_pid)
{
    int rc = enc_op(out, 3, CTRL_SEND);
    if (!rc)
        rc = enc_atom(out, "");
    return rc ? rc : enc_raw(out, to_pid);
}

int ctrl_enc_reg_send(struct buf *out, struct term from_pid, const char *to_name)
{
    int rc = enc_op(out, 4, CTRL_REG_SEND);
    if (!rc)
        rc = enc_raw(out, from_pid);
    if (!rc)
        rc = enc_atom(out, "");
    return rc ? rc : enc_atom(out, to_name);
}

int ctrl_enc_alias_send(struct buf *out, struct term from_pid, struct term alias)
{
    int rc = enc_op(out, 3, CTRL_ALIAS_SEND);
    if (!rc)
        rc = enc_raw(out, from_pid);
    return rc ? rc : enc_raw(out, alias);
}

int ctrl_enc_exit(struct buf *out, struct term from, struct term to, const char *reason)
{
    int rc = enc_op(out, 4, CTRL_EXIT);
    if (!rc)
        rc = enc_raw(out, from);
    if (!rc)
        rc = enc_raw(out, to);
    return rc ? rc : enc_atom(out, reason);
}

int ctrl_enc_monitor_exit(struct buf *out, struct term from, const char *from_name,
                          struct term to_pid, struct term ref, const char *reason)
{
    int rc = enc_op(out, 5, CTRL_MONITOR_P_EXIT);
    if (!rc)
        rc = from_name ? enc_atom(out, from_name) : enc_raw(out, from);
    if (!rc)
        rc = enc_raw(out, to_pid);
    if (!rc)
        rc = enc_raw(out, ref);
    return rc ? rc : enc_atom(out, reason);
}

int ctrl_enc_unlink_id_ack(struct buf *out, struct term id, struct term from, struct term to)
{
    int rc = enc_op(out, 4, CTRL_UNLINK_ID_ACK);
    if (!rc)
        rc = enc_raw(out, id);
    if (!rc)
        rc = enc_raw(out, from);
    return rc ? rc : enc_raw(out, to);
}

int ctrl_enc_spawn_reply(struct buf *out, struct term req_id, struct term to, int64_t flags,
                         struct term result)
{
    int rc = enc_op(out, 5, CTRL_SPAWN_REPLY);
    if (!rc)
        rc = enc_raw(out, req_id);
    if (!rc)
        rc = enc_raw(out, to);
    if (!rc)
        rc = enc_long(out, flags);
    return rc ? rc : enc_raw(out, result);
}

int ctrl_enc_spawn_request(struct buf *out, struct term req_id, struct term from,
                           struct term group_leader, const char *mod, const char *fun,
                           int64_t arity, struct term opts)
{
    int rc = enc_op(out, 6, CTRL_SPAWN_REQUEST);
    if (!rc)
        rc = enc_raw(out, req_id);
    if (!rc)
        rc = enc_raw(out, from);
    if (!rc)
        rc = enc_raw(out, group_leader);
    if (!rc)
        rc = enc_tuple(out, 3);
    if (!rc)
        rc = enc_atom(out, mod);
    if (!rc)
        rc = enc_atom(out, fun);
    if (!rc)
        rc = enc_long(out, arity);
    return rc ? rc : enc_raw(out, opts);
}

int ctrl_term_node(struct term t, char *out, size_t cap)
{
    size_t pos;
    switch (t.len ? t.p[0] : 0) {
    case TT_PID: case TT_NEW_PID: case TT_PORT: case TT_NEW_PORT: case TT_V4_PORT: case TT_REF:
        pos = 1; /* tag | Node ... */
        break;
    case TT_NEW_REF: case TT_NEWER_REF:
        pos = 3; /* tag | Len:16 | Node ... */
        break;
    default:
        return -EINVAL;
    }
    return term_get_atom(t.p, t.len, &pos, out, cap);
}

int ctrl_frame_erpc_call(struct buf *out, struct term req_id, struct term from, struct term res,
                         const char *mod, const char *fun, const struct term *args,
                         uint32_t nargs)
{
    static const uint8_t monitor_opt[] = {108, 0, 0, 0, 1, 119, 7, 'm', 'o', 'n', 'i', 't', 'o',
                                          'r', 106}; /* [monitor] */
    size_t keep = out->len, mark;
    int rc = ctrl_frame_begin(out, &mark);
    if (!rc) rc = ctrl_enc_spawn_request(out, req_id, from, from, "erpc", "execute_call", 4,
                                         (struct term){monitor_opt, sizeof monitor_opt});
    if (!rc) rc = ctrl_payload_begin(out);
    if (!rc) rc = enc_list(out, 4);
    if (!rc) rc = enc_raw(out, res);
    if (!rc) rc = enc_atom(out, mod);
    if (!rc) rc = enc_atom(out, fun);
    if (!rc && nargs) rc = enc_list(out, nargs);
    for (uint32_t i = 0; i < nargs && !rc; i++)
        rc = enc_raw(out, args[i]);
    if (!rc) rc = enc_nil(out);
    if (!rc) rc = enc_nil(out);
    if (rc) {
        out->len = keep;
        return rc;
    }
    ctrl_frame_end(out, mark);
    return 0;
}
