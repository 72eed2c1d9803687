/*
 * Erlang external term format: validation, canonical form, small decoders
 * and the byte hash. The canonical rules are listed in term.h.
 *
 * Model. One recursive walker serves two modes over the same input:
 *   W_CHECK  validate while the input is canonical, stop with T_REWRITE at
 *            the first encoding that is not;
 *   W_WRITE  validate and append the canonical encoding to `out`.
 * term_canon_span runs W_CHECK and falls back to W_WRITE only when needed,
 * so a term BEAM already encoded canonically costs one read-only pass and
 * no copy. Validation is canonicalisation (only canonical map keys reveal
 * duplicates), so term_skip is term_canon_span into scratch memory.
 *
 * Cost: W_CHECK never falls back below the top level and W_WRITE never
 * calls W_CHECK, so every term costs at most two passes; a map (or fun)
 * nested k deep is copied k times through scratch buffers, bounded by
 * TERM_MAX_DEPTH.
 *
 * Invariants: pos <= len at every step and each read is bounds-checked
 * first; a count read from the input is compared with the bytes left (every
 * element takes at least one byte) before it sizes a loop or an allocation;
 * the walker recurses at most TERM_MAX_DEPTH deep; a list is walked
 * iteratively along its tails, so [1|[2|[3|...]]] does not recurse.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* qsort_r */
#endif
#include "term.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum walk_mode { W_CHECK, W_WRITE };

struct walk {
    const uint8_t *in;
    size_t len;
    struct buf *out;      /* W_WRITE: receives the canonical bytes */
    enum walk_mode mode;
};

#define T_REWRITE 1       /* W_CHECK: input not canonical, rewrite it */

static int walk(struct walk *w, size_t *pos, int depth);

static inline size_t left(const struct walk *w, size_t p) { return w->len - p; }

static inline int writing(const struct walk *w) { return w->mode == W_WRITE; }

/* The input at hand differs from its canonical encoding. */
static int noncanon(const struct walk *w) { return w->mode == W_CHECK ? T_REWRITE : 0; }

static int tag_is_atom(int t)
{
    return t == TT_ATOM || t == TT_SMALL_ATOM || t == TT_ATOM_UTF8 || t == TT_SMALL_ATOM_UTF8;
}

static int tag_is_int(int t)
{
    return t == TT_SMALL_INT || t == TT_INT || t == TT_SMALL_BIG || t == TT_LARGE_BIG;
}

/* ---- atoms ---- */

/* Code points in s[0..n) when it is strict UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF: what BEAM accepts in atoms), else -1. */
static long utf8_chars(const uint8_t *s, size_t n)
{
    long chars = 0;
    size_t i = 0;
    while (i < n) {
        uint64_t word;
        if (n - i >= 8 && (memcpy(&word, s + i, 8), !(word & 0x8080808080808080ull))) {
            i += 8;  /* eight ASCII characters at once: atoms are mostly ASCII */
            chars += 8;
            continue;
        }
        chars++;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 0;
        static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
        if (k == 0 || k >= n - i)
            return -1;
        uint32_t cp = c & (0x3F >> k);
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return -1;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        i += k + 1;
    }
    return chars;
}

struct atom {
    const uint8_t *s;
    size_t n;       /* bytes as encoded */
    size_t u8len;   /* bytes once in UTF-8 */
    int tag;
    int latin1;
};

/* Any atom encoding at in[*pos]; checks the text and the 255-char limit. */
static int atom_parse(const uint8_t *in, size_t len, size_t *pos, struct atom *a)
{
    size_t p = *pos;
    if (p >= len || !tag_is_atom(in[p]))
        return -EINVAL;
    a->tag = in[p];
    size_t hl = a->tag == TT_ATOM || a->tag == TT_ATOM_UTF8 ? 2 : 1;
    if (len - p < 1 + hl)
        return -EINVAL;
    a->n = hl == 2 ? get_u16(in + p + 1) : in[p + 1];
    p += 1 + hl;
    if (a->n > len - p)
        return -EINVAL;
    a->s = in + p;
    a->latin1 = a->tag == TT_ATOM || a->tag == TT_SMALL_ATOM;
    a->u8len = a->n;
    if (a->latin1) {
        if (a->n > 255)
            return -EINVAL;
        for (size_t i = 0; i < a->n; i++)
            a->u8len += a->s[i] >> 7;
    } else {
        long c = utf8_chars(a->s, a->n);
        if (c < 0 || c > 255)
            return -EINVAL;
    }
    *pos = p + a->n;
    return 0;
}

static int atom_is_canon(const struct atom *a)
{
    return !a->latin1 && (a->tag == TT_SMALL_ATOM_UTF8) == (a->n <= 255);
}

