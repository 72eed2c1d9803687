/*
 * Fuzz target: the locker server's request path, without a server.
 *
 * Input: the bytes of a REG_SEND payload (no 131) as they arrive at
 * `locker`: unchecked, since the locker process validates while it parses
 * (node_spawn_raw). The last byte also picks a "sender" pid, as the
 * frame's control message would carry it: none, or the caller pid of a
 * well-formed envelope (so the byte-equality shortcut of
 * gen_call_parse_head is taken). The message is taken apart the way
 * server.c does: a '$gen_call' envelope (gen_call_parse_head, then the
 * reply tag's alias with gen_tag_alias), else a '$gen_cast'
 * {trans_log, Node, Entries} (each entry a request), else the bare term as
 * a request (the rpc path, server_eval). Each request goes through
 * server_decode_request (cnode/server/request.c), which validates and
 * canonicalises the arguments in one pass. Checked:
 * - envelope and tag spans lie inside the message and are single terms;
 *   the head parse accepts the envelope exactly when the validating
 *   gen_call_parse does, or the request part is what it refuses;
 * - a decoded request has an atom op that fits, at most
 *   SERVER_REQ_MAX_ARGS arguments, and each argument is the canonical form
 *   of the corresponding element of the request (a canonical fixed point,
 *   equal to term_canon of the element), the last one ending the request;
 * - a smaller op buffer never accepts what the normal one refuses.
 */
#include <errno.h>
#include <string.h>

#include "cnode/server/request.h"
#include "ei_glue/call.h"
#include "fuzz.h"

#define OP_CAP 64 /* server.c's struct req */

static void check_whole(struct term t, const uint8_t *base, size_t len)
{
    FUZZ_CHECK(fuzz_inside(t.p, t.len, base, len));
    size_t pos = 0;
    FUZZ_CHECK(term_skip(t.p, t.len, &pos) == 0 && pos == t.len);
}

/* a is canonical and is the canonical form of the raw element r. */
static void check_canon_arg(struct term a, struct term r)
{
    struct buf out, again;
    buf_init(&out);
    buf_init(&again);
    struct term c2 = {NULL, 0};
    size_t pos = 0;
    FUZZ_CHECK(term_canon(r.p, r.len, &pos, &out) == 0 && pos == r.len);
    FUZZ_CHECK(out.len == a.len && memcmp(out.data, a.p, a.len) == 0);
    pos = 0;
    FUZZ_CHECK(term_canon_span(a.p, a.len, &pos, &again, &c2) == 0 && pos == a.len);
    FUZZ_CHECK(again.len == 0 && c2.p == a.p && c2.len == a.len);
    buf_free(&out);
    buf_free(&again);
}

