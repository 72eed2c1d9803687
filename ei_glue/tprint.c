/*
 * Canonical external term format -> Erlang syntax and JSON; the caret
 * rendering of parse errors. See tparse.h for the output conventions.
 *
 * Model. The input is first rewritten by term_canon into scratch memory,
 * which validates all of it (bounds, counts, depth, atom UTF-8) and leaves
 * one encoding per type to print. The printers then walk the canonical
 * bytes with a cursor. Every read is still checked against the end, so a
 * wrong assumption gives -EINVAL rather than an over-read. Recursion depth
 * is bounded by term_canon's TERM_MAX_DEPTH; list tails are flattened by
 * the canonical form, so long lists do not recurse. Whatever fails, the
 * caller's buf is truncated back to its original length.
 *
 * The reserved words live here too: tprint quotes exactly the atoms that
 * tparse refuses bare, and both read the list below.
 */
#include "tparse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term.h"

struct cur {
    const uint8_t *in;
    size_t len, pos;
    struct buf *out;
    char atom[256 * 4 + 1];  /* converted atom text; not in recursive frames */
};

static int print_term(struct cur *c);
static int json_term(struct cur *c);

/* ---- output helpers ---- */

static int out_mem(struct cur *c, const void *p, size_t n) { return buf_append(c->out, p, n); }

static int out_str(struct cur *c, const char *s) { return out_mem(c, s, strlen(s)); }

static int out_u64(struct cur *c, uint64_t v)
{
    char t[24];
    return out_mem(c, t, (size_t)snprintf(t, sizeof t, "%" PRIu64, v));
}

static int out_cp(struct cur *c, uint32_t cp)
{
    uint8_t u[4];
    return out_mem(c, u, tparse__utf8_put(u, cp));
}

/* The next n input bytes, or NULL when fewer remain. */
static const uint8_t *take(struct cur *c, size_t n)
{
    if (c->len - c->pos < n)
        return NULL;
    c->pos += n;
    return c->in + c->pos - n;
}

/* ---- character classes (io_lib's printable_latin1/unicode_list) ---- */

static int printable_latin1(uint32_t ch)
{
    return (ch >= 32 && ch <= 126) || (ch >= 160 && ch <= 255) || (ch >= 8 && ch <= 13) || ch == 27;
}

static int printable_unicode(uint32_t ch)
{
    return printable_latin1(ch) || (ch > 255 && ch != 0xFFFE && ch != 0xFFFF);
}

/* 1 if d[0..n) is strict UTF-8 (of printable characters only, when
 * `printable`), else 0. *wide is set when a byte is >= 0x80. */
static int utf8_ok(const uint8_t *d, size_t n, int printable, int *wide)
{
    uint32_t cp;
    *wide = 0;
    for (size_t i = 0; i < n;) {
        *wide |= d[i] >= 0x80;
        if (tparse__utf8_next(d, n, &i, &cp) < 0 || (printable && !printable_unicode(cp)))
            return 0;
    }
    return 1;
}

static int latin1_ok(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!printable_latin1(d[i]))
            return 0;
    return 1;
}

/* OTP 25's reserved words (maybe/else are not reserved there by default). */
int tparse__reserved(const char *s, size_t n)
{
    static const char *const words[] = {
        "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr",
        "bxor", "case", "catch", "cond", "div", "end", "fun", "if", "let", "not",
        "of", "or", "orelse", "receive", "rem", "try", "when", "xor"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0)
            return 1;
    return 0;
}

/* ---- quoted text ---- */

/* One character inside '...' or "...", escaped the way io_lib does:
 * named escapes, octal for other control characters (and 128..159). */
static int out_quoted_cp(struct cur *c, uint32_t cp, char q)
{
    static const char named_from[] = "\n\r\t\v\b\f\033\177", named_to[] = "nrtvbfed";
    char t[16];
    const char *k = cp && cp < 128 ? strchr(named_from, (int)cp) : NULL;
    if (cp == (uint32_t)q || cp == '\\')
        return out_mem(c, (const char[]){'\\', (char)cp}, 2);
    if (k)
        return out_mem(c, (const char[]){'\\', named_to[k - named_from]}, 2);
    if (cp < 32 || (cp >= 127 && cp < 160))
        return out_mem(c, t, (size_t)snprintf(t, sizeof t, "\\%03o", (unsigned)cp));
    if (!printable_unicode(cp))
        return out_mem(c, t, (size_t)snprintf(t, sizeof t, "\\x{%X}", (unsigned)cp));
    return out_cp(c, cp);
}