/* Writes the atom's text as UTF-8 at d; returns the end. */
static uint8_t *atom_utf8(uint8_t *d, const struct atom *a)
{
    if (!a->latin1) {
        memcpy(d, a->s, a->n);
        return d + a->n;
    }
    for (size_t i = 0; i < a->n; i++) {
        uint8_t c = a->s[i];
        if (c < 0x80) {
            *d++ = c;
        } else {
            *d++ = (uint8_t)(0xC0 | c >> 6);
            *d++ = (uint8_t)(0x80 | (c & 0x3F));
        }
    }
    return d;
}

static int atom_emit(struct buf *out, const struct atom *a)
{
    int rc = buf_reserve(out, 3 + a->u8len);
    if (rc)
        return rc;
    uint8_t *d = out->data + out->len;
    if (a->u8len <= 255) {
        *d++ = TT_SMALL_ATOM_UTF8;
    } else {
        *d++ = TT_ATOM_UTF8;
        *d++ = (uint8_t)(a->u8len >> 8);
    }
    *d++ = (uint8_t)a->u8len;
    out->len = (size_t)(atom_utf8(d, a) - out->data);
    return 0;
}

static int walk_atom(struct walk *w, size_t *pos)
{
    struct atom a;
    int rc = atom_parse(w->in, w->len, pos, &a);
    if (rc)
        return rc;
    if (writing(w))
        return atom_emit(w->out, &a);
    return atom_is_canon(&a) ? 0 : noncanon(w);
}

/* ---- integers ---- */

struct big {
    const uint8_t *d;  /* little-endian digit bytes */
    size_t n;          /* digits without high zero bytes */
    size_t raw_n;
    uint8_t sign;      /* as encoded: BEAM reads any non-zero as negative */
};

/* SMALL_BIG_EXT or LARGE_BIG_EXT at in[*pos] (tag already known). */
static int big_parse(const uint8_t *in, size_t len, size_t *pos, struct big *b)
{
    size_t p = *pos, hl = in[p] == TT_SMALL_BIG ? 1 : 4;
    if (len - p < 2 + hl)
        return -EINVAL;
    b->raw_n = hl == 1 ? in[p + 1] : get_u32(in + p + 1);
    b->sign = in[p + 1 + hl];
    p += 2 + hl;
    if (b->raw_n > len - p)
        return -EINVAL;
    b->d = in + p;
    b->n = b->raw_n;
    while (b->n && b->d[b->n - 1] == 0)
        b->n--;
    *pos = p + b->raw_n;
    return 0;
}

/* Magnitude of a big of at most 8 significant digit bytes. */
static uint64_t big_mag(const struct big *b)
{
    uint64_t m = 0;
    for (size_t i = b->n; i-- > 0;)
        m = m << 8 | b->d[i];
    return m;
}

/* Any integer encoding that fits int64 (-ERANGE when it does not). */
static int int_parse(const uint8_t *in, size_t len, size_t *pos, int64_t *v)
{
    size_t p = *pos;
    struct big b;
    if (p >= len || !tag_is_int(in[p]))
        return -EINVAL;
    if (in[p] == TT_SMALL_INT || in[p] == TT_INT) {
        size_t n = in[p] == TT_SMALL_INT ? 1 : 4;
        if (len - p < 1 + n)
            return -EINVAL;
        *v = n == 1 ? in[p + 1] : (int32_t)get_u32(in + p + 1);
        *pos = p + 1 + n;
        return 0;
    }
    int rc = big_parse(in, len, &p, &b);
    if (rc)
        return rc;
    uint64_t m = b.n <= 8 ? big_mag(&b) : UINT64_MAX;
    if (b.n > 8 || m > (b.sign ? (uint64_t)1 << 63 : (uint64_t)INT64_MAX))
        return -ERANGE;
    *v = b.sign && m ? -(int64_t)(m - 1) - 1 : (int64_t)m;
    *pos = p;
    return 0;
}

static int emit_int32(struct buf *out, int32_t v)
{
    if (v >= 0 && v <= 255) {
        uint8_t t[2] = {TT_SMALL_INT, (uint8_t)v};
        return buf_append(out, t, 2);
    }
    uint8_t t[5] = {TT_INT};
    put_u32(t + 1, (uint32_t)v);
    return buf_append(out, t, 5);
}

