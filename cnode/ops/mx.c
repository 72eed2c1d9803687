/* Prometheus text format writer; see mx.h. */
#include "mx.h"

#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(struct mx *m, const char *s, size_t n)
{
    if (!m->err)
        m->err = buf_append(m->out, s, n);
}

static void puts_(struct mx *m, const char *s) { put(m, s, strlen(s)); }

/* Label value (quote = 1) or help text (quote = 0) escaping. */
static void put_escaped(struct mx *m, const char *s, int quote)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            puts_(m, "\\\\");
        else if (*p == '\n')
            puts_(m, "\\n");
        else if (*p == '"' && quote)
            puts_(m, "\\\"");
        else
            put(m, p, 1);
    }
}

int mx_format_value(char *dst, size_t cap, double v)
{
    if (isnan(v))
        return snprintf(dst, cap, "NaN");
    if (isinf(v))
        return snprintf(dst, cap, v > 0 ? "+Inf" : "-Inf");
    /* No libm: an integer within 2^53 converts to int64_t and back. */
    if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v)
        return snprintf(dst, cap, "%.0f", v);
    /* The shortest of 15 or 17 digits that reads back as v (1e-05, not
     * 1.0000000000000001e-05). */
    int n = snprintf(dst, cap, "%.15g", v);
    if (n > 0 && (size_t)n < cap && strtod(dst, NULL) == v)
        return n;
    return snprintf(dst, cap, "%.17g", v);
}

void mx_family(struct mx *m, const char *name, const char *type, const char *help)
{
    puts_(m, "# HELP ");
    puts_(m, name);
    puts_(m, " ");
    put_escaped(m, help, 0);
    puts_(m, "\n# TYPE ");
    puts_(m, name);
    puts_(m, " ");
    puts_(m, type);
    puts_(m, "\n");
}

static void put_value(struct mx *m, double v)
{
    char num[64];
    mx_format_value(num, sizeof num, v);
    puts_(m, " ");
    puts_(m, num);
    puts_(m, "\n");
}

static void put_label(struct mx *m, int *first, const char *k, const char *v)
{
    puts_(m, *first ? "{" : ",");
    *first = 0;
    puts_(m, k);
    puts_(m, "=\"");
    put_escaped(m, v, 1);
    puts_(m, "\"");
}

void mx_sample(struct mx *m, const char *name, double v, ...)
{
    puts_(m, name);
    va_list ap;
    va_start(ap, v);
    int first = 1;
    for (const char *k; (k = va_arg(ap, const char *));)
        put_label(m, &first, k, va_arg(ap, const char *));
    va_end(ap);
    if (!first)
        puts_(m, "}");
    put_value(m, v);
}

static void put_suffixed(struct mx *m, const char *name, const char *suffix, const char *lname,
                         const char *lval, const char *le)
{
    puts_(m, name);
    puts_(m, suffix);
    int first = 1;
    if (lname)
        put_label(m, &first, lname, lval);
    if (le)
        put_label(m, &first, "le", le);
    if (!first)
        puts_(m, "}");
}

void mx_hist(struct mx *m, const char *name, const struct hist *h, double per_unit,
             const char *lname, const char *lval)
{
    uint64_t cum = 0;
    char le[64];
    for (size_t i = 0; i < h->n; i++) {
        cum += h->cnt[i];
        mx_format_value(le, sizeof le, (double)h->le[i] / per_unit);
        put_suffixed(m, name, "_bucket", lname, lval, le);
        put_value(m, (double)cum);
    }
    put_suffixed(m, name, "_bucket", lname, lval, "+Inf");
    put_value(m, (double)h->count);
    put_suffixed(m, name, "_sum", lname, lval, NULL);
    put_value(m, (double)h->sum / per_unit);
    put_suffixed(m, name, "_count", lname, lval, NULL);
    put_value(m, (double)h->count);
}
