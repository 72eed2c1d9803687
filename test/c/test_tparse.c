/*
 * Unit tests for ei_glue/tparse.c and ei_glue/tprint.c: the term parser
 * against OTP 25 vectors, error positions and messages, the caret line,
 * exact tprint and tprint_json output, round trips, and hostile input to
 * the printers (every truncation of every vector, garbage, deep nesting;
 * each input sits in its own exact-size heap block so ASan sees any
 * over-read).
 *
 * Vectors: `bytes` is OTP 25's term_to_binary(T) (default options, the
 * leading 131 dropped) where T = erl_parse:parse_term of erl_scan's tokens
 * for `text`. They are not canonical (OTP 25 writes latin-1 atoms), so the
 * test compares tparse(text) with term_canon(bytes). Raw vectors for pids,
 * refs, ports and funs were built by hand or taken from term_to_binary, and
 * the expected texts checked against io:format("~p") where Erlang prints
 * the same (see tparse.h for where tprint differs on purpose).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "ei_glue/tparse.h"
#include "ei_glue/term.h"

struct vec {
    const uint8_t *p;
    size_t n;
};

#define V(...) {(const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})}

struct pvec {
    const char *text;
    struct vec bytes;
};

static const struct pvec pvecs[] = {
    {"{user,42}", V(104,2,100,0,4,117,115,101,114,97,42)},
    {"<<\"job\">>", V(109,0,0,0,3,106,111,98)},
    {"\"str\"", V(107,0,3,115,116,114)},
    {"#{a => 1}", V(116,0,0,0,1,100,0,1,97,97,1)},
    {"0", V(97,0)},
    {"255", V(97,255)},
    {"256", V(98,0,0,1,0)},
    {"-1", V(98,255,255,255,255)},
    {"2147483647", V(98,127,255,255,255)},
    {"2147483648", V(110,4,0,0,0,0,128)},
    {"-2147483648", V(98,128,0,0,0)},
    {"-2147483649", V(110,4,1,1,0,0,128)},
    {"123456789012345678901234567890", V(110,13,0,210,10,63,78,238,224,115,195,246,15,233,142,1)},
    {"-123456789012345678901234567890", V(110,13,1,210,10,63,78,238,224,115,195,246,15,233,142,1)},
    {"16#ff", V(97,255)},
    {"-16#FF_FF", V(98,255,255,0,1)},
    {"2#1010", V(97,10)},
    {"36#zz", V(98,0,0,5,15)},
    {"$a", V(97,97)},
    {"$\\n", V(97,10)},
    {"-$a", V(98,255,255,255,159)},
    {"+5", V(97,5)},
    {"1_000_000", V(98,0,15,66,64)},
    {"1.5", V(70,63,248,0,0,0,0,0,0)},
    {"1.0e3", V(70,64,143,64,0,0,0,0,0)},
    {"-2.5e-3", V(70,191,100,122,225,71,174,20,123)},
    {"0.1", V(70,63,185,153,153,153,153,153,154)},
    {"-0.0", V(70,128,0,0,0,0,0,0,0)},
    {"1.0e-400", V(70,0,0,0,0,0,0,0,0)},
    {"lk1@vm", V(100,0,6,108,107,49,64,118,109)},
    {"'Any Thing'", V(100,0,9,65,110,121,32,84,104,105,110,103)},
    {"'it\\'s'", V(100,0,4,105,116,39,115)},
    {"''", V(100,0,0)},
    {"'end'", V(100,0,3,101,110,100)},
    {"maybe", V(100,0,5,109,97,121,98,101)},
    {"\303\251", V(100,0,1,233)},
    {"'\\x{1F600}'", V(119,4,240,159,152,128)},
    {"\"a\\tb\\\\\\\"c\"", V(107,0,6,97,9,98,92,34,99)},
    {"\"\\x{3A9}mega\"", V(108,0,0,0,5,98,0,0,3,169,97,109,97,101,97,103,97,97,106)},
    {"\"\"", V(106)},
    {"\"\303\277\"", V(107,0,1,255)},
    {"\"\\101\\x41\\x{41}\\s\\d\\e\\^A\"", V(107,0,7,65,65,65,32,127,27,1)},
    {"\"a\" \"bc\"", V(107,0,3,97,98,99)},
    {"<<>>", V(109,0,0,0,0)},
    {"<<1,2,3>>", V(109,0,0,0,3,1,2,3)},
    {"<<\"a\", 1, $b>>", V(109,0,0,0,3,97,1,98)},
    {"<<\"h\303\251llo\"/utf8>>", V(109,0,0,0,6,104,195,169,108,108,111)},
    {"<<1024/utf8, 0>>", V(109,0,0,0,3,208,128,0)},
    {"{}", V(104,0)},
    {"{a,{b,{c}}}", V(104,2,100,0,1,97,104,2,100,0,1,98,104,1,100,0,1,99)},
    {"[]", V(106)},
    {"[1,2,3]", V(107,0,3,1,2,3)},
    {"[a, b | c]", V(108,0,0,0,2,100,0,1,97,100,0,1,98,100,0,1,99)},
    {"[1|2]", V(108,0,0,0,1,97,1,97,2)},
    {"[a | [b, c]]", V(108,0,0,0,3,100,0,1,97,100,0,1,98,100,0,1,99,106)},
    {"[1 | \"ab\"]", V(107,0,3,1,97,98)},
    {"#{b => 2, a => 1, a => 3}", V(116,0,0,0,2,100,0,1,97,97,3,100,0,1,98,97,2)},
    {"#{}", V(116,0,0,0,0)},
    {"#{{k,1} => [v], \"s\" => <<\"b\">>, 1 => 1.0}", V(116,0,0,0,3,97,1,70,63,240,0,0,0,0,0,0,104,2,100,0,1,107,97,1,108,0,0,0,1,100,0,1,118,106,107,0,1,115,109,0,0,0,1,98)},
    {"[1.0, -7, \"x\", <<>>, #{}]", V(108,0,0,0,5,70,63,240,0,0,0,0,0,0,98,255,255,255,249,107,0,1,120,109,0,0,0,0,116,0,0,0,0,106)},
    {"{true, false, undefined}", V(104,3,100,0,4,116,114,117,101,100,0,5,102,97,108,115,101,100,0,9,117,110,100,101,102,105,110,101,100)},
    {"  {user, 42}.  ", V(104,2,100,0,4,117,115,101,114,97,42)},
    {"[1, % one\n 2]", V(107,0,2,1,2)},
    {"[256, 1]", V(108,0,0,0,2,98,0,0,1,0,97,1,106)},
};

#define NPVEC (sizeof pvecs / sizeof pvecs[0])

/* ---- helpers ---- */