static int walk_big(struct walk *w, size_t *pos)
{
    struct big b;
    int t = w->in[*pos], rc = big_parse(w->in, w->len, pos, &b);
    if (rc)
        return rc;
    uint64_t m = b.n <= 4 ? big_mag(&b) : UINT64_MAX;
    if (m <= (b.sign ? 0x80000000u : 0x7FFFFFFFu)) {
        if (!writing(w))
            return noncanon(w);
        return emit_int32(w->out, b.sign ? (int32_t)(-(int64_t)m) : (int32_t)m);
    }
    int small = b.n <= 255;
    if (!writing(w)) {
        int canon = t == (small ? TT_SMALL_BIG : TT_LARGE_BIG) && b.n == b.raw_n && b.sign <= 1;
        return canon ? 0 : noncanon(w);
    }
    uint8_t h[6] = {small ? TT_SMALL_BIG : TT_LARGE_BIG};
    size_t hl = small ? 3 : 6;
    if (small)
        h[1] = (uint8_t)b.n;
    else
        put_u32(h + 1, (uint32_t)b.n);
    h[hl - 1] = b.sign != 0;
    rc = buf_append(w->out, h, hl);
    return rc ? rc : buf_append(w->out, b.d, b.n);
}

static int walk_int(struct walk *w, size_t *pos)
{
    const uint8_t *in = w->in;
    size_t p = *pos;
    if (in[p] == TT_SMALL_BIG || in[p] == TT_LARGE_BIG)
        return walk_big(w, pos);
    size_t n = in[p] == TT_SMALL_INT ? 1 : 4;
    if (left(w, p + 1) < n)
        return -EINVAL;
    *pos = p + 1 + n;
    if (n == 1)
        return writing(w) ? buf_append(w->out, in + p, 2) : 0;
    int32_t v = (int32_t)get_u32(in + p + 1);
    if (writing(w))
        return emit_int32(w->out, v);
    return v < 0 || v > 255 ? 0 : noncanon(w);
}

/* ---- floats ---- */

#define F64_NEG_ZERO ((uint64_t)1 << 63)

static int f64_finite(uint64_t bits) { return (bits >> 52 & 0x7FF) != 0x7FF; }

static size_t skip_digits(const char *s, size_t *i)
{
    size_t b = *i;
    while (s[*i] >= '0' && s[*i] <= '9')
        (*i)++;
    return *i - b;
}

/* FLOAT_EXT is 31 bytes of "%.20e" text, NUL padded. Accept the grammar BEAM
 * accepts ([+-]D.D[(e|E)[+-]D] then a NUL). strtod runs in the "C" numeric
 * locale lockerd keeps; under another locale parsing fails, never misreads. */
static int old_float_parse(const uint8_t *s, uint64_t *bits)
{
    char txt[32];
    size_t n = 0, i = 0;
    while (n < 31 && s[n]) {
        txt[n] = (char)s[n];
        n++;
    }
    if (n == 31)
        return -EINVAL;
    txt[n] = 0;
    if (txt[i] == '+' || txt[i] == '-')
        i++;
    if (!skip_digits(txt, &i) || txt[i++] != '.' || !skip_digits(txt, &i))
        return -EINVAL;
    if (txt[i] == 'e' || txt[i] == 'E') {
        i++;
        if (txt[i] == '+' || txt[i] == '-')
            i++;
        if (!skip_digits(txt, &i))
            return -EINVAL;
    }
    char *end;
    double d = strtod(txt, &end);
    if (i != n || end != txt + n)
        return -EINVAL;
    memcpy(bits, &d, sizeof d);
    return f64_finite(*bits) ? 0 : -EINVAL;
}

/* -0.0 is written as 0.0: the two are =:= up to OTP 26 (see term.h). */
static int walk_float(struct walk *w, size_t *pos)
{
    size_t p = *pos;
    int t = w->in[p];
    uint64_t bits;
    if (t == TT_NEW_FLOAT) {
        if (left(w, p + 1) < 8)
            return -EINVAL;
        bits = get_u64(w->in + p + 1);
        if (!f64_finite(bits))
            return -EINVAL;
        *pos = p + 9;
    } else {
        if (left(w, p + 1) < 31 || old_float_parse(w->in + p + 1, &bits))
            return -EINVAL;
        *pos = p + 32;
    }
    if (!writing(w))
        return t == TT_NEW_FLOAT && bits != F64_NEG_ZERO ? 0 : noncanon(w);
    int rc = buf_put_u8(w->out, TT_NEW_FLOAT);
    return rc ? rc : buf_put_u64(w->out, bits == F64_NEG_ZERO ? 0 : bits);
}

/* ---- binaries ---- */

