/*
 * The client handle: start-up, the command queue, shutdown, and the term
 * helpers of locker.h. See lkc_int.h for the threading model.
 *
 * Invariants. The client thread is the only one that touches the loop, the
 * node and the coordinator. A command is owned by its submitter until it is
 * queued, by the client thread while it runs, and again by a blocking
 * submitter once `done` is set (under mu). Shutdown happens on the client
 * thread in one command (close_run), so no command can start after it: the
 * closing flag is set under mu before that command is queued, and
 * lkc__submit refuses everything once it is set.
 */
#include "lkc_int.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../cnode/core/cookie.h"
#include "../cnode/core/log.h"
#include "../cnode/dist/tls.h"
#include "../ei_glue/tparse.h"

const char *lkc_strerror(int code)
{
    switch (code) {
    case LKC_OK: return "ok";
    case LKC_ENOQUORUM: return "no quorum: fewer than W masters agreed";
    case LKC_ENOTFOUND: return "not found";
    case LKC_ETIMEOUT: return "timed out";
    case LKC_EBADTERM: return "malformed term";
    case LKC_EINVAL: return "invalid argument";
    case LKC_ECONNECT: return "cannot reach epmd or the cluster";
    case LKC_ECLOSED: return "the client is closing";
    case LKC_ENOMEM: return "out of memory";
    case LKC_ENAMETAKEN: return "the name is held by someone else";
    case LKC_ENOTOKEN: return "fencing tokens unavailable: not every master is lockerd";
    case LKC_EPROTO: return "unexpected answer from a peer";
    case LKC_EREMOTE: return "the function called by rpc raised an exception";
    default: return "unknown error";
    }
}

int lkc__map_rc(int rc)
{
    switch (rc) {
    case 0: return 0;
    case -ENOLCK: return LKC_ENOQUORUM;
    case -ENOMEM: return LKC_ENOMEM;
    case -ETIMEDOUT: return LKC_ETIMEOUT;
    case -EHOSTUNREACH: case -ECONNREFUSED: return LKC_ECONNECT;
    case -EINVAL: case -E2BIG: return LKC_EINVAL;
    case -EPROTONOSUPPORT: return LKC_ENOTOKEN;
    default: return rc <= -1001 && rc >= -1012 ? rc : LKC_EPROTO;
    }
}

/* ---- terms ---- */

