/* Service-manager integration; see service.h. */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/loop.h"

struct svc {
    struct loop *loop;
    int fd;                     /* datagram socket, -1 without a manager */
    struct sockaddr_un addr;
    socklen_t addrlen;
    int64_t watchdog_ms;
    struct loop_timer watchdog;
};

int64_t svc_watchdog_ms(const char *usec, const char *pid, pid_t self)
{
    if (!usec || !*usec)
        return 0;
    char *end;
    if (pid && *pid) {
        long long p = strtoll(pid, &end, 10);
        if (*end || p != (long long)self)
            return 0; /* meant for another process (our parent's) */
    }
    unsigned long long us = strtoull(usec, &end, 10);
    if (*end || us == 0 || usec[0] == '-')
        return 0;
    int64_t ms = (int64_t)(us / 2000);
    return ms > 0 ? ms : 1;
}

int svc_parse_journal_stream(const char *s, uint64_t *dev, uint64_t *ino)
{
    if (!s)
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long d = strtoull(s, &end, 10);
    if (errno || end == s || *end != ':' || s[0] == '-')
        return -EINVAL;
    const char *i = end + 1;
    unsigned long long n = strtoull(i, &end, 10);
    if (errno || end == i || *end || i[0] == '-')
        return -EINVAL;
    *dev = d;
    *ino = n;
    return 0;
}

int svc_stderr_is_journal(void)
{
    uint64_t dev, ino;
    struct stat st;
    if (svc_parse_journal_stream(getenv("JOURNAL_STREAM"), &dev, &ino) || fstat(2, &st))
        return 0;
    return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

int svc_log_file_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int rc = dup2(fd, 2) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int svc_notify(struct svc *v, const char *text)
{
    if (!v || v->fd < 0)
        return 0;
    ssize_t n = sendto(v->fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL,
                       (struct sockaddr *)&v->addr, v->addrlen);
    return n < 0 ? -errno : 0;
}

void svc_ready(struct svc *v, const char *status)
{
    char msg[512];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s\nMAINPID=%ld", status, (long)getpid());
    int rc = svc_notify(v, msg);
    if (rc)
        log_warn("service manager: READY=1 not sent: %s", strerror(-rc));
}

void svc_stopping(struct svc *v) { svc_notify(v, "STOPPING=1"); }

int svc_managed(const struct svc *v) { return v && v->fd >= 0; }

static void watchdog_fn(struct loop *l, struct loop_timer *t)
{
    struct svc *v = t->ud;
    svc_notify(v, "WATCHDOG=1");
    loop_timer_arm(l, t, loop_now(l) + v->watchdog_ms);
}

/* $NOTIFY_SOCKET -> address; -EINVAL for a name that does not fit. */
static int notify_addr(struct svc *v, const char *path)
{
    size_t n = strlen(path);
    if (n < 2 || n >= sizeof v->addr.sun_path || (path[0] != '/' && path[0] != '@'))
        return -EINVAL;
    v->addr.sun_family = AF_UNIX;
    memcpy(v->addr.sun_path, path, n);
    if (path[0] == '@')
        v->addr.sun_path[0] = '\0'; /* abstract namespace, not NUL-terminated */
    v->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
    return 0;
}

struct svc *svc_new(struct loop *l)
{
    struct svc *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->loop = l;
    v->fd = -1;
    loop_timer_init(&v->watchdog, watchdog_fn, v);
    const char *path = getenv("NOTIFY_SOCKET");
    if (path && *path) {
        if (notify_addr(v, path))
            log_warn("service manager: NOTIFY_SOCKET '%s' is not a socket name; not notifying",
                     path);
        else if ((v->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
            log_warn("service manager: cannot make a notify socket: %s", strerror(errno));
    }
    v->watchdog_ms = svc_watchdog_ms(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), getpid());
    if (v->watchdog_ms && v->fd >= 0) {
        loop_timer_arm(l, &v->watchdog, loop_now(l) + v->watchdog_ms);
        log_info("service manager: watchdog ping every %lld ms", (long long)v->watchdog_ms);
    }
    return v;
}

void svc_free(struct svc *v)
{
    if (!v)
        return;
    loop_timer_stop(v->loop, &v->watchdog);
    if (v->fd >= 0)
        close(v->fd);
    free(v);
}