static int walk_binary(struct walk *w, size_t *pos)
{
    size_t p = *pos;
    int t = w->in[p];
    size_t hl = t == TT_BINARY ? 4 : 5;
    if (left(w, p + 1) < hl)
        return -EINVAL;
    uint32_t n = get_u32(w->in + p + 1);
    unsigned bits = t == TT_BINARY ? 8 : w->in[p + 5];
    p += 1 + hl;
    if (n > left(w, p) || (n == 0 ? bits != 0 && t == TT_BIT_BINARY : bits == 0 || bits > 8))
        return -EINVAL;
    const uint8_t *d = w->in + p;
    uint8_t mask = n == 0 || bits == 8 ? 0xFF : (uint8_t)(0xFF << (8 - bits));
    *pos = p + n;
    if (!writing(w))
        return t == TT_BINARY || (mask != 0xFF && !(d[n - 1] & ~mask)) ? 0 : noncanon(w);
    uint8_t h[6] = {mask == 0xFF ? TT_BINARY : TT_BIT_BINARY, 0, 0, 0, 0, (uint8_t)bits};
    put_u32(h + 1, n);
    int rc = buf_append(w->out, h, mask == 0xFF ? 5 : 6);
    if (rc || mask == 0xFF)
        return rc ? rc : buf_append(w->out, d, n);
    rc = buf_append(w->out, d, n - 1);
    return rc ? rc : buf_put_u8(w->out, d[n - 1] & mask);
}

/* ---- pids, ports, references ---- */

/* Pids and ports: node atom, id bytes, then a 1- or 4-byte creation. The
 * 1-byte forms only carry creations 0..3; BEAM refuses larger ones. */
static int walk_pid_port(struct walk *w, size_t *pos)
{
    size_t p = *pos + 1;
    int t = w->in[*pos], is_pid = t == TT_PID || t == TT_NEW_PID;
    size_t idn = t == TT_PORT || t == TT_NEW_PORT ? 4 : 8;
    size_t cren = t == TT_PID || t == TT_PORT ? 1 : 4;
    struct atom a;
    int rc = atom_parse(w->in, w->len, &p, &a);
    if (rc || left(w, p) < idn + cren)
        return -EINVAL;
    const uint8_t *f = w->in + p;
    uint32_t cre = cren == 1 ? f[idn] : get_u32(f + idn);
    if (cre > 3 && cren == 1)
        return -EINVAL;
    *pos = p + idn + cren;
    if (!writing(w))
        return t == (is_pid ? TT_NEW_PID : TT_V4_PORT) && atom_is_canon(&a) ? 0 : noncanon(w);
    uint8_t tail[12] = {0};
    size_t k = is_pid || idn == 8 ? 0 : 4;  /* a 32-bit port id widens to 64 */
    memcpy(tail + k, f, idn);
    put_u32(tail + k + idn, cre);
    if ((rc = buf_put_u8(w->out, is_pid ? TT_NEW_PID : TT_V4_PORT)) || (rc = atom_emit(w->out, &a)))
        return rc;
    return buf_append(w->out, tail, k + idn + 4);
}

/* BEAM ignores high-order (trailing) zero id words when comparing refs, so
 * they are trimmed, keeping at least one word. At most 5 words exist. */
static int walk_ref(struct walk *w, size_t *pos)
{
    size_t p = *pos + 1, nw = 1;
    int t = w->in[*pos];
    if (t != TT_REF) {
        if (left(w, p) < 2 || (nw = get_u16(w->in + p)) > 5)
            return -EINVAL;
        p += 2;
    }
    size_t cren = t == TT_NEWER_REF ? 4 : 1;
    struct atom a;
    if (atom_parse(w->in, w->len, &p, &a) || left(w, p) < cren + 4 * nw)
        return -EINVAL;
    const uint8_t *f = w->in + p, *ids = t == TT_REF ? f : f + cren;
    uint32_t cre = t == TT_REF ? f[4] : cren == 1 ? f[0] : get_u32(f);
    if (cre > 3 && cren == 1)
        return -EINVAL;
    *pos = p + cren + 4 * nw;
    size_t keep = nw;
    while (keep > 1 && get_u32(ids + 4 * (keep - 1)) == 0)
        keep--;
    if (!writing(w))
        return t == TT_NEWER_REF && keep == nw && nw && atom_is_canon(&a) ? 0 : noncanon(w);
    uint8_t h[3] = {TT_NEWER_REF, 0, keep ? (uint8_t)keep : 1};
    int rc;
    if ((rc = buf_append(w->out, h, 3)) || (rc = atom_emit(w->out, &a)) ||
        (rc = buf_put_u32(w->out, cre)))
        return rc;
    return keep ? buf_append(w->out, ids, 4 * keep) : buf_put_u32(w->out, 0);
}

/* ---- tuples, strings, lists ---- */

