/*
 * lockerctl commands: each runs on an open client handle (x->c) with its
 * arguments already checked and its terms already parsed (x->terms[i] is
 * argument i when the command's term_mask says it is a term), prints one
 * result or reports one error, and returns the exit code.
 *
 * The commands are thin: the quorum logic is the client library's
 * (docs/protocol.md section 5); what lives here is presentation and the
 * choice of exit code. Keys and values print with tprint (Erlang syntax)
 * and tprint_json (the typed JSON shapes of ei_glue/tparse.h).
 */
#include "lockerctl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void cat(struct buf *b, const char *s) { (void)buf_append(b, s, strlen(s)); }

static lkc_term arg_term(const struct ctl *x, int i)
{
    lkc_term t = {x->terms[i].bytes.data, x->terms[i].bytes.len};
    return t;
}

/* ---- lock family ---- */

/* A fencing token when every master is lockerd; on clusters with BEAM
 * masters the plain lock, reported without a token. */
int ctl_lock(struct ctl *x)
{
    struct lkc_result r = {0};
    int rc = lkc_lock_fenced(x->c, arg_term(x, 0), arg_term(x, 1), x->lease_ms, x->timeout_ms,
                             &r);
    if (rc == LKC_ENOTOKEN)
        rc = lkc_lock(x->c, arg_term(x, 0), arg_term(x, 1), x->lease_ms, x->timeout_ms, &r);
    return rc ? ctl_fail_lkc(x, rc) : ctl_print_result(x, &r);
}

int ctl_release(struct ctl *x)
{
    struct lkc_result r = {0};
    int rc = lkc_release(x->c, arg_term(x, 0), arg_term(x, 1), x->timeout_ms, &r);
    return rc ? ctl_fail_lkc(x, rc) : ctl_print_result(x, &r);
}

int ctl_update(struct ctl *x)
{
    struct lkc_result r = {0};
    int rc = lkc_update(x->c, arg_term(x, 0), arg_term(x, 1), arg_term(x, 2), x->timeout_ms, &r);
    return rc ? ctl_fail_lkc(x, rc) : ctl_print_result(x, &r);
}

/* extend_lease answers plain `ok` in the Erlang library: no counts. */
int ctl_extend(struct ctl *x)
{
    int rc = lkc_extend_lease(x->c, arg_term(x, 0), arg_term(x, 1), x->lease_ms, x->timeout_ms);
    if (rc)
        return ctl_fail_lkc(x, rc);
    if (x->json) {
        ctl_json_begin(x, "ok");
        ctl_json_end(x);
    } else {
        printf("ok\n");
    }
    return CTL_EXIT_OK;
}

/* ---- reads ---- */

/* Print a found value: its Erlang text, and in JSON its typed shape too. */
static int print_value(struct ctl *x, const lkc_buf *v)
{
    struct buf text, js;
    buf_init(&text);
    buf_init(&js);
    int rc = tprint(v->data, v->len, &text);
    if (!rc)
        rc = buf_put_u8(&text, 0);
    if (!rc && x->json)
        rc = tprint_json(v->data, v->len, &js);
    if (rc) {
        buf_free(&text);
        buf_free(&js);
        return ctl_fail(x, CTL_EXIT_ERROR, "error", "cannot print the value read");
    }
    if (x->json) {
        ctl_json_begin(x, "ok");
        ctl_json_raw(x, "value", (const char *)js.data, js.len);
        ctl_json_str(x, "text", (const char *)text.data);
        ctl_json_end(x);
    } else {
        printf("%s\n", (const char *)text.data);
    }
    buf_free(&text);
    buf_free(&js);
    return CTL_EXIT_OK;
}

/* A result with no error and no payload: not_found, released, ... */
static int print_word(struct ctl *x, const char *word, int code)
{
    if (x->json) {
        ctl_json_begin(x, word);
        ctl_json_end(x);
    } else {
        printf("%s\n", word);
    }
    return code;
}

int ctl_read(struct ctl *x)
{
    lkc_buf v = {0};
    int rc = lkc_dirty_read(x->c, arg_term(x, 0), &v);
    if (rc == LKC_ENOTFOUND)
        return print_word(x, "not_found", CTL_EXIT_NOTFOUND);
    if (rc)
        return ctl_fail_lkc(x, rc);
    rc = print_value(x, &v);
    lkc_buf_free(&v);
    return rc;
}

/* A key nobody holds is reported as such rather than as "released": the
 * Erlang library answers {error, key_not_locked} there too. */
