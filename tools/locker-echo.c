/*
 * locker-echo: the example service of the client library. It registers a
 * name with the locker cluster (like GenServer.start_link(..., name:
 * {:via, Locker.Registry, Name})) and answers every gen_server call with
 * {echo, Request}; casts and other messages are logged to stderr.
 *
 * The main thread only waits for signals: SIGTERM / SIGINT unregister the
 * name and exit 0; a lost lease (SIGUSR1 from the client thread) exits 1.
 * "registered NAME as PID" goes to stdout once the name is held, so a
 * supervisor (or a test) can wait for that line.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_args.h"

#define DEFAULT_LEASE 5000

static const char *prog = "locker-echo";

static void usage(FILE *f)
{
    fprintf(f,
        "usage: %s [options] --masters A@H,B@H,C@H NAME\n"
        "\n"
        "Registers NAME with the locker cluster as a service of this node and\n"
        "answers every gen_server:call with {echo, Request}.\n"
        "\n"
        "NAME is Erlang term syntax: a bare word is an atom (svc), \"svc\" is a\n"
        "string (a list), <<\"svc\">> a binary. Elixir's {:via, Locker.Registry,\n"
        "\"svc\"} uses the binary, so register it as '<<\"svc\">>'.\n"
        "\n"
        "Options:\n", prog);
    tool_usage_common(f);
    fprintf(f,
        "\n"
        "The lease (--lease, default %d ms, at least 1000) is extended every\n"
        "lease - 500 ms. Prints \"registered NAME as PID\" once registered.\n"
        "Exit status: 0 after SIGTERM/SIGINT (the name released), 1 on errors\n"
        "or a lost lease, 2 on bad usage, 3 when NAME is held by someone else.\n",
        DEFAULT_LEASE);
}

/* Erlang-syntax text of t for log lines ("?" when it cannot be printed). */
static void log_term(const char *what, lkc_term t)
{
    lkc_buf text;
    if (lkc_format(t, &text) == 0) {
        fprintf(stderr, "%s: %s %s\n", prog, what, (char *)text.data);
        lkc_buf_free(&text);
    } else {
        fprintf(stderr, "%s: %s ?\n", prog, what);
    }
}

/* {echo, Request}: the tuple header and atom, then the request as is. */
static void on_call(void *ud, lkc_call *call, lkc_term request)
{
    (void)ud;
    static const unsigned char head[] = {131, 104, 2, 119, 4, 'e', 'c', 'h', 'o'};
    size_t n = request.len - 1; /* the request carries its 131 */
    unsigned char *reply = malloc(sizeof head + n);
    if (!reply) {
        fprintf(stderr, "%s: out of memory: a call left unanswered\n", prog);
        return;
    }
    memcpy(reply, head, sizeof head);
    memcpy(reply + sizeof head, request.data + 1, n);
    int rc = lkc_reply(call, (lkc_term){reply, sizeof head + n});
    if (rc)
        fprintf(stderr, "%s: reply failed: %s\n", prog, lkc_strerror(rc));
    free(reply);
    log_term("call", request);
}

static void on_cast(void *ud, lkc_term request)
{
    (void)ud;
    log_term("cast", request);
}

static void on_info(void *ud, lkc_term msg)
{
    (void)ud;
    log_term("info", msg);
}

static pthread_t main_thread;

static void on_lease_lost(void *ud, int rc)
{
    (void)ud;
    fprintf(stderr, "%s: the lease could not be extended: %s\n", prog, lkc_strerror(rc));
    pthread_kill(main_thread, SIGUSR1);
}

static int parse_name(const char *text, lkc_buf *name)
{
    char err[512];
    int rc = lkc_parse(text, name, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s: NAME is not an Erlang term: %s\n"
                "(quote it for the shell, e.g. '<<\"svc\">>' or svc)\n", prog, err);
    return rc;
}

/* Block the signals we wait for; the client thread inherits the mask. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

static int serve(lkc *c, lkc_service *svc, const sigset_t *set)
{
    int sig = 0;
    sigwait(set, &sig);
    if (sig == SIGUSR1) {
        lkc_unregister(svc);
        return 1;
    }
    fprintf(stderr, "%s: signal %d: unregistering\n", prog, sig);
    int rc = lkc_unregister(svc);
    if (rc)
        fprintf(stderr, "%s: releasing the name: %s\n", prog, lkc_strerror(rc));
    (void)c;
    return 0;
}

int main(int argc, char **argv)
{
    struct tool_args a;
    int prc = tool_parse(argc, argv, prog, &a);
    if (prc > 0) {
        usage(stdout);
        return 0;
    }
    if (prc < 0 || !a.positional) {
        if (!prc)
            fprintf(stderr, "%s: NAME is required (see --help)\n", prog);
        return 2;
    }
    lkc_buf name;
    if (parse_name(a.positional, &name))
        return 2;
    sigset_t set;
    block_signals(&set);
    main_thread = pthread_self();
    char err[512];
    lkc *c;
    int rc = lkc_open(&a.o, &c, err, sizeof err);
    if (rc) {
        fprintf(stderr, "%s: cannot start the client node: %s (%s)\n", prog, err,
                lkc_strerror(rc));
        lkc_buf_free(&name);
        return rc == LKC_EINVAL ? 2 : 1;
    }
    const struct lkc_service_ops ops = {on_call, on_cast, on_info, on_lease_lost};
    lkc_service *svc;
    rc = lkc_register(c, lkc_term_of(&name), a.lease_ms ? a.lease_ms : DEFAULT_LEASE, &ops,
                      NULL, &svc);
    int status;
    if (rc) {
        fprintf(stderr, "%s: cannot register %s: %s\n", prog, a.positional,
                rc == LKC_ENAMETAKEN ? "the name is held by someone else" :
                rc == LKC_ENOQUORUM || rc == LKC_ECONNECT ?
                "too few masters answered (is the cluster running?)" : lkc_strerror(rc));
        status = rc == LKC_ENAMETAKEN ? 3 : rc == LKC_EINVAL ? 2 : 1;
    } else {
        lkc_buf pid;
        if (lkc_format(lkc_service_pid(svc), &pid) == 0) {
            printf("registered %s as %s\n", a.positional, (char *)pid.data);
            lkc_buf_free(&pid);
        }
        fflush(stdout);
        status = serve(c, svc, &set);
    }
    lkc_close(c);
    lkc_buf_free(&name);
    return status;
}
