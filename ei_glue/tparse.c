/*
 * Erlang term syntax -> canonical external term format; see tparse.h.
 *
 * Model. A tokenizer (lex_*) cuts the text into tokens that carry only a
 * kind and a byte span; values (digits, escapes) are decoded again from the
 * span when the parser emits them, so tokens need no storage of their own.
 * A recursive-descent parser (parse_*) with one token of lookahead writes a
 * loose external encoding into a scratch buffer: provisional LIST_EXT and
 * LARGE_TUPLE_EXT headers patched once the counts are known, integers
 * always as big integers, strings as lists of integers. term_canon then
 * produces the canonical bytes, so tparse can never disagree with
 * term_canon about what canonical means. Maps are the exception: a repeated
 * key must be resolved here (the last one wins, as in Erlang) and only
 * canonical key bytes tell keys apart, so each map canonicalises its keys.
 *
 * Invariants: p->at never passes p->len; every container raises p->depth,
 * which never exceeds TPARSE_MAX_DEPTH, so the recursion is bounded by the
 * nesting limit, not by the length of the text; the first error recorded
 * wins (failures propagating out of the recursion do not overwrite it).
 */
#include "tparse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term.h"

enum tk {
    TK_EOF, TK_INT, TK_FLOAT, TK_CHAR, TK_ATOM, TK_QATOM, TK_STRING, TK_VAR,
    TK_LBRACE, TK_RBRACE, TK_LBRACK, TK_RBRACK, TK_BAR, TK_COMMA,
    TK_BIN_OPEN, TK_BIN_CLOSE, TK_MAP_OPEN, TK_ARROW, TK_ASSOC,
    TK_MINUS, TK_PLUS, TK_SLASH, TK_COLON, TK_DOT
};

struct tok {
    enum tk kind;
    size_t pos, end;  /* the token's bytes are s[pos..end) */
};

struct parser {
    const uint8_t *s;
    size_t len;
    size_t at;            /* lexer position */
    struct tok tok;       /* lookahead, valid when `have` */
    int have;
    int depth;
    int failed;           /* err already holds the first error */
    struct buf *out;      /* where the term being parsed is written */
    struct buf scratch;   /* number digits, float text, quoted atoms */
    size_t wide_pos;      /* binary string: first character over 255 */
    struct tparse_err *err;
};

static int parse_term(struct parser *p);

/* ---- errors and characters ---- */

static int fail(struct parser *p, size_t pos, const char *fmt, ...)
{
    if (!p->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
        va_end(ap);
        p->err->pos = pos;
        p->failed = 1;
    }
    return -EINVAL;
}

static int nomem(struct parser *p)
{
    fail(p, p->at, "out of memory");
    return -ENOMEM;
}

static int valid_cp(uint32_t cp) { return cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF); }

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }

/* Digit value in bases up to 36, or 99 for anything else. */
static int digit_val(uint32_t c)
{
    c |= is_digit(c) ? 0 : 0x20;  /* ASCII lowercase */
    return is_digit(c) ? (int)(c - '0') : c >= 'a' && c <= 'z' ? (int)(c - 'a' + 10) : 99;
}

/* ---- tokenizer ---- */

/* Erlang treats every control character and space as white space. */
static void skip_blank(struct parser *p)
{
    while (p->at < p->len && (p->s[p->at] <= ' ' || p->s[p->at] == '%')) {
        if (p->s[p->at] == '%')
            while (p->at < p->len && p->s[p->at] != '\n')
                p->at++;
        else
            p->at++;
    }
}

static int set_tok(struct parser *p, enum tk kind, size_t end)
{
    p->tok.kind = kind;
    p->tok.end = end;
    p->at = end;
    return 0;
}

/* \xHH or \x{H...}; j is just past the 'x'. */
static int hex_escape(struct parser *p, size_t at, size_t j, size_t *i, uint32_t *cp)
{
    uint32_t v = 0;
    size_t n = 0;
    if (j < p->len && p->s[j] == '{') {
        for (j++; j < p->len && digit_val(p->s[j]) < 16; j++, n++)
            v = v > 0x10FFFF ? v : v << 4 | (uint32_t)digit_val(p->s[j]);
        if (n == 0 || j >= p->len || p->s[j] != '}')
            return fail(p, j, "expected hex digits and '}' in \\x{...} escape");
        j++;
    } else {
        for (; n < 2 && j < p->len && digit_val(p->s[j]) < 16; j++, n++)
            v = v << 4 | (uint32_t)digit_val(p->s[j]);
        if (n < 2)
            return fail(p, j, "expected two hex digits or {...} after \\x");
    }
    if (!valid_cp(v))
        return fail(p, at, "escape is not a valid character code");
    *cp = v;
    *i = j;
    return 0;
}

