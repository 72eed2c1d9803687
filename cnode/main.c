/*
 * lockerd: a hidden Erlang node serving the locker protocol.
 *
 * main.c turns options into a configuration, builds the layers (loop ->
 * node -> server, rex), runs the loop until SIGTERM/SIGINT and tears down
 * in reverse order. It is the only place that exits the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cookie.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/sysmem.h"
#include "node/node.h"
#include "ops/checks.h"
#include "ops/ops.h"
#include "ops/service.h"
#include "rpc/apply.h"
#include "rpc/rex.h"
#include "server/server.h"

#define LOCKERD_VERSION "0.1.0"
/* --coalesce-us by default: adaptive, so it only acts while one peer keeps
 * sending batches (many callers behind it); see cnode/core/loop.c. */
#define LOCKERD_COALESCE_US 500
#define STR_(x) #x
#define STR(x) STR_(x)

struct opts {
    char name[256];
    char cookie[1024];
    int w;
    char **masters, **replicas;
    size_t nmasters, nreplicas;
    int64_t push_interval_ms;
    int eager_push;
    size_t max_frame, max_out, max_conns, max_backlog;
    size_t max_handshakes, max_leases, max_waiters, max_memory, max_monitors;
    int release_on_exit;
    size_t max_hs_per_source, max_out_total; /* LIMIT_UNSET: sized from memory */
    size_t memory;          /* --memory: what defaults are sized for; 0 = detect */
    int64_t handshake_ms;
    char **allow;
    size_t nallow;
    int net_ticktime;
    int port;
    const char *listen_addr;
    enum log_level level;
    const char *state_file; /* NULL: default path; "none": no state file */
    int64_t quiet_ms;       /* -1: automatic */
    long coalesce_us;
    struct tls_cfg tls;
    const char *metrics_listen; /* NULL: no metrics endpoint */
    const char *log_file;       /* NULL: stderr */
    const char *cookie_file;
};

/* A limit not given on the command line: sized from memory (sysmem.h). */
#define LIMIT_UNSET SIZE_MAX