static void check_request(struct term req, size_t smaller_cap)
{
    char op[OP_CAP], small[OP_CAP];
    struct term args[SERVER_REQ_MAX_ARGS];
    uint32_t nargs = 77, n2 = 77;
    struct buf canon, canon2;
    buf_init(&canon);
    buf_init(&canon2);
    int rc = server_decode_request(req, op, sizeof op, args, &nargs, &canon);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL);
    int rc2 = server_decode_request(req, small, smaller_cap, args, &n2, &canon2);
    if (rc2 == 0)
        FUZZ_CHECK(rc == 0);
    if (rc) {
        FUZZ_CHECK(nargs == 77);
        goto out;
    }
    /* args were overwritten by the second call when it succeeded; decode
     * again for the checks. */
    buf_reset(&canon);
    FUZZ_CHECK(server_decode_request(req, op, sizeof op, args, &nargs, &canon) == 0);
    if (rc2 == 0)
        FUZZ_CHECK(n2 == nargs && strcmp(small, op) == 0);
    FUZZ_CHECK(memchr(op, '\0', sizeof op) != NULL);
    FUZZ_CHECK(nargs <= SERVER_REQ_MAX_ARGS);
    size_t pos = 0;
    int tag = term_peek(req.p, req.len, 0);
    if (tag != TT_SMALL_TUPLE && tag != TT_LARGE_TUPLE) {
        FUZZ_CHECK(nargs == 0);
        FUZZ_CHECK(term_get_atom(req.p, req.len, &pos, small, sizeof small) == 0);
        FUZZ_CHECK(pos == req.len && strcmp(small, op) == 0);
        FUZZ_CHECK(term_is_atom(req.p, req.len, 0, op) == 1);
        goto out;
    }
    uint32_t ar;
    FUZZ_CHECK(term_get_tuple(req.p, req.len, &pos, &ar) == 0 && ar == nargs + 1);
    size_t op_pos = pos;
    FUZZ_CHECK(term_get_atom(req.p, req.len, &pos, small, sizeof small) == 0);
    /* The op the handlers match by name is the atom the peer sent. */
    FUZZ_CHECK(strcmp(small, op) == 0 && term_is_atom(req.p, req.len, op_pos, op) == 1);
    for (uint32_t i = 0; i < nargs; i++) {
        struct term raw;
        FUZZ_CHECK(term_next(req.p, req.len, &pos, &raw) == 0);
        FUZZ_CHECK(fuzz_inside(args[i].p, args[i].len, req.p, req.len) ||
                   fuzz_inside(args[i].p, args[i].len, canon.data, canon.len));
        check_canon_arg(args[i], raw);
    }
    FUZZ_CHECK(pos == req.len);
out:
    buf_free(&canon);
    buf_free(&canon2);
}

/* {trans_log, FromNode, [Entry...]}: each entry a request term. */
static void check_trans_log(struct term cast, size_t cap)
{
    size_t pos = 0;
    uint32_t ar, n;
    if (term_get_tuple(cast.p, cast.len, &pos, &ar) || ar != 3 ||
        !term_is_atom(cast.p, cast.len, pos, "trans_log") ||
        term_skip(cast.p, cast.len, &pos) || term_skip(cast.p, cast.len, &pos) ||
        term_peek(cast.p, cast.len, pos) != TT_LIST ||
        term_get_list(cast.p, cast.len, &pos, &n))
        return;
    for (uint32_t i = 0; i < n; i++) {
        struct term e;
        if (term_next(cast.p, cast.len, &pos, &e))
            return;
        check_whole(e, cast.p, cast.len);
        check_request(e, cap);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > UINT32_MAX)
        return 0;
    struct term msg = {data, (uint32_t)size};
    size_t cap = 1 + (size ? data[size - 1] % OP_CAP : 0);
    int with_sender = size && (data[size - 1] & 0x80);
    struct gen_call g, full;
    struct term cast, alias, sender = {NULL, 0};
    if (with_sender && gen_call_parse_head(msg, sender, &g) == 0)
        sender = g.from_pid; /* validated: as the control message's From */
    if (gen_call_parse_head(msg, sender, &g) == 0) {
        check_whole(g.from_pid, data, size);
        check_whole(g.tag, data, size);
        FUZZ_CHECK(fuzz_inside(g.req.p, g.req.len, data, size) && g.req.len > 0);
        FUZZ_CHECK(g.req.p + g.req.len == data + size);
        size_t pos = 0;
        int whole = term_skip(g.req.p, g.req.len, &pos) == 0 && pos == g.req.len;
        FUZZ_CHECK((gen_call_parse(msg, &full) == 0) == whole);
        int a = gen_tag_alias(g.tag, &alias);
        FUZZ_CHECK(a == 0 || a == 1);
        if (a)
            check_whole(alias, g.tag.p, g.tag.len);
        check_request(g.req, cap);
    } else if (gen_cast_parse(msg, &cast) == 0) {
        FUZZ_CHECK(gen_call_parse(msg, &full) != 0);
        check_whole(cast, data, size);
        check_trans_log(cast, cap);
    } else {
        FUZZ_CHECK(gen_call_parse(msg, &full) != 0);
        check_request(msg, cap);
    }
    return 0;
}