void lkc_buf_free(lkc_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

int lkc__canon(lkc_term t, struct buf *out)
{
    if (!t.data || !t.len)
        return LKC_EBADTERM;
    size_t pos = t.data[0] == TT_VERSION ? 1 : 0;
    int rc = term_canon(t.data, t.len, &pos, out);
    if (rc == -ENOMEM)
        return LKC_ENOMEM;
    return rc || pos != t.len ? LKC_EBADTERM : 0;
}

int lkc__out(struct term t, lkc_buf *out)
{
    out->data = malloc((size_t)t.len + 1);
    if (!out->data) {
        out->len = 0;
        return LKC_ENOMEM;
    }
    out->data[0] = TT_VERSION;
    memcpy(out->data + 1, t.p, t.len);
    out->len = (size_t)t.len + 1;
    return 0;
}

int lkc_parse(const char *text, lkc_buf *out, char *err, size_t errlen)
{
    if (!text || !out)
        return LKC_EINVAL;
    struct buf b;
    buf_init(&b);
    struct tparse_err e = {0};
    int rc = tparse(text, &b, &e);
    if (rc == -EINVAL) {
        if (err && errlen) {
            char caret[512];
            tparse_caret(text, &e, caret, sizeof caret);
            snprintf(err, errlen, "%s\n%s", e.msg, caret);
        }
        buf_free(&b);
        return LKC_EBADTERM;
    }
    if (!rc)
        rc = lkc__out((struct term){b.data, (uint32_t)b.len}, out);
    buf_free(&b);
    return rc ? LKC_ENOMEM : 0;
}

int lkc_format(lkc_term t, lkc_buf *out)
{
    if (!t.data || !out)
        return LKC_EINVAL;
    struct buf b;
    buf_init(&b);
    int rc = tprint(t.data, t.len, &b);
    if (!rc)
        rc = buf_put_u8(&b, 0);
    if (rc) {
        buf_free(&b);
        return rc == -ENOMEM ? LKC_ENOMEM : LKC_EBADTERM;
    }
    out->data = b.data; /* the buf's storage becomes the caller's */
    out->len = b.len - 1;
    return 0;
}

lkc_term lkc_self(const lkc *c)
{
    lkc_term t = {c->self.data, c->self.len};
    return t;
}

const char *lkc_node_name(const lkc *c) { return c->name; }

/* ---- node lists ---- */

void lkc__free_nodes(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int lkc__split_nodes(const char *s, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!s || !*s)
        return 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    char *copy = strdup(s);
    size_t k = 0;
    int rc = v && copy ? 0 : -ENOMEM;
    for (char *save = NULL, *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && !rc;
         tok = strtok_r(NULL, ",", &save)) {
        const char *at = strchr(tok, '@');
        if (!at || at == tok || !at[1] || strchr(at + 1, '@'))
            rc = -EINVAL;
        else if (!(v[k++] = strdup(tok)))
            rc = -ENOMEM;
    }
    free(copy);
    if (rc) {
        lkc__free_nodes(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

/* ---- commands ---- */

int lkc__on_loop(const struct lkc *c) { return pthread_equal(pthread_self(), c->thread); }

int lkc__submit(struct lkc *c, struct lkc_cmd *k)
{
    k->c = c;
    pthread_mutex_lock(&c->mu);
    if (c->closing) {
        pthread_mutex_unlock(&c->mu);
        return LKC_ECLOSED;
    }
    if (lkc__on_loop(c)) {
        pthread_mutex_unlock(&c->mu);
        k->ops->run(k);
        return 0;
    }
    k->next = NULL;
    if (c->qtail)
        c->qtail->next = k;
    else
        c->qhead = k;
    c->qtail = k;
    pthread_mutex_unlock(&c->mu);
    uint64_t one = 1;
    /* A full counter (never in practice) still leaves the fd readable. */
    if (write(c->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_error("lkc: cannot wake the client thread: %s", strerror(errno));
    return 0;
}

int lkc__call(struct lkc *c, struct lkc_cmd *k, int keep)
{
    if (lkc__on_loop(c)) {
        k->ops->destroy(k); /* a blocking call from a callback would deadlock */
        return LKC_EINVAL;
    }
    k->sync = 1;
    pthread_mutex_lock(&c->mu);
    c->users++;
    pthread_mutex_unlock(&c->mu);
    int rc = lkc__submit(c, k);
    pthread_mutex_lock(&c->mu);
    while (!rc && !k->done)
        pthread_cond_wait(&c->cv, &c->mu);
    if (!rc)
        rc = k->rc;
    c->users--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    /* LKC_EREMOTE (lkc_rpc: the function raised) carries a value too. */
    if (!keep || (rc && rc != LKC_EREMOTE))
        k->ops->destroy(k);
    return rc;
}

void lkc__flight_add(struct lkc_cmd *k)
{
    struct lkc *c = k->c;
    k->fprev = NULL;
    k->fnext = c->flight;
    if (c->flight)
        c->flight->fprev = k;
    c->flight = k;
    k->in_flight = 1;
}

void lkc__finish(struct lkc_cmd *k, int rc)
{
    struct lkc *c = k->c;
    if (k->in_flight) {
        if (k->fprev)
            k->fprev->fnext = k->fnext;
        else
            c->flight = k->fnext;
        if (k->fnext)
            k->fnext->fprev = k->fprev;
        k->in_flight = 0;
    }
    if (k->sync) {
        pthread_mutex_lock(&c->mu);
        k->rc = rc;
        k->done = 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu); /* the waiter owns k from here */
        return;
    }
    if (k->done_fn)
        k->done_fn(k->ud, rc, &k->res);
    k->ops->destroy(k);
}

static void lkc_on_wake(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    (void)events;
    struct lkc *c = io->ud;
    uint64_t v;
    if (read(c->efd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_warn("lkc: eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&c->mu);
    struct lkc_cmd *k = c->qhead;
    c->qhead = c->qtail = NULL;
    pthread_mutex_unlock(&c->mu);
    while (k) {
        struct lkc_cmd *next = k->next;
        k->ops->run(k);
        k = next;
    }
}

/* ---- shutdown (client thread) ---- */

void lkc__stop(struct lkc *c)
{
    loop_timer_stop(c->loop, &c->close_timer);
    /* The loop finishes this iteration, so frames written by the releases
     * (e.g. release_write_lock cleanups) are still flushed. */
    loop_stop(c->loop);
}

static void close_deadline(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct lkc *c = t->ud;
    log_warn("lkc: names not released within %d ms at close", LKC_CLOSE_WAIT_MS);
    lkc__svc_abandon_all(c);
    lkc__stop(c);
}

static void close_run(struct lkc_cmd *k)
{
    struct lkc *c = k->c;
    c->stopping = 1;
    while (c->flight)
        c->flight->ops->cancel(c->flight);
    lkc__raw_close_all(c);
    if (lkc__svc_close_all(c) == 0)
        lkc__stop(c);
    else
        loop_timer_arm(c->loop, &c->close_timer, loop_now(c->loop) + LKC_CLOSE_WAIT_MS);
}

static void close_nop(struct lkc_cmd *k) { (void)k; }

static const struct lkc_cmd_ops close_ops = {close_run, close_nop, close_nop};

static void *lkc_thread(void *arg)
{
    struct lkc *c = arg;
    int rc = loop_run(c->loop);
    if (rc)
        log_error("lkc: event loop failed: %s", strerror(-rc));
    return NULL;
}

/* Free everything; the thread is not running (never started or joined). */
static void lkc_free(struct lkc *c)
{
    lkc__calls_free_all(c);
    lkc__rpc_free(c);
    lkc__raw_free(c);
    node_free(c->node); /* closes peers and leaves epmd; no callbacks */
    cproc_free(c->cproc);
    if (c->efd >= 0) {
        if (c->loop)
            loop_io_del(c->loop, &c->wake_io);
        close(c->efd);
    }
    if (c->loop)
        loop_timer_stop(c->loop, &c->close_timer);
    loop_free(c->loop);
    lkc__free_nodes(c->masters, c->nmasters);
    lkc__free_nodes(c->replicas, c->nreplicas);
    buf_free(&c->self);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

void lkc_close(lkc *c)
{
    if (!c)
        return;
    if (lkc__on_loop(c)) {
        log_error("lkc_close called from a client callback: ignored");
        return;
    }
    struct lkc_cmd k = {.ops = &close_ops, .c = c};
    pthread_mutex_lock(&c->mu);
    c->closing = 1;
    k.next = NULL;
    if (c->qtail)
        c->qtail->next = &k;
    else
        c->qhead = &k;
    c->qtail = &k;
    pthread_mutex_unlock(&c->mu);
    uint64_t one = 1;
    if (write(c->efd, &one, sizeof one) < 0)
        log_error("lkc: cannot wake the client thread: %s", strerror(errno));
    pthread_join(c->thread, NULL);
    /* Blocking callers were finished with LKC_ECLOSED; let them leave. */
    pthread_mutex_lock(&c->mu);
    while (c->users > 0)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    lkc_free(c);
}

/* ---- start-up ---- */

/* "alive@host" as given, "alive" + short host, or a name of this process.
 * The counter keeps two handles of one process apart in epmd. */
static int node_name_of(const char *want, char *out, size_t cap)
{
    static atomic_uint opened;
    unsigned n = atomic_fetch_add(&opened, 1);
    char host[200], alive[64];
    if (want && strchr(want, '@'))
        return snprintf(out, cap, "%s", want) < (int)cap ? 0 : -EINVAL;
    if (cookie_short_host(host, sizeof host))
        return -EINVAL;
    if (!want || !*want) {
        if (n)
            snprintf(alive, sizeof alive, "lkc%ld_%u", (long)getpid(), n);
        else
            snprintf(alive, sizeof alive, "lkc%ld", (long)getpid());
        want = alive;
    }
    return snprintf(out, cap, "%s@%s", want, host) < (int)cap ? 0 : -EINVAL;
}

static int open_opts(struct lkc *c, const struct lkc_opts *o, char *cookie, size_t cookie_cap,
                     char *err, size_t errlen)
{
    enum log_level lvl = LOG_WARN;
    if (o->log_level && log_parse_level(o->log_level, &lvl)) {
        snprintf(err, errlen, "bad log level '%s'", o->log_level);
        return LKC_EINVAL;
    }
    log_set_level(lvl);
    if (node_name_of(o->node_name, c->name, sizeof c->name)) {
        snprintf(err, errlen, "bad node name '%s'", o->node_name ? o->node_name : "");
        return LKC_EINVAL;
    }
    int rc = lkc__split_nodes(o->masters, &c->masters, &c->nmasters);
    if (!rc)
        rc = lkc__split_nodes(o->replicas, &c->replicas, &c->nreplicas);
    if (rc || !c->nmasters) {
        snprintf(err, errlen, "%s", rc == -ENOMEM ? "out of memory" :
                 "masters must be a comma-separated list of name@host nodes");
        return rc == -ENOMEM ? LKC_ENOMEM : LKC_EINVAL;
    }
    if (o->w < 0 || (size_t)o->w > c->nmasters || o->net_ticktime < 0) {
        snprintf(err, errlen, "w must be 0 (majority) or 1..%zu; net_ticktime >= 0",
                 c->nmasters);
        return LKC_EINVAL;
    }
    c->w = o->w ? o->w : (int)(c->nmasters / 2 + 1);
    if (o->cookie) {
        if (snprintf(cookie, cookie_cap, "%s", o->cookie) >= (int)cookie_cap || !*o->cookie) {
            snprintf(err, errlen, "the cookie must be 1 to %zu bytes", cookie_cap - 1);
            return LKC_EINVAL;
        }
    } else if ((rc = cookie_read(cookie, cookie_cap)) != 0) {
        snprintf(err, errlen, "no cookie given and ~/.erlang.cookie unusable: %s",
                 strerror(-rc));
        return LKC_EINVAL;
    }
    return 0;
}

static void lkc_on_conn(void *ud, struct conn *conn, int up)
{
    lkc__rpc_conn(ud, conn, up);
    lkc__raw_conn(ud, conn, up);
}

int lkc_tls_option(struct lkc_opts *o, const char *opt, const char *val)
{
    static const char *const names[] = {"-proto_dist", "--proto-dist", "--tls-cert",
                                        "--tls-key", "--tls-ca", "--tls-verify"};
    int known = 0;
    for (size_t i = 0; opt && i < sizeof names / sizeof names[0]; i++)
        known |= !strcmp(opt, names[i]);
    if (!known || !val)
        return known;
    if (!o)
        return LKC_EINVAL;
    struct tls_cfg t = {.enabled = o->tls};
    if (tls_cfg_option(&t, opt, val) != 1)
        return LKC_EINVAL;
    o->tls = t.enabled;
    if (!strcmp(opt, "--tls-cert"))
        o->tls_cert = val;
    else if (!strcmp(opt, "--tls-key"))
        o->tls_key = val;
    else if (!strcmp(opt, "--tls-ca"))
        o->tls_ca = val;
    else if (!strcmp(opt, "--tls-verify"))
        o->tls_verify = val;
    return 1;
}

/* lkc_opts' TLS fields as the transport's configuration. */
static int tls_opts(const struct lkc_opts *o, struct tls_cfg *t, char *err, size_t errlen)
{
    *t = (struct tls_cfg){.enabled = o->tls, .cert_file = o->tls_cert, .key_file = o->tls_key,
                          .ca_file = o->tls_ca};
    if (o->tls_verify && tls_cfg_option(t, "--tls-verify", o->tls_verify) != 1) {
        snprintf(err, errlen, "bad tls_verify '%s' (peer, chain or none)", o->tls_verify);
        return LKC_EINVAL;
    }
    return tls_cfg_check(t, err, errlen) ? LKC_EINVAL : 0;
}

/* Node, epmd registration, the coordinator and the rpc process. */
static int open_node(struct lkc *c, const struct lkc_opts *o, const char *cookie, char *err,
                     size_t errlen)
{
    struct tls_cfg tls;
    if (tls_opts(o, &tls, err, errlen))
        return LKC_EINVAL;
    struct node_cfg nc = {
        .name = c->name,
        .cookie = cookie,
        .listen_addr = o->listen_addr,
        .max_frame = 16u << 20,
        .max_out = 64u << 20,
        .max_conns = 1024,
        .net_ticktime_s = o->net_ticktime ? o->net_ticktime : 60,
        .handshake_ms = 10000,
        .tls = &tls,
    };
    if (!(c->node = node_new(c->loop, &nc, err, errlen)))
        return LKC_EINVAL;
    int rc = node_start(c->node, err, errlen);
    if (rc) /* -EINVAL: a listen address or TLS file that cannot be used */
        return rc == -ENOMEM ? LKC_ENOMEM : rc == -EINVAL ? LKC_EINVAL : LKC_ECONNECT;
    /* After node_start: pids carry the creation epmd gave us. */
    if (!(c->cproc = cproc_new(c->node)) || lkc__rpc_new(c) || lkc__raw_new(c) ||
        node_subscribe(c->node, lkc_on_conn, c)) {
        snprintf(err, errlen, "out of memory");
        return LKC_ENOMEM;
    }
    struct term pid = cproc_pid(c->cproc);
    if (buf_put_u8(&c->self, TT_VERSION) || buf_append(&c->self, pid.p, pid.len)) {
        snprintf(err, errlen, "out of memory");
        return LKC_ENOMEM;
    }
    return 0;
}

static int open_thread(struct lkc *c, char *err, size_t errlen)
{
    /* The client thread takes no signals: they stay the application's. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, lkc_thread, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        snprintf(err, errlen, "cannot start the client thread: %s", strerror(rc));
        return LKC_ENOMEM;
    }
    return 0;
}

int lkc_open(const struct lkc_opts *o, lkc **out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = 0;
    if (!out)
        return LKC_EINVAL;
    *out = NULL;
    if (!o) {
        snprintf(err, errlen, "no options");
        return LKC_EINVAL;
    }
    struct lkc *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return LKC_ENOMEM;
    }
    c->efd = -1;
    buf_init(&c->self);
    loop_timer_init(&c->close_timer, close_deadline, c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    char cookie[1024];
    int rc = open_opts(c, o, cookie, sizeof cookie, err, errlen);
    if (!rc && (!(c->loop = loop_new()) || (c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
                loop_io_add(c->loop, &c->wake_io, c->efd, LOOP_IN, lkc_on_wake, c))) {
        snprintf(err, errlen, "cannot set up the event loop");
        rc = LKC_ENOMEM;
    }
    if (!rc)
        rc = open_node(c, o, cookie, err, errlen);
    if (!rc)
        rc = open_thread(c, err, errlen);
    memset(cookie, 0, sizeof cookie);
    if (rc) {
        lkc_free(c);
        return rc;
    }
    *out = c;
    return 0;
}