static void canon_of(struct vec v, struct buf *out)
{
    size_t pos = 0;
    buf_reset(out);
    assert_int_equal(term_canon(v.p, v.n, &pos, out), 0);
    assert_int_equal(pos, v.n);
}

static void parse_ok(const char *text, struct buf *out)
{
    struct tparse_err e;
    buf_reset(out);
    int rc = tparse(text, out, &e);
    if (rc)
        fail_msg("tparse(%s) = %d at %zu: %s", text, rc, e.pos, e.msg);
}

static void assert_bytes(const struct buf *got, const struct buf *want, const char *what)
{
    if (got->len != want->len || memcmp(got->data, want->data, got->len))
        fail_msg("bytes differ for %s (got %zu bytes, want %zu)", what, got->len, want->len);
}

/* tprint (json = 0) or tprint_json of t, as a NUL-terminated string in
 * `out`; the input is copied into an exact-size heap block. */
static int render(const uint8_t *t, size_t n, int json, struct buf *out)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, t, n);
    buf_reset(out);
    int rc = json ? tprint_json(copy, n, out) : tprint(copy, n, out);
    free(copy);
    assert_int_equal(buf_put_u8(out, 0), 0);
    out->len--;
    return rc;
}

static void assert_prints(const char *text, const char *want, int json)
{
    struct buf t, o;
    buf_init(&t);
    buf_init(&o);
    parse_ok(text, &t);
    int rc = render(t.data, t.len, json, &o);
    if (rc || strcmp((const char *)o.data, want))
        fail_msg("%s of %s: rc %d, got [%s], want [%s]", json ? "json" : "print", text, rc,
                 (const char *)o.data, want);
    buf_free(&t);
    buf_free(&o);
}

static void assert_raw_prints(struct vec v, const char *want, const char *want_json)
{
    struct buf o;
    buf_init(&o);
    assert_int_equal(render(v.p, v.n, 0, &o), 0);
    assert_string_equal((const char *)o.data, want);
    if (want_json) {
        assert_int_equal(render(v.p, v.n, 1, &o), 0);
        assert_string_equal((const char *)o.data, want_json);
    }
    buf_free(&o);
}

/* ---- parsing ---- */

static void test_parse_vectors(void **state)
{
    (void)state;
    struct buf got, want;
    buf_init(&got);
    buf_init(&want);
    for (size_t i = 0; i < NPVEC; i++) {
        canon_of(pvecs[i].bytes, &want);
        parse_ok(pvecs[i].text, &got);
        assert_bytes(&got, &want, pvecs[i].text);
    }
    buf_free(&got);
    buf_free(&want);
}

static void test_parse_appends_and_restores(void **state)
{
    (void)state;
    struct buf b;
    struct tparse_err e;
    buf_init(&b);
    assert_int_equal(buf_append(&b, "xy", 2), 0);
    assert_int_equal(tparse("{a, 1}", &b, &e), 0);
    assert_int_equal(b.len, 2 + 7);
    assert_memory_equal(b.data, ((const uint8_t[]){'x', 'y', 104, 2, 119, 1, 97, 97, 1}), 9);
    assert_int_equal(tparse("{a, [1, 2, {b, ", &b, &e), -EINVAL);
    assert_int_equal(b.len, 9);
    assert_int_equal(tparse("ok", &b, NULL), 0);
    assert_int_equal(tparse("{", &b, NULL), -EINVAL);
    assert_int_equal(b.len, 9 + 4);
    buf_free(&b);
}

struct perr {
    const char *text;
    size_t pos;
    const char *msg;  /* substring of the message */
};

