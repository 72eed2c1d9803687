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

size_t log_escape(char *dst, size_t cap, const void *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = src;
    size_t o = 0;
    if (!cap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        int plain = ch >= 0x20 && ch < 0x7f && ch != '\\';
        size_t need = plain ? 1 : 4;
        /* Room for this byte and, if more follow, the "..." mark. */
        if (o + need + (i + 1 < n ? 3 : 0) >= cap) {
            if (o + 3 < cap) {
                memcpy(dst + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (plain) {
            dst[o++] = (char)ch;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 15];
        }
    }
    dst[o] = '\0';
    return o;
}

const char *log_str(char *dst, size_t cap, const char *s)
{
    log_escape(dst, cap, s, s ? strlen(s) : 0);
    return dst;
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
    char msg[LOG_LINE_MAX], line[LOG_LINE_MAX + 64];
    static const int prio[] = {7, 6, 4, 3}; /* syslog: debug, info, warning, err */
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    /* Under journald (log_journal) a syslog priority, and journald's own
     * timestamps instead of ours. */
    int n = log_journal ? snprintf(line, sizeof line, "<%d>[%s] ", prio[lvl], tags[lvl])
                        : snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld [%s] ", tm.tm_hour,
                                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, tags[lvl]);
    /* Whatever a peer put in the message (names, atoms, terms) ends up as
     * one line of printable text, however it was formatted. */
    size_t len = (size_t)n + log_escape(line + n, sizeof line - (size_t)n - 1, msg,
                                        strnlen(msg, sizeof msg));
    line[len] = '\n';
    fwrite(line, 1, len + 1, stderr);
}