/* One escape sequence at s[*i] == '\\'; the forms are listed in tparse.h.
 * \^X is X's low 5 bits; an unnamed \C is C itself. */
static int escape(struct parser *p, size_t *i, uint32_t *cp)
{
    static const char named[] = "b\bd\177e\033f\fn\nr\rs t\tv\v";
    size_t at = *i, j = at + 1;
    uint8_t c = j < p->len ? p->s[j] : 0;
    const char *k = c ? strchr(named, c) : NULL;
    if (c >= '0' && c <= '7') {
        for (*cp = 0; j < p->len && j < at + 4 && p->s[j] >= '0' && p->s[j] <= '7'; j++)
            *cp = *cp * 8 + (uint32_t)(p->s[j] - '0');  /* at most 0777 */
    } else if (c == 'x') {
        return hex_escape(p, at, j + 1, i, cp);
    } else if (k && (k - named) % 2 == 0) {
        *cp = (uint8_t)k[1];
        j++;
    } else {
        j += c == '^';
        if (j >= p->len)
            return fail(p, at, "unterminated escape sequence");
        if (tparse__utf8_next(p->s, p->len, &j, cp) < 0)
            return fail(p, j, "invalid UTF-8 in the text");
        *cp &= c == '^' ? 31 : ~0u;
    }
    *i = j;
    return 0;
}

/* Next character of the quoted token opened at `start`: 1 and *cp, 0 at
 * the closing quote (consumed), or an error. */
static int quoted_next(struct parser *p, size_t *i, uint8_t q, size_t start, uint32_t *cp)
{
    if (*i >= p->len)
        return fail(p, start, "unterminated %s (missing closing %c)",
                    q == '"' ? "string" : "quoted atom", q);
    if (p->s[*i] == q) {
        (*i)++;
        return 0;
    }
    if (p->s[*i] == '\\')
        return escape(p, i, cp) ? -EINVAL : 1;
    if (tparse__utf8_next(p->s, p->len, i, cp) < 0)
        return fail(p, *i, "invalid UTF-8 in the text");
    return 1;
}

static int lex_quoted(struct parser *p, uint8_t q)
{
    size_t i = p->at + 1;
    uint32_t cp;
    int rc;
    while ((rc = quoted_next(p, &i, q, p->at, &cp)) > 0)
        ;
    return rc ? rc : set_tok(p, q == '"' ? TK_STRING : TK_QATOM, i);
}

/* Digits of `base` from s[i], with single '_' separators between digits. */
static size_t digits_end(const struct parser *p, size_t i, int base)
{
    while (i < p->len && (digit_val(p->s[i]) < base ||
                          (p->s[i] == '_' && i + 1 < p->len && digit_val(p->s[i + 1]) < base)))
        i++;
    return i;
}

static int lex_number(struct parser *p)
{
    size_t st = p->at, i = digits_end(p, st, 10), j;
    enum tk kind = TK_INT;
    if (i < p->len && p->s[i] == '#') {
        int base = 0;
        for (j = st; j < i; j++)
            base = p->s[j] == '_' || base > 99 ? base : base * 10 + (p->s[j] - '0');
        if (base < 2 || base > 36)
            return fail(p, st, "invalid base %.*s (must be 2..36)", (int)(i - st > 8 ? 8 : i - st),
                        (const char *)p->s + st);
        if (i + 1 >= p->len || digit_val(p->s[i + 1]) >= base)
            return fail(p, i + 1, "expected base-%d digits after '#'", base);
        i = digits_end(p, i + 1, base);
    } else if (i + 1 < p->len && p->s[i] == '.' && is_digit(p->s[i + 1])) {
        kind = TK_FLOAT;
        i = digits_end(p, i + 1, 10);
        if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
            j = i + 1 + (i + 1 < p->len && (p->s[i + 1] == '+' || p->s[i + 1] == '-'));
            if (j >= p->len || !is_digit(p->s[j]))
                return fail(p, j, "expected exponent digits in float");
            i = digits_end(p, j, 10);
        }
    }
    if (i - st > TPARSE_MAX_DIGITS)
        return fail(p, st, "number longer than %d characters", TPARSE_MAX_DIGITS);
    return set_tok(p, kind, i);
}