static const struct perr perrs[] = {
    {"", 0, "expected a term, got end of input"},
    {"   ", 3, "end of input"},
    {"{a, \"abc", 4, "unterminated string"},
    {"'abc", 0, "unterminated quoted atom"},
    {"{a, ~}", 4, "unexpected character '~'"},
    {"(1)", 0, "unexpected character '('"},
    {"{a b}", 3, "expected ',' or '}' after tuple element, got 'b'"},
    {"[1 2]", 3, "expected ',', '|' or ']' after list element"},
    {"[1, 2", 5, "after list element, got end of input"},
    {"[1|2,3]", 4, "expected ']' after list tail"},
    {"{a,}", 3, "expected a term, got '}'"},
    {"#{a}", 3, "expected '=>' after map key"},
    {"#{a => 1 b}", 9, "expected ',' or '}' after map value"},
    {"#{a := 1}", 4, "':='"},
    {"{a} x", 4, "unexpected text after the term"},
    {"{a}.b", 3, "unexpected text after the term"},
    {"{a}. 'x", 5, "unexpected text after the term"},
    {"1 2", 2, "unexpected text after the term"},
    {"<<256>>", 2, "byte value out of range 0..255"},
    {"<<1, -1>>", 5, "byte value out of range 0..255"},
    {"<<1, 99999999999999999999>>", 5, "out of range"},
    {"<<\"\xce\xa9\">>", 3, "does not fit in a byte"},
    {"<<1:8>>", 3, "sizes"},
    {"<<1/binary>>", 4, "only /utf8"},
    {"<<\"a\"/utf8-little>>", 10, "plain /utf8"},
    {"<<a>>", 2, "expected a byte, a character or a string"},
    {"<<1.5>>", 2, "floats are not supported in binaries"},
    {"<<16#110000/utf8>>", 2, "not a valid character code"},
    {"<0.85.0>", 0, "pids cannot be written"},
    {"[a, <0.85.0>]", 4, "pids cannot be written"},
    {"#Ref<0.1.2.3>", 0, "references cannot be written"},
    {"#Port<0.7>", 0, "ports cannot be written"},
    {"#Fun<erl_eval.1.2>", 0, "funs cannot be written"},
    {"fun lists:map/2", 0, "funs cannot be written"},
    {"#rec{a = 1}", 0, "records cannot be written"},
    {"[a|T]", 3, "variables cannot be used in a term: 'T'"},
    {"_", 0, "variables"},
    {"{end}", 1, "'end' is a reserved word"},
    {"\"\\x{110000}\"", 1, "not a valid character code"},
    {"'\\x{D800}'", 1, "not a valid character code"},
    {"\"ab\\x4\"", 6, "two hex digits"},
    {"\"\\x{}\"", 4, "hex digits and '}'"},
    {"\"\\", 1, "unterminated escape"},
    {"\"\xff\"", 1, "invalid UTF-8"},
    {"\"\xc0\x80\"", 1, "invalid UTF-8"},
    {"\xce\xa9", 0, "unexpected character"},
    {"1.0e400", 0, "float out of range"},
    {"1.5e", 4, "expected exponent digits"},
    {"1.5e+x", 5, "expected exponent digits"},
    {"37#1", 0, "invalid base 37"},
    {"16#", 3, "expected base-16 digits"},
    {"16#g", 3, "expected base-16 digits"},
    {"$", 0, "expected a character after '$'"},
    {"- a", 2, "expected a number after '-', got 'a'"},
    {"-", 1, "expected a number after '-', got end of input"},
    {"=", 0, "unexpected character '='"},
};

static void test_parse_errors(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < sizeof perrs / sizeof perrs[0]; i++) {
        struct tparse_err e = {999, "junk"};
        int rc = tparse(perrs[i].text, &b, &e);
        if (rc != -EINVAL || e.pos != perrs[i].pos || !strstr(e.msg, perrs[i].msg))
            fail_msg("[%s]: rc %d pos %zu msg '%s', want pos %zu msg '%s'", perrs[i].text, rc, e.pos,
                     e.msg, perrs[i].pos, perrs[i].msg);
        assert_int_equal(b.len, 0);
    }
    buf_free(&b);
}

/* ---- random terms ---- */

struct gen {
    char *s;
    size_t len, cap;
    uint64_t x;
};

static unsigned gen_rand(struct gen *g, unsigned n)
{
    g->x = g->x * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(g->x >> 33) % n;
}

static void gen_put(struct gen *g, const char *s)
{
    size_t n = strlen(s);
    assert_true(g->len + n < g->cap);
    memcpy(g->s + g->len, s, n + 1);
    g->len += n;
}

static const char *const gen_scalars[] = {
    "0", "-1", "255", "256", "-2147483649", "123456789012345678901234567890", "16#fF_ff", "-2#101",
    "$a", "$\\n", "$\\x{3A9}", "1.5", "-0.0", "1.0e-3", "6.02e23", "ok", "lk1@vm", "'Any Thing'",
    "'it\\'s'", "''", "'end'", "\xc3\xa9t\xc3\xa9", "'\\x{1F600}'", "\"\"", "\"abc\"",
    "\"tab\\t\\\"q\\\"\"", "\"\\x{3A9}\"", "\"\\377\\200\"", "<<>>", "<<1,2,255>>", "<<\"bin\">>",
    "<<\"h\xc3\xa9\"/utf8, 0>>", "<<$a, \"b\" \"c\">>", "\"a\" \"b\"", "true", "[]", "{}", "#{}"};

