/*
 * gen_server message shapes: '$gen_call' / '$gen_cast' envelopes and the
 * reply tag forms of docs/distribution.md section 6. Pure functions over
 * term spans.
 */
#ifndef LOCKERD_CALL_H
#define LOCKERD_CALL_H

#include "term.h"

struct gen_call {
    struct term from_pid; /* caller pid, sender's encoding */
    struct term tag;      /* second element of From, verbatim */
    struct term req;      /* request term, sender's encoding */
};

/* {'$gen_call', {Pid, Tag}, Req}: 0, or -EINVAL when not that shape. */
int gen_call_parse(struct term msg, struct gen_call *g);
/* The same envelope on a message not validated yet (node_spawn_raw): the
 * envelope, pid and tag are validated, g->req is the rest of msg (one byte
 * at least), unchecked. The caller validates req while parsing it and
 * must find that it ends exactly where msg does. sender: a pid already
 * validated (the frame's From), or {NULL, 0}: a caller pid with the same
 * bytes is taken without walking it again. */
int gen_call_parse_head(struct term msg, struct term sender, struct gen_call *g);
/* {'$gen_cast', Req}: 0 or -EINVAL. */
int gen_cast_parse(struct term msg, struct term *req);
/* If the reply tag carries an alias ([alias|Ref] or [[alias|Ref]|Mon]),
 * set *alias to that ref and return 1; else 0. */
int gen_tag_alias(struct term tag, struct term *alias);

#endif