/* The defaults sized from this machine's memory, for --help. */
static void usage_defaults(FILE *f)
{
    struct sysmem_limits d;
    size_t mem = sysmem_bytes();
    sysmem_defaults(mem, &d);
    fprintf(f,
        "\n"
        "Limits sized from memory (cgroup limit or RAM; here %zu MiB) unless given:\n"
        "  --max-memory %zu (a quarter), --max-leases %zu (that / 256),\n"
        "  --max-waiters %zu (memory / 8 KiB, 1024..1000000),\n"
        "  --max-out-total %zu (an eighth), --max-out %zu (256 MiB, at most half\n"
        "  of --max-out-total), --max-handshakes-per-source %zu.\n"
        "0 or 'none' disables --max-memory, --max-leases, --max-waiters,\n"
        "--max-out-total and --max-handshakes-per-source.\n",
        mem >> 20, d.max_memory, d.max_leases, d.max_waiters, d.max_out_total, d.max_out,
        d.max_hs_per_source);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lockerd [-sname NAME | -name NAME@HOST] [-setcookie COOKIE] [options]\n"
        "\n"
        "A hidden Erlang node answering {locker, Node} like a BEAM locker server.\n"
        "\n"
        "  -sname NAME            node NAME@<short host name> (default: locker)\n"
        "  -name NAME@HOST        node with an explicit host part\n"
        "  -setcookie COOKIE      distribution cookie (default: ~/.erlang.cookie,\n"
        "                         created with a random cookie if missing)\n"
        "  -w N                   write quorum (default: majority of --masters, or 1)\n"
        "  --masters A@H,B@H      initial master nodes (meta, as set_nodes sets it)\n"
        "  --replicas A@H,...     initial replica nodes\n"
        "  --push-interval MS     transaction-log batch interval for backlog and\n"
        "                         retries (default 100)\n"
        "  --no-eager-push        do not send each write's log entry to the replicas\n"
        "                         before its commit reply (the default does, so a\n"
        "                         replica that gets the reply has the entry); then\n"
        "                         replicas see writes at the next interval push\n"
        "  --eager-push           the default (accepted for old scripts)\n"
        "  --net-ticktime SECS    like -kernel net_ticktime (default 60); also\n"
        "                         accepted as: -kernel net_ticktime SECS\n"
        "  --max-frame BYTES      largest frame accepted (default 16777216)\n"
        "  --max-out BYTES        output queued per peer: reading from a peer stops\n"
        "                         at half of it and resumes at a quarter; output\n"
        "                         beyond it that is not a reply drops the peer\n"
        "                         (default: see below)\n"
        "  --max-out-total BYTES  output queued for all peers together: over half\n"
        "                         of it, peers holding more than 256 KiB are not\n"
        "                         read until it drains (default: see below)\n"
        "  --max-conns N          connections at most (default 4096)\n"
        "  --max-handshakes N     incoming handshakes in progress at most; accepts\n"
        "                         beyond are closed at once (default 64)\n"
        "  --max-handshakes-per-source N\n"
        "                         of those, from one IP address at most (default 8)\n"
        "  --handshake-timeout MS a connection not through its handshake by then\n"
        "                         is closed (default 10000)\n"
        "  --allow A@H,B@H        only these nodes may connect (and be dialled),\n"
        "                         like net_kernel:allow/1; repeatable (default: any)\n"
        "  --max-leases N         leases at most; a vote for a new key beyond it is\n"
        "                         {error, {limit, leases}} (default: see below)\n"
        "  --max-memory BYTES     store size over which new leases are refused with\n"
        "                         {error, {limit, memory}} (default: see below)\n"
        "  --max-waiters N        wait_for / wait_for_release callers at most; more\n"
        "                         get {error, {limit, waiters}} (default: see below)\n"
        "  --max-backlog BYTES    replication backlog per replica (default 67108864)\n"
        "  --release-on-exit      a master monitors every pid a lease holds and\n"
        "                         releases the lease when that process exits (not\n"
        "                         when its node is only cut off); off by default\n"
        "  --max-monitors N       lease holders watched at most (default 1000000)\n"
        "  --memory BYTES         size the default limits for this much memory\n"
        "                         instead of the cgroup limit or RAM (see below)\n"
        "  --state-file PATH      where this node records the longest lease it has\n"
        "                         granted, to know its quiet period after a restart\n"
        "                         (default ~/.lockerd/NODE.state; 'none': no file,\n"
        "                         restarts cannot be detected)\n"
        "  --quiet-period MS      refuse votes on keys without a record for MS after\n"
        "                         every start (default: after a restart only, for\n"
        "                         the longest recorded lease, at least 10000)\n"
        "  --coalesce-us US       while peers keep lockerd busy, gather what arrives\n"
        "                         for up to US microseconds after each busy iteration\n"
        "                         and answer it in one batch: fewer wakeups for\n"
        "                         CPU-bound BEAM clients, more latency for fast ones\n"
        "                         (default " STR(LOCKERD_COALESCE_US) "; 0: off; see README)\n"
        "  --port P               distribution port (default: any free port)\n"
        "  --listen ADDR          listen address (default: all IPv4 addresses)\n"
        "  --log-level LEVEL      debug | info | warn | error (default info)\n"
        "  --log-file PATH        append log lines to PATH (reopened on SIGHUP, for\n"
        "                         log rotation) instead of stderr\n"
        "  --cookie-file PATH     read the cookie from PATH (a service's cookie file)\n"
        "  --metrics-listen ADDR:PORT  serve GET /metrics (Prometheus), /healthz and\n"
        "                         /readyz over HTTP there (default: off); e.g.\n"
        "                         127.0.0.1:9741, [::1]:9741, :9741 (all IPv4)\n"
        "  --version, --help\n"
        "\n"
        "TLS distribution (peers run erl -proto_dist inet_tls -ssl_dist_optfile F;\n"
        "one certificate serves both directions):\n"
        "%s", tls_cfg_usage());
    usage_defaults(f);
}

