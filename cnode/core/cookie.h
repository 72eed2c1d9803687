/*
 * The distribution cookie as erl finds it: ~/.erlang.cookie, created on
 * first use with 20 random upper-case letters and mode 0400, exactly as
 * erl does, so a C program and the BEAM nodes of one user agree without
 * configuration. Shared by lockerd and the client library.
 */
#ifndef LOCKERD_COOKIE_H
#define LOCKERD_COOKIE_H

#include <stddef.h>

/* Read (or create) $HOME/.erlang.cookie into out (NUL-terminated,
 * trailing whitespace dropped). 0, or -errno (-EINVAL: empty file). */
int cookie_read(char *out, size_t cap);

#endif
