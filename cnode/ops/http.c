/*
 * HTTP request head parser; see http.h. The head is located first (the
 * empty line), then parsed as a whole: a truncated head can never be
 * mistaken for a complete one, so "need more" is exactly "no empty line
 * yet and under the bound".
 */
#include "http.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

/* Length of the head including its final empty line, or 0 if absent. */
static size_t head_end(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n')
            continue;
        /* An empty line: "\n\n" or "\n\r\n" ending here. */
        if (i + 1 < n && p[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* One line [p, *end): returns its length without CR/LF; *next is the start
 * of the following one. */
static size_t line_of(const char *p, const char *lim, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(lim - p));
    if (!nl) {
        *next = lim;
        return (size_t)(lim - p);
    }
    *next = nl + 1;
    return (size_t)(nl - p) - (nl > p && nl[-1] == '\r');
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int parse_request_line(const char *l, size_t n, struct http_req *r)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)l[i]))
        i++;
    if (i == 0 || i >= n || l[i] != ' ')
        return -EINVAL;
    r->method = i == 3 && !memcmp(l, "GET", 3)    ? HTTP_GET
                : i == 4 && !memcmp(l, "HEAD", 4) ? HTTP_HEAD
                                                  : HTTP_OTHER;
    const char *t = l + i + 1, *end = l + n;
    const char *sp = memchr(t, ' ', (size_t)(end - t));
    if (!sp || sp == t || *t != '/')
        return -EINVAL;
    /* The path ends at the query, found in the same pass that checks the
     * target's bytes. */
    const char *qm = NULL;
    for (const char *q = t; q < sp; q++) {
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return -EINVAL;
        if (*q == '?' && !qm)
            qm = q;
    }
    size_t plen = (size_t)((qm ? qm : sp) - t);
    if (plen >= sizeof r->path)
        return -E2BIG;
    memcpy(r->path, t, plen);
    r->path[plen] = '\0';
    const char *v = sp + 1;
    if (end - v != 8 || memcmp(v, "HTTP/1.", 7) || (v[7] != '0' && v[7] != '1'))
        return -EINVAL;
    r->minor = v[7] - '0';
    return 0;
}

static int parse_header(const char *l, size_t n, struct http_req *r)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)l[i]))
        i++;
    if (i == 0 || i >= n || l[i] != ':')
        return -EINVAL;
    const char *v = l + i + 1, *end = l + n;
    for (const char *q = v; q < end; q++)
        if ((unsigned char)*q < 0x20 && *q != '\t')
            return -EINVAL;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    if (i == 17 && !strncasecmp(l, "transfer-encoding", 17))
        r->has_body = 1;
    if (i == 14 && !strncasecmp(l, "content-length", 14)) {
        int digits = 0;
        for (; v < end && *v >= '0' && *v <= '9'; v++, digits++)
            if (*v != '0')
                r->has_body = 1;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        if (!digits || v != end)
            return -EINVAL;
    }
    return 0;
}

int http_parse(const char *p, size_t n, size_t max_head, struct http_req *r)
{
    size_t len = head_end(p, n < max_head ? n : max_head);
    if (!len)
        return n >= max_head ? -E2BIG : 0;
    memset(r, 0, sizeof *r);
    const char *lim = p + len, *next;
    size_t ll = line_of(p, lim, &next);
    int rc = parse_request_line(p, ll, r);
    if (rc)
        return rc;
    for (const char *l = next; l < lim; l = next) {
        ll = line_of(l, lim, &next);
        if (ll == 0)
            break; /* the empty line ending the head */
        if ((rc = parse_header(l, ll, r)))
            return rc;
    }
    return (int)len;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}
