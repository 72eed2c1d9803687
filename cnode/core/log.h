/*
 * Leveled logging to stderr, one line per call, prefixed with a monotonic
 * timestamp and the level. The level threshold is process-wide and set once
 * by main.c before the loop starts (the one piece of global state outside
 * main.c: a read-only setting after start-up).
 */
#ifndef LOCKERD_LOG_H
#define LOCKERD_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_NONE };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
int log_parse_level(const char *s, enum log_level *out); /* 0 or -EINVAL */
/* Under journald: "<prio>[level] msg" lines, no timestamp of our own. */
void log_set_journal(int on);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_get_level() <= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
