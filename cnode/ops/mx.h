/*
 * Writer of the Prometheus text exposition format (version 0.0.4), pure:
 * it appends to a struct buf and knows nothing of where the numbers come
 * from. A family is announced once (# HELP, # TYPE) and followed by its
 * samples; label values are escaped (\\, \", \n), so a node name or a
 * reason string from a peer cannot break the format.
 *
 * Errors are sticky: after the first failed append (ENOMEM) every call is
 * a no-op and m->err says so, so a page is built without a check per line.
 */
#ifndef LOCKERD_MX_H
#define LOCKERD_MX_H

#include <stddef.h>

#include "../core/buf.h"
#include "../core/hist.h"

#define MX_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct mx {
    struct buf *out;
    int err;         /* 0 or -ENOMEM */
};

/* type: "counter", "gauge", "histogram". help: one line, escaped here. */
void mx_family(struct mx *m, const char *name, const char *type, const char *help);
/* One sample; the variadic part is label name / value pairs ending with
 * NULL: mx_sample(m, "x_total", 3, "peer", "a@h", NULL). */
void mx_sample(struct mx *m, const char *name, double v, ...);
/* A histogram of h's integer observations divided by per_unit (1e6:
 * microseconds to seconds): name_bucket{le=...} cumulative, +Inf, name_sum, name_count;
 * lname/lval: one extra label, or NULL. */
void mx_hist(struct mx *m, const char *name, const struct hist *h, double per_unit,
             const char *lname, const char *lval);

/* A value as the format spells it: integers without exponent, +Inf, NaN. */
int mx_format_value(char *dst, size_t cap, double v);

#endif
