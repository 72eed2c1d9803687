/* Memory available to lockerd and limits sized from it; see sysmem.h. */
#include "sysmem.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

/* One unsigned number from a file; 0 for "max", a missing file or junk. */
static size_t read_size(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned long long v = 0;
    char word[32] = "";
    if (fscanf(f, "%31s", word) != 1 || sscanf(word, "%llu", &v) != 1)
        v = 0;
    fclose(f);
    return (size_t)v;
}

/* The v2 cgroup path of this process ("0::/path"), or "" if unknown. */
static void cgroup2_path(char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = 0;
            size_t n = strlen(line + 3);
            if (n < cap)
                memcpy(out, line + 3, n + 1);
            break;
        }
    fclose(f);
}

size_t sysmem_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    size_t ram = pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz : 0;
    char cg[400], path[512];
    cgroup2_path(cg, sizeof cg);
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", strcmp(cg, "/") ? cg : "");
    size_t lim = read_size(path);
    if (!lim)
        lim = read_size("/sys/fs/cgroup/memory.max");
    if (!lim)
        lim = read_size("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    /* "No limit" reads as max or as a huge number: RAM then. */
    if (lim && (!ram || lim < ram))
        return lim;
    return ram;
}

void sysmem_defaults(size_t mem, struct sysmem_limits *out)
{
    if (!mem)
        mem = 1024 * MIB;
    out->max_memory = mem / 4;
    out->max_leases = out->max_memory / 256;
    size_t w = mem / 8192;
    out->max_waiters = w < 1024 ? 1024 : w > 1000000 ? 1000000 : w;
    out->max_out_total = mem / 8;
    out->max_out = 256 * MIB;
    if (out->max_out > out->max_out_total / 2)
        out->max_out = out->max_out_total / 2;
    if (out->max_out < 65536)
        out->max_out = 65536;
    out->max_hs_per_source = 8;
}
