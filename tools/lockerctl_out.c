/*
 * lockerctl output: the one JSON object of a --json run, human lines
 * otherwise, and the mapping of every failure to one exit code.
 *
 * Invariants. stdout carries results only (one JSON object per run in
 * --json mode, nothing else); human error messages go to stderr prefixed
 * with "lockerctl: COMMAND:". A failed quorum operation is followed by a
 * probe of the masters, because the coordinator's no_quorum cannot tell
 * "the key is held" from "nobody answered": the probe decides between
 * exit 3 (some masters answered) and exit 6 (none did) and names the nodes
 * that could not be reached.
 */
#include "lockerctl.h"

#include "../ei_glue/term.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_MAX_MS 2000 /* the masters' reachability probe after a failure */

/* ---- JSON ---- */

static void put(struct buf *b, const char *s) { (void)buf_append(b, s, strlen(s)); }

void ctl_json_quote(struct buf *b, const char *s)
{
    (void)buf_put_u8(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            (void)buf_append(b, esc, 2);
        } else if (*p == '\n') {
            put(b, "\\n");
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            put(b, esc);
        } else {
            (void)buf_put_u8(b, *p); /* UTF-8 passes through */
        }
    }
    (void)buf_put_u8(b, '"');
}

void ctl_json_names(struct buf *b, const char *s)
{
    (void)buf_put_u8(b, '[');
    int first = 1;
    while (s && *s) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (n) {
            char name[512];
            snprintf(name, sizeof name, "%.*s", (int)n, s);
            if (!first)
                put(b, ", ");
            ctl_json_quote(b, name);
            first = 0;
        }
        s = end ? end + 1 : s + n;
    }
    (void)buf_put_u8(b, ']');
}

static void json_key(struct ctl *x, const char *key)
{
    put(&x->json_buf, ", ");
    ctl_json_quote(&x->json_buf, key);
    put(&x->json_buf, ": ");
}

void ctl_json_begin(struct ctl *x, const char *result)
{
    buf_reset(&x->json_buf);
    put(&x->json_buf, "{\"command\": ");
    if (x->cmd || x->typed_cmd)
        ctl_json_quote(&x->json_buf, x->cmd ? x->cmd->name : x->typed_cmd);
    else
        put(&x->json_buf, "null");
    json_key(x, "result");
    ctl_json_quote(&x->json_buf, result);
}

void ctl_json_str(struct ctl *x, const char *key, const char *val)
{
    json_key(x, key);
    ctl_json_quote(&x->json_buf, val);
}

void ctl_json_int(struct ctl *x, const char *key, int64_t v)
{
    char n[32];
    snprintf(n, sizeof n, "%" PRId64, v);
    json_key(x, key);
    put(&x->json_buf, n);
}

void ctl_json_raw(struct ctl *x, const char *key, const char *raw, size_t n)
{
    json_key(x, key);
    (void)buf_append(&x->json_buf, raw, n);
}

