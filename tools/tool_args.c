/*
 * Shared tool options; see tool_args.h. Values are validated here only as
 * far as the tools need; lkc_open checks node names and the meta.
 */
#include "tool_args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void tool_usage_common(FILE *f)
{
    fprintf(f,
        "  -sname NAME            node NAME@<short host name> (default: lkc<pid>)\n"
        "  -name NAME@HOST        node with an explicit host part\n"
        "  -setcookie COOKIE      distribution cookie (default: ~/.erlang.cookie)\n"
        "  --masters A@H,B@H      the cluster's master nodes (required)\n"
        "  --replicas A@H,...     replica nodes (release commits go there too)\n"
        "  -w N                   write quorum (default: majority of --masters)\n"
        "  --lease MS             lease length in milliseconds\n"
        "  --listen ADDR          distribution listen address (default: all)\n"
        "  -proto_dist inet_tls   TLS distribution (default inet_tcp), with:\n"
        "  --tls-cert FILE        PEM certificate (chain) of this node\n"
        "  --tls-key FILE         its PEM private key\n"
        "  --tls-ca FILE          PEM CA certificates peers must chain to\n"
        "  --tls-verify MODE      peer (default: chain, and the host of a dialled\n"
        "                         node), chain, or none\n"
        "  --log-level LEVEL      debug | info | warn | error (default warn)\n"
        "  --help\n");
}

static int num(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* One "-opt VALUE" pair; 0, or -1 for an unknown option or bad value. */
static int tool_opt(struct tool_args *a, const char *opt, const char *val)
{
    long long v;
    int tls = lkc_tls_option(&a->o, opt, val);
    if (tls)
        return tls == 1 ? 0 : -1;
    if (!strcmp(opt, "-sname") || !strcmp(opt, "-name"))
        a->o.node_name = val;
    else if (!strcmp(opt, "-setcookie"))
        a->o.cookie = val;
    else if (!strcmp(opt, "--masters"))
        a->o.masters = val;
    else if (!strcmp(opt, "--replicas"))
        a->o.replicas = val;
    else if (!strcmp(opt, "--listen"))
        a->o.listen_addr = val;
    else if (!strcmp(opt, "--log-level"))
        a->o.log_level = val;
    else if (!strcmp(opt, "-w") && !num(val, 1, 1000, &v))
        a->o.w = (int)v;
    else if (!strcmp(opt, "--lease") && !num(val, 1, 86400000, &v))
        a->lease_ms = v;
    else
        return -1;
    return 0;
}

int tool_parse(int argc, char **argv, const char *prog, struct tool_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
            return 1;
        if (arg[0] != '-' || !arg[1]) {
            if (a->positional) {
                fprintf(stderr, "%s: one argument expected, got '%s' too (see --help)\n", prog,
                        arg);
                return -1;
            }
            a->positional = arg;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value (see --help)\n", prog, arg);
            return -1;
        }
        if (tool_opt(a, arg, argv[i + 1])) {
            fprintf(stderr, "%s: unknown option or bad value: %s %s (see --help)\n", prog, arg,
                    argv[i + 1]);
            return -1;
        }
        i++;
    }
    if (!a->o.masters) {
        fprintf(stderr, "%s: --masters is required (see --help)\n", prog);
        return -1;
    }
    return 0;
}