/* A random valid term in Erlang syntax, at most `depth` containers deep. */
static void gen_term(struct gen *g, int depth)
{
    static const char *const open[] = {"{", "[", "#{"}, *const close[] = {"}", "]", "}"};
    unsigned kind = depth > 0 ? gen_rand(g, 6) : 5, n = gen_rand(g, 4);
    if (kind >= 3) {
        gen_put(g, gen_scalars[gen_rand(g, sizeof gen_scalars / sizeof gen_scalars[0])]);
        return;
    }
    gen_put(g, open[kind]);
    for (unsigned i = 0; i < n; i++) {
        gen_put(g, i ? (gen_rand(g, 2) ? ", " : ",") : "");
        gen_term(g, depth - 1);
        if (kind == 2) {
            gen_put(g, " => ");
            gen_term(g, depth - 1);
        }
    }
    if (kind == 1 && n && gen_rand(g, 3) == 0) {
        gen_put(g, " | ");
        gen_term(g, depth - 1);
    }
    gen_put(g, close[kind]);
}

/* Random valid terms round-trip through tprint; every prefix and many
 * one-byte corruptions of their text fail cleanly (a position inside the
 * text, nothing appended) or parse to something that round-trips too. */
static void check_text(const char *text, size_t len, struct buf *b, struct buf *o, struct buf *back)
{
    struct tparse_err e;
    buf_reset(b);
    int rc = tparse(text, b, &e);
    if (rc) {
        assert_int_equal(rc, -EINVAL);
        assert_true(e.pos <= len && e.msg[0]);
        assert_int_equal(b->len, 0);
        return;
    }
    assert_int_equal(render(b->data, b->len, 0, o), 0);
    parse_ok((const char *)o->data, back);
    assert_bytes(back, b, text);
    assert_int_equal(render(b->data, b->len, 1, o), 0);
}

static void test_parse_random(void **state)
{
    (void)state;
    static const char noise[] = "{}[]<>#=,|-.'\"\\$/: a1_X\xc3\xff%";
    static char text[1 << 17], mutated[1 << 17];  /* 6^4 leaves at most */
    struct gen g = {text, 0, sizeof text, 7};
    struct buf b, o, back;
    buf_init(&b);
    buf_init(&o);
    buf_init(&back);
    for (int round = 0; round < 3000; round++) {
        g.len = 0;
        text[0] = 0;
        gen_term(&g, 1 + round % 4);
        parse_ok(text, &b);
        check_text(text, g.len, &b, &o, &back);
        for (size_t k = 0; k < g.len; k += 1 + g.len / 40) {
            memcpy(mutated, text, k);
            mutated[k] = 0;
            check_text(mutated, k, &b, &o, &back);
            memcpy(mutated, text, g.len + 1);
            mutated[k] = noise[gen_rand(&g, sizeof noise - 1)];
            check_text(mutated, g.len, &b, &o, &back);
        }
    }
    buf_free(&b);
    buf_free(&o);
    buf_free(&back);
}

static char *repeat(const char *head, char c, size_t n, const char *tail)
{
    size_t h = strlen(head), t = strlen(tail);
    char *s = malloc(h + n + t + 1);
    assert_non_null(s);
    memcpy(s, head, h);
    memset(s + h, c, n);
    memcpy(s + h + n, tail, t + 1);
    return s;
}

static void test_parse_limits(void **state)
{
    (void)state;
    struct buf b, o;
    struct tparse_err e;
    buf_init(&b);
    buf_init(&o);
    /* TPARSE_MAX_DEPTH containers parse; one more does not. */
    char *s = malloc(2 * TPARSE_MAX_DEPTH + 3);
    assert_non_null(s);
    memset(s, '[', TPARSE_MAX_DEPTH);
    memset(s + TPARSE_MAX_DEPTH, ']', TPARSE_MAX_DEPTH);
    s[2 * TPARSE_MAX_DEPTH] = 0;
    assert_int_equal(tparse(s, &b, &e), 0);
    memset(s, '{', TPARSE_MAX_DEPTH + 1);
    s[TPARSE_MAX_DEPTH + 1] = 0;
    assert_int_equal(tparse(s, &b, &e), -EINVAL);
    assert_int_equal(e.pos, TPARSE_MAX_DEPTH);
    assert_non_null(strstr(e.msg, "nesting deeper than 256"));
    free(s);
    s = repeat("", '[', 200000, "");  /* far deeper: an error, not a crash */
    assert_int_equal(tparse(s, &b, &e), -EINVAL);
    assert_int_equal(e.pos, TPARSE_MAX_DEPTH);
    free(s);
    /* Atoms: 255 characters, not 256 (bare or quoted, any width). */
    s = repeat("", 'a', 255, "");
    assert_int_equal(tparse(s, &b, &e), 0);
    free(s);
    s = repeat("x", 'a', 255, "");
    assert_int_equal(tparse(s, &b, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "atom too long"));
    free(s);
    s = malloc(1 + 255 * 2 + 2);
    assert_non_null(s);
    s[0] = '\'';
    for (int i = 0; i < 255; i++)
        memcpy(s + 1 + 2 * i, "\xc3\xa9", 2);
    strcpy(s + 1 + 510, "'");
    buf_reset(&b);
    assert_int_equal(tparse(s, &b, &e), 0);
    assert_int_equal(b.data[0], TT_ATOM_UTF8);  /* 510 bytes */
    assert_int_equal(render(b.data, b.len, 0, &o), 0);
    assert_int_equal(o.len, 510);  /* é is a bare atom character */
    assert_memory_equal(o.data, s + 1, 510);
    free(s);
    /* Integer literal length limit. */
    s = repeat("", '7', TPARSE_MAX_DIGITS + 1, "");
    assert_int_equal(tparse(s, &b, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "number longer than"));
    free(s);
    buf_free(&b);
    buf_free(&o);
}