static int lex_char(struct parser *p)
{
    size_t i = p->at + 1;
    uint32_t cp;
    if (i >= p->len)
        return fail(p, p->at, "expected a character after '$'");
    if (p->s[i] == '\\')
        return escape(p, &i, &cp) ? -EINVAL : set_tok(p, TK_CHAR, i);
    if (tparse__utf8_next(p->s, p->len, &i, &cp) < 0)
        return fail(p, i, "invalid UTF-8 in the text");
    return set_tok(p, TK_CHAR, i);
}

static int lex_name(struct parser *p)
{
    size_t i = p->at, j;
    uint32_t cp;
    if (tparse__utf8_next(p->s, p->len, &i, &cp) < 0)
        return fail(p, p->at, "invalid UTF-8 in the text");
    if (!tparse__atom_start(cp) && !tparse__var_start(cp))
        return fail(p, p->at, "unexpected character '%.*s'%s", (int)(i - p->at),
                    (const char *)p->s + p->at, cp > 0xFF ? " (quote atoms like 'this')" : "");
    enum tk kind = tparse__atom_start(cp) ? TK_ATOM : TK_VAR;
    for (j = i; j < p->len; j = i)
        if (tparse__utf8_next(p->s, p->len, &i, &cp) < 0 || !tparse__atom_char(cp))
            break;
    return set_tok(p, kind, j);
}

/* The printed forms of terms that have no syntax get a specific message. */
static int lex_nonterm(struct parser *p)
{
    static const struct { const char *prefix, *what; } forms[] = {
        {"#Ref<", "references"}, {"#Port<", "ports"}, {"#Fun<", "funs"}};
    const char *r = (const char *)p->s + p->at;
    size_t left = p->len - p->at;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        if (left >= strlen(forms[i].prefix) && !memcmp(r, forms[i].prefix, strlen(forms[i].prefix)))
            return fail(p, p->at, "%s cannot be written as terms", forms[i].what);
    if (left >= 2 && r[0] == '<' && is_digit((uint8_t)r[1]))
        return fail(p, p->at, "pids cannot be written as terms");
    if (left >= 2 && r[0] == '#' && tparse__atom_start((uint8_t)r[1]))
        return fail(p, p->at, "records cannot be written as terms (use a tuple)");
    return fail(p, p->at, "unexpected character '%c'", r[0]);
}

static int lex_punct(struct parser *p)
{
    static const struct { char s[3]; enum tk k; } two[] = {
        {"<<", TK_BIN_OPEN}, {">>", TK_BIN_CLOSE}, {"#{", TK_MAP_OPEN}, {"=>", TK_ARROW},
        {":=", TK_ASSOC}};
    static const char one[] = "{}[]|,-+/:";
    static const enum tk one_k[] = {TK_LBRACE, TK_RBRACE, TK_LBRACK, TK_RBRACK, TK_BAR,
                                    TK_COMMA, TK_MINUS, TK_PLUS, TK_SLASH, TK_COLON};
    size_t st = p->at;
    uint8_t c = p->s[st], c2 = st + 1 < p->len ? p->s[st + 1] : 0;
    for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
        if (c == (uint8_t)two[i].s[0] && c2 == (uint8_t)two[i].s[1])
            return set_tok(p, two[i].k, st + 2);
    const char *k = c ? strchr(one, c) : NULL;
    if (k)
        return set_tok(p, one_k[k - one], st + 1);
    if (c == '.' && (c2 <= ' ' || c2 == '%'))  /* Erlang's end-of-form dot */
        return set_tok(p, TK_DOT, st + 1);
    return lex_nonterm(p);
}

static int lex_next(struct parser *p)
{
    skip_blank(p);
    p->tok.pos = p->at;
    if (p->at >= p->len)
        return set_tok(p, TK_EOF, p->at);
    uint8_t c = p->s[p->at];
    if (is_digit(c))
        return lex_number(p);
    if (c == '"' || c == '\'')
        return lex_quoted(p, c);
    if (c == '$')
        return lex_char(p);
    if (c >= 0x80 || c == '_' || digit_val(c) < 36)
        return lex_name(p);
    return lex_punct(p);
}

/* Kind of the lookahead token (lexed on demand), or a negative errno. */
static int peek(struct parser *p)
{
    int rc = p->have ? 0 : lex_next(p);
    if (rc)
        return rc;
    p->have = 1;
    return (int)p->tok.kind;
}

