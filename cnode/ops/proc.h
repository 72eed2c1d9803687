/*
 * What the process itself uses, for the metrics endpoint: resident and
 * virtual memory, open and maximum file descriptors, CPU time, start time.
 * Read from /proc/self and getrusage at each scrape (a few small reads of
 * procfs, which never block on I/O). Fields that cannot be read are -1.
 */
#ifndef LOCKERD_PROC_H
#define LOCKERD_PROC_H

#include <stdint.h>

struct proc_usage {
    int64_t rss_bytes, vsize_bytes;
    int64_t open_fds, max_fds;
    double cpu_seconds;
    double start_time;   /* seconds since the epoch */
};

void proc_usage_read(struct proc_usage *u);

/* Parse the fields after the ")" of /proc/self/stat (pure, for tests):
 * starttime in clock ticks, vsize and rss in pages. 0 or -EINVAL. */
int proc_parse_stat(const char *stat, uint64_t *starttime, uint64_t *vsize, int64_t *rss_pages);

#endif
