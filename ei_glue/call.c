/* gen_server envelopes and reply tags; see call.h. */
#include "call.h"

#include <errno.h>

static int span_at(struct term t, size_t *pos, struct term *out)
{
    return term_next(t.p, t.len, pos, out);
}

int gen_call_parse(struct term msg, struct gen_call *g)
{
    size_t pos = 0;
    uint32_t ar;
    if (term_get_tuple(msg.p, msg.len, &pos, &ar) || ar != 3 ||
        !term_is_atom(msg.p, msg.len, pos, "$gen_call"))
        return -EINVAL;
    if (term_skip(msg.p, msg.len, &pos) || term_get_tuple(msg.p, msg.len, &pos, &ar) || ar != 2)
        return -EINVAL;
    int tag = term_peek(msg.p, msg.len, pos);
    if (tag != TT_NEW_PID && tag != TT_PID)
        return -EINVAL;
    if (span_at(msg, &pos, &g->from_pid) || span_at(msg, &pos, &g->tag) ||
        span_at(msg, &pos, &g->req))
        return -EINVAL;
    return pos == msg.len ? 0 : -EINVAL;
}

int gen_cast_parse(struct term msg, struct term *req)
{
    size_t pos = 0;
    uint32_t ar;
    if (term_get_tuple(msg.p, msg.len, &pos, &ar) || ar != 2 ||
        !term_is_atom(msg.p, msg.len, pos, "$gen_cast"))
        return -EINVAL;
    if (term_skip(msg.p, msg.len, &pos) || span_at(msg, &pos, req))
        return -EINVAL;
    return pos == msg.len ? 0 : -EINVAL;
}

static int is_ref(int tag) { return tag == TT_NEWER_REF || tag == TT_NEW_REF || tag == TT_REF; }

/* [alias|Ref] as a LIST_EXT of one element with a ref tail. */
static int alias_cell(struct term t, size_t *pos, struct term *alias)
{
    uint32_t n;
    if (term_peek(t.p, t.len, *pos) != TT_LIST || term_get_list(t.p, t.len, pos, &n) || n != 1)
        return 0;
    if (!term_is_atom(t.p, t.len, *pos, "alias") || term_skip(t.p, t.len, pos))
        return 0;
    if (!is_ref(term_peek(t.p, t.len, *pos)))
        return 0;
    return span_at(t, pos, alias) == 0;
}

int gen_tag_alias(struct term tag, struct term *alias)
{
    size_t pos = 0;
    if (alias_cell(tag, &pos, alias))
        return pos == tag.len;
    /* [[alias|Alias]|Mon]: one element which is itself the alias cell. */
    uint32_t n;
    pos = 0;
    if (term_peek(tag.p, tag.len, 0) != TT_LIST || term_get_list(tag.p, tag.len, &pos, &n) ||
        n != 1)
        return 0;
    return alias_cell(tag, &pos, alias);
}