static int walk_tuple(struct walk *w, size_t *pos, int depth)
{
    size_t p = *pos, hl = w->in[p] == TT_SMALL_TUPLE ? 1 : 4;
    int rc;
    if (left(w, p + 1) < hl)
        return -EINVAL;
    uint32_t n = hl == 1 ? w->in[p + 1] : get_u32(w->in + p + 1);
    p += 1 + hl;
    if (n > left(w, p))
        return -EINVAL;
    if (writing(w)) {
        uint8_t h[5] = {n <= 255 ? TT_SMALL_TUPLE : TT_LARGE_TUPLE, (uint8_t)n};
        if (n > 255)
            put_u32(h + 1, n);
        if ((rc = buf_append(w->out, h, n <= 255 ? 2 : 5)))
            return rc;
    } else if ((hl == 1) != (n <= 255) && (rc = noncanon(w))) {
        return rc;
    }
    for (uint32_t i = 0; i < n; i++)
        if ((rc = walk(w, &p, depth + 1)))
            return rc;
    *pos = p;
    return 0;
}

static int walk_string(struct walk *w, size_t *pos)
{
    size_t p = *pos;
    if (left(w, p + 1) < 2)
        return -EINVAL;
    size_t n = get_u16(w->in + p + 1);
    if (n > left(w, p + 3))
        return -EINVAL;
    *pos = p + 3 + n;
    if (writing(w))
        return n ? buf_append(w->out, w->in + p, 3 + n) : buf_put_u8(w->out, TT_NIL);
    return n ? 0 : noncanon(w);
}

/* A STRING_EXT tail: its bytes become SMALL_INTEGER elements. */
static int list_string_tail(struct walk *w, size_t *pos, uint64_t *count)
{
    size_t p = *pos;
    if (left(w, p + 1) < 2)
        return -EINVAL;
    size_t n = get_u16(w->in + p + 1);
    if (n > left(w, p + 3))
        return -EINVAL;
    *pos = p + 3 + n;
    *count += n;
    if (!writing(w))
        return 0;
    int rc = buf_reserve(w->out, 2 * n);
    if (rc)
        return rc;
    uint8_t *d = w->out->data + w->out->len;
    for (size_t i = 0; i < n; i++) {
        d[2 * i] = TT_SMALL_INT;
        d[2 * i + 1] = w->in[p + 3 + i];
    }
    w->out->len += 2 * n;
    return 0;
}

/* Rewrites the LIST_EXT of SMALL_INTEGERs at out[hdr..] as STRING_EXT (or
 * NIL) in place; the string form is shorter so the copy runs forward. */
static void list_to_string(struct buf *out, size_t hdr, size_t count)
{
    uint8_t *d = out->data + hdr;
    if (count == 0) {
        d[0] = TT_NIL;
        out->len = hdr + 1;
        return;
    }
    d[0] = TT_STRING;
    d[1] = (uint8_t)(count >> 8);
    d[2] = (uint8_t)count;
    for (size_t i = 0; i < count; i++)
        d[3 + i] = d[6 + 2 * i];
    out->len = hdr + 3 + count;
}

/* Output side of walk_list once the elements and tail are known. */
static int list_finish(struct walk *w, size_t hdr, uint64_t count, int proper, int bytes_only)
{
    struct buf *out = w->out;
    if (proper && bytes_only && count <= 65535) {
        list_to_string(out, hdr, (size_t)count);
        return 0;
    }
    if (count == 0) {  /* [ | T] is just T */
        memmove(out->data + hdr, out->data + hdr + 5, out->len - hdr - 5);
        out->len -= 5;
        return 0;
    }
    if (count > UINT32_MAX)
        return -E2BIG;
    put_u32(out->data + hdr + 1, (uint32_t)count);
    return proper ? buf_put_u8(out, TT_NIL) : 0;
}

/* LIST_EXT, flattening list tails. In W_WRITE the elements are written
 * after a provisional LIST_EXT header that list_finish then settles. */
static int walk_list(struct walk *w, size_t *pos, int depth)
{
    size_t p = *pos, hdr = writing(w) ? w->out->len : 0;
    uint64_t count = 0;
    int bytes_only = 1, proper = 0, rc;
    if (writing(w) && (rc = buf_append(w->out, (const uint8_t[5]){TT_LIST}, 5)))
        return rc;
    for (;;) {
        if (left(w, p) < 5)
            return -EINVAL;
        uint32_t n = get_u32(w->in + p + 1);
        p += 5;
        if (n >= left(w, p))  /* n elements and a tail */
            return -EINVAL;
        if (n == 0 && (rc = noncanon(w)))  /* [ | T] is T */
            return rc;
        for (uint32_t i = 0; i < n; i++) {
            size_t at = writing(w) ? w->out->len : p;
            if ((rc = walk(w, &p, depth + 1)))
                return rc;
            bytes_only &= (writing(w) ? w->out->data[at] : w->in[at]) == TT_SMALL_INT;
        }
        count += n;
        int t = p < w->len ? w->in[p] : -1;
        if (t == TT_LIST || t == TT_STRING) {
            if ((rc = noncanon(w)))
                return rc;
            if (t == TT_LIST)
                continue;
            proper = 1;
            rc = list_string_tail(w, &p, &count);
        } else if (t == TT_NIL) {
            proper = 1;
            p++;
        } else {
            rc = walk(w, &p, depth + 1);
        }
        break;
    }
    if (rc)
        return rc;
    *pos = p;
    if (!writing(w))
        return proper && bytes_only && count <= 65535 ? noncanon(w) : 0;
    return list_finish(w, hdr, count, proper, bytes_only);
}