/* Long strings become LIST_EXT; huge integers LARGE_BIG_EXT; both print
 * back to the same text. */
static void test_parse_large_terms(void **state)
{
    (void)state;
    struct buf b, o;
    buf_init(&b);
    buf_init(&o);
    char *s = repeat("\"", 'q', 70000, "\"");
    parse_ok(s, &b);
    assert_int_equal(b.data[0], TT_LIST);
    assert_int_equal(get_u32(b.data + 1), 70000);
    assert_int_equal(render(b.data, b.len, 0, &o), 0);
    assert_string_equal((const char *)o.data, s);
    free(s);
    const char *heads[] = {"1", "-1"};
    for (int k = 0; k < 2; k++) {
        s = repeat(heads[k], '0', 700, "");
        parse_ok(s, &b);
        assert_int_equal(b.data[0], TT_LARGE_BIG);
        assert_int_equal(get_u32(b.data + 1), 291);  /* 10^700 < 2^(8 * 291) */
        assert_int_equal(b.data[5], k);
        assert_int_equal(render(b.data, b.len, 0, &o), 0);
        assert_string_equal((const char *)o.data, s);
        free(s);
    }
    buf_free(&b);
    buf_free(&o);
}

static void test_caret(void **state)
{
    (void)state;
    char out[512];
    struct tparse_err e;
    struct buf b;
    buf_init(&b);
    assert_int_equal(tparse("{a b}", &b, &e), -EINVAL);
    tparse_caret("{a b}", &e, out, sizeof out);
    assert_string_equal(out, "{a b}\n   ^");
    /* Tabs are kept; a multi-byte character is one column. */
    const char *t = "\t{\xc3\xa9, ~}";
    assert_int_equal(tparse(t, &b, &e), -EINVAL);
    assert_int_equal(e.pos, 6);
    tparse_caret(t, &e, out, sizeof out);
    assert_string_equal(out, "\t{\xc3\xa9, ~}\n\t    ^");
    /* Only the line holding the error. */
    t = "{a,\n b c}";
    assert_int_equal(tparse(t, &b, &e), -EINVAL);
    tparse_caret(t, &e, out, sizeof out);
    assert_string_equal(out, " b c}\n   ^");
    /* Long lines are cut around the position. */
    char *s = repeat("", 'x', 80, "");
    char *l = malloc(80 + 1 + 50 + 1);
    assert_non_null(l);
    sprintf(l, "%s~%s", s, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
    struct tparse_err at = {80, ""};
    tparse_caret(l, &at, out, sizeof out);
    char want[256];
    snprintf(want, sizeof want, "...%.60s~%.39s...\n%63s^", s, l + 81, "");
    assert_string_equal(out, want);
    free(s);
    free(l);
    /* Truncation always NUL-terminates; a position past the end is clamped. */
    at.pos = 3;
    tparse_caret("{a b}", &at, out, 4);
    assert_string_equal(out, "{a ");
    at.pos = 99;
    tparse_caret("ab", &at, out, sizeof out);
    assert_string_equal(out, "ab\n  ^");
    buf_free(&b);
}

/* ---- printing ---- */

struct pexp {
    const char *text;
    const char *want;
};

static const struct pexp prints[] = {
    {"{user, 42}", "{user,42}"},
    {"[a, b | c]", "[a,b|c]"},
    {"[1 | [2 | [3]]]", "[1,2,3]"},
    {"#{b => 2, a => 1}", "#{a => 1,b => 2}"},
    {"#{1 => x, 256 => y, a => z}", "#{1 => x,256 => y,a => z}"},
    {"{}", "{}"}, {"[]", "[]"}, {"#{}", "#{}"},
    {"'Any Thing'", "'Any Thing'"}, {"'end'", "'end'"}, {"maybe", "maybe"},
    {"''", "''"}, {"'A'", "'A'"}, {"'_a'", "'_a'"}, {"'a@b1_C'", "a@b1_C"},
    {"'a\\nb'", "'a\\nb'"}, {"'it\\'s'", "'it\\'s'"}, {"'a\\\\b'", "'a\\\\b'"},
    {"'a\"b'", "'a\"b'"}, {"'\\001'", "'\\001'"}, {"'\\d'", "'\\d'"},
    {"'\\x{9f}'", "'\\237'"}, {"'a\\0b'", "'a\\000b'"}, {"\"\\0\"", "[0]"}, {"'\\x{a0}'", "'\xc2\xa0'"},
    {"\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9"}, {"'\xce\xa9'", "'\xce\xa9'"},
    {"\"abc\"", "\"abc\""}, {"\"a\\nb\\\"c\\\\\"", "\"a\\nb\\\"c\\\\\""},
    {"\"\\e\\b\\f\\v\\t\\r\"", "\"\\e\\b\\f\\v\\t\\r\""}, {"\"\\351\"", "\"\xc3\xa9\""},
    {"[1, 2, 3]", "[1,2,3]"}, {"[127]", "[127]"}, {"[256]", "[256]"},
    {"[$a | \"bc\"]", "\"abc\""}, {"[$a | b]", "[97|b]"},
    {"<<\"abc\">>", "<<\"abc\">>"}, {"<<1, 2, 3>>", "<<1,2,3>>"}, {"<<>>", "<<>>"},
    {"<<\"h\xc3\xa9llo\"/utf8>>", "<<\"h\xc3\xa9llo\"/utf8>>"}, {"<<\"\\351\">>", "<<\"\xc3\xa9\">>"},
    {"<<\"a\\nb\">>", "<<\"a\\nb\">>"}, {"<<7>>", "<<7>>"}, {"<<1024/utf8, 0>>", "<<208,128,0>>"},
    {"16#ff", "255"}, {"-2147483649", "-2147483649"},
    {"-123456789012345678901234567890", "-123456789012345678901234567890"},
    {"18446744073709551616", "18446744073709551616"},
    {"1000.0", "1.0e3"}, {"-2.5e-3", "-0.0025"}, {"-0.0", "0.0"}, {"0.1", "0.1"},
    {"[1.5, {2.0}]", "[1.5,{2.0}]"},
};

static void test_print_exact(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof prints / sizeof prints[0]; i++)
        assert_prints(prints[i].text, prints[i].want, 0);
}