int ctl_watch(struct ctl *x)
{
    lkc_buf v = {0};
    int rc = lkc_dirty_read(x->c, arg_term(x, 0), &v);
    lkc_buf_free(&v);
    if (rc == LKC_ENOTFOUND)
        return print_word(x, "not_locked", CTL_EXIT_OK);
    if (rc)
        return ctl_fail_lkc(x, rc);
    int64_t t = x->cmd_timeout_ms > 0 ? x->cmd_timeout_ms : x->timeout_ms;
    rc = lkc_wait_for_release(x->c, arg_term(x, 0), t);
    if (rc == LKC_ETIMEOUT)
        return ctl_fail(x, CTL_EXIT_TIMEOUT, "timeout",
                        "the key is still held after %" PRId64 " ms", t);
    return rc ? ctl_fail_lkc(x, rc) : print_word(x, "released", CTL_EXIT_OK);
}

/* ---- cluster meta ---- */

int ctl_set_nodes(struct ctl *x)
{
    const char *replicas = x->args[2][0] ? x->args[2] : NULL;
    int rc = lkc_set_nodes(x->c, x->args[0], x->args[1], replicas);
    if (rc == LKC_ECONNECT)
        return ctl_fail(x, CTL_EXIT_UNREACHABLE, "unreachable",
                        "not every node of %s answered ok in time (those that did "
                        "have the new lists)", x->args[0]);
    if (rc == LKC_EINVAL)
        return ctl_fail(x, CTL_EXIT_USAGE, "usage",
                        "node lists must be comma-separated name@host names");
    return rc ? ctl_fail_lkc(x, rc) : print_word(x, "ok", CTL_EXIT_OK);
}

int ctl_set_w(struct ctl *x)
{
    int w = atoi(x->args[1]);
    int rc = lkc_set_w(x->c, x->args[0], w);
    if (rc == LKC_ECONNECT)
        return ctl_fail(x, CTL_EXIT_UNREACHABLE, "unreachable",
                        "not every node of %s answered ok in time (those that did use "
                        "W=%d now)", x->args[0], w);
    return rc ? ctl_fail_lkc(x, rc) : print_word(x, "ok", CTL_EXIT_OK);
}

/* ---- status ---- */

struct status {
    char *masters, *replicas;
    int w;
    struct lkc_master_summary *s;
    struct ctl_master_detail *d; /* per master */
    size_t n, up;
    int lag_rc;          /* the probe lock's rc; 1: not measured */
    double lag_ms;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* locker:lag(): lock and release {'__lock_lag_probe', os:timestamp()}
 * held by this client's pid; the time both took. */
static void measure_lag(struct ctl *x, struct status *st)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    char text[128];
    snprintf(text, sizeof text, "{'__lock_lag_probe', {%ld, %ld, %ld}}",
             (long)(wall.tv_sec / 1000000), (long)(wall.tv_sec % 1000000),
             (long)(wall.tv_nsec / 1000));
    struct buf key;
    buf_init(&key);
    st->lag_rc = 1;
    if (tparse(text, &key, NULL) == 0) {
        lkc_term k = {key.data, key.len}, self = lkc_self(x->c);
        double t0 = now_ms();
        st->lag_rc = lkc_lock(x->c, k, self, 0, x->timeout_ms, NULL);
        if (st->lag_rc == 0)
            lkc_release(x->c, k, self, x->timeout_ms, NULL);
        st->lag_ms = now_ms() - t0;
    }
    buf_free(&key);
}

static const char *node_state(int rc)
{
    switch (rc) {
    case 0: return "reachable";
    case LKC_ETIMEOUT: return "timeout";
    case LKC_EPROTO: return "bad_reply";
    default: return "unreachable";
    }
}

static void status_human(struct ctl *x, const struct status *st)
{
    printf("node:      %s\n", lkc_node_name(x->c));
    printf("masters:   %s\n", st->masters);
    printf("replicas:  %s\n", st->replicas[0] ? st->replicas : "(none)");
    printf("w:         %d\n", st->w);
    printf("reachable: %zu of %zu masters\n", st->up, st->n);
    printf("%-40s %-12s %12s %8s\n", "master", "state", "write_locks", "leases");
    for (size_t i = 0; i < st->n; i++) {
        const struct lkc_master_summary *m = &st->s[i];
        if (m->rc == 0)
            printf("%-40s %-12s %12" PRId64 " %8" PRId64 "\n", m->node,
                   st->d[i].quiet_ms > 0 ? "recovering" : "reachable", m->write_locks,
                   m->leases);
        else
            printf("%-40s %-12s %12s %8s\n", m->node, node_state(m->rc), "-", "-");
    }
    for (size_t i = 0; i < st->n; i++) {
        if (st->d[i].quiet_ms > 0)
            printf("%s: quiet period after a restart, %.1f s left (refuses votes on keys "
                   "it does not hold)\n", st->s[i].node, (double)st->d[i].quiet_ms / 1000);
        else if (st->d[i].why[0])
            printf("%s: %s\n", st->s[i].node, st->d[i].why);
    }
    if (st->lag_rc == 0)
        printf("lag:       %.3f ms\n", st->lag_ms);
    else if (st->lag_rc < 0)
        printf("lag:       probe lock failed after %.3f ms: %s\n", st->lag_ms,
               lkc_strerror(st->lag_rc));
    else
        printf("lag:       not measured (fewer than W masters reachable)\n");
}

