/*
 * Fuzz target: the locker server's request path, without a server.
 *
 * Input: a message term (no 131) as it arrives at `locker` in a REG_SEND
 * payload. It is taken apart the way server.c does: a '$gen_call' envelope
 * (gen_call_parse, then the reply tag's alias with gen_tag_alias), else a
 * '$gen_cast' {trans_log, Node, Entries} (each entry a request), else the
 * bare term as a request (the rpc path, server_eval). Each request goes
 * through server_decode_request (cnode/server/request.c) and each argument
 * through term_canon_span, as the handlers do before touching the store.
 * Checked:
 * - envelope and tag spans lie inside the message and are single terms;
 * - a decoded request has an atom op that fits, at most
 *   SERVER_REQ_MAX_ARGS arguments, each a whole term inside the request,
 *   in order and back to back, the last one ending the request;
 * - every argument canonicalises (validated terms always do), to a
 *   canonical fixed point;
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

static void check_canon_arg(struct term a)
{
    struct buf out, again;
    buf_init(&out);
    buf_init(&again);
    struct term c = {NULL, 0}, c2 = {NULL, 0};
    size_t pos = 0;
    FUZZ_CHECK(term_canon_span(a.p, a.len, &pos, &out, &c) == 0 && pos == a.len);
    pos = 0;
    FUZZ_CHECK(term_canon_span(c.p, c.len, &pos, &again, &c2) == 0 && pos == c.len);
    FUZZ_CHECK(again.len == 0 && c2.p == c.p && c2.len == c.len);
    buf_free(&out);
    buf_free(&again);
}

static void check_request(struct term req, size_t smaller_cap)
{
    char op[OP_CAP], small[OP_CAP];
    struct term args[SERVER_REQ_MAX_ARGS];
    uint32_t nargs = 77, n2 = 77;
    int rc = server_decode_request(req, op, sizeof op, args, &nargs);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL);
    int rc2 = server_decode_request(req, small, smaller_cap, args, &n2);
    if (rc2 == 0)
        FUZZ_CHECK(rc == 0);
    if (rc) {
        FUZZ_CHECK(nargs == 77);
        return;
    }
    /* args were overwritten by the second call when it succeeded; decode
     * again for the checks. */
    FUZZ_CHECK(server_decode_request(req, op, sizeof op, args, &nargs) == 0);
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
        return;
    }
    uint32_t ar;
    FUZZ_CHECK(term_get_tuple(req.p, req.len, &pos, &ar) == 0 && ar == nargs + 1);
    size_t op_pos = pos;
    FUZZ_CHECK(term_get_atom(req.p, req.len, &pos, small, sizeof small) == 0);
    /* The op the handlers match by name is the atom the peer sent. */
    FUZZ_CHECK(strcmp(small, op) == 0 && term_is_atom(req.p, req.len, op_pos, op) == 1);
    for (uint32_t i = 0; i < nargs; i++) {
        FUZZ_CHECK(args[i].p == req.p + pos);
        check_whole(args[i], req.p, req.len);
        check_canon_arg(args[i]);
        pos += args[i].len;
    }
    FUZZ_CHECK(pos == req.len);
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
    struct gen_call g;
    struct term cast, alias;
    if (gen_call_parse(msg, &g) == 0) {
        check_whole(g.from_pid, data, size);
        check_whole(g.tag, data, size);
        check_whole(g.req, data, size);
        FUZZ_CHECK(g.req.p + g.req.len == data + size);
        int a = gen_tag_alias(g.tag, &alias);
        FUZZ_CHECK(a == 0 || a == 1);
        if (a)
            check_whole(alias, g.tag.p, g.tag.len);
        check_request(g.req, cap);
    } else if (gen_cast_parse(msg, &cast) == 0) {
        check_whole(cast, data, size);
        check_trans_log(cast, cap);
    } else {
        check_request(msg, cap);
    }
    return 0;
}