/* s[0..n) as a quoted Erlang string/atom; `latin1` says each byte is a
 * character, else s is UTF-8 (valid: it comes from term_canon). */
static int out_quoted(struct cur *c, const uint8_t *s, size_t n, int latin1, char q)
{
    int rc = out_mem(c, &q, 1);
    uint32_t cp;
    for (size_t i = 0; i < n && !rc;) {
        if (latin1)
            cp = s[i++];
        else if (tparse__utf8_next(s, n, &i, &cp) < 0)
            return -EINVAL;
        rc = out_quoted_cp(c, cp, q);
    }
    return rc ? rc : out_mem(c, &q, 1);
}

static int atom_bare(const uint8_t *s, size_t n)
{
    uint32_t cp;
    size_t i = 0;
    if (n == 0 || tparse__reserved((const char *)s, n))
        return 0;
    for (int first = 1; i < n; first = 0)
        if (tparse__utf8_next(s, n, &i, &cp) < 0 ||
            !(first ? tparse__atom_start(cp) : tparse__atom_char(cp)))
            return 0;
    return 1;
}

/* JSON string of s[0..n) (latin1: one character per byte, else UTF-8). */
static int out_json_str(struct cur *c, const uint8_t *s, size_t n, int latin1)
{
    int rc = out_mem(c, "\"", 1);
    for (size_t i = 0; i < n && !rc; i++) {
        char t[8];
        if (s[i] == '"' || s[i] == '\\')
            rc = out_mem(c, (const char[]){'\\', (char)s[i]}, 2);
        else if (s[i] < 0x20)
            rc = out_mem(c, t, (size_t)snprintf(t, sizeof t, "\\u%04x", s[i]));
        else if (latin1 && s[i] >= 0x80)
            rc = out_cp(c, s[i]);
        else
            rc = out_mem(c, s + i, 1);
    }
    return rc ? rc : out_mem(c, "\"", 1);
}

/* ---- atoms ---- */

/* UTF-8 text of the atom at the cursor. Canonical atoms are used in place
 * (an atom may hold U+0000, so no C strings); latin-1 ones, found only in
 * funs kept verbatim, are converted into c->atom. */
static int get_atom(struct cur *c, const uint8_t **s, size_t *n)
{
    const uint8_t *h = take(c, 1), *l;
    if (h && (*h == TT_SMALL_ATOM_UTF8 || *h == TT_ATOM_UTF8)) {
        if (!(l = take(c, *h == TT_ATOM_UTF8 ? 2 : 1)))
            return -EINVAL;
        *n = *h == TT_ATOM_UTF8 ? get_u16(l) : l[0];
        return (*s = take(c, *n)) ? 0 : -EINVAL;
    }
    c->pos -= h != NULL;
    if (term_get_atom(c->in, c->len, &c->pos, c->atom, sizeof c->atom))
        return -EINVAL;
    *s = (const uint8_t *)c->atom;
    *n = strlen(c->atom);
    return 0;
}

static int print_atom(struct cur *c)
{
    const uint8_t *s;
    size_t n;
    int rc = get_atom(c, &s, &n);
    if (rc)
        return rc;
    return atom_bare(s, n) ? out_mem(c, s, n) : out_quoted(c, s, n, 0, '\'');
}

static int json_atom(struct cur *c)
{
    const uint8_t *s;
    size_t n;
    int rc = get_atom(c, &s, &n);
    if (rc || (rc = out_str(c, "{\"atom\": ")) || (rc = out_json_str(c, s, n, 0)))
        return rc;
    return out_mem(c, "}", 1);
}

/* ---- numbers ---- */

/* Decimal digits of the little-endian magnitude d[0..n) by repeated
 * division by 10^9 of a scratch copy (quadratic, fine for display). */
