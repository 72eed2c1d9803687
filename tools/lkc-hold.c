/*
 * lkc-hold: take a lock and keep it. KEY (Erlang term syntax) is locked
 * with this client's pid as the value, "held" is printed once it is, the
 * lease is extended every lease - 500 ms, and the lock is released when
 * stdin reaches end of file or on SIGTERM / SIGINT. Meant for tests and
 * scripts that need "a C program holds this key" for a while.
 *
 * One thread: poll() on stdin and a signalfd, with the next extension as
 * the timeout.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "tool_args.h"

#define DEFAULT_LEASE 2000

static const char *prog = "lkc-hold";

static void usage(FILE *f)
{
    fprintf(f,
        "usage: %s [options] --masters A@H,B@H,C@H KEY\n"
        "\n"
        "Locks KEY (Erlang term syntax; a bare word is an atom) with this\n"
        "node's pid, prints \"held\", keeps the lease alive and releases the\n"
        "lock on end of input or SIGTERM/SIGINT.\n"
        "\nOptions:\n", prog);
    tool_usage_common(f);
    fprintf(f, "\nExit status: 0 released, 1 errors, 2 bad usage, 3 no quorum.\n");
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Until EOF or a signal; 0, or 1 if the lease could not be extended. */
static int hold(lkc *c, lkc_term key, int64_t lease, int sfd)
{
    int64_t next = now_ms() + lease - 500;
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    for (;;) {
        int64_t wait = next - now_ms();
        int n = poll(p, 2, wait > 0 ? (int)wait : 0);
        if (n < 0 && errno != EINTR)
            return 1;
        if (n > 0 && p[1].revents)
            return 0;
        if (n > 0 && p[0].revents) {
            char buf[256];
            ssize_t r = read(0, buf, sizeof buf);
            if (r <= 0)
                return 0; /* end of input */
        }
        if (now_ms() >= next) {
            int rc = lkc_extend_lease(c, key, lkc_self(c), lease, 0);
            if (rc) {
                fprintf(stderr, "%s: cannot extend the lease: %s\n", prog, lkc_strerror(rc));
                return 1;
            }
            next = now_ms() + lease - 500;
        }
    }
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
            fprintf(stderr, "%s: KEY is required (see --help)\n", prog);
        return 2;
    }
    int64_t lease = a.lease_ms ? a.lease_ms : DEFAULT_LEASE;
    if (lease < 1000) {
        fprintf(stderr, "%s: --lease must be at least 1000 ms\n", prog);
        return 2;
    }
    char err[512];
    lkc_buf key;
    if (lkc_parse(a.positional, &key, err, sizeof err)) {
        fprintf(stderr, "%s: KEY is not an Erlang term: %s\n", prog, err);
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    lkc *c;
    int rc = lkc_open(&a.o, &c, err, sizeof err);
    if (rc || sfd < 0) {
        fprintf(stderr, "%s: cannot start the client node: %s\n", prog, rc ? err : "signalfd");
        lkc_buf_free(&key);
        return 1;
    }
    int status = 0;
    rc = lkc_lock(c, lkc_term_of(&key), lkc_self(c), lease, 0, NULL);
    if (rc) {
        fprintf(stderr, "%s: cannot lock %s: %s\n", prog, a.positional, lkc_strerror(rc));
        status = rc == LKC_ENOQUORUM ? 3 : 1;
    } else {
        printf("held\n");
        fflush(stdout);
        status = hold(c, lkc_term_of(&key), lease, sfd);
        rc = lkc_release(c, lkc_term_of(&key), lkc_self(c), 0, NULL);
        if (rc)
            fprintf(stderr, "%s: release failed: %s\n", prog, lkc_strerror(rc));
        else
            fprintf(stderr, "%s: released\n", prog);
    }
    lkc_close(c);
    close(sfd);
    lkc_buf_free(&key);
    return status;
}
