/*
 * lockerctl internals shared by its three files: lockerctl.c (options,
 * help, dispatch), lockerctl_cmd.c (the commands) and lockerctl_out.c
 * (human and JSON output, error reporting).
 *
 * Model. One invocation runs exactly one command. Everything the user
 * typed is checked (options, numbers, term syntax) before the client node
 * starts, so a usage error never touches the network and always exits 2.
 * A command then either succeeds and prints its result, or reports exactly
 * one error through ctl_fail; either way exactly one JSON object is written
 * to stdout in --json mode. Exit codes are the CTL_EXIT_* values below and
 * the contract documented in `lockerctl --help` and README.md.
 */
#ifndef LOCKERD_LOCKERCTL_H
#define LOCKERD_LOCKERCTL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "../client/locker.h"
#include "../cnode/core/buf.h"
#include "../ei_glue/tparse.h"

enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_ERROR = 1,       /* anything else: protocol surprise, out of memory */
    CTL_EXIT_USAGE = 2,       /* bad option, argument or term syntax */
    CTL_EXIT_NOQUORUM = 3,    /* some masters answered, fewer than W agreed */
    CTL_EXIT_NOTFOUND = 4,    /* read: no such key */
    CTL_EXIT_TIMEOUT = 5,     /* watch: still held when the timeout passed */
    CTL_EXIT_UNREACHABLE = 6, /* epmd, or every node asked, could not be reached */
};

#define CTL_MAX_ARGS 3

/* A parsed term argument: canonical bytes (no 131) and the text typed. */
struct ctl_term {
    const char *text;
    struct buf bytes;
};

struct ctl {
    /* global options */
    const char *node_name;   /* -sname / -name; NULL: lockerctl_<pid> */
    const char *cookie;      /* NULL: ~/.erlang.cookie */
    const char *masters, *replicas;
    const char *listen_addr; /* NULL: all addresses */
    struct lkc_opts tls;     /* only its TLS fields (lkc_tls_option) */
    int w;                   /* 0: majority */
    int64_t timeout_ms;
    int json;
    /* the command */
    const struct ctl_command *cmd;
    const char *typed_cmd;   /* the command word as typed (maybe unknown) */
    const char *args[CTL_MAX_ARGS];
    int nargs;
    int64_t lease_ms;        /* --lease; 0: library default */
    int64_t cmd_timeout_ms;  /* watch --timeout; 0: timeout_ms */
    struct ctl_term terms[CTL_MAX_ARGS];
    int nterms;
    char default_name[64];
    lkc *c;
    struct buf json_buf;     /* the object being built in --json mode */
};

struct ctl_command {
    const char *name;
    int nargs;               /* positional arguments, exactly */
    unsigned term_mask;      /* bit i: argument i is an Erlang term */
    int has_lease;           /* accepts --lease MS */
    int has_timeout;         /* accepts --timeout MS after the command */
    int (*run)(struct ctl *x);
    const char *synopsis;
    const char *help;
};

extern const struct ctl_command ctl_commands[];

/* ---- lockerctl_cmd.c ---- */
int ctl_status(struct ctl *x);
int ctl_lock(struct ctl *x);
int ctl_release(struct ctl *x);
int ctl_extend(struct ctl *x);
int ctl_update(struct ctl *x);
int ctl_read(struct ctl *x);
int ctl_watch(struct ctl *x);
int ctl_set_nodes(struct ctl *x);
int ctl_set_w(struct ctl *x);

/* ---- lockerctl_out.c ---- */

/* Report the one error of this run and return `code`. `error` is the JSON
 * error id (no_quorum, not_found, timeout, unreachable, usage, bad_term,
 * error); the message goes to stderr (human) or into the object (JSON). */
int ctl_fail(struct ctl *x, int code, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Same, for a term syntax error: message plus the caret picture. */
int ctl_fail_term(struct ctl *x, const char *what, const char *text, size_t pos,
                  const char *msg);
/* Map an lkc error to an exit code and report it;
 * for no_quorum-like failures the masters are probed to tell 3 from 6. */
int ctl_fail_lkc(struct ctl *x, int rc);
/* What a probe of the masters (lkc_summary) adds about one of them: for
 * one that answered, its quiet period after a restart in ms (0 none, -1
 * unknown: a BEAM master, or no answer in time); for one that could not be
 * reached, why the connection failed ("" unknown). */
struct ctl_master_detail {
    int64_t quiet_ms;
    char why[256];
};
void ctl_master_detail(struct ctl *x, const struct lkc_master_summary *m,
                       struct ctl_master_detail *d);
/* How long a probe of the masters after a failure may take per step. */
int64_t ctl_probe_ms(const struct ctl *x);

/* JSON object building in x->json_buf: ctl_json_begin writes
 * {"command":NAME; the others append ,"key":value; ctl_json_end closes
 * the object and prints it with a newline. */
void ctl_json_begin(struct ctl *x, const char *result);
void ctl_json_str(struct ctl *x, const char *key, const char *val);
void ctl_json_int(struct ctl *x, const char *key, int64_t v);
void ctl_json_raw(struct ctl *x, const char *key, const char *raw, size_t n);
void ctl_json_end(struct ctl *x);
/* A JSON string literal (quotes included) appended to b. */
void ctl_json_quote(struct buf *b, const char *s);
/* A JSON array of the comma-separated names in s, appended to b. */
void ctl_json_names(struct buf *b, const char *s);

/* ok W/Votes/Commits in both modes. */
int ctl_print_result(struct ctl *x, const struct lkc_result *r);

#endif