static int out_magnitude(struct cur *c, const uint8_t *d, size_t n)
{
    uint8_t *w = malloc(n ? n : 1);
    uint32_t *chunk = malloc((n / 3 + 2) * sizeof *chunk);
    size_t nc = 0;
    int rc = -ENOMEM;
    if (!w || !chunk)
        goto done;
    memcpy(w, d, n);
    while (n && w[n - 1] == 0)
        n--;
    do {
        uint64_t rem = 0;
        for (size_t i = n; i-- > 0;) {
            uint64_t cur = rem << 8 | w[i];
            w[i] = (uint8_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        chunk[nc++] = (uint32_t)rem;
        while (n && w[n - 1] == 0)
            n--;
    } while (n);
    rc = out_u64(c, chunk[nc - 1]);
    for (size_t i = nc - 1; i-- > 0 && !rc;) {
        char t[16];
        rc = out_mem(c, t, (size_t)snprintf(t, sizeof t, "%09u", (unsigned)chunk[i]));
    }
done:
    free(w);
    free(chunk);
    return rc;
}

/* Integer of any encoding; `json` wraps bignums as {"integer": "..."}. */
static int print_int(struct cur *c, int json)
{
    int64_t v;
    size_t p = c->pos;
    int rc = term_get_int64(c->in, c->len, &p, &v);
    if (rc != -ERANGE) {
        char t[24];
        c->pos = p;
        return rc ? -EINVAL : out_mem(c, t, (size_t)snprintf(t, sizeof t, "%" PRId64, v));
    }
    const uint8_t *h = take(c, 1), *nb, *sign, *d;
    size_t hl = h && h[0] == TT_LARGE_BIG ? 4 : 1, n;
    if (!h || !(nb = take(c, hl)))
        return -EINVAL;
    n = hl == 4 ? get_u32(nb) : nb[0];
    if (!(sign = take(c, 1)) || !(d = take(c, n)))
        return -EINVAL;
    if ((json && (rc = out_str(c, "{\"integer\": \""))) || (*sign && (rc = out_mem(c, "-", 1))))
        return rc;
    rc = out_magnitude(c, d, n);
    return rc || !json ? rc : out_str(c, "\"}");
}

/* Shortest round-trip digits D (n of them) and exponent e, value D*10^e,
 * laid out the way OTP 25's float_to_list(F, [short]) does: fixed notation
 * only for exponents in a small window around the digits (and never for
 * integers from 2^53 up, where fixed notation would suggest precision the
 * float lacks), else d.ddde[-]x; always a '.' with a digit after it. */
static size_t float_layout(const char *dg, int n, int e, int neg, char *o, size_t cap)
{
    uint64_t m = strtoull(dg, NULL, 10);
    int sci = n + e - 1, lo = n == 1 ? -4 : -(n + 2), hi = n == 1 ? 2 : sci >= 10 ? 2 : 1;
    int fixed = e >= lo && e <= hi &&
        !((e == 0 && m >= (1ull << 53)) || (e == 1 && m > (1ull << 52) / 5) ||
          (e == 2 && m > (1ull << 51) / 25));
    const char *sg = neg ? "-" : "";
    int k;
    if (!fixed)
        k = snprintf(o, cap, "%s%c.%se%d", sg, dg[0], n > 1 ? dg + 1 : "0", sci);
    else if (e >= 0)
        k = snprintf(o, cap, "%s%s%.*s.0", sg, dg, e, "00");
    else if (n + e > 0)
        k = snprintf(o, cap, "%s%.*s.%s", sg, n + e, dg, dg + n + e);
    else
        k = snprintf(o, cap, "%s0.%.*s%s", sg, -(n + e), "000", dg);
    return k < 0 ? 0 : (size_t)k < cap ? (size_t)k : cap - 1;
}

/* Erlang ~p text of a finite double into o[0..cap). The shortest
 * precision whose "%e" output reads back exactly gives the digits. */
static size_t float_text(double v, char *o, size_t cap)
{
    char t[40], dg[20];
    int prec, n = 0;
    if (v == 0)
        return (size_t)snprintf(o, cap, "%s0.0", memcmp(&v, &(double){0}, 8) ? "-" : "");
    for (prec = 1; prec < 17; prec++) {
        snprintf(t, sizeof t, "%.*e", prec - 1, v);
        if (strtod(t, NULL) == v)
            break;
    }
    snprintf(t, sizeof t, "%.*e", prec - 1, v);
    const char *s = t;
    for (; *s != 'e'; s++)  /* digits only: the radix character is locale's */
        if (*s >= '0' && *s <= '9')
            dg[n++] = *s;
    while (n > 1 && dg[n - 1] == '0')
        n--;
    dg[n] = 0;
    return float_layout(dg, n, atoi(s + 1) - (n - 1), v < 0, o, cap);
}

static int print_float(struct cur *c)
{
    const uint8_t *b = take(c, 9);
    char t[48];
    double v;
    if (!b)
        return -EINVAL;
    uint64_t bits = get_u64(b + 1);
    memcpy(&v, &bits, 8);
    return out_mem(c, t, float_text(v, t, sizeof t));
}

/* ---- strings and lists ---- */

/* A LIST_EXT at the cursor whose elements are printable small integers
 * and whose tail is NIL (longer than STRING_EXT allows): prints as a
 * string. Returns 1 and sets *n to its length if so. */
static int list_is_text(const struct cur *c, size_t *n)
{
    const uint8_t *d = c->in + c->pos;
    size_t left = c->len - c->pos;
    if (left < 6 || d[0] != TT_LIST)
        return 0;
    *n = get_u32(d + 1);
    if (*n > (left - 6) / 2)
        return 0;
    for (size_t i = 0; i < *n; i++)
        if (d[5 + 2 * i] != TT_SMALL_INT || !printable_latin1(d[6 + 2 * i]))
            return 0;
    return d[5 + 2 * *n] == TT_NIL;
}

/* Printable text of a STRING_EXT or text-like LIST_EXT, consumed. The
 * bytes are copied out so both list forms share one path. */
static int print_text(struct cur *c, int json)
{
    const uint8_t *d = c->in + c->pos;
    size_t n, step;
    uint8_t *s;
    int rc;
    if (d[0] == TT_STRING) {
        n = get_u16(d + 1);
        step = 1;
        d += 3;
        c->pos += 3 + n;
    } else {
        list_is_text(c, &n);
        step = 2;
        d += 6;
        c->pos += 6 + 2 * n;
    }
    if (!(s = malloc(n ? n : 1)))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        s[i] = d[i * step];
    rc = json ? out_str(c, "{\"string\": ") : 0;
    if (!rc)
        rc = json ? out_json_str(c, s, n, 1) : out_quoted(c, s, n, 1, '"');
    free(s);
    return rc || !json ? rc : out_mem(c, "}", 1);
}

/* A STRING_EXT that is not printable text: [1,2,3]. */
static int print_bytes_list(struct cur *c, int json)
{
    const uint8_t *h = take(c, 3), *d;
    if (!h || !(d = take(c, get_u16(h + 1))))
        return -EINVAL;
    int rc = out_mem(c, "[", 1);
    for (size_t i = 0; i < get_u16(h + 1) && !rc; i++) {
        if (i)
            rc = out_str(c, json ? ", " : ",");
        if (!rc)
            rc = out_u64(c, d[i]);
    }
    return rc ? rc : out_mem(c, "]", 1);
}

static int print_string(struct cur *c, int json)
{
    const uint8_t *h = c->in + c->pos;
    if (c->len - c->pos < 3 || c->len - c->pos - 3 < get_u16(h + 1))
        return -EINVAL;
    if (latin1_ok(h + 3, get_u16(h + 1)))
        return print_text(c, json);
    return print_bytes_list(c, json);
}

/* n terms separated by `sep` (json_term or print_term each). */
static int print_seq(struct cur *c, size_t n, const char *sep, int json)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (i && (rc = out_str(c, sep)))
            break;
        rc = json ? json_term(c) : print_term(c);
    }
    return rc;
}

