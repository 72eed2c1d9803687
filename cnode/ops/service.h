/*
 * Life under a service manager (systemd), without libsystemd: the notify
 * protocol is one datagram per state change on the AF_UNIX socket named
 * by $NOTIFY_SOCKET ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...";
 * a leading '@' names an abstract socket). Sends never block: a manager
 * that does not read loses a datagram, lockerd goes on.
 *
 * Watchdog: when $WATCHDOG_USEC is set (and $WATCHDOG_PID, if set, is
 * this process), a loop timer sends WATCHDOG=1 every half period, so a
 * wedged loop stops the pings and the manager restarts the daemon.
 *
 * Journal: when stderr is the stream $JOURNAL_STREAM names (device:inode),
 * journald stamps each line itself, so log lines carry a syslog priority
 * prefix ("<6>") instead of their own timestamp (log_set_journal).
 */
#ifndef LOCKERD_SERVICE_H
#define LOCKERD_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;
struct svc;

/* Reads the environment; NULL only on ENOMEM. Arms the watchdog timer. */
struct svc *svc_new(struct loop *l);
void svc_free(struct svc *v); /* NULL ok */
/* 1 if a manager listens ($NOTIFY_SOCKET set). */
int svc_managed(const struct svc *v);
/* Send "READY=1\nSTATUS=<status>\nMAINPID=<pid>" / "STOPPING=1" / text. */
void svc_ready(struct svc *v, const char *status);
void svc_stopping(struct svc *v);
int svc_notify(struct svc *v, const char *text); /* 0, -errno; no manager: 0 */

/* Pure parsers (tested): $WATCHDOG_USEC / $WATCHDOG_PID -> ping interval
 * in ms (half the period, at least 1), 0 if no watchdog applies to self;
 * $JOURNAL_STREAM "dev:ino" -> 0 or -EINVAL. */
int64_t svc_watchdog_ms(const char *usec, const char *pid, pid_t self);
int svc_parse_journal_stream(const char *s, uint64_t *dev, uint64_t *ino);
/* 1 if stderr is the journal stream. */
int svc_stderr_is_journal(void);

/* Point stderr (fd 2) at path, appending (0640); again on SIGHUP after a
 * rotation. 0 or -errno (stderr unchanged then). */
int svc_log_file_open(const char *path);

#endif