static const struct {
    uint64_t bits;
    const char *want;
} floats[] = {
    {0x3ff0000000000000ull, "1.0"},
    {0x4059000000000000ull, "100.0"},
    {0x408f400000000000ull, "1.0e3"},
    {0x3f1a36e2eb1c432dull, "0.0001"},
    {0x3ee4f8b588e368f1ull, "1.0e-5"},
    {0x4340000000000000ull, "9.007199254740992e15"},
    {0x433ffffffffffffeull, "9007199254740990.0"},
    {0x3fb999999999999aull, "0.1"},
    {0x3fd5555555555555ull, "0.3333333333333333"},
    {0x0000000000000001ull, "5.0e-324"},
    {0x7fefffffffffffffull, "1.7976931348623157e308"},
    {0x4271f7182a000000ull, "1.23456e12"},
    {0x41678c29dccccccdull, "12345678.9"},
    {0x41b1de784a000000ull, "299792458.0"},
    {0xbf647ae147ae147bull, "-0.0025"},
    {0x4093380000000000ull, "1230.0"},
    {0x40c8060000000000ull, "1.23e4"},
    {0x3f5426fe718a86d7ull, "0.00123"},
    {0x3f201f31f46ed246ull, "1.23e-4"},
    {0x42dc12218377de66ull, "123456789012345.6"},
    {0x4480f0cf064dd592ull, "1.0e22"},
    {0x0010000000000000ull, "2.2250738585072014e-308"},
    {0xbff8000000000000ull, "-1.5"},
};

/* Expected texts are OTP 25's io:format("~p") of the same doubles. */
static void test_print_floats(void **state)
{
    (void)state;
    struct buf o, b;
    buf_init(&o);
    buf_init(&b);
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        uint8_t t[9] = {TT_NEW_FLOAT};
        for (int k = 0; k < 8; k++)
            t[1 + k] = (uint8_t)(floats[i].bits >> (56 - 8 * k));
        assert_int_equal(render(t, 9, 0, &o), 0);
        assert_string_equal((const char *)o.data, floats[i].want);
        parse_ok(floats[i].want, &b);
        assert_int_equal(b.len, 9);
        assert_memory_equal(b.data, t, 9);
    }
    buf_free(&o);
    buf_free(&b);
}

/* Terms with no literal syntax, and non-canonical encodings. */
static const struct vec pid_new = V(88, 119, 6, 'l', 'k', '1', '@', 'v', 'm', 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1);
static const struct vec pid_old = V(103, 100, 0, 6, 'l', 'k', '1', '@', 'v', 'm', 0, 0, 0, 3, 0, 0, 0, 0, 1);
static const struct vec ref3 = V(90, 0, 3, 119, 6, 'l', 'k', '1', '@', 'v', 'm', 0, 0, 0, 1,
                                 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 1, 44);
