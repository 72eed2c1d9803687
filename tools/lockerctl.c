/*
 * lockerctl: an operator's command line for a locker cluster. It joins
 * the cluster as a hidden Erlang node through the client library
 * (client/locker.h), runs one command and leaves.
 *
 * This file owns the command table, the help texts (the documentation of
 * exit codes and JSON shapes lives here and in README.md, and the two
 * must agree), option parsing and the one place that opens and closes the
 * client. Parsing is complete before anything touches the network: every
 * usage or term-syntax problem exits 2 without starting a node.
 */
#include "lockerctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 5000

static const char usage_text[] =
    "usage: lockerctl [global options] COMMAND [args]\n"
    "\n"
    "Joins a locker cluster as a hidden Erlang node and runs one command.\n"
    "\n"
    "global options:\n"
    "  -sname NAME          short node name (host appended); default lockerctl_<pid>\n"
    "  -name NAME@HOST      full node name\n"
    "  -setcookie C         cookie; default: ~/.erlang.cookie\n"
    "  --masters a@h,b@h    the masters (required unless LOCKERD_MASTERS is set)\n"
    "  --replicas a@h,...   the replicas (default: LOCKERD_REPLICAS, or none)\n"
    "  -w N                 write quorum; default: majority of the masters\n"
    "  --timeout MS         per-phase timeout of every call; default 5000\n"
    "  --listen ADDR        address this node listens on; default: all\n"
    "  -proto_dist inet_tls TLS distribution (default inet_tcp), with:\n"
    "  --tls-cert FILE      PEM certificate (chain) of this node\n"
    "  --tls-key FILE       its PEM private key\n"
    "  --tls-ca FILE        PEM CA certificates peers must chain to\n"
    "  --tls-verify MODE    peer (default: chain, and the host of a dialled\n"
    "                       node), chain, or none\n"
    "  --json               print one JSON object on stdout instead of text\n"
    "  --help, -h           this text; `lockerctl COMMAND --help` for one command\n"
    "\n"
    "commands:\n"
    "%s"
    "\n"
    "KEY, VALUE and NEWVALUE are Erlang terms: '{user,42}', '<<\"job\">>', '\"str\"',\n"
    "'#{a => 1}', atoms, integers, floats, lists. Quote them for the shell.\n"
    "\n"
    "exit codes:\n"
    "  0  success (watch: released or not locked; status: at least W masters answer)\n"
    "  1  other error (unexpected reply, out of memory)\n"
    "  2  usage error or term syntax error (the term is shown with a caret)\n"
    "  3  no_quorum: some masters answered but fewer than W agreed (the key is\n"
    "     held with another value, or fewer than W masters are reachable);\n"
    "     error id recovering when masters refused because they restarted and\n"
    "     are in their quiet period (the message says for how long)\n"
    "  4  not_found (read)\n"
    "  5  timeout (watch: the key is still held when --timeout passes; any call\n"
    "     that got no answer in time)\n"
    "  6  unreachable: epmd cannot be used, or no master answered at all\n"
    "     (set-nodes/set-w: some node of CLUSTER did not answer)\n"
    "\n"
    "JSON (--json): exactly one object per run on stdout, e.g.\n"
    "  {\"command\": \"lock\", \"result\": \"ok\", \"w\": 2, \"votes\": 3, \"commits\": 3}\n"
    "  {\"command\": \"extend\", \"result\": \"ok\"}\n"
    "  {\"command\": \"read\", \"result\": \"ok\", \"value\": VALUE_JSON, \"text\": \"{user,42}\"}\n"
    "  {\"command\": \"read\", \"result\": \"not_found\"}\n"
    "  {\"command\": \"watch\", \"result\": \"released\" | \"not_locked\"}\n"
    "  {\"command\": \"set-w\", \"result\": \"ok\"}\n"
    "  {\"command\": \"status\", \"result\": \"ok\", \"node\": N, \"meta\": {\"masters\": [..],\n"
    "   \"replicas\": [..], \"w\": 2}, \"reachable\": 3, \"masters\": [{\"node\": N,\n"
    "   \"reachable\": true, \"state\": \"reachable\", \"write_locks\": 0, \"leases\": 1}, ..],\n"
    "   \"lag_ms\": 1.234, \"lag_result\": \"ok\"}\n"
    "  errors: {\"command\": C, \"result\": \"error\", \"error\": E, \"message\": M, \"exit\": CODE}\n"
    "  with E one of usage, bad_term, no_quorum, recovering, not_found, timeout,\n"
    "  unreachable, error. VALUE_JSON is typed: 42, 1.5, {\"atom\": \"a\"}, {\"binary\": \"job\"},\n"
    "  {\"string\": \"str\"}, {\"tuple\": [..]}, [..], {\"map\": [[k, v], ..]}, {\"pid\": \"<..>\"}.\n";

