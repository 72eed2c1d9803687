/*
 * Command-line options shared by the client tools (locker-echo, lkc-hold,
 * lkc-example): the erl-like node options plus the cluster meta, turned
 * into struct lkc_opts. Strings point into argv (no copies).
 */
#ifndef LOCKERD_TOOL_ARGS_H
#define LOCKERD_TOOL_ARGS_H

#include <stdint.h>
#include <stdio.h>

#include "../client/locker.h"

struct tool_args {
    struct lkc_opts o;
    int64_t lease_ms;        /* --lease, 0 when not given */
    const char *positional;  /* the one non-option argument, or NULL */
};

/* The option lines every tool prints in its --help. */
void tool_usage_common(FILE *f);
/* 0 ok, 1 --help was given (usage printed by the caller), -1 bad usage
 * (message printed). */
int tool_parse(int argc, char **argv, const char *prog, struct tool_args *a);

#endif