/* Whether the n list elements at the cursor are followed by NIL. */
static int list_proper(const struct cur *c, size_t n)
{
    size_t p = c->pos;
    for (size_t i = 0; i < n; i++)
        if (term_skip(c->in, c->len, &p))
            return -EINVAL;
    return p < c->len && c->in[p] == TT_NIL;
}

/* LIST_EXT: [a,b] or [a,b|t]; JSON: [a, b] or {"improper_list": [a, b],
 * "tail": t}, which has to be known before the first element. */
static int print_list(struct cur *c, int json)
{
    size_t n;
    if (list_is_text(c, &n))
        return print_text(c, json);
    const uint8_t *h = take(c, 5);
    if (!h)
        return -EINVAL;
    n = get_u32(h + 1);
    int proper = json ? list_proper(c, n) : 1, rc;
    if (proper < 0)
        return proper;
    if ((rc = out_str(c, json && !proper ? "{\"improper_list\": [" : "[")) ||
        (rc = print_seq(c, n, json ? ", " : ",", json)))
        return rc;
    if (c->pos < c->len && c->in[c->pos] == TT_NIL) {
        c->pos++;
        return out_mem(c, "]", 1);
    }
    if ((rc = out_str(c, json ? "], \"tail\": " : "|")) || (rc = json ? json_term(c) : print_term(c)))
        return rc;
    return out_str(c, json ? "}" : "]");
}