const struct ctl_command ctl_commands[] = {
    {"status", 0, 0, 0, 0, ctl_status, "status",
     "Shows the meta this client uses (masters, replicas, W), asks every master\n"
     "for get_debug_state within --timeout (reachable or not, its write_locks\n"
     "and leases counts) and, when at least W masters answer, measures lag:\n"
     "the time to lock and release a probe key, like locker:lag().\n"
     "Exit 0 when at least W masters answer, 3 when some do, 6 when none does.\n"},
    {"lock", 2, 3, 1, 0, ctl_lock, "lock KEY VALUE [--lease MS]",
     "Takes KEY with VALUE for --lease MS (default 2000) on a quorum of masters.\n"
     "Prints ok w=W votes=V commits=C; exit 3 (no_quorum) when KEY is held.\n"},
    {"release", 2, 3, 0, 0, ctl_release, "release KEY VALUE",
     "Releases KEY if it is held with VALUE. Prints ok w=W votes=V commits=C\n"
     "(commits count masters and replicas); exit 3 when the value differs or\n"
     "the key is not held.\n"},
    {"extend", 2, 3, 1, 0, ctl_extend, "extend KEY VALUE [--lease MS]",
     "Extends the lease of KEY held with VALUE to --lease MS from now (default\n"
     "2000). Prints ok; exit 3 when the key is not held with VALUE.\n"},
    {"update", 3, 7, 0, 0, ctl_update, "update KEY VALUE NEWVALUE",
     "Replaces the value of KEY, held with VALUE, by NEWVALUE (the lease keeps\n"
     "its expiry). Prints ok w=W votes=V commits=C; exit 3 on no_quorum.\n"},
    {"read", 1, 1, 0, 0, ctl_read, "read KEY",
     "Dirty read of KEY on the first master that answers: prints the value in\n"
     "Erlang syntax, or not_found (exit 4).\n"},
    {"watch", 1, 1, 0, 1, ctl_watch, "watch KEY [--timeout MS]",
     "Blocks until KEY is released or its lease expires (prints released, exit\n"
     "0), or --timeout MS passes first (exit 5). A key nobody holds prints\n"
     "not_locked at once (exit 0).\n"},
    {"set-nodes", 3, 0, 0, 0, ctl_set_nodes, "set-nodes CLUSTER MASTERS REPLICAS",
     "Sends {set_nodes, Masters, Replicas} to every node of CLUSTER (comma-\n"
     "separated lists; REPLICAS may be \"\"). Exit 6 when a node does not answer.\n"},
    {"set-w", 2, 0, 0, 0, ctl_set_w, "set-w CLUSTER W",
     "Sends {set_w, W} to every node of CLUSTER. Exit 6 when a node does not\n"
     "answer.\n"},
    {NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

/* ---- help ---- */

static void print_usage(FILE *f)
{
    char list[2048];
    size_t len = 0;
    list[0] = 0;
    for (const struct ctl_command *c = ctl_commands; c->name && len < sizeof list; c++)
        len += (size_t)snprintf(list + len, sizeof list - len, "  %s\n", c->synopsis);
    fprintf(f, usage_text, list);
}

static void print_command_help(const struct ctl_command *c)
{
    printf("usage: lockerctl [global options] %s\n\n%s", c->synopsis, c->help);
    if (c->has_timeout)
        printf("--timeout MS given after the command applies to the wait only.\n");
    printf("\nSee `lockerctl --help` for global options, exit codes and JSON shapes.\n");
}

static const struct ctl_command *find_command(const char *name)
{
    for (const struct ctl_command *c = ctl_commands; c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

/* ---- option parsing ---- */

/* A non-negative integer, whole string. */
static int parse_num(const char *s, int64_t max, int64_t *v)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (!*s || *end || errno || n < 0 || n > max)
        return -1;
    *v = n;
    return 0;
}

/* "-7", "-2#101", "-1.5": a negative number is an argument, not an option. */
static int is_option(const char *a)
{
    return a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9');
}

enum { PARSE_OK, PARSE_HELP, PARSE_FAIL };

/* An option taking a value: *i is advanced past it. */
static int opt_value(struct ctl *x, int argc, char **argv, int *i, const char **out)
{
    if (*i + 1 >= argc) {
        ctl_fail(x, CTL_EXIT_USAGE, "usage", "option %s needs a value", argv[*i]);
        return PARSE_FAIL;
    }
    *out = argv[++*i];
    return PARSE_OK;
}

static int opt_num(struct ctl *x, int argc, char **argv, int *i, int64_t min, int64_t max,
                   int64_t *v)
{
    const char *opt = argv[*i], *s;
    if (opt_value(x, argc, argv, i, &s))
        return PARSE_FAIL;
    if (parse_num(s, max, v) || *v < min) {
        ctl_fail(x, CTL_EXIT_USAGE, "usage", "option %s: '%s' is not a number in %lld..%lld",
                 opt, s, (long long)min, (long long)max);
        return PARSE_FAIL;
    }
    return PARSE_OK;
}

/* One option at argv[*i]; PARSE_FAIL also for an unknown one. */
static int parse_option(struct ctl *x, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    int64_t v;
    int rc = PARSE_OK;
    if (!strcmp(a, "--help") || !strcmp(a, "-h"))
        return PARSE_HELP;
    if (!strcmp(a, "--json"))
        x->json = 1;
    else if (!strcmp(a, "-sname") || !strcmp(a, "-name"))
        rc = opt_value(x, argc, argv, i, &x->node_name);
    else if (!strcmp(a, "-setcookie"))
        rc = opt_value(x, argc, argv, i, &x->cookie);
    else if (!strcmp(a, "--masters"))
        rc = opt_value(x, argc, argv, i, &x->masters);
    else if (!strcmp(a, "--replicas"))
        rc = opt_value(x, argc, argv, i, &x->replicas);
    else if (!strcmp(a, "--listen"))
        rc = opt_value(x, argc, argv, i, &x->listen_addr);
    else if (!strcmp(a, "-w")) {
        if ((rc = opt_num(x, argc, argv, i, 0, 65535, &v)) == PARSE_OK)
            x->w = (int)v;
    } else if (!strcmp(a, "--timeout")) {
        if ((rc = opt_num(x, argc, argv, i, 1, INT32_MAX, &v)) == PARSE_OK)
            *(x->cmd && x->cmd->has_timeout ? &x->cmd_timeout_ms : &x->timeout_ms) = v;
    } else if (!strcmp(a, "--lease") && x->cmd && x->cmd->has_lease) {
        rc = opt_num(x, argc, argv, i, 1, INT32_MAX, &x->lease_ms);
    } else if (lkc_tls_option(NULL, a, NULL) == 1) {
        const char *val;
        if ((rc = opt_value(x, argc, argv, i, &val)) == PARSE_OK &&
            lkc_tls_option(&x->tls, a, val) != 1) {
            ctl_fail(x, CTL_EXIT_USAGE, "usage", "option %s: bad value '%s'", a, val);
            rc = PARSE_FAIL;
        }
    } else {
        ctl_fail(x, CTL_EXIT_USAGE, "usage", "unknown option %s (see lockerctl --help)", a);
        rc = PARSE_FAIL;
    }
    return rc;
}

/* A word that is not an option: the command, or one of its arguments. */
static int parse_word(struct ctl *x, const char *a)
{
    if (!x->cmd) {
        x->typed_cmd = a;
        if (!(x->cmd = find_command(a))) {
            ctl_fail(x, CTL_EXIT_USAGE, "usage", "unknown command '%s' (see lockerctl --help)", a);
            return PARSE_FAIL;
        }
        return PARSE_OK;
    }
    if (x->nargs >= x->cmd->nargs) {
        ctl_fail(x, CTL_EXIT_USAGE, "usage", "too many arguments; usage: lockerctl %s",
                 x->cmd->synopsis);
        return PARSE_FAIL;
    }
    x->args[x->nargs++] = a;
    return PARSE_OK;
}

static int parse_args(struct ctl *x, int argc, char **argv)
{
    int only_words = 0;
    for (int i = 1; i < argc; i++) {
        int rc;
        if (!only_words && x->cmd && !strcmp(argv[i], "--"))
            only_words = 1, rc = PARSE_OK;
        else if (!only_words && is_option(argv[i]))
            rc = parse_option(x, argc, argv, &i);
        else
            rc = parse_word(x, argv[i]);
        if (rc == PARSE_HELP) {
            if (x->cmd)
                print_command_help(x->cmd);
            else
                print_usage(stdout);
            return PARSE_HELP;
        }
        if (rc)
            return rc;
    }
    return PARSE_OK;
}

/* ---- checks before the network ---- */

static int check_args(struct ctl *x)
{
    if (!x->cmd)
        return ctl_fail(x, CTL_EXIT_USAGE, "usage", "no command given (see lockerctl --help)");
    if (x->nargs != x->cmd->nargs)
        return ctl_fail(x, CTL_EXIT_USAGE, "usage", "expected %d argument%s; usage: lockerctl %s",
                        x->cmd->nargs, x->cmd->nargs == 1 ? "" : "s", x->cmd->synopsis);
    if (!x->masters)
        x->masters = getenv("LOCKERD_MASTERS");
    if (!x->replicas)
        x->replicas = getenv("LOCKERD_REPLICAS");
    if (!x->masters || !*x->masters)
        return ctl_fail(x, CTL_EXIT_USAGE, "usage",
                        "no masters: give --masters a@host,b@host or set LOCKERD_MASTERS");
    int64_t w;
    if (x->cmd->run == ctl_set_w && (parse_num(x->args[1], 65535, &w) || w < 1))
        return ctl_fail(x, CTL_EXIT_USAGE, "usage", "W must be an integer >= 1, not '%s'",
                        x->args[1]);
    static const char *const names[] = {"KEY", "VALUE", "NEWVALUE"};
    for (int i = 0; i < x->nargs; i++) {
        if (!(x->cmd->term_mask & 1u << i))
            continue;
        struct tparse_err e = {0};
        x->terms[i].text = x->args[i];
        int rc = tparse(x->args[i], &x->terms[i].bytes, &e);
        if (rc == -EINVAL)
            return ctl_fail_term(x, names[i], x->args[i], e.pos, e.msg);
        if (rc)
            return ctl_fail(x, CTL_EXIT_ERROR, "error", "out of memory");
    }
    return CTL_EXIT_OK;
}

/* ---- the client ---- */

static int open_client(struct ctl *x)
{
    snprintf(x->default_name, sizeof x->default_name, "lockerctl_%ld", (long)getpid());
    const char *lvl = getenv("LOCKERCTL_LOG_LEVEL");
    struct lkc_opts o = {
        .node_name = x->node_name ? x->node_name : x->default_name,
        .cookie = x->cookie,
        .masters = x->masters,
        .replicas = x->replicas && *x->replicas ? x->replicas : NULL,
        .w = x->w,
        .log_level = lvl && *lvl ? lvl : "error",
        .listen_addr = x->listen_addr,
        .tls = x->tls.tls,
        .tls_cert = x->tls.tls_cert,
        .tls_key = x->tls.tls_key,
        .tls_ca = x->tls.tls_ca,
        .tls_verify = x->tls.tls_verify,
    };
    char err[512];
    int rc = lkc_open(&o, &x->c, err, sizeof err);
    if (rc == LKC_ECONNECT)
        return ctl_fail(x, CTL_EXIT_UNREACHABLE, "unreachable",
                        "cannot start the client node %s: %s (is epmd running on this host, is the node name free?)",
                        o.node_name, err);
    if (rc == LKC_EINVAL)
        return ctl_fail(x, CTL_EXIT_USAGE, "usage", "%s", err);
    if (rc)
        return ctl_fail(x, CTL_EXIT_ERROR, "error", "cannot start the client: %s", err);
    return CTL_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct ctl x = {.timeout_ms = DEFAULT_TIMEOUT_MS};
    buf_init(&x.json_buf);
    for (int i = 0; i < CTL_MAX_ARGS; i++)
        buf_init(&x.terms[i].bytes);
    int code;
    int p = parse_args(&x, argc, argv);
    if (p == PARSE_HELP)
        code = CTL_EXIT_OK;
    else if (p == PARSE_FAIL)
        code = CTL_EXIT_USAGE;
    else if ((code = check_args(&x)) == CTL_EXIT_OK && (code = open_client(&x)) == CTL_EXIT_OK)
        code = x.cmd->run(&x);
    lkc_close(x.c);
    for (int i = 0; i < CTL_MAX_ARGS; i++)
        buf_free(&x.terms[i].bytes);
    buf_free(&x.json_buf);
    return code;
}
