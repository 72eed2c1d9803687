/*
 * The quiet period of a restarted master; see quiet.h.
 *
 * The state file is rewritten through a temporary file, fsync, rename and
 * an fsync of the directory, so a crash at any point leaves either the old
 * or the new record, never a torn one. That costs a few milliseconds of a
 * blocked loop, which is acceptable because it happens only when the
 * longest lease grows past the next power-of-two step.
 *
 * When the file cannot be written the lease is still granted and the error
 * logged (and retried at the next lease): refusing commits over a disk
 * fault would turn it into an outage, while the record only matters if a
 * majority of masters also restarts within that lease.
 */
#include "quiet.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"

#define STATE_MAGIC "lockerd-state 1"

struct quiet {
    char *path;
    int64_t longest;   /* recorded, rounded */
    int64_t until;     /* 0: not quiet */
    int announced_end;
    unsigned long fails; /* write failures, for log rate limiting */
};

int64_t quiet_round_up(int64_t len_ms)
{
    int64_t step = 1000;
    while (step < len_ms && step < (INT64_C(1) << 52))
        step *= 2;
    return len_ms > step ? len_ms : step;
}

/* 1: read a record, 0: no file, -errno / -EINVAL: unreadable or corrupt. */
static int state_read(const char *path, int64_t *longest)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char magic[32] = "";
    long long v = -1;
    int ok = fgets(magic, sizeof magic, f) && !strncmp(magic, STATE_MAGIC "\n", sizeof STATE_MAGIC) &&
             fscanf(f, "longest_lease_ms %lld", &v) == 1 && v >= 0;
    fclose(f);
    if (!ok)
        return -EINVAL;
    *longest = v;
    return 1;
}

static int fsync_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}

static int state_write(const char *path, int64_t longest)
{
    char tmp[4200], text[96];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int len = snprintf(text, sizeof text, STATE_MAGIC "\nlongest_lease_ms %" PRId64 "\n", longest);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (write(fd, text, (size_t)len) != len)
        rc = errno ? -errno : -EIO;
    if (!rc && fsync(fd))
        rc = -errno;
    if (close(fd) && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path))
        rc = -errno;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return fsync_dir(path);
}

struct quiet *quiet_open(const char *path, int64_t quiet_ms, int64_t floor_ms, int64_t now,
                         char *err, size_t errlen)
{
    struct quiet *q = calloc(1, sizeof *q);
    if (!q || (path && !(q->path = strdup(path)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    int restarted = 0;
    if (path) {
        int rc = state_read(path, &q->longest);
        if (rc < 0) {
            snprintf(err, errlen,
                     "state file %s: %s (remove it, or start with --quiet-period MS to choose the "
                     "quiet period yourself)",
                     path, rc == -EINVAL ? "not a lockerd state file" : strerror(-rc));
            goto fail;
        }
        restarted = rc == 1;
        if (!restarted && (rc = state_write(path, 0)) != 0) {
            snprintf(err, errlen, "state file %s: cannot create it: %s", path, strerror(-rc));
            goto fail;
        }
    }
    int64_t len = quiet_ms >= 0 ? quiet_ms
                  : restarted  ? (q->longest > floor_ms ? q->longest : floor_ms)
                               : 0;
    if (len > 0) {
        q->until = now + len;
        if (quiet_ms >= 0)
            log_info("quiet period: refusing votes on keys without a record for %" PRId64
                     " ms (--quiet-period)", len);
        else
            log_warn("restart detected (state file %s): refusing votes on keys without a record "
                     "for %" PRId64 " ms, until every lease granted before the restart has ended "
                     "(longest recorded lease %" PRId64 " ms, write locks %" PRId64 " ms)",
                     path, len, q->longest, floor_ms);
    } else if (path) {
        log_info("state file %s: %s", path, restarted ? "quiet period disabled" : "first start");
    }
    return q;
fail:
    quiet_free(q);
    return NULL;
}

void quiet_free(struct quiet *q)
{
    if (!q)
        return;
    free(q->path);
    free(q);
}

int quiet_active(struct quiet *q, int64_t now)
{
    if (!q || !q->until)
        return 0;
    if (now < q->until)
        return 1;
    if (!q->announced_end) {
        q->announced_end = 1;
        log_info("quiet period over: voting on every key");
    }
    return 0;
}

int64_t quiet_until(const struct quiet *q) { return q ? q->until : 0; }

void quiet_set_until(struct quiet *q, int64_t until)
{
    if (!q)
        return;
    q->until = until;
    q->announced_end = 0;
}
int64_t quiet_longest(const struct quiet *q) { return q ? q->longest : 0; }

int quiet_note_lease(struct quiet *q, int64_t len_ms)
{
    if (!q || !q->path || len_ms <= q->longest)
        return 0;
    int64_t rec = quiet_round_up(len_ms);
    int rc = state_write(q->path, rec);
    if (rc) {
        if (q->fails++ % 1000)
            return rc;
        log_error("state file %s: cannot record a %" PRId64 " ms lease: %s; a restart of this "
                  "node would be quiet for only %" PRId64 " ms",
                  q->path, len_ms, strerror(-rc), q->longest);
        log_error("(this error is logged once per 1000 failures; %lu so far)", q->fails);
        return rc;
    }
    log_debug("state file %s: longest lease now %" PRId64 " ms", q->path, rec);
    q->longest = rec;
    return 0;
}
