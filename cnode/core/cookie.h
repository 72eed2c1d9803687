/*
 * A node's identity as erl derives it: the distribution cookie from
 * ~/.erlang.cookie, created on first use with 20 random upper-case letters
 * and mode 0400, exactly as erl does (so a C program and the BEAM nodes of
 * one user agree without configuration), and the short host name that
 * -sname appends. Shared by lockerd and the client library.
 */
#ifndef LOCKERD_COOKIE_H
#define LOCKERD_COOKIE_H

#include <stddef.h>

/* Read (or create) $HOME/.erlang.cookie into out (NUL-terminated,
 * trailing whitespace dropped). 0, or -errno (-EINVAL: empty file). */
int cookie_read(char *out, size_t cap);

/* Read the cookie from an explicit file (never created): a service's
 * cookie file. Same trimming; 0 or -errno (-EINVAL: empty). */
int cookie_read_file(const char *path, char *out, size_t cap);

/* The host name up to its first dot, as -sname uses it. 0 or -errno. */
int cookie_short_host(char *out, size_t cap);

#endif
