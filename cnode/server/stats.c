/*
 * The locker server's counters (server.h, struct server_stats): what a
 * call's result was, read back from the reply term the handler encoded,
 * so the handlers themselves carry no metrics code. Pure.
 */
#include <errno.h>
#include <string.h>

#include "../../ei_glue/term.h"
#include "server.h"

static const char *const result_names[SERVER_RESULTS] = {
    [SERVER_RES_OK] = "ok",
    [SERVER_RES_ALREADY_LOCKED] = "already_locked",
    [SERVER_RES_NOT_EXPECTED] = "not_expected_value",
    [SERVER_RES_RECOVERING] = "recovering",
    [SERVER_RES_LIMIT] = "limit",
    [SERVER_RES_NOT_FOUND] = "not_found",
    [SERVER_RES_NOT_OWNER] = "not_owner",
    [SERVER_RES_UNKNOWN] = "unknown_request",
    [SERVER_RES_WAITING] = "waiting",
    [SERVER_RES_ERROR] = "error",
};

static const char *const limit_names[SERVER_LIMITS] = {"leases", "memory", "waiters"};

const char *server_result_name(enum server_result r)
{
    return (unsigned)r < SERVER_RESULTS ? result_names[r] : "error";
}

const char *server_limit_name(size_t i) { return i < SERVER_LIMITS ? limit_names[i] : NULL; }

enum server_result server_result_of(int rc, const uint8_t *p, size_t len)
{
    if (rc == 1)
        return SERVER_RES_WAITING;
    if (rc == -ENOENT || rc == -EINVAL)
        return SERVER_RES_UNKNOWN;
    if (rc < 0)
        return SERVER_RES_ERROR;
    size_t pos = 0;
    uint32_t arity;
    if (term_get_tuple(p, len, &pos, &arity) || arity != 2 || !term_is_atom(p, len, pos, "error"))
        return SERVER_RES_OK; /* ok, {ok, _}, and the meta / debug answers */
    if (term_skip(p, len, &pos))
        return SERVER_RES_ERROR;
    uint32_t ar;
    size_t at = pos;
    if (!term_get_tuple(p, len, &at, &ar))
        return ar == 2 && term_is_atom(p, len, at, "limit") ? SERVER_RES_LIMIT : SERVER_RES_ERROR;
    for (int r = SERVER_RES_ALREADY_LOCKED; r < SERVER_RES_WAITING; r++)
        if (term_is_atom(p, len, pos, result_names[r]))
            return (enum server_result)r;
    return SERVER_RES_ERROR;
}

void server__count(struct server_stats *st, size_t req, int rc, const struct buf *reply)
{
    if (req >= SERVER_REQ_KINDS)
        req = SERVER_REQ_UNKNOWN;
    st->calls[req][server_result_of(rc, buf_head(reply), buf_size(reply))]++;
}