static int parse_num(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

/* A limit: a number in [lo, hi], or 0 / "none" for no limit (*out 0). */
static int parse_limit(const char *s, long long lo, long long hi, size_t *out)
{
    long long v;
    if (!strcmp(s, "none") || !strcmp(s, "0")) {
        *out = 0;
        return 0;
    }
    if (parse_num(s, lo, hi, &v))
        return -EINVAL;
    *out = (size_t)v;
    return 0;
}

/* Limits left unset get the defaults sized from memory. */
static void default_limits(struct opts *o)
{
    struct sysmem_limits d;
    sysmem_defaults(o->memory ? o->memory : sysmem_bytes(), &d);
    size_t *v[] = {&o->max_memory, &o->max_leases, &o->max_waiters, &o->max_out_total,
                   &o->max_out, &o->max_hs_per_source};
    size_t dv[] = {d.max_memory, d.max_leases, d.max_waiters, d.max_out_total,
                   d.max_out, d.max_hs_per_source};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (*v[i] == LIMIT_UNSET)
            *v[i] = dv[i];
}

/* "a@h,b@h" -> array of names. */
static int parse_list(const char *s, char ***out, size_t *count)
{
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    char **v = calloc(n, sizeof *v);
    char *copy = strdup(s);
    if (!v || !copy) {
        free(v);
        free(copy);
        return -ENOMEM;
    }
    size_t k = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (!strchr(tok, '@') || strchr(tok, '@') == tok || !strchr(tok, '@')[1]) {
            fprintf(stderr, "lockerd: '%s' is not a node name (want name@host)\n", tok);
            for (size_t i = 0; i < k; i++)
                free(v[i]);
            free(v);
            free(copy);
            return -EINVAL;
        }
        v[k++] = strdup(tok);
    }
    free(copy);
    *out = v;
    *count = k;
    return 0;
}

/* --allow is repeatable: each value's names are appended. */
static int append_list(const char *s, char ***list, size_t *count)
{
    char **add, **v;
    size_t n;
    int rc = parse_list(s, &add, &n);
    if (rc)
        return rc;
    if (!(v = realloc(*list, (*count + n) * sizeof *v))) {
        for (size_t i = 0; i < n; i++)
            free(add[i]);
        free(add);
        return -ENOMEM;
    }
    memcpy(v + *count, add, n * sizeof *v);
    free(add);
    *list = v;
    *count += n;
    return 0;
}

