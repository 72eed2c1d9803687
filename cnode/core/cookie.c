/*
 * ~/.erlang.cookie; see cookie.h. Creation uses O_EXCL so two processes
 * starting at once never overwrite each other's cookie: the loser of the
 * race simply reads the winner's file.
 */
#include "cookie.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* 20 letters A..Z from /dev/urandom, like erl's auth module. */
static int cookie_create(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (fd < 0)
        return errno == EEXIST ? 0 : -errno;
    unsigned char rnd[20];
    char text[20];
    FILE *r = fopen("/dev/urandom", "rb");
    int ok = r && fread(rnd, 1, sizeof rnd, r) == sizeof rnd;
    if (r)
        fclose(r);
    for (size_t i = 0; ok && i < sizeof rnd; i++)
        text[i] = (char)('A' + rnd[i] % 26);
    ok = ok && write(fd, text, sizeof text) == (ssize_t)sizeof text;
    close(fd);
    if (!ok) {
        unlink(path);
        return -EIO;
    }
    log_info("created %s", path);
    return 0;
}

/* Read the cookie from fd (closed here); path only names it in a warning. */
static int cookie_read_fd(int fd, const char *path, char *out, size_t cap)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        log_warn("%s is readable by others; erl refuses such a cookie file", path);
    ssize_t n = read(fd, out, cap - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    out[n] = 0;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = 0;
    return n ? 0 : -EINVAL;
}

int cookie_read_file(const char *path, char *out, size_t cap)
{
    if (cap < 2)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : cookie_read_fd(fd, path, out, cap);
}

int cookie_read(char *out, size_t cap)
{
    if (cap < 2)
        return -EINVAL;
    const char *home = getenv("HOME");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.erlang.cookie", home ? home : ".");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        int rc = cookie_create(path);
        if (rc)
            return rc;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return -errno;
    return cookie_read_fd(fd, path, out, cap);
}

int cookie_short_host(char *out, size_t cap)
{
    if (gethostname(out, cap) < 0)
        return -errno;
    out[cap - 1] = 0;
    char *dot = strchr(out, '.');
    if (dot)
        *dot = 0;
    return 0;
}