static const struct vec port4 = V(120, 119, 6, 'l', 'k', '1', '@', 'v', 'm', 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1);
static const struct vec export_map = V(113, 100, 0, 5, 108, 105, 115, 116, 115, 100, 0, 3, 109, 97, 112, 97, 2);
static const struct vec new_fun = V(112, 0, 0, 0, 70, 1, 239, 48, 10, 222, 93, 19, 232, 30, 241, 90, 5, 16, 204,
    39, 129, 207, 0, 0, 0, 2, 0, 0, 0, 0, 100, 0, 2, 116, 49, 97, 2, 98, 7, 121, 128, 86, 88, 100, 0, 13, 110,
    111, 110, 111, 100, 101, 64, 110, 111, 104, 111, 115, 116, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0);
static const struct vec old_fun = V(117, 0, 0, 0, 1, 88, 119, 1, 'n', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
    100, 0, 2, 't', '1', 97, 5, 98, 0, 0, 0, 7, 119, 1, 'x');
static const struct vec bits = V(77, 0, 0, 0, 2, 3, 1, 64);
static const struct vec old_float = V(99, '1', '.', '5', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0',
    '0', '0', '0', '0', '0', '0', '0', '0', 'e', '+', '0', '0', 0, 0, 0, 0, 0);
static const struct vec nested_tail = V(108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 115, 1, 99);
static const struct vec latin1_atom = V(115, 1, 233);
static const struct vec versioned = V(131, 104, 2, 119, 2, 111, 107, 97, 1);
static const struct vec pid_in_tuple = V(104, 2, 119, 1, 'p', 88, 119, 6, 'l', 'k', '1', '@', 'v', 'm',
                                         0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1);

static void test_print_raw(void **state)
{
    (void)state;
    assert_raw_prints(pid_new, "<lk1@vm.3.0>", "{\"pid\": \"<lk1@vm.3.0>\"}");
    assert_raw_prints(pid_old, "<lk1@vm.3.0>", NULL);
    assert_raw_prints(ref3, "#Ref<lk1@vm.300.20.10>", "{\"ref\": \"#Ref<lk1@vm.300.20.10>\"}");
    assert_raw_prints(port4, "#Port<lk1@vm.7>", "{\"port\": \"#Port<lk1@vm.7>\"}");
    assert_raw_prints(export_map, "fun lists:map/2", "{\"fun\": \"fun lists:map/2\"}");
    assert_raw_prints(new_fun, "#Fun<t1.2.125403222>", "{\"fun\": \"#Fun<t1.2.125403222>\"}");
    assert_raw_prints(old_fun, "#Fun<t1.5.7>", "{\"fun\": \"#Fun<t1.5.7>\"}");
    assert_raw_prints(bits, "<<1,2:3>>", "{\"bitstring\": \"<<1,2:3>>\"}");
    assert_raw_prints(old_float, "1.5", "1.5");
    assert_raw_prints(nested_tail, "[1,2|c]", "{\"improper_list\": [1, 2], \"tail\": {\"atom\": \"c\"}}");
    assert_raw_prints(latin1_atom, "\xc3\xa9", "{\"atom\": \"\xc3\xa9\"}");
    assert_raw_prints(versioned, "{ok,1}", "{\"tuple\": [{\"atom\": \"ok\"}, 1]}");
    assert_raw_prints(pid_in_tuple, "{p,<lk1@vm.3.0>}",
                      "{\"tuple\": [{\"atom\": \"p\"}, {\"pid\": \"<lk1@vm.3.0>\"}]}");
}

/* tparse(tprint(x)) == x for every vector. */
static void test_print_roundtrip(void **state)
{
    (void)state;
    struct buf a, o, b;
    buf_init(&a);
    buf_init(&o);
    buf_init(&b);
    for (size_t i = 0; i < NPVEC; i++) {
        canon_of(pvecs[i].bytes, &a);
        assert_int_equal(render(a.data, a.len, 0, &o), 0);
        parse_ok((const char *)o.data, &b);
        assert_bytes(&b, &a, (const char *)o.data);
    }
    for (size_t i = 0; i < sizeof prints / sizeof prints[0]; i++) {
        parse_ok(prints[i].text, &a);
        assert_int_equal(render(a.data, a.len, 0, &o), 0);
        parse_ok((const char *)o.data, &b);
        assert_bytes(&b, &a, (const char *)o.data);
    }
    buf_free(&a);
    buf_free(&o);
    buf_free(&b);
}

static const struct pexp jsons[] = {
    {"{user, 42}", "{\"tuple\": [{\"atom\": \"user\"}, 42]}"},
    {"#{a => [1, 2], <<\"k\">> => \"q\\\"\\n\"}",
     "{\"map\": [[{\"binary\": \"k\"}, {\"string\": \"q\\\"\\u000a\"}], [{\"atom\": \"a\"}, [1, 2]]]}"},
    {"[a | b]", "{\"improper_list\": [{\"atom\": \"a\"}], \"tail\": {\"atom\": \"b\"}}"},
    {"[\"ab\", [300], []]", "[{\"string\": \"ab\"}, [300], []]"},
    {"123456789012345678901234567890", "{\"integer\": \"123456789012345678901234567890\"}"},
    {"-9223372036854775808", "-9223372036854775808"},
    {"9223372036854775808", "{\"integer\": \"9223372036854775808\"}"},
    {"[1.0e3, -0.5, 2.0]", "[1.0e3, -0.5, 2.0]"},
    {"<<255, 0>>", "{\"bytes\": [255, 0]}"},
    {"<<\"tab\\there \\\\ \\\"q\\\" \\e \xc3\xa9\"/utf8>>",
     "{\"binary\": \"tab\\u0009here \\\\ \\\"q\\\" \\u001b \xc3\xa9\"}"},
    {"<<>>", "{\"binary\": \"\"}"},
    {"'a\"b\\\\c'", "{\"atom\": \"a\\\"b\\\\c\"}"},
    {"\"\xc3\xbf\"", "{\"string\": \"\xc3\xbf\"}"},
    {"{true, false, undefined}", "{\"tuple\": [{\"atom\": \"true\"}, {\"atom\": \"false\"}, {\"atom\": \"undefined\"}]}"},
    {"{}", "{\"tuple\": []}"},
    {"#{}", "{\"map\": []}"},
};

