/* gen_server envelopes and reply tags; see call.h. */
#include "call.h"

#include <errno.h>
#include <string.h>

static int span_at(struct term t, size_t *pos, struct term *out)
{
    return term_next(t.p, t.len, pos, out);
}

/* The atom `name` (ASCII) at *pos, in any encoding: 1 and *pos past it,
 * else 0. For an ASCII name the four encodings are fixed byte strings, so
 * comparing bytes both matches and validates it. */
static int take_atom(struct term t, size_t *pos, const char *name)
{
    size_t n = strlen(name), p = *pos;
    if (p >= t.len || n > 255)
        return 0;
    int tag = t.p[p];
    size_t hl = tag == TT_ATOM || tag == TT_ATOM_UTF8 ? 3 : 2;
    if ((tag != TT_ATOM && tag != TT_ATOM_UTF8 && tag != TT_SMALL_ATOM &&
         tag != TT_SMALL_ATOM_UTF8) || t.len - p < hl + n)
        return 0;
    size_t len = hl == 3 ? get_u16(t.p + p + 1) : t.p[p + 1];
    if (len != n || memcmp(t.p + p + hl, name, n) != 0)
        return 0;
    *pos = p + hl + n;
    return 1;
}

int gen_call_parse_head(struct term msg, struct term sender, struct gen_call *g)
{
    size_t pos = 0;
    uint32_t ar;
    if (term_get_tuple(msg.p, msg.len, &pos, &ar) || ar != 3 || !take_atom(msg, &pos, "$gen_call"))
        return -EINVAL;
    if (term_get_tuple(msg.p, msg.len, &pos, &ar) || ar != 2)
        return -EINVAL;
    int tag = term_peek(msg.p, msg.len, pos);
    if (tag != TT_NEW_PID && tag != TT_PID)
        return -EINVAL;
    /* The caller is almost always the sender of the frame, whose pid the
     * control message carried and was validated: the same bytes are the
     * same valid term (a term's encoding delimits itself). */
    if (sender.len && msg.len - pos >= sender.len && !memcmp(msg.p + pos, sender.p, sender.len)) {
        g->from_pid = (struct term){msg.p + pos, sender.len};
        pos += sender.len;
    } else if (span_at(msg, &pos, &g->from_pid)) {
        return -EINVAL;
    }
    if (span_at(msg, &pos, &g->tag) || pos >= msg.len)
        return -EINVAL;
    g->req = (struct term){msg.p + pos, (uint32_t)(msg.len - pos)};
    return 0;
}

int gen_call_parse(struct term msg, struct gen_call *g)
{
    int rc = gen_call_parse_head(msg, (struct term){NULL, 0}, g);
    if (rc)
        return rc;
    size_t pos = 0;
    return term_skip(g->req.p, g->req.len, &pos) == 0 && pos == g->req.len ? 0 : -EINVAL;
}

int gen_cast_parse(struct term msg, struct term *req)
{
    size_t pos = 0;
    uint32_t ar;
    if (term_get_tuple(msg.p, msg.len, &pos, &ar) || ar != 2 || !take_atom(msg, &pos, "$gen_cast"))
        return -EINVAL;
    if (span_at(msg, &pos, req))
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
