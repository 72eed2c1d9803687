/*
 * Leveled logging to stderr, one line per call, prefixed with a monotonic
 * timestamp and the level. Every line is escaped (log_escape) and capped
 * at LOG_LINE_MAX bytes of message. The level threshold is process-wide and set once
 * by main.c before the loop starts (the one piece of global state outside
 * main.c: a read-only setting after start-up).
 */
#ifndef LOCKERD_LOG_H
#define LOCKERD_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_NONE };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
int log_parse_level(const char *s, enum log_level *out); /* 0 or -EINVAL */
/* Under journald: "<prio>[level] msg" lines, no timestamp of our own. */
void log_set_journal(int on);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Longest message of one line, before escaping. */
#define LOG_LINE_MAX 1024
/* Text for a log line from bytes a peer chose: printable ASCII is kept,
 * every other byte (control characters, ESC, bytes of multi-byte UTF-8)
 * and the backslash become \xNN, and what does not fit in cap ends with
 * "...". Returns the length written (always NUL-terminated, cap > 0).
 * log_msg applies the same escaping to each whole line, so no peer text
 * can split a line or reach a terminal raw; callers use log_str to also
 * cap a single field. */
size_t log_escape(char *dst, size_t cap, const void *src, size_t n);
const char *log_str(char *dst, size_t cap, const char *s); /* NULL: "" */

#define log_debug(...) do { if (log_get_level() <= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