/* ---- maps ---- */

/* Canonical key order: memcmp over the common length, then shorter first. */
static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

struct kv { uint32_t off, klen, vlen; };  /* a pair in the scratch buffer */

static int kv_cmp(const void *a, const void *b, void *base)
{
    const struct kv *x = a, *y = b;
    const uint8_t *d = base;
    return key_cmp(d + x->off, x->klen, d + y->off, y->klen);
}

static int map_emit(struct buf *out, const struct kv *kv, uint32_t n, const uint8_t *data)
{
    int rc = buf_put_u8(out, TT_MAP);
    if (!rc)
        rc = buf_put_u32(out, n);
    for (uint32_t i = 0; i < n && !rc; i++)
        rc = buf_append(out, data + kv[i].off, (size_t)kv[i].klen + kv[i].vlen);
    return rc;
}

/* Each pair is canonicalised into a scratch buffer, the pairs are sorted by
 * key bytes, then copied out; equal neighbours are duplicate keys. */
static int map_write(struct walk *w, size_t *pos, uint32_t n, int depth)
{
    struct buf tmp, *out = w->out;
    struct kv *kv = NULL;
    size_t p = *pos + 5;
    int rc = -ENOMEM;
    buf_init(&tmp);
    if (n && !(kv = malloc((size_t)n * sizeof *kv)))
        goto done;
    w->out = &tmp;
    for (uint32_t i = 0; i < n; i++) {
        size_t k = tmp.len;
        if ((rc = walk(w, &p, depth + 1)))
            goto done;
        size_t v = tmp.len;
        if ((rc = walk(w, &p, depth + 1)) || (rc = tmp.len > UINT32_MAX ? -E2BIG : 0))
            goto done;
        kv[i] = (struct kv){(uint32_t)k, (uint32_t)(v - k), (uint32_t)(tmp.len - v)};
    }
    w->out = out;
    if (n > 1)
        qsort_r(kv, n, sizeof *kv, kv_cmp, tmp.data);
    for (uint32_t i = 1; i < n; i++)
        if (kv_cmp(&kv[i - 1], &kv[i], tmp.data) == 0) {
            rc = -EINVAL;
            goto done;
        }
    if (!(rc = map_emit(out, kv, n, tmp.data)))
        *pos = p;
done:
    w->out = out;
    free(kv);
    buf_free(&tmp);
    return rc;
}

/* W_CHECK: canonical keys in strictly rising order prove the map canonical
 * and free of duplicates without copying anything; anything else asks for
 * a rewrite, which sorts and finds duplicates. */
static int map_check(struct walk *w, size_t *pos, uint32_t n, int depth)
{
    size_t p = *pos + 5, prev = 0, prev_len = 0;
    int rc;
    for (uint32_t i = 0; i < n; i++) {
        size_t k = p;
        if ((rc = walk(w, &p, depth + 1)))
            return rc;
        if (i && key_cmp(w->in + prev, prev_len, w->in + k, p - k) >= 0)
            return T_REWRITE;
        prev = k;
        prev_len = p - k;
        if ((rc = walk(w, &p, depth + 1)))
            return rc;
    }
    *pos = p;
    return 0;
}

static int walk_map(struct walk *w, size_t *pos, int depth)
{
    size_t p = *pos;
    if (left(w, p + 1) < 4)
        return -EINVAL;
    uint32_t n = get_u32(w->in + p + 1);
    if (n > left(w, p + 5) / 2)
        return -EINVAL;
    return writing(w) ? map_write(w, pos, n, depth) : map_check(w, pos, n, depth);
}

/* ---- funs ---- */

/* EXPORT_EXT: canonical atoms; the arity (0..255 in any integer encoding)
 * becomes SMALL_INTEGER_EXT. */