/* ---- binaries ---- */

static int print_binary(struct cur *c, int json)
{
    const uint8_t *h = take(c, 5), *d;
    int wide, rc;
    if (!h || !(d = take(c, get_u32(h + 1))))
        return -EINVAL;
    size_t n = get_u32(h + 1);
    if (json && utf8_ok(d, n, 0, &wide)) {
        if ((rc = out_str(c, "{\"binary\": ")) || (rc = out_json_str(c, d, n, 0)))
            return rc;
        return out_str(c, "}");
    }
    /* Erlang text: printable UTF-8 (marked /utf8 when not plain ASCII),
     * else printable Latin-1, else the byte values. */
    int utf8 = !json && n && utf8_ok(d, n, 1, &wide);
    if (utf8 || (!json && n && latin1_ok(d, n))) {
        if ((rc = out_str(c, "<<")) || (rc = out_quoted(c, d, n, !utf8, '"')))
            return rc;
        return out_str(c, utf8 && wide ? "/utf8>>" : ">>");
    }
    rc = out_str(c, json ? "{\"bytes\": [" : "<<");
    for (size_t i = 0; i < n && !rc; i++)
        if (!(i && (rc = out_str(c, json ? ", " : ","))))
            rc = out_u64(c, d[i]);
    return rc ? rc : out_str(c, json ? "]}" : ">>");
}

/* <<1,2,5:3>>: whole bytes, then the used high bits of the last byte. */
static int print_bitstring(struct cur *c)
{
    const uint8_t *h = take(c, 6), *d;
    if (!h || !(d = take(c, get_u32(h + 1))) || get_u32(h + 1) == 0 || h[5] < 1 || h[5] > 8)
        return -EINVAL;
    size_t n = get_u32(h + 1);
    int rc = out_str(c, "<<");
    for (size_t i = 0; i + 1 < n && !rc; i++)
        if (!(rc = out_u64(c, d[i])))
            rc = out_mem(c, ",", 1);
    if (rc || (rc = out_u64(c, d[n - 1] >> (8 - h[5]))) || (rc = out_mem(c, ":", 1)))
        return rc;
    return (rc = out_u64(c, h[5])) ? rc : out_str(c, ">>");
}

/* ---- pids, ports, refs, funs ---- */

static int print_node(struct cur *c)
{
    const uint8_t *s;
    size_t n;
    int rc = get_atom(c, &s, &n);
    return rc ? rc : out_mem(c, s, n);
}

/* <NODE.ID.SERIAL>, #Port<NODE.ID>, #Ref<NODE.Wn...W0> (canonical forms). */
static int print_ident(struct cur *c)
{
    int tag = c->in[c->pos++], rc;
    size_t words = 0;
    const uint8_t *f;
    if (tag == TT_NEWER_REF) {
        if (!(f = take(c, 2)))
            return -EINVAL;
        words = get_u16(f);
    }
    if ((rc = out_str(c, tag == TT_NEW_PID ? "<" : tag == TT_V4_PORT ? "#Port<" : "#Ref<")) ||
        (rc = print_node(c)))
        return rc;
    if (tag != TT_NEWER_REF) {  /* id (u32 or u64), serial, creation */
        if (!(f = take(c, 12)))
            return -EINVAL;
        if ((rc = out_mem(c, ".", 1)) || (rc = out_u64(c, tag == TT_NEW_PID ? get_u32(f) : get_u64(f))))
            return rc;
        if (tag == TT_NEW_PID && ((rc = out_mem(c, ".", 1)) || (rc = out_u64(c, get_u32(f + 4)))))
            return rc;
        return out_mem(c, ">", 1);
    }
    if (!(f = take(c, 4 + 4 * words)))  /* creation, then the id words */
        return -EINVAL;
    for (size_t i = words; i-- > 0 && !rc;)
        if (!(rc = out_mem(c, ".", 1)))
            rc = out_u64(c, get_u32(f + 4 + 4 * i));
    return rc ? rc : out_mem(c, ">", 1);
}