static void consume(struct parser *p) { p->have = 0; }

/* Fails with "expected <what>, got <the lookahead token>" (the token cut
 * to 16 bytes on a UTF-8 boundary). */
static int expected(struct parser *p, const char *what)
{
    size_t pos = p->tok.pos, len = p->tok.end - pos, n = len > 16 ? 16 : len;
    while (n > 1 && n < len && (p->s[pos + n] & 0xC0) == 0x80)
        n--;
    if (p->tok.kind == TK_EOF)
        return fail(p, pos, "expected %s, got end of input", what);
    return fail(p, pos, "expected %s, got '%.*s'%s", what, (int)n, (const char *)p->s + pos,
                n < len ? "..." : "");
}

/* ---- output ---- */

static int put(struct parser *p, const void *d, size_t n)
{
    return buf_append(p->out, d, n) ? nomem(p) : 0;
}

/* Header whose 32-bit count is patched later (LIST_EXT, LARGE_TUPLE_EXT,
 * BINARY_EXT, MAP_EXT all have one right after the tag). */
static int put_hdr(struct parser *p, uint8_t tag, size_t *at)
{
    uint8_t h[5] = {tag};
    *at = p->out->len;
    return put(p, h, 5);
}

static int patch_count(struct parser *p, size_t at, size_t n, size_t pos)
{
    if (n > UINT32_MAX)
        return fail(p, pos, "term too large");
    put_u32(p->out->data + at + 1, (uint32_t)n);
    return 0;
}

/* INTEGER_EXT for any |v| < 2^31; term_canon shrinks it when it can. */
static int put_int(struct parser *p, int64_t v)
{
    uint8_t t[5] = {TT_INT};
    put_u32(t + 1, (uint32_t)(int32_t)v);
    return put(p, t, 5);
}

static int put_atom(struct parser *p, size_t pos, const uint8_t *u, size_t n, size_t chars)
{
    uint8_t h[3] = {TT_ATOM_UTF8, (uint8_t)(n >> 8), (uint8_t)n};
    if (chars > 255)
        return fail(p, pos, "atom too long (more than 255 characters)");
    int rc = n > 255 ? put(p, h, 3) : put(p, (uint8_t[]){TT_SMALL_ATOM_UTF8, (uint8_t)n}, 2);
    return rc ? rc : put(p, u, n);
}

/* ---- numbers ---- */

struct num {
    struct tok t;  /* the INT, FLOAT or CHAR token */
    size_t pos;    /* of the sign when there is one */
    int neg;
};

/* [+-] number, consumed. */
static int read_number(struct parser *p, struct num *n)
{
    int k = peek(p);
    n->neg = k == TK_MINUS;
    n->pos = p->tok.pos;
    if (k == TK_MINUS || k == TK_PLUS) {
        consume(p);
        k = peek(p);
        if (k >= 0 && k != TK_INT && k != TK_FLOAT && k != TK_CHAR)
            return expected(p, n->neg ? "a number after '-'" : "a number after '+'");
    }
    if (k < 0)
        return k;
    n->t = p->tok;
    consume(p);
    return 0;
}

/* Little-endian magnitude of an INT token into p->scratch. */
static int int_magnitude(struct parser *p, const struct tok *t)
{
    size_t i = t->pos, n = 0;
    const uint8_t *hash = memchr(p->s + i, '#', t->end - i);
    uint32_t base = hash ? 0 : 10;
    for (; hash && p->s + i < hash; i++)
        base = p->s[i] == '_' ? base : base * 10 + (uint32_t)(p->s[i] - '0');
    i += hash != NULL;
    buf_reset(&p->scratch);
    if (buf_reserve(&p->scratch, t->end - i + 1))
        return nomem(p);
    for (uint8_t *d = p->scratch.data; i < t->end; i++) {
        if (p->s[i] == '_')
            continue;
        uint32_t carry = (uint32_t)digit_val(p->s[i]);
        for (size_t k = 0; k < n; k++, carry >>= 8) {
            carry += d[k] * base;
            d[k] = (uint8_t)carry;
        }
        for (; carry; carry >>= 8)
            d[n++] = (uint8_t)carry;
    }
    p->scratch.len = n;
    return 0;
}