static int walk_export(struct walk *w, size_t *pos)
{
    size_t p = *pos + 1, ap;
    struct atom m, f;
    int64_t arity;
    if (atom_parse(w->in, w->len, &p, &m) || atom_parse(w->in, w->len, &p, &f))
        return -EINVAL;
    ap = p;
    if (int_parse(w->in, w->len, &p, &arity) || arity < 0 || arity > 255)
        return -EINVAL;
    *pos = p;
    if (!writing(w))
        return atom_is_canon(&m) && atom_is_canon(&f) && w->in[ap] == TT_SMALL_INT ? 0
                                                                                   : noncanon(w);
    int rc = buf_put_u8(w->out, TT_EXPORT);
    if (rc || (rc = atom_emit(w->out, &m)) || (rc = atom_emit(w->out, &f)))
        return rc;
    uint8_t t[2] = {TT_SMALL_INT, (uint8_t)arity};
    return buf_append(w->out, t, 2);
}

/* Typed fields of a fun ('a' atom, 'i' integer, 'p' pid) then nfree free
 * variables, validated by canonicalising them into sub->out. */
static int fun_fields(struct walk *sub, size_t *p, const char *kinds, uint32_t nfree, int depth)
{
    int rc;
    for (const char *k = kinds; *k; k++) {
        int t = *p < sub->len ? sub->in[*p] : -1;
        int ok = *k == 'a' ? tag_is_atom(t)
                 : *k == 'i' ? tag_is_int(t)
                             : t == TT_PID || t == TT_NEW_PID;
        if (!ok)
            return -EINVAL;
        if ((rc = walk(sub, p, depth + 1)))
            return rc;
    }
    if (nfree > left(sub, *p))
        return -EINVAL;
    for (uint32_t i = 0; i < nfree; i++)
        if ((rc = walk(sub, p, depth + 1)))
            return rc;
    return 0;
}

/* NEW_FUN_EXT and FUN_EXT: the fields are validated in W_WRITE (never
 * W_CHECK, whose fallback would re-walk nested funs once per level) into
 * scratch space, then the fun is kept byte for byte. When writing, the
 * scratch space is the end of `out`, cut back afterwards. */
static int walk_fun(struct walk *w, size_t *pos, int depth)
{
    size_t start = *pos, p = start + 1;
    struct buf scratch, *out = writing(w) ? w->out : &scratch;
    size_t mark = writing(w) ? out->len : 0;
    struct walk sub = {w->in, w->len, out, W_WRITE};
    uint32_t size = 0;
    int rc = -EINVAL;
    buf_init(&scratch);
    if (w->in[start] == TT_NEW_FUN) {
        size = left(w, p) >= 29 ? get_u32(w->in + p) : 0;
        if (size >= 29 && size <= left(w, p)) {
            sub.len = p + size;
            p += 29;
            rc = fun_fields(&sub, &p, "aiip", get_u32(w->in + p - 4), depth);
        }
    } else if (left(w, p) >= 4) {
        p += 4;
        rc = fun_fields(&sub, &p, "paii", get_u32(w->in + p - 4), depth);
    }
    if (!rc && size && p != sub.len)
        rc = -EINVAL;
    out->len = mark;
    buf_free(&scratch);
    if (rc)
        return rc;
    *pos = p;
    return writing(w) ? buf_append(w->out, w->in + start, p - start) : 0;
}

/* ---- dispatch ---- */

static int walk(struct walk *w, size_t *pos, int depth)
{
    if (depth >= TERM_MAX_DEPTH)
        return -E2BIG;
    if (*pos >= w->len)
        return -EINVAL;
    switch (w->in[*pos]) {
    case TT_SMALL_INT: case TT_INT: case TT_SMALL_BIG: case TT_LARGE_BIG:
        return walk_int(w, pos);
    case TT_ATOM: case TT_SMALL_ATOM: case TT_ATOM_UTF8: case TT_SMALL_ATOM_UTF8:
        return walk_atom(w, pos);
    case TT_SMALL_TUPLE: case TT_LARGE_TUPLE:
        return walk_tuple(w, pos, depth);
    case TT_NIL:
        (*pos)++;
        return writing(w) ? buf_put_u8(w->out, TT_NIL) : 0;
    case TT_STRING:
        return walk_string(w, pos);
    case TT_LIST:
        return walk_list(w, pos, depth);
    case TT_MAP:
        return walk_map(w, pos, depth);
    case TT_BINARY: case TT_BIT_BINARY:
        return walk_binary(w, pos);
    case TT_NEW_FLOAT: case TT_FLOAT:
        return walk_float(w, pos);
    case TT_PID: case TT_NEW_PID: case TT_PORT: case TT_NEW_PORT: case TT_V4_PORT:
        return walk_pid_port(w, pos);
    case TT_REF: case TT_NEW_REF: case TT_NEWER_REF:
        return walk_ref(w, pos);
    case TT_EXPORT:
        return walk_export(w, pos);
    case TT_NEW_FUN: case TT_FUN:
        return walk_fun(w, pos, depth);
    default:  /* includes ATOM_CACHE_REF, compressed, LOCAL_EXT, version */
        return -EINVAL;
    }
}