static int need(int i, int argc, char **argv)
{
    if (i + 1 >= argc) {
        fprintf(stderr, "lockerd: %s needs a value (see --help)\n", argv[i]);
        return -EINVAL;
    }
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    long long v;
    char host[256];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--version")) {
            printf("lockerd %s\n", LOCKERD_VERSION);
            exit(0);
        }
        if (!strcmp(a, "--release-on-exit")) {
            o->release_on_exit = 1;
            continue;
        }
        if (!strcmp(a, "--eager-push") || !strcmp(a, "--no-eager-push")) {
            o->eager_push = a[2] == 'e';
            continue;
        }
        if (!strcmp(a, "-kernel") && i + 2 < argc && !strcmp(argv[i + 1], "net_ticktime")) {
            i++;
            a = "--net-ticktime";
        }
        if (need(i, argc, argv))
            return -EINVAL;
        const char *val = argv[++i];
        int bad = 0, tls = tls_cfg_option(&o->tls, a, val);
        if (tls) {
            bad = tls < 0;
        } else if (!strcmp(a, "-sname")) {
            if (strchr(val, '@'))
                bad = snprintf(o->name, sizeof o->name, "%s", val) >= (int)sizeof o->name;
            else if (cookie_short_host(host, sizeof host) == 0)
                bad = snprintf(o->name, sizeof o->name, "%s@%s", val, host) >= (int)sizeof o->name;
        } else if (!strcmp(a, "-name")) {
            bad = !strchr(val, '@') ||
                  snprintf(o->name, sizeof o->name, "%s", val) >= (int)sizeof o->name;
        } else if (!strcmp(a, "-setcookie")) {
            bad = snprintf(o->cookie, sizeof o->cookie, "%s", val) >= (int)sizeof o->cookie ||
                  !*val;
        } else if (!strcmp(a, "-w")) {
            bad = parse_num(val, 1, 1000, &v);
            o->w = (int)v;
        } else if (!strcmp(a, "--masters")) {
            bad = parse_list(val, &o->masters, &o->nmasters) != 0;
        } else if (!strcmp(a, "--replicas")) {
            bad = parse_list(val, &o->replicas, &o->nreplicas) != 0;
        } else if (!strcmp(a, "--push-interval")) {
            bad = parse_num(val, 1, 3600000, &v);
            o->push_interval_ms = v;
        } else if (!strcmp(a, "--net-ticktime")) {
            bad = parse_num(val, 1, 86400, &v);
            o->net_ticktime = (int)v;
        } else if (!strcmp(a, "--max-frame")) {
            bad = parse_num(val, 1024, 1LL << 31, &v);
            o->max_frame = (size_t)v;
        } else if (!strcmp(a, "--max-out")) {
            bad = parse_num(val, 65536, 1LL << 40, &v);
            o->max_out = (size_t)v;
        } else if (!strcmp(a, "--max-conns")) {
            bad = parse_num(val, 1, 1000000, &v);
            o->max_conns = (size_t)v;
        } else if (!strcmp(a, "--max-handshakes")) {
            bad = parse_num(val, 1, 1000000, &v);
            o->max_handshakes = (size_t)v;
        } else if (!strcmp(a, "--max-handshakes-per-source")) {
            bad = parse_limit(val, 1, 1000000, &o->max_hs_per_source);
        } else if (!strcmp(a, "--max-out-total")) {
            bad = parse_limit(val, 65536, 1LL << 50, &o->max_out_total);
        } else if (!strcmp(a, "--handshake-timeout")) {
            bad = parse_num(val, 100, 3600000, &v);
            o->handshake_ms = v;
        } else if (!strcmp(a, "--allow")) {
            bad = append_list(val, &o->allow, &o->nallow) != 0;
        } else if (!strcmp(a, "--max-leases")) {
            bad = parse_limit(val, 1, 1LL << 40, &o->max_leases);
        } else if (!strcmp(a, "--max-memory")) {
            bad = parse_limit(val, 65536, 1LL << 50, &o->max_memory);
        } else if (!strcmp(a, "--max-waiters")) {
            bad = parse_limit(val, 1, 1LL << 40, &o->max_waiters);
        } else if (!strcmp(a, "--max-monitors")) {
            bad = parse_num(val, 1, 1LL << 32, &v);
            o->max_monitors = (size_t)v;
        } else if (!strcmp(a, "--memory")) {
            bad = parse_num(val, 16LL << 20, 1LL << 50, &v);
            o->memory = (size_t)v;
        } else if (!strcmp(a, "--max-backlog")) {
            bad = parse_num(val, 1024, 1LL << 40, &v);
            o->max_backlog = (size_t)v;
        } else if (!strcmp(a, "--state-file")) {
            bad = !*val;
            o->state_file = val;
        } else if (!strcmp(a, "--quiet-period")) {
            bad = parse_num(val, 0, 1LL << 40, &v);
            o->quiet_ms = v;
        } else if (!strcmp(a, "--coalesce-us")) {
            bad = parse_num(val, 0, 100000, &v);
            o->coalesce_us = (long)v;
        } else if (!strcmp(a, "--port")) {
            bad = parse_num(val, 0, 65535, &v);
            o->port = (int)v;
        } else if (!strcmp(a, "--listen")) {
            o->listen_addr = val;
        } else if (!strcmp(a, "--metrics-listen")) {
            o->metrics_listen = val;
        } else if (!strcmp(a, "--log-file")) {
            bad = !*val;
            o->log_file = val;
        } else if (!strcmp(a, "--cookie-file")) {
            bad = !*val;
            o->cookie_file = val;
        } else if (!strcmp(a, "--log-level")) {
            bad = log_parse_level(val, &o->level) != 0;
        } else {
            fprintf(stderr, "lockerd: unknown option %s (see --help)\n", a);
            return -EINVAL;
        }
        if (bad) {
            fprintf(stderr, "lockerd: bad value '%s' for %s (see --help)\n", val, a);
            return -EINVAL;
        }
    }
    return 0;
}

struct sig_ctx {
    const char *log_file;
    struct svc *svc;
};

/* SIGHUP reopens the log file (after a rotation); SIGTERM / SIGINT stop. */
static void on_signal(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)events;
    struct sig_ctx *sc = io->ud;
    struct signalfd_siginfo si;
    if (read(io->fd, &si, sizeof si) != sizeof si)
        return;
    if (si.ssi_signo == SIGHUP) {
        int rc = sc->log_file ? svc_log_file_open(sc->log_file) : 0;
        if (rc)
            log_error("SIGHUP: cannot reopen %s: %s; logging on to the old file",
                      sc->log_file, strerror(-rc));
        else
            log_info("SIGHUP: %s", sc->log_file ? "log file reopened" : "nothing to reopen");
        return;
    }
    log_info("signal %u: shutting down", si.ssi_signo);
    svc_stopping(sc->svc);
    loop_stop(l);
}

/* --log-file, then the journal check (a log file is no journal stream). */
static int setup_logging(const struct opts *o)
{
    if (o->log_file) {
        int rc = svc_log_file_open(o->log_file);
        if (rc) {
            fprintf(stderr, "lockerd: --log-file %s: %s\n", o->log_file, strerror(-rc));
            return rc;
        }
    }
    log_set_journal(svc_stderr_is_journal());
    return 0;
}

