/* Process usage from procfs; see proc.h. */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int proc_parse_stat(const char *stat, uint64_t *starttime, uint64_t *vsize, int64_t *rss_pages)
{
    /* The command name may hold spaces and parentheses: start after the
     * last ')'. Fields from there: 3 state ... 22 starttime 23 vsize 24 rss. */
    const char *p = strrchr(stat, ')');
    if (!p)
        return -EINVAL;
    p++;
    for (int field = 3; field <= 24; field++) {
        while (*p == ' ')
            p++;
        if (!*p)
            return -EINVAL;
        char *end;
        if (field == 22)
            *starttime = strtoull(p, &end, 10);
        else if (field == 23)
            *vsize = strtoull(p, &end, 10);
        else if (field == 24)
            *rss_pages = strtoll(p, &end, 10);
        else
            end = (char *)p + strcspn(p, " ");
        if (end == p)
            return -EINVAL;
        p = end;
    }
    return 0;
}

static int read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return 0;
}

/* Seconds since the epoch at boot, from /proc/stat's btime. */
static double boot_time(void)
{
    char buf[8192];
    if (read_file("/proc/stat", buf, sizeof buf))
        return -1;
    const char *b = strstr(buf, "\nbtime ");
    return b ? strtod(b + 7, NULL) : -1;
}

static int64_t count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int64_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

void proc_usage_read(struct proc_usage *u)
{
    u->rss_bytes = u->vsize_bytes = u->open_fds = u->max_fds = -1;
    u->cpu_seconds = u->start_time = -1;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        u->cpu_seconds = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        u->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_cur;
    u->open_fds = count_fds();
    char stat[1024];
    uint64_t start, vsize;
    int64_t rss;
    if (read_file("/proc/self/stat", stat, sizeof stat) == 0 &&
        proc_parse_stat(stat, &start, &vsize, &rss) == 0) {
        long page = sysconf(_SC_PAGESIZE), hz = sysconf(_SC_CLK_TCK);
        u->rss_bytes = rss * (page > 0 ? page : 4096);
        u->vsize_bytes = (int64_t)vsize;
        double bt = boot_time();
        if (bt >= 0 && hz > 0)
            u->start_time = bt + (double)start / (double)hz;
    }
}