/* ---- public entry points ---- */

int term_skip(const uint8_t *in, size_t len, size_t *pos)
{
    struct buf scratch;
    struct term t;
    buf_init(&scratch);
    int rc = term_canon_span(in, len, pos, &scratch, &t);
    buf_free(&scratch);
    return rc;
}

int term_next(const uint8_t *in, size_t len, size_t *pos, struct term *span)
{
    size_t start = *pos;
    int rc = term_skip(in, len, pos);
    if (rc)
        return rc;
    span->p = in + start;
    span->len = (uint32_t)(*pos - start);
    return 0;
}

int term_canon_span(const uint8_t *in, size_t len, size_t *pos, struct buf *out,
                    struct term *span)
{
    struct walk w = {in, len, NULL, W_CHECK};
    size_t p = *pos, start = out->len;
    int rc = walk(&w, &p, 0);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (p - *pos > UINT32_MAX)
            return -E2BIG;
        *span = (struct term){in + *pos, (uint32_t)(p - *pos)};
        *pos = p;
        return 0;
    }
    w = (struct walk){in, len, out, W_WRITE};
    p = *pos;
    if ((rc = walk(&w, &p, 0)) == 0 && out->len - start > UINT32_MAX)
        rc = -E2BIG;
    if (rc) {
        out->len = start;
        return rc;
    }
    *span = (struct term){out->data + start, (uint32_t)(out->len - start)};
    *pos = p;
    return 0;
}

int term_canon(const uint8_t *in, size_t len, size_t *pos, struct buf *out)
{
    struct term t;
    size_t start = out->len;
    int rc = term_canon_span(in, len, pos, out, &t);
    if (rc || out->len != start)  /* already appended by the rewrite */
        return rc;
    return buf_append(out, t.p, t.len);
}

/* ---- decoders ---- */

int term_get_tuple(const uint8_t *in, size_t len, size_t *pos, uint32_t *arity)
{
    size_t p = *pos;
    uint32_t n;
    if (p >= len || (in[p] != TT_SMALL_TUPLE && in[p] != TT_LARGE_TUPLE))
        return -EINVAL;
    size_t hl = in[p] == TT_SMALL_TUPLE ? 1 : 4;
    if (len - p < 1 + hl)
        return -EINVAL;
    n = hl == 1 ? in[p + 1] : get_u32(in + p + 1);
    p += 1 + hl;
    if (n > len - p)
        return -EINVAL;
    *arity = n;
    *pos = p;
    return 0;
}

int term_get_list(const uint8_t *in, size_t len, size_t *pos, uint32_t *count)
{
    size_t p = *pos;
    if (p < len && in[p] == TT_NIL) {
        *count = 0;
        *pos = p + 1;
        return 0;
    }
    if (p >= len || in[p] != TT_LIST || len - p < 5)
        return -EINVAL;
    uint32_t n = get_u32(in + p + 1);
    if (n >= len - p - 5)  /* n elements and a tail */
        return -EINVAL;
    *count = n;
    *pos = p + 5;
    return 0;
}

int term_get_atom(const uint8_t *in, size_t len, size_t *pos, char *out, size_t cap)
{
    struct atom a;
    size_t p = *pos;
    int rc = atom_parse(in, len, &p, &a);
    if (rc)
        return rc;
    /* A NUL would cut the C string short: 'locker\0x' would read as
     * 'locker' and match a name or op it is not. No name lockerd knows
     * contains one, so such an atom is refused. */
    if (memchr(a.s, 0, a.n))
        return -EINVAL;
    if (a.u8len >= cap)
        return -ENOSPC;
    *atom_utf8((uint8_t *)out, &a) = 0;
    *pos = p;
    return 0;
}

int term_get_int64(const uint8_t *in, size_t len, size_t *pos, int64_t *v)
{
    return int_parse(in, len, pos, v);
}

int term_is_atom(const uint8_t *in, size_t len, size_t pos, const char *name)
{
    struct atom a;
    const uint8_t *q = (const uint8_t *)name;
    size_t nl = strlen(name);
    if (atom_parse(in, len, &pos, &a) || a.u8len != nl)
        return 0;
    if (!a.latin1)
        return memcmp(a.s, q, nl) == 0;
    for (size_t i = 0; i < a.n; i++) {
        uint8_t c = a.s[i];
        if (c < 0x80 ? *q++ != c : (q[0] != (0xC0 | c >> 6) || q[1] != (0x80 | (c & 0x3F))))
            return 0;
        q += c < 0x80 ? 0 : 2;
    }
    return 1;
}

int term_peek(const uint8_t *in, size_t len, size_t pos)
{
    return pos < len ? in[pos] : -EINVAL;
}