/* Masters and replicas lockerd must reach but would refuse: a likely typo. */
static void warn_not_allowed(struct node *n, const struct opts *o)
{
    if (!o->allow)
        return;
    log_info("allowlist: %zu nodes may connect", o->nallow);
    for (size_t i = 0; i < o->nmasters + o->nreplicas; i++) {
        const char *peer = i < o->nmasters ? o->masters[i] : o->replicas[i - o->nmasters];
        if (strcmp(peer, node_name(n)) != 0 && !node_allowed(n, peer))
            log_warn("%s is a master or replica but not on the --allow list", peer);
    }
}

/* The state file: --state-file, or ~/.lockerd/NODE.state (the directory
 * made if missing). Without a usable default the node runs without one,
 * and says that restarts cannot be detected. */
static const char *state_file_path(const struct opts *o, char *buf, size_t cap)
{
    if (o->state_file)
        return strcmp(o->state_file, "none") ? o->state_file : NULL;
    const char *home = getenv("HOME");
    if (home && *home && snprintf(buf, cap, "%s/.lockerd", home) < (int)cap &&
        (mkdir(buf, 0700) == 0 || errno == EEXIST) &&
        snprintf(buf, cap, "%s/.lockerd/%s.state", home, o->name) < (int)cap)
        return buf;
    log_warn("no state file (cannot use ~/.lockerd: %s): a restart of this node cannot be "
             "detected, so it gets no quiet period; give --state-file PATH",
             home ? strerror(errno) : "HOME not set");
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = {
        .push_interval_ms = 100,
        .eager_push = 1,
        .max_frame = 16u << 20,
        .max_out = LIMIT_UNSET,
        .max_out_total = LIMIT_UNSET,
        .max_leases = LIMIT_UNSET,
        .max_memory = LIMIT_UNSET,
        .max_waiters = LIMIT_UNSET,
        .max_hs_per_source = LIMIT_UNSET,
        .max_conns = 4096,
        .max_handshakes = 64,
        .handshake_ms = 10000,
        .max_backlog = 64u << 20,
        .net_ticktime = 60,
        .level = LOG_INFO,
        .quiet_ms = -1,
        .coalesce_us = LOCKERD_COALESCE_US,
    };
    char err[1024] = "";
    if (parse_opts(argc, argv, &o))
        return 2;
    default_limits(&o);
    if (tls_cfg_check(&o.tls, err, sizeof err)) {
        fprintf(stderr, "lockerd: %s (see --help)\n", err);
        return 2;
    }
    log_set_level(o.level);
    if (setup_logging(&o))
        return 2;
    if (!o.name[0]) {
        char host[200];
        if (cookie_short_host(host, sizeof host)) {
            fprintf(stderr, "lockerd: cannot read the host name\n");
            return 2;
        }
        snprintf(o.name, sizeof o.name, "locker@%s", host);
    }
    if (!o.cookie[0] && o.cookie_file) {
        int rc = cookie_read_file(o.cookie_file, o.cookie, sizeof o.cookie);
        if (rc) {
            fprintf(stderr, "lockerd: --cookie-file %s: %s\n", o.cookie_file,
                    rc == -EINVAL ? "empty" : strerror(-rc));
            return 2;
        }
    }
    if (!o.cookie[0] && cookie_read(o.cookie, sizeof o.cookie)) {
        fprintf(stderr, "lockerd: no cookie: give -setcookie or make ~/.erlang.cookie readable\n");
        return 2;
    }
    if (!o.w)
        o.w = o.nmasters ? (int)(o.nmasters / 2 + 1) : 1;

    /* No glibc fastbins: freed lease blocks are coalesced as they are
     * freed instead of piling up, so a mass expiry (a million frees) is
     * not followed by one multi-millisecond consolidation the first time
     * something asks for a large block (a table shrink, a big message). */
    mallopt(M_MXFAST, 0);
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    int status = 1;
    char state_buf[PATH_MAX];
    const char *state_path = state_file_path(&o, state_buf, sizeof state_buf);
    struct loop *l = loop_new();
    struct loop_io sig_io;
    struct node *n = NULL;
    struct server *s = NULL;
    struct rex *rx = NULL;
    struct apply *ap = NULL;
    struct ops *ops = NULL;
    struct svc *svc = l ? svc_new(l) : NULL;
    struct sig_ctx sig_ctx = {.log_file = o.log_file, .svc = svc};
    if (!l || !svc || sfd < 0 || loop_io_add(l, &sig_io, sfd, LOOP_IN, on_signal, &sig_ctx)) {
        fprintf(stderr, "lockerd: cannot set up the event loop\n");
        goto out;
    }
    loop_set_coalesce(l, o.coalesce_us);
    struct node_cfg nc = {
        .name = o.name,
        .cookie = o.cookie,
        .port = (uint16_t)o.port,
        .listen_addr = o.listen_addr,
        .max_frame = o.max_frame,
        .max_out = o.max_out,
        .max_conns = o.max_conns,
        .net_ticktime_s = o.net_ticktime,
        .handshake_ms = o.handshake_ms,
        .max_handshakes = o.max_handshakes,
        .max_hs_per_source = o.max_hs_per_source,
        .max_out_total = o.max_out_total,
        .allow = o.allow,
        .nallow = o.nallow,
        .tls = &o.tls,
    };
    struct server_cfg sc = {
        .w = o.w,
        .masters = o.masters,
        .nmasters = o.nmasters,
        .replicas = o.replicas,
        .nreplicas = o.nreplicas,
        .push_interval_ms = o.push_interval_ms,
        .eager_push = o.eager_push,
        .write_lock_ms = 10000,
        .expire_budget = 1000,
        .max_backlog = o.max_backlog,
        .max_leases = o.max_leases,
        .max_waiters = o.max_waiters,
        .max_memory = o.max_memory,
        .release_on_exit = o.release_on_exit,
        .max_monitors = o.max_monitors,
        .state_file = state_path,
        .quiet_ms = o.quiet_ms,
    };
    if (!(n = node_new(l, &nc, err, sizeof err)) || !(s = server_new(n, &sc, err, sizeof err)) ||
        !(ap = apply_new(n, s)) || !(rx = rex_new(n, ap)) || node_start(n, err, sizeof err)) {
        fprintf(stderr, "lockerd: %s\n", err[0] ? err : "start-up failed");
        goto out;
    }
    struct ops_cfg oc = {.listen = o.metrics_listen, .version = LOCKERD_VERSION};
    if (o.metrics_listen && !(ops = ops_new(l, n, s, ap, &oc, err, sizeof err))) {
        fprintf(stderr, "lockerd: %s\n", err);
        goto out;
    }
    log_info("lockerd %s ready: node %s, port %u (%s), w=%d, %zu masters, %zu replicas",
             LOCKERD_VERSION, node_name(n), node_port(n), o.tls.enabled ? "TLS" : "plain TCP",
             o.w, o.nmasters, o.nreplicas);
    log_info("limits: --max-memory %zu, --max-leases %zu, --max-waiters %zu, --max-out %zu, "
             "--max-out-total %zu, --max-handshakes %zu (%zu per source), --max-conns %zu "
             "(0: none)", o.max_memory, o.max_leases, o.max_waiters, o.max_out, o.max_out_total,
             o.max_handshakes, o.max_hs_per_source, o.max_conns);
    warn_not_allowed(n, &o);
    checks_cluster(node_name(n), o.masters, o.nmasters, o.replicas, o.nreplicas,
                   checks_resolve_default, NULL);
    char ready_msg[300];
    snprintf(ready_msg, sizeof ready_msg, "serving %s on port %u", node_name(n), node_port(n));
    svc_ready(svc, ready_msg);
    int rc = loop_run(l);
    status = rc ? 1 : 0;
    if (rc)
        log_error("event loop failed: %s", strerror(-rc));
out:
    /* Users before what they use: rpc work in flight ends while the node
     * can still address its callers; the node goes last, closing peers and
     * the epmd registration. */
    ops_free(ops);
    apply_free(ap);
    rex_free(rx);
    server_free(s);
    node_free(n);
    svc_free(svc);
    loop_free(l);
    for (size_t i = 0; i < o.nmasters; i++)
        free(o.masters[i]);
    for (size_t i = 0; i < o.nreplicas; i++)
        free(o.replicas[i]);
    for (size_t i = 0; i < o.nallow; i++)
        free(o.allow[i]);
    free(o.masters);
    free(o.replicas);
    free(o.allow);
    if (sfd >= 0)
        close(sfd);
    if (!status)
        log_info("stopped");
    return status;
}