static void status_json_masters(struct ctl *x, const struct status *st)
{
    struct buf *b = &x->json_buf;
    cat(b, ", \"masters\": [");
    for (size_t i = 0; i < st->n; i++) {
        const struct lkc_master_summary *m = &st->s[i];
        char line[160];
        if (i)
            cat(b, ", ");
        cat(b, "{\"node\": ");
        ctl_json_quote(b, m->node);
        snprintf(line, sizeof line, ", \"reachable\": %s, \"state\": \"%s\"",
                 m->rc == 0 ? "true" : "false",
                 m->rc == 0 && st->d[i].quiet_ms > 0 ? "recovering" : node_state(m->rc));
        cat(b, line);
        if (m->rc == 0) {
            snprintf(line, sizeof line, ", \"write_locks\": %" PRId64 ", \"leases\": %" PRId64,
                     m->write_locks, m->leases);
            cat(b, line);
            if (st->d[i].quiet_ms >= 0) {
                snprintf(line, sizeof line, ", \"quiet_ms\": %" PRId64, st->d[i].quiet_ms);
                cat(b, line);
            }
        } else if (st->d[i].why[0]) {
            cat(b, ", \"why\": ");
            ctl_json_quote(b, st->d[i].why);
        }
        (void)buf_put_u8(b, '}');
    }
    (void)buf_put_u8(b, ']');
}

static void status_json(struct ctl *x, const struct status *st, const char *error,
                        const char *msg)
{
    ctl_json_begin(x, error ? "error" : "ok");
    if (error) {
        ctl_json_str(x, "error", error);
        ctl_json_str(x, "message", msg);
    }
    ctl_json_str(x, "node", lkc_node_name(x->c));
    struct buf *b = &x->json_buf;
    cat(b, ", \"meta\": {\"masters\": ");
    ctl_json_names(b, st->masters);
    cat(b, ", \"replicas\": ");
    ctl_json_names(b, st->replicas);
    char tail[96];
    snprintf(tail, sizeof tail, ", \"w\": %d}", st->w);
    cat(b, tail);
    ctl_json_int(x, "reachable", (int64_t)st->up);
    status_json_masters(x, st);
    if (st->lag_rc <= 0) {
        snprintf(tail, sizeof tail, "%.3f", st->lag_ms);
        ctl_json_raw(x, "lag_ms", tail, strlen(tail));
        ctl_json_str(x, "lag_result", st->lag_rc == 0              ? "ok"
                                      : st->lag_rc == LKC_ENOQUORUM ? "no_quorum"
                                                                    : "error");
    }
    ctl_json_end(x);
}

/* Exit 0 when at least W masters answer, 3 when some do, 6 when none. */
int ctl_status(struct ctl *x)
{
    struct status st = {.lag_rc = 1};
    int rc = lkc_get_meta(x->c, &st.masters, &st.replicas, &st.w);
    if (!rc)
        rc = lkc_summary(x->c, x->timeout_ms, &st.s, &st.n);
    if (rc) {
        free(st.masters);
        free(st.replicas);
        return ctl_fail_lkc(x, rc);
    }
    st.d = calloc(st.n ? st.n : 1, sizeof *st.d);
    if (!st.d) {
        free(st.masters);
        free(st.replicas);
        free(st.s);
        return ctl_fail_lkc(x, LKC_ENOMEM);
    }
    for (size_t i = 0; i < st.n; i++) {
        st.up += st.s[i].rc == 0;
        ctl_master_detail(x, &st.s[i], &st.d[i]);
    }
    if (st.up >= (size_t)st.w)
        measure_lag(x, &st);
    int code = st.up >= (size_t)st.w ? CTL_EXIT_OK : st.up ? CTL_EXIT_NOQUORUM : CTL_EXIT_UNREACHABLE;
    char msg[160];
    snprintf(msg, sizeof msg, "%zu of %zu masters reachable, W=%d", st.up, st.n, st.w);
    const char *error = code == CTL_EXIT_OK ? NULL : code == CTL_EXIT_NOQUORUM ? "no_quorum" : "unreachable";
    if (x->json)
        status_json(x, &st, error, msg);
    else
        status_human(x, &st);
    if (!x->json && error)
        fprintf(stderr, "lockerctl: status: %s: %s\n", error, msg);
    free(st.masters);
    free(st.replicas);
    free(st.s);
    free(st.d);
    return code;
}
