/* Leveled logging; see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level log_threshold = LOG_INFO;
static int log_journal; /* set once by main.c: journald stamps the lines */

void log_set_level(enum log_level lvl) { log_threshold = lvl; }
enum log_level log_get_level(void) { return log_threshold; }
void log_set_journal(int on) { log_journal = on != 0; }

int log_parse_level(const char *s, enum log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "none"};
    for (int i = 0; i <= LOG_NONE; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -EINVAL;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *const tags[] = {"debug", "info", "warn", "error"};
    if (lvl < log_threshold || lvl >= LOG_NONE)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    static const int prio[] = {7, 6, 4, 3}; /* syslog: debug, info, warning, err */
    int n = log_journal ? snprintf(line, sizeof line, "<%d>[%s] ", prio[lvl], tags[lvl])
                        : snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld [%s] ", tm.tm_hour,
                                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, tags[lvl]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len] = '\n';
    fwrite(line, 1, len + 1, stderr);
}