static int print_small(struct cur *c)
{
    int64_t v;
    char t[24];
    if (term_get_int64(c->in, c->len, &c->pos, &v))
        return -EINVAL;
    return out_mem(c, t, (size_t)snprintf(t, sizeof t, "%" PRId64, v));
}

/* fun M:F/A; #Fun<MODULE.INDEX.UNIQ> for local funs, whose bytes were
 * validated and kept verbatim by term_canon. */
static int print_fun(struct cur *c)
{
    size_t start = c->pos, end = start;
    int tag = c->in[start], rc;
    if (term_skip(c->in, c->len, &end))
        return -EINVAL;
    c->pos = start + (tag == TT_EXPORT ? 1 : tag == TT_NEW_FUN ? 30 : 5);
    if (tag == TT_EXPORT)
        return (rc = out_str(c, "fun ")) || (rc = print_atom(c)) || (rc = out_mem(c, ":", 1)) ||
               (rc = print_atom(c)) || (rc = out_mem(c, "/", 1)) ? rc : print_small(c);
    if (tag == TT_FUN && term_skip(c->in, c->len, &c->pos))  /* the creator pid */
        return -EINVAL;
    if ((rc = out_str(c, "#Fun<")) || (rc = print_node(c)) || (rc = out_mem(c, ".", 1)) ||
        (rc = print_small(c)) || (rc = out_mem(c, ".", 1)) || (rc = print_small(c)))
        return rc;
    c->pos = end;
    return out_mem(c, ">", 1);
}

/* ---- containers ---- */

static int print_tuple(struct cur *c, int json)
{
    uint32_t n;
    int rc;
    if (term_get_tuple(c->in, c->len, &c->pos, &n))
        return -EINVAL;
    if ((rc = out_str(c, json ? "{\"tuple\": [" : "{")) || (rc = print_seq(c, n, json ? ", " : ",", json)))
        return rc;
    return out_str(c, json ? "]}" : "}");
}

static int print_map(struct cur *c, int json)
{
    const uint8_t *h = take(c, 5);
    int rc;
    if (!h)
        return -EINVAL;
    rc = out_str(c, json ? "{\"map\": [" : "#{");
    for (uint32_t i = 0; i < get_u32(h + 1) && !rc; i++) {
        if (i && (rc = out_str(c, json ? ", " : ",")))
            break;
        if (json && !(rc = out_mem(c, "[", 1)) && !(rc = json_term(c)) && !(rc = out_str(c, ", ")) &&
            !(rc = json_term(c)))
            rc = out_mem(c, "]", 1);
        if (!json && !(rc = print_term(c)) && !(rc = out_str(c, " => ")))
            rc = print_term(c);
    }
    return rc ? rc : out_str(c, json ? "]}" : "}");
}

/* ---- dispatch ---- */

static int print_term(struct cur *c)
{
    switch (c->pos < c->len ? c->in[c->pos] : -1) {
    case TT_SMALL_INT: case TT_INT: case TT_SMALL_BIG: case TT_LARGE_BIG:
        return print_int(c, 0);
    case TT_NEW_FLOAT:
        return print_float(c);
    case TT_SMALL_ATOM_UTF8: case TT_ATOM_UTF8: case TT_ATOM: case TT_SMALL_ATOM:
        return print_atom(c);
    case TT_SMALL_TUPLE: case TT_LARGE_TUPLE:
        return print_tuple(c, 0);
    case TT_NIL:
        c->pos++;
        return out_str(c, "[]");
    case TT_STRING:
        return print_string(c, 0);
    case TT_LIST:
        return print_list(c, 0);
    case TT_BINARY:
        return print_binary(c, 0);
    case TT_BIT_BINARY:
        return print_bitstring(c);
    case TT_NEW_PID: case TT_V4_PORT: case TT_NEWER_REF:
        return print_ident(c);
    case TT_EXPORT: case TT_NEW_FUN: case TT_FUN:
        return print_fun(c);
    case TT_MAP:
        return print_map(c, 0);
    default:
        return -EINVAL;
    }
}

/* Terms JSON has no shape for: {"kind": "<tprint text>"}. */
static int json_opaque(struct cur *c, const char *kind)
{
    struct buf text, *out = c->out;
    int rc;
    buf_init(&text);
    c->out = &text;
    rc = print_term(c);
    c->out = out;
    if (!rc && !(rc = out_str(c, "{\"")) && !(rc = out_str(c, kind)) && !(rc = out_str(c, "\": ")) &&
        !(rc = out_json_str(c, text.data, text.len, 0)))
        rc = out_mem(c, "}", 1);
    buf_free(&text);
    return rc;
}