static void test_print_json(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof jsons / sizeof jsons[0]; i++)
        assert_prints(jsons[i].text, jsons[i].want, 1);
}

/* ---- hostile input to the printers ---- */

/* Both printers fail on `t` and leave the buffer as it was. */
static void assert_both_fail(const uint8_t *t, size_t n)
{
    struct buf o;
    buf_init(&o);
    for (int json = 0; json < 2; json++) {
        uint8_t *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        if (n)
            memcpy(copy, t, n);
        buf_reset(&o);
        assert_int_equal(buf_append(&o, "keep", 4), 0);
        int rc = json ? tprint_json(copy, n, &o) : tprint(copy, n, &o);
        free(copy);
        if (rc >= 0)
            fail_msg("printer %d accepted %zu bytes starting with tag %d", json, n, n ? t[0] : -1);
        assert_int_equal(o.len, 4);
    }
    buf_free(&o);
}

static void check_truncations(const uint8_t *t, size_t n)
{
    for (size_t k = 0; k < n; k++)
        assert_both_fail(t, k);
    uint8_t *more = malloc(n + 1);
    assert_non_null(more);
    memcpy(more, t, n);
    more[n] = 106;  /* a whole extra term: still refused */
    assert_both_fail(more, n + 1);
    free(more);
}

static void test_print_truncated(void **state)
{
    (void)state;
    struct buf a;
    buf_init(&a);
    for (size_t i = 0; i < NPVEC; i++) {
        canon_of(pvecs[i].bytes, &a);
        check_truncations(a.data, a.len);
        check_truncations(pvecs[i].bytes.p, pvecs[i].bytes.n);
    }
    const struct vec raws[] = {pid_new, pid_old, ref3, port4, export_map, new_fun, old_fun, bits,
                               old_float, nested_tail, latin1_atom, pid_in_tuple};
    for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++)
        check_truncations(raws[i].p, raws[i].n);
    buf_free(&a);
}

static void test_print_garbage(void **state)
{
    (void)state;
    static const uint8_t tags[] = {70, 77, 88, 90, 97, 98, 99, 104, 105, 106, 107, 108, 109,
                                   110, 111, 112, 113, 116, 117, 118, 119, 120, 0, 255};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    struct buf o;
    buf_init(&o);
    for (int round = 0; round < 20000; round++) {
        uint8_t t[48];
        size_t n = 1 + round % 48;
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            uint8_t r = (uint8_t)(x >> 56);
            t[i] = (r & 1) ? tags[(r >> 1) % sizeof tags] : (uint8_t)(r & 7);
        }
        for (int json = 0; json < 2; json++) {
            int rc = render(t, n, json, &o);
            assert_true(rc == 0 ? o.len > 0 : rc < 0 && o.len == 0);
        }
    }
    /* Known-bad shapes. */
    assert_both_fail((const uint8_t[]){82, 0}, 2);           /* atom cache ref */
    assert_both_fail((const uint8_t[]){131}, 1);             /* version only */
    assert_both_fail((const uint8_t[]){131, 131, 106}, 3);
    assert_both_fail((const uint8_t[]){70, 0x7F, 0xF0, 0, 0, 0, 0, 0, 0}, 9);  /* infinity */
    assert_both_fail((const uint8_t[]){107, 255, 255, 1}, 4); /* count past the end */
    uint8_t deep[2 * 600 + 1];
    for (int i = 0; i < 600; i++)
        memcpy(deep + 2 * i, (const uint8_t[]){104, 1}, 2);
    deep[1200] = 106;
    struct buf d;
    buf_init(&d);
    assert_int_equal(render(deep, 1201, 0, &d), -E2BIG);
    assert_int_equal(render(deep, 1201, 1, &d), -E2BIG);
    buf_free(&d);
    buf_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_vectors),
        cmocka_unit_test(test_parse_appends_and_restores),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_random),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_parse_large_terms),
        cmocka_unit_test(test_caret),
        cmocka_unit_test(test_print_exact),
        cmocka_unit_test(test_print_floats),
        cmocka_unit_test(test_print_raw),
        cmocka_unit_test(test_print_roundtrip),
        cmocka_unit_test(test_print_json),
        cmocka_unit_test(test_print_truncated),
        cmocka_unit_test(test_print_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