void ctl_json_end(struct ctl *x)
{
    (void)buf_put_u8(&x->json_buf, '}');
    fwrite(x->json_buf.data, 1, x->json_buf.len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    buf_reset(&x->json_buf);
}

/* ---- results and errors ---- */

int ctl_print_result(struct ctl *x, const struct lkc_result *r)
{
    if (x->json) {
        ctl_json_begin(x, "ok");
        ctl_json_int(x, "w", r->w);
        ctl_json_int(x, "votes", r->votes);
        ctl_json_int(x, "commits", r->commits);
        if (r->token)
            ctl_json_int(x, "token", (int64_t)r->token);
        else if (x->cmd && !strcmp(x->cmd->name, "lock"))
            ctl_json_raw(x, "token", "null", 4);
        ctl_json_end(x);
    } else if (r->token) {
        printf("ok w=%d votes=%d commits=%d token=%llu\n", r->w, r->votes, r->commits,
               (unsigned long long)r->token);
    } else {
        printf("ok w=%d votes=%d commits=%d\n", r->w, r->votes, r->commits);
    }
    return CTL_EXIT_OK;
}

static int fail_msg(struct ctl *x, int code, const char *error, const char *msg)
{
    const char *name = x->cmd ? x->cmd->name : x->typed_cmd;
    if (x->json) {
        ctl_json_begin(x, "error");
        ctl_json_str(x, "error", error);
        ctl_json_str(x, "message", msg);
        ctl_json_int(x, "exit", code);
        ctl_json_end(x);
    } else {
        fprintf(stderr, "lockerctl: %s%s%s\n", name ? name : "", name ? ": " : "", msg);
    }
    return code;
}

int ctl_fail(struct ctl *x, int code, const char *error, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail_msg(x, code, error, msg);
}

int ctl_fail_term(struct ctl *x, const char *what, const char *text, size_t pos,
                  const char *msg)
{
    struct tparse_err e = {.pos = pos};
    snprintf(e.msg, sizeof e.msg, "%s", msg);
    char caret[1024];
    tparse_caret(text, &e, caret, sizeof caret);
    return ctl_fail(x, CTL_EXIT_USAGE, "bad_term", "%s is not a valid Erlang term: %s\n%s", what,
                    msg, caret);
}

int64_t ctl_probe_ms(const struct ctl *x)
{
    return x->timeout_ms < PROBE_MAX_MS ? x->timeout_ms : PROBE_MAX_MS;
}

/* lockerd:quiet_period_left() on a master: the ms it stays in its quiet
 * period after a restart, 0 when it is not in one, -1 when it cannot say
 * (a BEAM master has no such function). */
static int64_t quiet_left(struct ctl *x, const char *node)
{
    lkc_buf r = {NULL, 0};
    int64_t left = -1, v;
    size_t pos = 1; /* after 131 */
    if (lkc_rpc(x->c, node, "lockerd", "quiet_period_left", NULL, 0, ctl_probe_ms(x), &r) == 0 &&
        term_get_int64(r.data, r.len, &pos, &v) == 0 && v >= 0)
        left = v;
    lkc_buf_free(&r);
    return left;
}

void ctl_master_detail(struct ctl *x, const struct lkc_master_summary *m,
                       struct ctl_master_detail *d)
{
    d->quiet_ms = -1;
    d->why[0] = 0;
    if (m->rc == 0 || m->rc == LKC_EPROTO)
        d->quiet_ms = quiet_left(x, m->node);
    else if (m->rc != LKC_ETIMEOUT && lkc_node_failure(x->c, m->node, d->why, sizeof d->why))
        d->why[0] = 0;
}

struct probe {
    size_t total, up, recovering;
    char down[1024];      /* "a@h (unreachable: why), b@h (no answer in time)" */
    char recov[1024];     /* "a@h for 12.3 s more, ..." */
};

static void append(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *dst, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(dst);
    if (len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst + len, cap - len, fmt, ap);
    va_end(ap);
}

/* Which masters answer, why the others do not (as the client library saw
 * the connection fail), and, with quiet set, which of those answering are
 * in their quiet period. total == 0 when the probe itself cannot run. */
static void probe_masters(struct ctl *x, int quiet, struct probe *p)
{
    struct lkc_master_summary *s = NULL;
    size_t n = 0;
    memset(p, 0, sizeof *p);
    if (lkc_summary(x->c, ctl_probe_ms(x), &s, &n))
        return;
    for (size_t i = 0; i < n; i++) {
        const char *sep = p->down[0] ? ", " : "";
        struct ctl_master_detail d = {.quiet_ms = 0, .why = ""};
        if (quiet || (s[i].rc != 0 && s[i].rc != LKC_EPROTO))
            ctl_master_detail(x, &s[i], &d);
        if (s[i].rc == 0 || s[i].rc == LKC_EPROTO) {
            p->up++;
            if (d.quiet_ms > 0) {
                append(p->recov, sizeof p->recov, "%s%s for %.1f s more",
                       p->recovering ? ", " : "", s[i].node, (double)d.quiet_ms / 1000);
                p->recovering++;
            }
        } else if (s[i].rc == LKC_ETIMEOUT) {
            append(p->down, sizeof p->down, "%s%s (no answer in time)", sep, s[i].node);
        } else {
            append(p->down, sizeof p->down, "%s%s (unreachable%s%s)", sep, s[i].node,
                   d.why[0] ? ": " : "", d.why);
        }
    }
    free(s);
    p->total = n;
}

/* No quorum, or no answer: which one, and who was missing. When the
 * probe itself cannot run (total == 0) the library's code decides. */
static int fail_quorum(struct ctl *x, int rc)
{
    char *masters = NULL, *replicas = NULL;
    int w = 0;
    struct probe p;
    probe_masters(x, rc == LKC_ENOQUORUM, &p);
    if (lkc_get_meta(x->c, &masters, &replicas, &w) == 0) {
        free(masters);
        free(replicas);
    }
    if ((p.total && p.up == 0) || (!p.total && rc == LKC_ECONNECT))
        return ctl_fail(x, CTL_EXIT_UNREACHABLE, "unreachable",
                        "no master could be reached: %s (is epmd running, are the masters "
                        "started, is the cookie right?)", p.total ? p.down : lkc_strerror(rc));
    if (p.total && p.up < (size_t)w)
        return ctl_fail(x, CTL_EXIT_NOQUORUM, "no_quorum",
                        "no quorum: only %zu of %zu masters reachable, W=%d; not reached: %s",
                        p.up, p.total, w, p.down);
    /* Recovering masters explain the refusal only when the others are
     * too few for W by themselves; else the key was simply not free. */
    if (rc == LKC_ENOQUORUM && p.recovering && p.up - p.recovering < (size_t)w)
        return ctl_fail(x, CTL_EXIT_NOQUORUM, "recovering",
                        "no quorum: %zu of %zu masters are recovering after a restart and "
                        "refuse votes on keys they do not hold until every lease they may "
                        "have granted before has ended: %s; W=%d, retry after that",
                        p.recovering, p.total, p.recov, w);
    if (rc == LKC_ENOQUORUM)
        return ctl_fail(x, CTL_EXIT_NOQUORUM, "no_quorum",
                        "no quorum: fewer than W=%d of %zu masters agreed (the key is already "
                        "held, or not held with the value given, or a write lock on it is "
                        "pending)", w, p.total);
    /* Masters answer the probe but the operation could not reach them:
     * a transient failure; still "unreachable" for the caller. */
    return ctl_fail(x, CTL_EXIT_UNREACHABLE, "unreachable", "%s (the masters answer now: retry)",
                    lkc_strerror(rc));
}

int ctl_fail_lkc(struct ctl *x, int rc)
{
    switch (rc) {
    case LKC_ENOQUORUM:
    case LKC_ECONNECT:
        return fail_quorum(x, rc);
    case LKC_ETIMEOUT:
        return ctl_fail(x, CTL_EXIT_TIMEOUT, "timeout", "timed out");
    case LKC_ENOTFOUND:
        return ctl_fail(x, CTL_EXIT_NOTFOUND, "not_found", "not found");
    case LKC_EBADTERM:
    case LKC_EINVAL:
        return ctl_fail(x, CTL_EXIT_USAGE, "usage", "%s", lkc_strerror(rc));
    default:
        return ctl_fail(x, CTL_EXIT_ERROR, "error", "%s", lkc_strerror(rc));
    }
}
