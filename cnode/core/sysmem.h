/*
 * The memory lockerd may count on, and the resource limits sized from it.
 *
 * sysmem_bytes() reads the cgroup limit (v2 memory.max of the process's own
 * cgroup, else v1 memory.limit_in_bytes) and the physical RAM, and returns
 * the smaller; "no limit" in a cgroup means RAM. sysmem_defaults() is pure:
 * the default of every limit a peer could otherwise push without bound,
 * as a share of that memory, so a daemon started without options cannot be
 * made to take the machine down.
 */
#ifndef LOCKERD_SYSMEM_H
#define LOCKERD_SYSMEM_H

#include <stddef.h>

struct sysmem_limits {
    size_t max_memory;     /* store bytes: a quarter */
    size_t max_leases;     /* max_memory / 256 */
    size_t max_waiters;    /* memory / 8 KiB, within [1024, 1M] */
    size_t max_out_total;  /* output for all peers: an eighth */
    size_t max_out;        /* per peer: 256 MiB, at most half the total */
    size_t max_hs_per_source;
};

size_t sysmem_bytes(void); /* 0 if nothing could be read */
/* mem 0: as for 1 GiB. */
void sysmem_defaults(size_t mem, struct sysmem_limits *out);

#endif