static uint32_t char_value(struct parser *p, const struct tok *t)
{
    size_t i = t->pos + 1;
    uint32_t cp = 0;
    if (p->s[i] == '\\')
        escape(p, &i, &cp);  /* validated by lex_char */
    else
        tparse__utf8_next(p->s, p->len, &i, &cp);
    return cp;
}

/* The token's text without '_' separators, read by strtod. Erlang reads
 * underflow as 0.0 but refuses overflow. */
static int put_float(struct parser *p, const struct num *n)
{
    uint8_t b[9] = {TT_NEW_FLOAT};
    uint64_t bits;
    buf_reset(&p->scratch);
    for (size_t i = n->t.pos; i <= n->t.end; i++)
        if (i == n->t.end ? buf_put_u8(&p->scratch, 0) : p->s[i] != '_' && buf_put_u8(&p->scratch, p->s[i]))
            return nomem(p);
    char *end, *txt = (char *)p->scratch.data;
    double d = strtod(txt, &end);
    if (end != txt + p->scratch.len - 1)
        return fail(p, n->t.pos, "cannot read float (numeric locale is not \"C\"?)");
    if (d > 1.7976931348623157e308)
        return fail(p, n->t.pos, "float out of range");
    d = n->neg ? -d : d;
    memcpy(&bits, &d, 8);
    for (int i = 0; i < 8; i++)
        b[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
    return put(p, b, 9);
}

static int put_number(struct parser *p, const struct num *n)
{
    if (n->t.kind == TK_CHAR)
        return put_int(p, (n->neg ? -1 : 1) * (int64_t)char_value(p, &n->t));
    if (n->t.kind == TK_FLOAT)
        return put_float(p, n);
    int rc = int_magnitude(p, &n->t);
    uint8_t h[6] = {TT_LARGE_BIG, 0, 0, 0, 0, (uint8_t)n->neg};
    put_u32(h + 1, (uint32_t)p->scratch.len);  /* < TPARSE_MAX_DIGITS */
    if (rc || (rc = put(p, h, 6)))
        return rc;
    return put(p, p->scratch.data, p->scratch.len);
}

/* Value of a number that must be small (binary segments): -ERANGE when
 * it does not fit 32 bits, -EINVAL for a float. */
static int small_value(struct parser *p, const struct num *n, int64_t *v)
{
    int rc = 0;
    *v = 0;
    if (n->t.kind == TK_FLOAT)
        return -EINVAL;
    if (n->t.kind == TK_CHAR)
        *v = char_value(p, &n->t);
    else if (!(rc = int_magnitude(p, &n->t)) && p->scratch.len > 4)
        rc = -ERANGE;
    for (size_t i = p->scratch.len; n->t.kind == TK_INT && !rc && i-- > 0;)
        *v = *v << 8 | p->scratch.data[i];
    *v = n->neg ? -*v : *v;
    return rc;
}

/* ---- atoms and strings ---- */

static int parse_atom(struct parser *p)
{
    struct tok t = p->tok;
    const uint8_t *s = p->s + t.pos;
    size_t n = t.end - t.pos, chars = 0, i = t.pos + 1, un = 0;
    uint32_t cp;
    consume(p);
    if (t.kind == TK_ATOM) {
        if (n == 3 && memcmp(s, "fun", 3) == 0)
            return fail(p, t.pos, "funs cannot be written as terms");
        if (tparse__reserved((const char *)s, n))
            return fail(p, t.pos, "'%.*s' is a reserved word; quote it to use it as an atom",
                        (int)n, (const char *)s);
        for (i = 0; i < n; i++)
            chars += (s[i] & 0xC0) != 0x80;
        return put_atom(p, t.pos, s, n, chars);
    }
    buf_reset(&p->scratch);  /* not the stack: this frame recurses */
    if (buf_reserve(&p->scratch, 256 * 4))
        return nomem(p);
    while (quoted_next(p, &i, '\'', t.pos, &cp) > 0 && ++chars <= 255)
        un += tparse__utf8_put(p->scratch.data + un, cp);
    return put_atom(p, t.pos, p->scratch.data, un, chars);
}

/* Whether a string literal follows ("a" "b" is one string). */
static int string_follows(struct parser *p)
{
    if (p->have)
        return p->tok.kind == TK_STRING;
    skip_blank(p);
    return p->at < p->len && p->s[p->at] == '"';
}

/* Characters of the adjacent string literals starting at the lookahead,
 * each handed to `each` with its position; *count gets the total. */
static int string_chars(struct parser *p, int (*each)(struct parser *, uint32_t, size_t),
                        size_t *count)
{
    int rc;
    *count = 0;
    do {
        if ((rc = peek(p)) < 0)
            return rc;
        size_t start = p->tok.pos, i = start + 1, at = i;
        uint32_t cp;
        consume(p);
        for (; (rc = quoted_next(p, &i, '"', start, &cp)) > 0; at = i, ++*count)
            if ((rc = each(p, cp, at)))
                return rc;
        if (rc)
            return rc;
    } while (string_follows(p));
    return 0;
}

static int string_elem(struct parser *p, uint32_t cp, size_t pos)
{
    (void)pos;
    return put_int(p, cp);
}

static int parse_string(struct parser *p)
{
    size_t hdr, n;
    int rc = put_hdr(p, TT_LIST, &hdr);
    if (rc || (rc = string_chars(p, string_elem, &n)))
        return rc;
    if (n == 0)
        p->out->len = hdr;
    else if ((rc = patch_count(p, hdr, n, p->tok.pos)))
        return rc;
    return put(p, (const uint8_t[]){TT_NIL}, 1);
}

/* ---- containers ---- */

/* Elements separated by ',' from the opening token (consumed here) up to
 * `close`; `elem` parses one element. *n counts them. */
static int parse_seq(struct parser *p, enum tk close, const char *after,
                     int (*elem)(struct parser *, void *), void *ctx, size_t *n)
{
    int rc, k;
    *n = 0;
    if (p->depth >= TPARSE_MAX_DEPTH)
        return fail(p, p->tok.pos, "nesting deeper than %d levels", TPARSE_MAX_DEPTH);
    p->depth++;
    consume(p);
    if ((k = peek(p)) != (int)close) {
        for (;;) {  /* after a ',' an element is due even if `close` follows */
            if (k < 0 || (rc = elem(p, ctx)) || (k = peek(p)) < 0)
                return k < 0 ? k : rc;
            ++*n;
            if (k == (int)close)
                break;
            if (k != TK_COMMA)
                return expected(p, after);
            consume(p);
            k = peek(p);
        }
    }
    consume(p);
    p->depth--;
    return 0;
}

static int tuple_elem(struct parser *p, void *ctx)
{
    (void)ctx;
    return parse_term(p);
}

static int parse_tuple(struct parser *p)
{
    size_t hdr, n, open = p->tok.pos;
    int rc = put_hdr(p, TT_LARGE_TUPLE, &hdr);
    if (rc || (rc = parse_seq(p, TK_RBRACE, "',' or '}' after tuple element", tuple_elem, NULL, &n)))
        return rc;
    return patch_count(p, hdr, n, open);
}

/* An element, and after '|' the tail, which must be last. */
static int list_elem(struct parser *p, void *ctx)
{
    int rc = parse_term(p), k;
    if (rc || (k = peek(p)) < 0)
        return rc ? rc : k;
    if (k != TK_BAR)
        return k == TK_COMMA || k == TK_RBRACK ? 0 : expected(p, "',', '|' or ']' after list element");
    consume(p);
    *(int *)ctx = 1;
    if ((rc = parse_term(p)) || (k = peek(p)) < 0)
        return rc ? rc : k;
    return k == TK_RBRACK ? 0 : expected(p, "']' after list tail");
}

/* A tail ends the list itself; a proper list ends with NIL. [] is NIL. */
static int parse_list(struct parser *p)
{
    size_t hdr, n, open = p->tok.pos;
    int tail = 0, rc = put_hdr(p, TT_LIST, &hdr);
    if (rc || (rc = parse_seq(p, TK_RBRACK, "',', '|' or ']' after list element", list_elem, &tail, &n)))
        return rc;
    if (n == 0)
        p->out->len = hdr;
    else if ((rc = patch_count(p, hdr, n, open)))
        return rc;
    return tail ? 0 : put(p, (const uint8_t[]){TT_NIL}, 1);
}

/* ---- binaries ---- */

/* Optional type after a segment: 1 for /utf8, 0 for none. */
static int segment_type(struct parser *p)
{
    int k = peek(p);
    if (k == TK_COLON)
        return fail(p, p->tok.pos, "binary segment sizes (':Size') are not supported");
    if (k != TK_SLASH)
        return k < 0 ? k : 0;
    consume(p);
    if ((k = peek(p)) < 0)
        return k;
    if (k != TK_ATOM || p->tok.end - p->tok.pos != 4 || memcmp(p->s + p->tok.pos, "utf8", 4))
        return fail(p, p->tok.pos, "unsupported binary segment type (only /utf8 is supported)");
    consume(p);
    if ((k = peek(p)) == TK_MINUS || k == TK_COLON)
        return fail(p, p->tok.pos, "only a plain /utf8 segment type is supported");
    return k < 0 ? k : 1;
}

/* String characters are written as UTF-8 first; without /utf8 they must
 * each fit a byte and are then narrowed in place (never longer). */
static int bin_char(struct parser *p, uint32_t cp, size_t pos)
{
    uint8_t u[4];
    if (cp > 255 && p->wide_pos == SIZE_MAX)
        p->wide_pos = pos;
    return put(p, u, tparse__utf8_put(u, cp));
}

static int bin_string(struct parser *p)
{
    size_t start = p->out->len, n, o = start;
    int rc, utf8;
    p->wide_pos = SIZE_MAX;
    if ((rc = string_chars(p, bin_char, &n)) || (utf8 = segment_type(p)) < 0)
        return rc ? rc : utf8;
    if (utf8)
        return 0;
    if (p->wide_pos != SIZE_MAX)
        return fail(p, p->wide_pos, "character does not fit in a byte (write \"...\"/utf8)");
    for (size_t i = start; i < p->out->len; o++) {
        uint32_t cp = 0;
        tparse__utf8_next(p->out->data, p->out->len, &i, &cp);
        p->out->data[o] = (uint8_t)cp;
    }
    p->out->len = o;
    return 0;
}

static int bin_number(struct parser *p)
{
    struct num n;
    int64_t v;
    uint8_t u[4];
    int rc = read_number(p, &n), utf8;
    if (rc || (rc = small_value(p, &n, &v)) == -ENOMEM)
        return rc;
    if (rc == -EINVAL)
        return fail(p, n.pos, "floats are not supported in binaries");
    if ((utf8 = segment_type(p)) < 0)
        return utf8;
    if (utf8 && (rc || v < 0 || !valid_cp((uint32_t)v)))
        return fail(p, n.pos, "not a valid character code for /utf8");
    if (!utf8 && (rc || v < 0 || v > 255))
        return fail(p, n.pos, "byte value out of range 0..255");
    u[0] = (uint8_t)v;
    return put(p, u, utf8 ? tparse__utf8_put(u, (uint32_t)v) : 1);
}

static int bin_segment(struct parser *p, void *ctx)
{
    int k = peek(p);
    (void)ctx;
    if (k == TK_STRING)
        return bin_string(p);
    if (k == TK_INT || k == TK_CHAR || k == TK_FLOAT || k == TK_MINUS || k == TK_PLUS)
        return bin_number(p);
    return k < 0 ? k : expected(p, "a byte, a character or a string in binary");
}

static int parse_binary(struct parser *p)
{
    size_t hdr, n, open = p->tok.pos;
    int rc = put_hdr(p, TT_BINARY, &hdr);
    if (rc || (rc = parse_seq(p, TK_BIN_CLOSE, "',' or '>>' after binary element", bin_segment, NULL, &n)))
        return rc;
    return patch_count(p, hdr, p->out->len - hdr - 5, open);
}

/* ---- maps ---- */

struct pair {
    size_t koff, klen;  /* key: raw bytes, then canonical ones in `keys` */
    size_t voff, vlen;  /* value as parsed, in the raw buffer */
    size_t idx;         /* order of appearance: the last duplicate wins */
    const uint8_t *key;
};

static int key_cmp(const struct pair *x, const struct pair *y)
{
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    int c = key_cmp(x, y);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Canonicalise the keys, sort, keep the last of equal keys, then write
 * MAP_EXT to p->out. */
static int map_emit(struct parser *p, struct pair *pr, size_t n, const struct buf *raw)
{
    struct buf keys;
    size_t hdr, kept = 0, i;
    int rc = 0;
    buf_init(&keys);
    for (i = 0; i < n && !rc; i++) {
        size_t pos = 0, at = keys.len;
        rc = term_canon(raw->data + pr[i].koff, pr[i].klen, &pos, &keys);
        pr[i].koff = at;
        pr[i].klen = keys.len - at;
    }
    if (rc) {
        buf_free(&keys);
        return rc == -ENOMEM ? nomem(p) : fail(p, p->at, "internal error: bad map key");
    }
    for (i = 0; i < n; i++)
        pr[i].key = keys.data + pr[i].koff;
    if (n > 1)
        qsort(pr, n, sizeof *pr, pair_cmp);
    rc = put_hdr(p, TT_MAP, &hdr);
    for (i = 0; i < n && !rc; i++) {
        if (i + 1 < n && key_cmp(&pr[i], &pr[i + 1]) == 0)
            continue;
        kept++;
        if (!(rc = put(p, pr[i].key, pr[i].klen)))
            rc = put(p, raw->data + pr[i].voff, pr[i].vlen);
    }
    if (!rc)
        put_u32(p->out->data + hdr + 1, (uint32_t)kept);
    buf_free(&keys);
    return rc;
}

/* One "Key => Value" into p->out (the raw buffer), recorded in pairs. */
static int map_pair(struct parser *p, void *ctx)
{
    struct buf *pairs = ctx;
    struct pair pr = {.koff = p->out->len, .idx = pairs->len / sizeof pr};
    int rc = parse_term(p), k;
    if (rc || (k = peek(p)) < 0)
        return rc ? rc : k;
    if (k == TK_ASSOC)
        return fail(p, p->tok.pos, "':=' only updates an existing map; use '=>' in a literal");
    if (k != TK_ARROW)
        return expected(p, "'=>' after map key");
    consume(p);
    pr.klen = p->out->len - pr.koff;
    pr.voff = p->out->len;
    if ((rc = parse_term(p)))
        return rc;
    pr.vlen = p->out->len - pr.voff;
    return buf_append(pairs, &pr, sizeof pr) ? nomem(p) : 0;
}

/* Pairs are parsed into a scratch buffer, then emitted in key order. */
static int parse_map(struct parser *p)
{
    struct buf raw, pairs, *out = p->out;
    size_t n;
    buf_init(&raw);
    buf_init(&pairs);
    p->out = &raw;
    int rc = parse_seq(p, TK_RBRACE, "',' or '}' after map value", map_pair, &pairs, &n);
    p->out = out;
    if (!rc)
        rc = map_emit(p, (struct pair *)(void *)pairs.data, n, &raw);
    buf_free(&raw);
    buf_free(&pairs);
    return rc;
}

/* ---- terms ---- */

static int parse_term(struct parser *p)
{
    struct num n;
    int k = peek(p), rc;
    switch (k) {
    case TK_INT: case TK_FLOAT: case TK_CHAR: case TK_MINUS: case TK_PLUS:
        return (rc = read_number(p, &n)) ? rc : put_number(p, &n);
    case TK_ATOM: case TK_QATOM:
        return parse_atom(p);
    case TK_STRING:
        return parse_string(p);
    case TK_LBRACE:
        return parse_tuple(p);
    case TK_LBRACK:
        return parse_list(p);
    case TK_BIN_OPEN:
        return parse_binary(p);
    case TK_MAP_OPEN:
        return parse_map(p);
    case TK_VAR:
        return fail(p, p->tok.pos, "variables cannot be used in a term: '%.*s'",
                    (int)(p->tok.end - p->tok.pos > 32 ? 32 : p->tok.end - p->tok.pos),
                    (const char *)p->s + p->tok.pos);
    default:
        return k < 0 ? k : expected(p, "a term");
    }
}

/* After the term: an optional '.', then nothing. A token that does not even
 * lex is reported as trailing text at its start, not as its own error. */
static int parse_end(struct parser *p)
{
    int k = peek(p);
    if (k == TK_DOT) {
        consume(p);
        k = peek(p);
    }
    if (k == TK_EOF)
        return 0;
    p->failed = 0;
    return fail(p, p->tok.pos, "unexpected text after the term");
}

int tparse(const char *text, struct buf *out, struct tparse_err *err)
{
    struct tparse_err dummy;
    struct buf raw;
    struct parser p = {.s = (const uint8_t *)text, .len = strlen(text), .err = err ? err : &dummy};
    size_t start = out->len, pos = 0;
    p.err->pos = 0;
    p.err->msg[0] = 0;
    buf_init(&raw);
    buf_init(&p.scratch);
    p.out = &raw;
    int rc = parse_term(&p);
    if (!rc)
        rc = parse_end(&p);
    if (!rc && (rc = term_canon(raw.data, raw.len, &pos, out)))
        rc = rc == -ENOMEM ? nomem(&p) : fail(&p, 0, "internal error: term not encodable");
    if (rc)
        out->len = start;
    buf_free(&raw);
    buf_free(&p.scratch);
    return rc;
}
