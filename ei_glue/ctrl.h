/*
 * Distribution control messages: decoding a frame body into a struct, and
 * encoding the control messages lockerd sends.
 *
 * A non-tick frame body is: 112 (pass-through) | 131 Control | [131 Payload].
 * ctrl_decode validates the whole control tuple (bounded) and checks that
 * the payload, when the op carries one, is exactly one well-formed term.
 * ctrl_decode_head does the first part only: the payload span is then the
 * rest of the body, unchecked, for receivers that validate it themselves
 * while parsing it (one walk instead of two); ctrl_check_payload is the
 * second part, for everyone else.
 * Spans in struct ctrl point into the frame body; they are valid while the
 * body is. Pids/refs are left in the sender's encoding: they are only
 * echoed back, never compared (keys, values and tags are canonicalised by
 * the server before they are stored).
 */
#ifndef LOCKERD_CTRL_H
#define LOCKERD_CTRL_H

#include <stddef.h>
#include <stdint.h>

#include "term.h"

enum ctrl_op {
    CTRL_LINK = 1, CTRL_SEND = 2, CTRL_EXIT = 3, CTRL_UNLINK = 4, CTRL_REG_SEND = 6,
    CTRL_GROUP_LEADER = 7, CTRL_EXIT2 = 8, CTRL_SEND_TT = 12, CTRL_EXIT_TT = 13,
    CTRL_REG_SEND_TT = 16, CTRL_EXIT2_TT = 18, CTRL_MONITOR_P = 19, CTRL_DEMONITOR_P = 20,
    CTRL_MONITOR_P_EXIT = 21, CTRL_SEND_SENDER = 22, CTRL_SEND_SENDER_TT = 23,
    CTRL_SPAWN_REQUEST = 29, CTRL_SPAWN_REQUEST_TT = 30, CTRL_SPAWN_REPLY = 31,
    CTRL_SPAWN_REPLY_TT = 32, CTRL_ALIAS_SEND = 33, CTRL_ALIAS_SEND_TT = 34,
    CTRL_UNLINK_ID = 35, CTRL_UNLINK_ID_ACK = 36
};

#define CTRL_NAME_MAX (255 * 4 + 1)

struct ctrl {
    int op;
    struct term from;    /* sender pid (LINK, EXIT*, REG_SEND, MONITOR_P, ...) */
    struct term to;      /* receiver: pid, or atom when to_is_name */
    int to_is_name;
    char to_name[CTRL_NAME_MAX]; /* when to_is_name */
    struct term ref;     /* monitor ref, spawn ReqId, alias ref */
    struct term id;      /* UNLINK_ID Id */
    struct term reason;  /* EXIT / MONITOR_P_EXIT; SPAWN_REPLY result */
    /* SPAWN_REQUEST */
    struct term group_leader;
    char mod[CTRL_NAME_MAX], fun[CTRL_NAME_MAX];
    int64_t arity;
    struct term opts;
    int64_t flags;       /* SPAWN_REPLY: 1 link, 2 monitor (result in reason) */
    /* Payload term (after its 131), or p == NULL when the op has none. */
    struct term payload;
    int payload_checked;  /* 1: payload is exactly one well-formed term */
};

/* 0, or -EINVAL (malformed; *why gets a short static reason), -ENOTSUP
 * (well-formed but an op lockerd does not know: log and ignore). */
int ctrl_decode(const uint8_t *body, size_t len, struct ctrl *c, const char **why);
/* Same, but the payload (the bytes after its 131, at least one) is not
 * validated: payload_checked stays 0 and payload may be malformed. */
int ctrl_decode_head(const uint8_t *body, size_t len, struct ctrl *c, const char **why);
/* Validate c's payload if that was not done yet: 0, or -EINVAL (*why set). */
int ctrl_check_payload(struct ctrl *c, const char **why);
/* The same check without recording it, for a ctrl the caller may not
 * change: 0 when there is no payload, it was checked, or it is valid. */
int ctrl_payload_valid(const struct ctrl *c, const char **why);

/*
 * Frame assembly. ctrl_frame_begin appends the 4-byte length placeholder,
 * 112 and 131 and returns the frame's start offset in *mark; the caller
 * appends the control tuple, then optionally ctrl_payload_begin (131) and
 * the payload term; ctrl_frame_end patches the length.
 */
int ctrl_frame_begin(struct buf *out, size_t *mark);
int ctrl_payload_begin(struct buf *out);
void ctrl_frame_end(struct buf *out, size_t mark);

/* Control tuples (append after ctrl_frame_begin). */
int ctrl_enc_send(struct buf *out, struct term to_pid);
int ctrl_enc_reg_send(struct buf *out, struct term from_pid, const char *to_name);
int ctrl_enc_alias_send(struct buf *out, struct term from_pid, struct term alias);
int ctrl_enc_exit(struct buf *out, struct term from, struct term to, const char *reason);
/* from_name: atom name when from_is_name else the pid span in `from`. */
int ctrl_enc_monitor_exit(struct buf *out, struct term from, const char *from_name,
                          struct term to_pid, struct term ref, const char *reason);
int ctrl_enc_unlink_id_ack(struct buf *out, struct term id, struct term from, struct term to);
int ctrl_enc_spawn_reply(struct buf *out, struct term req_id, struct term to, int64_t flags,
                         struct term result);
/* {29, ReqId, From, GroupLeader, {Mod, Fun, Arity}, Opts}; the argument
 * list follows as the payload. opts: an encoded list such as [monitor]. */
int ctrl_enc_spawn_request(struct buf *out, struct term req_id, struct term from,
                           struct term group_leader, const char *mod, const char *fun,
                           int64_t arity, struct term opts);

/* A whole erpc:call frame: SPAWN_REQUEST {29, ReqId, From, From, {erpc,
 * execute_call, 4}, [monitor]} + [Res, Mod, Fun, [Args...]], appended to
 * out, or nothing (out unchanged) on error. */
int ctrl_frame_erpc_call(struct buf *out, struct term req_id, struct term from, struct term res,
                         const char *mod, const char *fun, const struct term *args,
                         uint32_t nargs);
/* Node name inside a pid/ref/port span (any encoding) into out. 0 / -EINVAL. */
int ctrl_term_node(struct term t, char *out, size_t cap);

#endif