static int json_term(struct cur *c)
{
    switch (c->pos < c->len ? c->in[c->pos] : -1) {
    case TT_SMALL_INT: case TT_INT: case TT_SMALL_BIG: case TT_LARGE_BIG:
        return print_int(c, 1);
    case TT_NEW_FLOAT:
        return print_float(c);
    case TT_SMALL_ATOM_UTF8: case TT_ATOM_UTF8:
        return json_atom(c);
    case TT_SMALL_TUPLE: case TT_LARGE_TUPLE:
        return print_tuple(c, 1);
    case TT_NIL:
        c->pos++;
        return out_str(c, "[]");
    case TT_STRING:
        return print_string(c, 1);
    case TT_LIST:
        return print_list(c, 1);
    case TT_BINARY:
        return print_binary(c, 1);
    case TT_BIT_BINARY:
        return json_opaque(c, "bitstring");
    case TT_NEW_PID:
        return json_opaque(c, "pid");
    case TT_V4_PORT:
        return json_opaque(c, "port");
    case TT_NEWER_REF:
        return json_opaque(c, "ref");
    case TT_EXPORT: case TT_NEW_FUN: case TT_FUN:
        return json_opaque(c, "fun");
    case TT_MAP:
        return print_map(c, 1);
    default:
        return -EINVAL;
    }
}

/* ---- entry points ---- */

static int render(const uint8_t *t, size_t len, struct buf *out, int json)
{
    struct buf canon;
    size_t pos = len && t[0] == TT_VERSION ? 1 : 0, start = out->len;
    int rc;
    buf_init(&canon);
    rc = term_canon(t, len, &pos, &canon);
    if (!rc && pos != len)
        rc = -EINVAL;  /* bytes after the term */
    if (!rc) {
        struct cur c = {.in = canon.data, .len = canon.len, .out = out};
        rc = json ? json_term(&c) : print_term(&c);
        if (!rc && c.pos != c.len)
            rc = -EINVAL;
    }
    if (rc)
        out->len = start;
    buf_free(&canon);
    return rc;
}

int tprint(const uint8_t *t, size_t len, struct buf *out) { return render(t, len, out, 0); }

int tprint_json(const uint8_t *t, size_t len, struct buf *out) { return render(t, len, out, 1); }

/* ---- caret ---- */

#define CARET_BEFORE 60  /* bytes of context kept left of the caret */
#define CARET_AFTER 40

struct sink {
    char *o;
    size_t cap, n;
};

static void sink_put(struct sink *k, const char *s, size_t n)
{
    for (size_t i = 0; i < n && k->n + 1 < k->cap; i++)
        k->o[k->n++] = s[i];
}

void tparse_caret(const char *text, const struct tparse_err *e, char *out, size_t cap)
{
    struct sink k = {out, cap, 0};
    size_t len = strlen(text), pos = e->pos > len ? len : e->pos, ls = pos, le = pos;
    if (cap == 0)
        return;
    while (ls > 0 && text[ls - 1] != '\n')
        ls--;
    while (le < len && text[le] != '\n')
        le++;
    int cut_l = pos - ls > CARET_BEFORE, cut_r = le - pos > CARET_AFTER;
    if (cut_l)
        for (ls = pos - CARET_BEFORE; ls < pos && (text[ls] & 0xC0) == 0x80;)
            ls++;
    if (cut_r)
        for (le = pos + CARET_AFTER; le > pos && (text[le] & 0xC0) == 0x80;)
            le--;
    sink_put(&k, "...", cut_l ? 3 : 0);
    for (size_t i = ls; i < le; i++)  /* control characters would garble the line */
        sink_put(&k, (unsigned char)text[i] < ' ' && text[i] != '\t' ? "?" : text + i, 1);
    sink_put(&k, cut_r ? "...\n" : "\n", cut_r ? 4 : 1);
    sink_put(&k, "   ", cut_l ? 3 : 0);
    for (size_t i = ls; i < pos; i++)
        if ((text[i] & 0xC0) != 0x80)
            sink_put(&k, text[i] == '\t' ? "\t" : " ", 1);
    sink_put(&k, "^", 1);
    out[k.n] = 0;
}
