/*
 * Unit tests for ei_glue/term.c: canonical form, validation of hostile
 * input, the bounded decoders and the hash.
 *
 * Byte vectors: the canonical ones are OTP 25 term_to_binary output
 * (minor_version 2, leading 131 dropped) unless marked otherwise; each
 * alternative encoding was built by hand and checked with binary_to_term to
 * decode =:= the same term, and each canonical vector to decode =:= the
 * original. Vectors built in C here (long atoms, long lists) were checked
 * the same way once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "ei_glue/term.h"

/* Under AddressSanitizer any single allocation above 64 MiB aborts the
 * test: a count taken from hostile input must never size an allocation. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "max_allocation_size_mb=64"; }

struct vec {
    const uint8_t *p;
    size_t n;
};

#define V(...) {(const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})}
#define MAX_ALTS 6

struct group {
    const char *name;
    struct vec canon;
    struct vec alt[MAX_ALTS];
};

/* Encodings of one term each; `canon` is the expected canonical form. */
static const struct group groups[] = {
    {"int 0", V(97,0),
      {V(98,0,0,0,0),
       V(110,0,0),
       V(110,1,1,0),
       V(111,0,0,0,0,0),
       V(110,3,0,0,0,0)}},
    {"int 255", V(97,255),
      {V(98,0,0,0,255),
       V(110,1,0,255),
       V(110,3,0,255,0,0),
       V(111,0,0,0,1,0,255)}},
    {"int 256", V(98,0,0,1,0),
      {V(110,2,0,0,1),
       V(110,4,0,0,1,0,0),
       V(111,0,0,0,2,0,0,1)}},
    {"int -1", V(98,255,255,255,255),
      {V(110,1,1,1),
       V(110,1,2,1),
       V(110,2,1,1,0),
       V(111,0,0,0,1,1,1)}},
    {"int -300", V(98,255,255,254,212),
      {V(110,2,1,44,1),
       V(110,3,255,44,1,0)}},
    {"int32 max", V(98,127,255,255,255),
      {V(110,4,0,255,255,255,127),
       V(110,8,0,255,255,255,127,0,0,0,0)}},
    {"int32 min", V(98,128,0,0,0),
      {V(110,4,1,0,0,0,128),
       V(111,0,0,0,5,1,0,0,0,128,0)}},
    {"int32 max+1", V(110,4,0,0,0,0,128),
      {V(110,5,0,0,0,0,128,0),
       V(111,0,0,0,4,0,0,0,0,128)}},
    {"int32 min-1", V(110,4,1,1,0,0,128),
      {V(110,6,1,1,0,0,128,0,0),
       V(111,0,0,0,4,255,1,0,0,128)}},
    {"int 2^32", V(110,5,0,0,0,0,0,1),
      {V(110,8,0,0,0,0,0,1,0,0,0),
       V(111,0,0,0,5,0,0,0,0,0,1)}},
    {"int 2^40", V(110,6,0,0,0,0,0,0,1),
      {V(111,0,0,0,6,0,0,0,0,0,0,1),
       V(110,9,0,0,0,0,0,0,1,0,0,0)}},
    {"int -(2^64)", V(110,9,1,0,0,0,0,0,0,0,0,1),
      {V(111,0,0,0,9,1,0,0,0,0,0,0,0,0,1),
       V(110,12,1,0,0,0,0,0,0,0,0,1,0,0,0)}},
    {"atom abc", V(119,3,97,98,99),
      {V(100,0,3,97,98,99),
       V(115,3,97,98,99),
       V(118,0,3,97,98,99)}},
    {"atom latin-1 e-acute", V(119,2,195,169),
      {V(100,0,1,233),
       V(115,1,233),
       V(118,0,2,195,169)}},
    {"atom empty", V(119,0),
      {V(100,0,0),
       V(115,0),
       V(118,0,0)}},
    {"atom 4-byte utf8", V(119,4,240,159,152,128),
      {V(118,0,4,240,159,152,128)}},
    {"string [1,2,3]", V(107,0,3,1,2,3),
      {V(108,0,0,0,3,97,1,97,2,97,3,106),
       V(108,0,0,0,3,98,0,0,0,1,97,2,110,1,0,3,106),
       V(108,0,0,0,1,97,1,108,0,0,0,2,97,2,97,3,106),
       V(108,0,0,0,1,97,1,107,0,2,2,3),
       V(108,0,0,0,0,107,0,3,1,2,3)}},
    {"[1|[2]]", V(107,0,2,1,2),
      {V(108,0,0,0,1,97,1,108,0,0,0,1,97,2,106)}},
    {"nil", V(106),
      {V(107,0,0),
       V(108,0,0,0,0,106),
       V(108,0,0,0,0,108,0,0,0,0,106)}},
    {"[a|b]", V(108,0,0,0,1,119,1,97,119,1,98),
      {V(108,0,0,0,1,100,0,1,97,115,1,98),
       V(108,0,0,0,1,119,1,97,108,0,0,0,0,119,1,98)}},
    {"[1,a]", V(108,0,0,0,2,97,1,119,1,97,106),
      {V(108,0,0,0,1,97,1,108,0,0,0,1,119,1,97,106),
       V(108,0,0,0,2,98,0,0,0,1,115,1,97,106)}},
    {"[256]", V(108,0,0,0,1,98,0,0,1,0,106),
      {V(108,0,0,0,1,110,2,0,0,1,106)}},
    {"[a|\"bc\"]", V(108,0,0,0,3,119,1,97,97,98,97,99,106),
      {V(108,0,0,0,1,119,1,97,107,0,2,98,99)}},
    {"[1,2|c]", V(108,0,0,0,2,97,1,97,2,119,1,99),
      {V(108,0,0,0,1,97,1,108,0,0,0,1,97,2,119,1,99)}},
    {"{1,2}", V(104,2,97,1,97,2),
      {V(105,0,0,0,2,97,1,97,2),
       V(104,2,98,0,0,0,1,98,0,0,0,2)}},
    {"{}", V(104,0),
      {V(105,0,0,0,0)}},
    {"#{a=>1,b=>2}", V(116,0,0,0,2,119,1,97,97,1,119,1,98,97,2),
      {V(116,0,0,0,2,119,1,98,97,2,119,1,97,97,1),
       V(116,0,0,0,2,100,0,1,98,97,2,115,1,97,98,0,0,0,1)}},
    {"#{1=>x,256=>y,a=>z}", V(116,0,0,0,3,97,1,119,1,120,98,0,0,1,0,119,1,121,119,1,97,119,1,122),
      {V(116,0,0,0,3,119,1,97,119,1,122,98,0,0,1,0,119,1,121,97,1,119,1,120),
       V(116,0,0,0,3,110,2,0,0,1,119,1,121,115,1,97,119,1,122,110,1,0,1,119,1,120)}},
    {"#{k=>#{b=>1,a=>2}}", V(116,0,0,0,1,119,1,107,116,0,0,0,2,119,1,97,97,2,119,1,98,97,1),
      {V(116,0,0,0,1,115,1,107,116,0,0,0,2,119,1,98,97,1,119,1,97,97,2)}},
    {"#{}", V(116,0,0,0,0),
      {{NULL, 0}}},
    {"pid", V(88,119,5,97,64,98,46,99,0,0,0,7,0,0,0,1,0,0,0,1),
      {V(103,100,0,5,97,64,98,46,99,0,0,0,7,0,0,0,1,1),
       V(103,119,5,97,64,98,46,99,0,0,0,7,0,0,0,1,1),
       V(88,115,5,97,64,98,46,99,0,0,0,7,0,0,0,1,0,0,0,1)}},
    {"pid creation 0", V(88,119,5,97,64,98,46,99,0,0,0,7,0,0,0,1,0,0,0,0),
      {V(103,119,5,97,64,98,46,99,0,0,0,7,0,0,0,1,0)}},
    {"ref 1 word", V(90,0,1,119,5,97,64,98,46,99,0,0,0,1,0,0,0,7),
      {V(101,100,0,5,97,64,98,46,99,0,0,0,7,1),
       V(114,0,1,119,5,97,64,98,46,99,1,0,0,0,7),
       V(90,0,1,115,5,97,64,98,46,99,0,0,0,1,0,0,0,7)}},
    {"ref 3 words", V(90,0,3,119,5,97,64,98,46,99,0,0,0,2,0,0,0,7,0,0,0,8,0,0,0,9),
      {V(114,0,3,100,0,5,97,64,98,46,99,2,0,0,0,7,0,0,0,8,0,0,0,9),
       V(90,0,3,100,0,5,97,64,98,46,99,0,0,0,2,0,0,0,7,0,0,0,8,0,0,0,9)}},
    {"ref trailing zero words", V(90,0,2,119,5,97,64,98,46,99,0,0,0,5,0,0,0,7,0,0,0,8),
      {V(90,0,3,119,5,97,64,98,46,99,0,0,0,5,0,0,0,7,0,0,0,8,0,0,0,0),
       V(90,0,5,119,5,97,64,98,46,99,0,0,0,5,0,0,0,7,0,0,0,8,0,0,0,0,0,0,0,0,0,0,0,0)}},
    {"ref all zero", V(90,0,1,119,5,97,64,98,46,99,0,0,0,5,0,0,0,0),
      {V(90,0,0,119,5,97,64,98,46,99,0,0,0,5),
       V(90,0,3,119,5,97,64,98,46,99,0,0,0,5,0,0,0,0,0,0,0,0,0,0,0,0)}},
    {"port", V(120,119,5,97,64,98,46,99,0,0,0,0,0,0,0,7,0,0,0,1),
      {V(102,100,0,5,97,64,98,46,99,0,0,0,7,1),
       V(89,119,5,97,64,98,46,99,0,0,0,7,0,0,0,1),
       V(120,115,5,97,64,98,46,99,0,0,0,0,0,0,0,7,0,0,0,1)}},
    {"port 64-bit id", V(120,119,5,97,64,98,46,99,0,0,0,1,0,0,0,7,0,0,0,3),
      {V(120,100,0,5,97,64,98,46,99,0,0,0,1,0,0,0,7,0,0,0,3)}},
    {"float 1.5", V(70,63,248,0,0,0,0,0,0),
      {V(99,49,46,53,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,101,43,48,48,0,0,0,0,
          0),
       V(99,49,46,53,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0),
       V(99,43,49,53,46,48,69,45,49,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0)}},
    {"float 0.1", V(70,63,185,153,153,153,153,153,154),
      {V(99,49,46,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,53,53,53,49,101,45,48,49,0,0,0,0,
          0)}},
    {"float -2.5e-300", V(70,129,186,201,167,179,183,48,47),
      {V(99,45,50,46,53,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,48,101,45,51,48,48,0,
          0,0)}},
    {"float 0.0", V(70,0,0,0,0,0,0,0,0),
      {V(70,128,0,0,0,0,0,0,0),
       V(99,45,48,46,48,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0),
       V(99,48,46,48,101,48,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0)}},
    {"binary <<5,6>>", V(109,0,0,0,2,5,6),
      {V(77,0,0,0,2,8,5,6)}},
    {"binary <<>>", V(109,0,0,0,0),
      {V(77,0,0,0,0,0)}},
    {"bits <<1:1>>", V(77,0,0,0,1,1,128),
      {V(77,0,0,0,1,1,255)}},
    {"bits <<7,5:3>>", V(77,0,0,0,2,3,7,160),
      {V(77,0,0,0,2,3,7,191)}},
    {"fun a:b/2", V(113,119,1,97,119,1,98,97,2),
      {V(113,100,0,1,97,115,1,98,97,2),
       V(113,119,1,97,119,1,98,98,0,0,0,2)}},
    {"{pid,[ref]} nested", V(104,2,88,119,5,97,64,98,46,99,0,0,0,7,0,0,0,1,0,0,0,1,108,0,0,0,1,90,0,
        1,119,5,97,64,98,46,99,0,0,0,1,0,0,0,7,106),
      {V(105,0,0,0,2,103,100,0,5,97,64,98,46,99,0,0,0,7,0,0,0,1,1,108,0,0,0,1,101,100,0,5,97,64,98,
          46,99,0,0,0,7,1,106)}},
};

/* term_to_binary output that must come back as a span into the input. */
static const struct {
    const char *name;
    struct vec v;
} beam_vecs[] = {
    {"{user,42}", V(104,2,119,4,117,115,101,114,97,42)},
    {"self()", V(88,119,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,9,0,0,0,0,0,0,0,
        0)},
    {"make_ref()", V(90,0,3,119,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,1,
        204,146,22,188,0,2,241,113,180,182)},
    {"alias()", V(90,0,3,119,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,0,0,1,204,
        147,22,189,0,2,241,113,180,182)},
    {"binary bin", V(109,0,0,0,3,98,105,110)},
    {"string", V(107,0,6,115,116,114,105,110,103)},
    {"[1,2,300]", V(108,0,0,0,3,97,1,97,2,98,0,0,1,44,106)},
    {"2^100", V(110,13,0,0,0,0,0,0,0,0,0,0,0,0,0,16)},
    {"-(2^2100)", V(111,0,0,1,7,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        16)},
    {"1.5", V(70,63,248,0,0,0,0,0,0)},
    {"#{a=>1,b=>2}", V(116,0,0,0,2,119,1,97,97,1,119,1,98,97,2)},
    {"fun() -> ok end", V(112,0,0,0,71,0,232,62,142,38,157,75,189,76,133,68,192,95,93,249,178,238,0,
        0,0,0,0,0,0,0,119,5,116,118,103,101,110,97,0,98,7,65,244,113,88,119,13,110,111,110,111,100,
        101,64,110,111,104,111,115,116,0,0,0,9,0,0,0,0,0,0,0,0)},
    {"fun lists:map/2", V(113,119,5,108,105,115,116,115,119,3,109,97,112,97,2)},
    {"<<1:1>>", V(77,0,0,0,1,1,128)},
    {"[a|b]", V(108,0,0,0,1,119,1,97,119,1,98)},
    {"utf8 atom", V(119,5,195,169,116,195,169)},
    {"-2147483648", V(98,128,0,0,0)},
    {"{}", V(104,0)},
    {"[]", V(106)},
    {"<<>>", V(109,0,0,0,0)},
};

static const uint8_t nested_beam[] = {104,10,119,4,117,115,101,114,97,42,108,0,0,0,3,97,1,97,2,98,0,
    0,1,44,106,116,0,0,0,2,97,1,70,64,4,0,0,0,0,0,0,119,1,97,109,0,0,0,1,120,88,119,13,110,111,110,
    111,100,101,64,110,111,104,111,115,116,0,0,0,9,0,0,0,0,0,0,0,0,90,0,3,119,13,110,111,110,111,
    100,101,64,110,111,104,111,115,116,0,0,0,0,0,1,204,148,22,188,0,2,241,113,180,182,107,0,3,115,
    116,114,110,9,0,0,0,0,0,0,0,0,0,64,112,0,0,0,71,0,232,62,142,38,157,75,189,76,133,68,192,95,93,
    249,178,238,0,0,0,1,0,0,0,0,119,5,116,118,103,101,110,97,1,98,7,65,244,113,88,119,13,110,111,
    110,111,100,101,64,110,111,104,111,115,116,0,0,0,9,0,0,0,0,0,0,0,0,104,3,106,109,0,0,0,0,119,2,
    195,169};

/* ---- helpers ---- */

/* An exact-size heap copy, so the sanitizer sees any read past the end. */
static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

/* All three entry points accept in[0..n) whole and agree on `want`; the span
 * points into the input exactly when the input was canonical already. */
static void check_canon(const uint8_t *in, size_t n, const uint8_t *want, size_t wn)
{
    uint8_t *d = dup_exact(in, n);
    struct buf out;
    struct term t;
    size_t pos = 0;
    buf_init(&out);
    assert_int_equal(term_skip(d, n, &pos), 0);
    assert_int_equal(pos, n);
    pos = 0;
    assert_int_equal(term_canon(d, n, &pos, &out), 0);
    assert_int_equal(pos, n);
    assert_int_equal(out.len, wn);
    assert_memory_equal(out.data, want, wn);
    buf_reset(&out);
    pos = 0;
    assert_int_equal(term_canon_span(d, n, &pos, &out, &t), 0);
    assert_int_equal(pos, n);
    assert_int_equal(t.len, wn);
    assert_memory_equal(t.p, want, wn);
    if (n == wn && memcmp(in, want, n) == 0) {
        assert_ptr_equal(t.p, d);
        assert_int_equal(out.len, 0);
    } else {
        assert_ptr_equal(t.p, out.data);
    }
    buf_free(&out);
    free(d);
}

static void check_error_once(const uint8_t *in, size_t n, int err)
{
    uint8_t *d = dup_exact(in, n);
    struct buf out;
    struct term t;
    size_t pos = 0;
    int rc[3];
    buf_init(&out);
    rc[0] = term_skip(d, n, &pos);
    pos = 0;
    rc[1] = term_canon(d, n, &pos, &out);
    pos = 0;
    rc[2] = term_canon_span(d, n, &pos, &out, &t);
    for (int i = 0; i < 3; i++) {
        if (err)
            assert_int_equal(rc[i], err);
        else
            assert_true(rc[i] < 0);
    }
    buf_free(&out);
    free(d);
}

/* All three entry points refuse in[0..n) with `err` (any error if 0), bare
 * and wrapped in a one-element LARGE_TUPLE_EXT: that header is not
 * canonical, so the wrapped copy also runs the rewriting path. */
static void check_error(const uint8_t *in, size_t n, int err)
{
    uint8_t *w = malloc(n + 5);
    assert_non_null(w);
    memcpy(w, (const uint8_t[]){TT_LARGE_TUPLE, 0, 0, 0, 1}, 5);
    if (n)
        memcpy(w + 5, in, n);
    check_error_once(in, n, err);
    check_error_once(w, n + 5, err);
    free(w);
}

#define CHECK_ERROR(err, ...)                                   \
    do {                                                        \
        static const uint8_t v_[] = {__VA_ARGS__};              \
        check_error(v_, sizeof v_, err);                        \
    } while (0)

/* Canonical bytes of a valid term, in a buf the caller frees. */
static struct buf canon_of(const uint8_t *in, size_t n)
{
    struct buf out;
    size_t pos = 0;
    buf_init(&out);
    assert_int_equal(term_canon(in, n, &pos, &out), 0);
    assert_int_equal(pos, n);
    return out;
}

static void put(struct buf *b, const void *p, size_t n)
{
    assert_int_equal(buf_append(b, p, n), 0);
}
static void put8(struct buf *b, uint8_t v) { assert_int_equal(buf_put_u8(b, v), 0); }
static void put32(struct buf *b, uint32_t v) { assert_int_equal(buf_put_u32(b, v), 0); }

static size_t ngroups(void) { return sizeof groups / sizeof groups[0]; }

/* ---- canonical form ---- */

static void test_equivalent_encodings(void **state)
{
    (void)state;
    for (size_t i = 0; i < ngroups(); i++) {
        const struct group *g = &groups[i];
        check_canon(g->canon.p, g->canon.n, g->canon.p, g->canon.n);
        for (int j = 0; j < MAX_ALTS && g->alt[j].p; j++)
            check_canon(g->alt[j].p, g->alt[j].n, g->canon.p, g->canon.n);
    }
}

static void test_beam_output_is_canonical(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof beam_vecs / sizeof beam_vecs[0]; i++)
        check_canon(beam_vecs[i].v.p, beam_vecs[i].v.n, beam_vecs[i].v.p, beam_vecs[i].v.n);
    check_canon(nested_beam, sizeof nested_beam, nested_beam, sizeof nested_beam);
}

static const struct {
    struct vec a, b;
} distinct[] = {
    {V(97, 1), V(70, 63, 240, 0, 0, 0, 0, 0, 0)},                        /* 1 vs 1.0 */
    {V(98, 0, 0, 0, 1), V(99, '1', '.', '0', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)},              /* 1 vs 1.0, old forms */
    {V(109, 0, 0, 0, 1, 'a'), V(107, 0, 1, 'a')},                        /* <<"a">> vs "a" */
    {V(77, 0, 0, 0, 1, 8, 'a'), V(108, 0, 0, 0, 1, 97, 'a', 106)},       /* same, other forms */
    {V(119, 1, 'a'), V(107, 0, 1, 'a')},                                 /* 'a' vs "a" */
    {V(100, 0, 1, 'a'), V(108, 0, 0, 0, 1, 98, 0, 0, 0, 'a', 106)},      /* same, other forms */
    {V(106), V(109, 0, 0, 0, 0)},                                        /* [] vs <<>> */
    {V(107, 0, 0), V(77, 0, 0, 0, 0, 0)},                                /* same, other forms */
    {V(108, 0, 0, 0, 1, 98, 0, 0, 1, 0, 106), V(107, 0, 1, 255)},        /* [256] vs [255] */
    {V(97, 0), V(70, 0, 0, 0, 0, 0, 0, 0, 0)},                           /* 0 vs 0.0 */
    {V(104, 1, 119, 1, 'a'), V(108, 0, 0, 0, 1, 119, 1, 'a', 106)},      /* {a} vs [a] */
    {V(119, 1, 'a'), V(109, 0, 0, 0, 1, 'a')},                           /* 'a' vs <<"a">> */
    {V(107, 0, 2, 'a', 'b'), V(108, 0, 0, 0, 1, 97, 'a', 97, 'b')},      /* "ab" vs [97|98] */
    {V(109, 0, 0, 0, 1, 128), V(77, 0, 0, 0, 1, 1, 128)},                /* <<128>> vs <<1:1>> */
    {V(116, 0, 0, 0, 0), V(104, 0)},                                     /* #{} vs {} */
    {V(98, 255, 255, 255, 255), V(110, 4, 0, 255, 255, 255, 255)},       /* -1 vs 2^32-1 */
    {V(110, 1, 1, 5), V(110, 1, 0, 5)},                                  /* -5 vs 5 */
    {V(88, 119, 1, 'n', 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0),
     V(88, 119, 1, 'n', 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1)},             /* creations 0, 1 */
    {V(90, 0, 1, 119, 1, 'n', 0, 0, 0, 1, 0, 0, 0, 7),
     V(90, 0, 2, 119, 1, 'n', 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 8)},      /* refs [7], [7,8] */
    {V(90, 0, 2, 119, 1, 'n', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7),
     V(90, 0, 1, 119, 1, 'n', 0, 0, 0, 1, 0, 0, 0, 7)},                  /* refs [0,7], [7] */
};

static void test_distinct_terms_stay_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof distinct / sizeof distinct[0]; i++) {
        struct buf a = canon_of(distinct[i].a.p, distinct[i].a.n);
        struct buf b = canon_of(distinct[i].b.p, distinct[i].b.n);
        struct term ta = {a.data, (uint32_t)a.len}, tb = {b.data, (uint32_t)b.len};
        assert_false(term_eq(ta, tb));
        buf_free(&a);
        buf_free(&b);
    }
}

/* Every alternative encoding inside one LARGE_TUPLE: the canonical form is
 * the SMALL_TUPLE of the canonical forms, and every truncation fails. */
static void test_mixed_tuple_and_truncation(void **state)
{
    (void)state;
    struct buf in, want;
    uint32_t n = 0;
    buf_init(&in);
    buf_init(&want);
    for (size_t i = 0; i < ngroups(); i++)
        for (int j = 0; j < MAX_ALTS && groups[i].alt[j].p; j++)
            n++;
    assert_true(n > 60 && n <= 255);
    put8(&in, TT_LARGE_TUPLE);
    put32(&in, n);
    put8(&want, TT_SMALL_TUPLE);
    put8(&want, (uint8_t)n);
    for (size_t i = 0; i < ngroups(); i++)
        for (int j = 0; j < MAX_ALTS && groups[i].alt[j].p; j++) {
            put(&in, groups[i].alt[j].p, groups[i].alt[j].n);
            put(&want, groups[i].canon.p, groups[i].canon.n);
        }
    check_canon(in.data, in.len, want.data, want.len);
    for (size_t k = 0; k < in.len; k++)
        check_error(in.data, k, -EINVAL);
    for (size_t k = 0; k < sizeof nested_beam; k++)
        check_error(nested_beam, k, -EINVAL);
    buf_free(&in);
    buf_free(&want);
}

static int key_order(const struct vec *a, const struct vec *b)
{
    int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* One key per group in reverse group order, keys in a non-canonical
 * encoding where there is one: the output orders pairs by canonical key
 * bytes, shorter first on a common prefix. */
static void test_map_key_order(void **state)
{
    (void)state;
    size_t n = ngroups();
    struct vec keys[sizeof groups / sizeof groups[0]];
    struct buf in, want;
    buf_init(&in);
    buf_init(&want);
    put8(&in, TT_MAP);
    put32(&in, (uint32_t)n);
    for (size_t i = n; i-- > 0;) {
        const struct vec *k = groups[i].alt[0].p ? &groups[i].alt[0] : &groups[i].canon;
        put(&in, k->p, k->n);
        put8(&in, TT_SMALL_INT);
        put8(&in, (uint8_t)i);
        keys[i] = groups[i].canon;
    }
    for (size_t i = 1; i < n; i++)  /* insertion sort, independent of term.c */
        for (size_t j = i; j > 0 && key_order(&keys[j - 1], &keys[j]) > 0; j--) {
            struct vec t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    put8(&want, TT_MAP);
    put32(&want, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        put(&want, keys[i].p, keys[i].n);
        put8(&want, TT_SMALL_INT);
        for (size_t g = 0; g < n; g++)
            if (groups[g].canon.p == keys[i].p)
                put8(&want, (uint8_t)g);
    }
    check_canon(in.data, in.len, want.data, want.len);
    buf_free(&in);
    buf_free(&want);
}

static void test_duplicate_map_keys(void **state)
{
    (void)state;
    CHECK_ERROR(-EINVAL, 116, 0, 0, 0, 2, 97, 1, 97, 2, 97, 1, 97, 3);
    /* equal only once canonical: 'a' latin-1 and UTF-8; 1 as INTEGER_EXT */
    CHECK_ERROR(-EINVAL, 116, 0, 0, 0, 2, 100, 0, 1, 'a', 97, 2, 119, 1, 'a', 97, 3);
    CHECK_ERROR(-EINVAL, 116, 0, 0, 0, 2, 97, 1, 97, 2, 98, 0, 0, 0, 1, 97, 3);
    /* [1|[2]] and "\1\2" */
    CHECK_ERROR(-EINVAL, 116, 0, 0, 0, 2, 107, 0, 2, 1, 2, 106, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0,
                0, 1, 97, 2, 106, 106);
    /* a duplicate inside a map nested in a canonical tuple */
    CHECK_ERROR(-EINVAL, 104, 1, 116, 0, 0, 0, 2, 119, 1, 'b', 106, 119, 1, 'b', 106);
    /* keys in order but not canonical is fine */
    static const uint8_t ok[] = {116, 0, 0, 0, 2, 100, 0, 1, 'a', 97, 1, 100, 0, 1, 'b', 97, 2};
    static const uint8_t ok_c[] = {116, 0, 0, 0, 2, 119, 1, 'a', 97, 1, 119, 1, 'b', 97, 2};
    check_canon(ok, sizeof ok, ok_c, sizeof ok_c);
}

static void test_span_and_append(void **state)
{
    (void)state;
    static const uint8_t in[] = {105, 0, 0, 0, 1, 97, 7, 119, 2, 'o', 'k'};
    static const uint8_t c1[] = {104, 1, 97, 7};
    struct buf out;
    struct term t;
    size_t pos = 0;
    buf_init(&out);
    put(&out, "xyz", 3);
    assert_int_equal(term_canon_span(in, sizeof in, &pos, &out, &t), 0);
    assert_int_equal(pos, 7);
    assert_ptr_equal(t.p, out.data + 3);
    assert_int_equal(t.len, sizeof c1);
    assert_memory_equal(t.p, c1, sizeof c1);
    assert_memory_equal(out.data, "xyz", 3);
    assert_int_equal(term_canon_span(in, sizeof in, &pos, &out, &t), 0);  /* second term */
    assert_int_equal(pos, sizeof in);
    assert_ptr_equal(t.p, in + 7);
    assert_int_equal(t.len, 4);
    assert_int_equal(out.len, 3 + sizeof c1);
    pos = 0;
    assert_int_equal(term_canon(in, sizeof in, &pos, &out), 0);
    assert_int_equal(term_canon(in, sizeof in, &pos, &out), 0);
    assert_int_equal(out.len, 3 + 2 * sizeof c1 + 4);
    assert_memory_equal(out.data + 3 + 2 * sizeof c1, in + 7, 4);
    pos = 0;
    assert_int_equal(term_skip(in, sizeof in, &pos), 0);
    assert_int_equal(pos, 7);
    assert_int_equal(term_skip(in, sizeof in, &pos), 0);
    assert_int_equal(pos, sizeof in);
    assert_int_equal(term_skip(in, sizeof in, &pos), -EINVAL);
    buf_free(&out);
}

/* Latin-1 atoms become UTF-8; 255 two-byte characters need ATOM_UTF8_EXT. */
static void test_long_atoms(void **state)
{
    (void)state;
    struct buf in, want;
    buf_init(&in);
    buf_init(&want);
    put8(&in, TT_ATOM);
    put8(&in, 0);
    put8(&in, 255);
    put8(&want, TT_ATOM_UTF8);
    put8(&want, 510 >> 8);
    put8(&want, 510 & 255);
    for (int i = 0; i < 255; i++) {
        put8(&in, 0xE9);
        put(&want, "\xC3\xA9", 2);
    }
    check_canon(in.data, in.len, want.data, want.len);
    check_canon(want.data, want.len, want.data, want.len);
    put8(&in, 0xE9);  /* 256 characters */
    in.data[1] = 1;
    in.data[2] = 0;
    check_error(in.data, in.len, -EINVAL);
    put(&want, "\xC3\xA9", 2);
    want.data[1] = 512 >> 8;
    want.data[2] = 512 & 255;
    check_error(want.data, want.len, -EINVAL);
    buf_reset(&in);
    buf_reset(&want);
    put8(&in, TT_ATOM_UTF8);
    put8(&in, 0);
    put8(&in, 255);
    put8(&want, TT_SMALL_ATOM_UTF8);
    put8(&want, 255);
    for (int i = 0; i < 255; i++) {
        put8(&in, 'x');
        put8(&want, 'x');
    }
    check_canon(in.data, in.len, want.data, want.len);
    buf_free(&in);
    buf_free(&want);
}

/* Lists of small integers are STRING_EXT up to 65535 elements only. */
static void test_long_lists(void **state)
{
    (void)state;
    for (uint32_t n = 65535; n <= 65536; n++) {
        struct buf in, want;
        buf_init(&in);
        buf_init(&want);
        put8(&in, TT_LIST);
        put32(&in, n);
        for (uint32_t i = 0; i < n; i++) {
            put8(&in, TT_SMALL_INT);
            put8(&in, (uint8_t)i);
        }
        put8(&in, TT_NIL);
        if (n == 65535) {
            put8(&want, TT_STRING);
            put8(&want, 0xFF);
            put8(&want, 0xFF);
            for (uint32_t i = 0; i < n; i++)
                put8(&want, (uint8_t)i);
        } else {
            put(&want, in.data, in.len);
        }
        check_canon(in.data, in.len, want.data, want.len);
        buf_free(&in);
        buf_free(&want);
    }
}

/* A 20000-deep chain of one-element LIST_EXT tails is flattened without
 * recursion: [0|[0|[0|...]]] is a string of 20000 zeros. */
static void test_list_tail_chain(void **state)
{
    (void)state;
    struct buf in, want;
    buf_init(&in);
    buf_init(&want);
    put8(&want, TT_STRING);
    put8(&want, 20000 >> 8);
    put8(&want, 20000 & 255);
    for (int i = 0; i < 20000; i++) {
        static const uint8_t cell[] = {TT_LIST, 0, 0, 0, 1, TT_SMALL_INT, 0};
        put(&in, cell, sizeof cell);
        put8(&want, 0);
    }
    put8(&in, TT_NIL);
    check_canon(in.data, in.len, want.data, want.len);
    buf_free(&in);
    buf_free(&want);
}

static void test_large_tuples_and_bigs(void **state)
{
    (void)state;
    struct buf in, want;
    buf_init(&in);
    buf_init(&want);
    put8(&in, TT_LARGE_TUPLE);  /* arity 256 stays LARGE_TUPLE */
    put32(&in, 256);
    for (int i = 0; i < 256; i++)
        put(&in, (const uint8_t[]){TT_NIL}, 1);
    check_canon(in.data, in.len, in.data, in.len);
    buf_reset(&in);
    put8(&in, TT_LARGE_BIG);    /* 300 digits, 44 of them high zeros */
    put32(&in, 300);
    put8(&in, 1);
    put8(&want, TT_LARGE_BIG);
    put32(&want, 256);
    put8(&want, 1);
    for (int i = 0; i < 300; i++) {
        put8(&in, i < 256 ? (uint8_t)(i % 255 + 1) : 0);
        if (i < 256)
            put8(&want, (uint8_t)(i % 255 + 1));
    }
    check_canon(in.data, in.len, want.data, want.len);
    put_u32(in.data + 1, 255);  /* 255 digits fit SMALL_BIG */
    in.len = 5 + 1 + 255;
    buf_reset(&want);
    put8(&want, TT_SMALL_BIG);
    put8(&want, 255);
    put(&want, in.data + 5, 256);
    check_canon(in.data, in.len, want.data, want.len);
    buf_free(&in);
    buf_free(&want);
}

static void test_funs(void **state)
{
    (void)state;
    /* FUN_EXT and a free variable with a latin-1 atom: kept verbatim */
    static const uint8_t old_fun[] = {117, 0, 0, 0, 1, 88, 119, 1, 'n', 0, 0, 0, 7, 0, 0, 0, 0, 0,
                                      0, 0, 1, 100, 0, 1, 'm', 97, 0, 97, 1, 100, 0, 1, 'x'};
    check_canon(old_fun, sizeof old_fun, old_fun, sizeof old_fun);
    for (size_t k = 0; k < sizeof old_fun; k++)
        check_error(old_fun, k, -EINVAL);
    /* a fun inside a rewritten tuple is copied as is */
    struct buf in, want;
    buf_init(&in);
    buf_init(&want);
    put(&in, (const uint8_t[]){TT_LARGE_TUPLE, 0, 0, 0, 1}, 5);
    put(&in, old_fun, sizeof old_fun);
    put(&want, (const uint8_t[]){TT_SMALL_TUPLE, 1}, 2);
    put(&want, old_fun, sizeof old_fun);
    check_canon(in.data, in.len, want.data, want.len);
    /* NEW_FUN_EXT from BEAM with its size field off by one either way */
    const struct vec *f = NULL;
    for (size_t i = 0; i < sizeof beam_vecs / sizeof beam_vecs[0]; i++)
        if (beam_vecs[i].v.p[0] == TT_NEW_FUN)
            f = &beam_vecs[i].v;
    assert_non_null(f);
    buf_reset(&in);
    put(&in, f->p, f->n);
    in.data[4]++;
    check_error(in.data, in.len, -EINVAL);
    put8(&in, TT_NIL);  /* a byte to spare: the fields still end short */
    check_error(in.data, in.len, -EINVAL);
    in.len--;
    in.data[4] -= 2;
    check_error(in.data, in.len, -EINVAL);
    /* free variables are validated: a duplicate-key map inside FUN_EXT */
    buf_reset(&in);
    put(&in, old_fun, sizeof old_fun - 4);
    put(&in, (const uint8_t[]){116, 0, 0, 0, 2, 97, 1, 106, 97, 1, 106}, 11);
    check_error(in.data, in.len, -EINVAL);
    buf_free(&in);
    buf_free(&want);
}

/* Rewrites nested inside rewrites: 250 maps, each with its pairs out of
 * order and the next map in its first value, and 200 funs, each holding the
 * next one next to a non-canonical tuple. Each level is visited a bounded
 * number of times: re-walking per level would never finish. */
static void test_nested_rewrites(void **state)
{
    (void)state;
    enum { MAPS = 250, FUNS = 200 };
    static const uint8_t m_in[] = {TT_MAP, 0, 0, 0, 2, 97, 1};
    static const uint8_t m_out[] = {TT_MAP, 0, 0, 0, 2, 97, 0, 97, 0, 97, 1};
    static const uint8_t fun_head[] = {117, 0, 0, 0, 1, 88, 119, 1, 'n', 0, 0, 0, 7, 0, 0, 0, 0, 0,
                                       0, 0, 1, 119, 1, 'm', 97, 0, 97, 1, 104, 2};
    struct buf in, want;
    buf_init(&in);
    buf_init(&want);
    for (int i = 0; i < MAPS; i++) {
        put(&in, m_in, sizeof m_in);
        put(&want, m_out, sizeof m_out);
    }
    put(&in, (const uint8_t[]){TT_BINARY, 0, 0, 0, 1, 'x'}, 6);
    put(&want, (const uint8_t[]){TT_BINARY, 0, 0, 0, 1, 'x'}, 6);
    for (int i = 0; i < MAPS; i++)
        put(&in, (const uint8_t[]){97, 0, 97, 0}, 4);
    check_canon(in.data, in.len, want.data, want.len);
    buf_reset(&in);
    for (int i = 0; i < FUNS; i++)
        put(&in, fun_head, sizeof fun_head);
    put8(&in, TT_NIL);
    for (int i = 0; i < FUNS; i++)
        put(&in, (const uint8_t[]){TT_LARGE_TUPLE, 0, 0, 0, 0}, 5);
    check_canon(in.data, in.len, in.data, in.len);  /* funs are kept as they are */
    in.data[in.len - 1] = 1;  /* the outermost tuple claims an element it lacks */
    check_error(in.data, in.len, -EINVAL);
    buf_free(&in);
    buf_free(&want);
}

/* ---- hostile input ---- */

static void test_huge_counts(void **state)
{
    (void)state;
    CHECK_ERROR(-EINVAL, 108, 255, 255, 255, 255, 97, 1, 106, 0, 0);
    CHECK_ERROR(-EINVAL, 105, 255, 255, 255, 255, 97, 1, 0, 0, 0);
    CHECK_ERROR(-EINVAL, 116, 255, 255, 255, 255, 97, 1, 97, 2, 0);
    CHECK_ERROR(-EINVAL, 116, 0, 0, 0, 3, 97, 1, 97, 2, 97, 3);  /* 3 pairs in 6 bytes */
    CHECK_ERROR(-EINVAL, 109, 255, 255, 255, 255, 1, 2, 3, 4, 5);
    CHECK_ERROR(-EINVAL, 77, 255, 255, 255, 255, 3, 1, 2, 3, 4);
    CHECK_ERROR(-EINVAL, 107, 255, 255, 1, 2, 3);
    CHECK_ERROR(-EINVAL, 118, 255, 255, 'a', 'b');
    CHECK_ERROR(-EINVAL, 100, 255, 255, 'a', 'b');
    CHECK_ERROR(-EINVAL, 111, 255, 255, 255, 255, 0, 1, 2, 3);
    CHECK_ERROR(-EINVAL, 110, 255, 0, 1, 2, 3);
    CHECK_ERROR(-EINVAL, 90, 255, 255, 119, 1, 'n', 0, 0, 0, 0, 0, 0, 0, 1);
    CHECK_ERROR(-EINVAL, 112, 255, 255, 255, 255, 0, 1, 2, 3);
    CHECK_ERROR(-EINVAL, 117, 255, 255, 255, 255, 88, 119, 1, 'n', 0, 0, 0, 7, 0, 0, 0, 0, 0, 0,
                0, 1, 119, 1, 'm', 97, 0, 97, 1, 97, 5);
    uint32_t n;
    size_t pos = 0;
    static const uint8_t l[] = {108, 255, 255, 255, 255, 106};
    static const uint8_t t[] = {105, 255, 255, 255, 255, 106};
    assert_int_equal(term_get_list(l, sizeof l, &pos, &n), -EINVAL);
    assert_int_equal(term_get_tuple(t, sizeof t, &pos, &n), -EINVAL);
}

/* `levels` nested containers of one kind around the atom ''. */
static void nest(struct buf *b, int kind, int levels)
{
    static const uint8_t pre[][7] = {
        {TT_SMALL_TUPLE, 1}, {TT_LARGE_TUPLE, 0, 0, 0, 1},
        {TT_LIST, 0, 0, 0, 1}, {TT_MAP, 0, 0, 0, 1, TT_SMALL_INT, 0}};
    static const size_t pre_len[] = {2, 5, 5, 7};
    buf_reset(b);
    for (int i = 0; i < levels; i++)
        put(b, pre[kind], pre_len[kind]);
    put(b, (const uint8_t[]){TT_SMALL_ATOM_UTF8, 0}, 2);
    for (int i = 0; kind == 2 && i < levels; i++)
        put8(b, TT_NIL);
}

static void test_depth_limit(void **state)
{
    (void)state;
    struct buf b, want;
    buf_init(&b);
    buf_init(&want);
    for (int kind = 0; kind < 4; kind++) {
        nest(&b, kind, TERM_MAX_DEPTH - 1);  /* TERM_MAX_DEPTH levels with the leaf */
        nest(&want, kind == 1 ? 0 : kind, TERM_MAX_DEPTH - 1);
        check_canon(b.data, b.len, want.data, want.len);
        nest(&b, kind, TERM_MAX_DEPTH);
        check_error(b.data, b.len, -E2BIG);
    }
    buf_free(&b);
    buf_free(&want);
}

static void test_bad_tags(void **state)
{
    (void)state;
    check_error(NULL, 0, -EINVAL);
    CHECK_ERROR(-EINVAL, 0);
    CHECK_ERROR(-EINVAL, 1, 2, 3);
    CHECK_ERROR(-EINVAL, 255);
    CHECK_ERROR(-EINVAL, 82, 0);                          /* ATOM_CACHE_REF */
    CHECK_ERROR(-EINVAL, 68, 0);                          /* DIST_HEADER */
    CHECK_ERROR(-EINVAL, 80, 0, 0, 0, 2, 120, 156, 1, 2); /* compressed */
    CHECK_ERROR(-EINVAL, 121, 97, 1);                     /* LOCAL_EXT */
    CHECK_ERROR(-EINVAL, 131, 97, 1);                     /* version byte inside */
    CHECK_ERROR(-EINVAL, 104, 1, 82, 0);                  /* nested cache ref */
    CHECK_ERROR(-EINVAL, 108, 0, 0, 0, 1, 97, 1, 82, 0);  /* cache ref as tail */
    CHECK_ERROR(-EINVAL, 88, 82, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0); /* ... as pid node */
}

static void test_bad_atoms(void **state)
{
    (void)state;
    CHECK_ERROR(-EINVAL, 119, 1, 0xFF);                   /* not UTF-8 at all */
    CHECK_ERROR(-EINVAL, 119, 1, 0x80);                   /* lone continuation */
    CHECK_ERROR(-EINVAL, 119, 1, 0xC3);                   /* truncated sequence */
    CHECK_ERROR(-EINVAL, 119, 2, 0xC3, 0x28);             /* bad continuation */
    CHECK_ERROR(-EINVAL, 119, 2, 0xC0, 0x80);             /* overlong NUL */
    CHECK_ERROR(-EINVAL, 118, 0, 3, 0xE0, 0x80, 0x80);    /* overlong, 3 bytes */
    CHECK_ERROR(-EINVAL, 119, 4, 0xF0, 0x80, 0x80, 0x80); /* overlong, 4 bytes */
    CHECK_ERROR(-EINVAL, 119, 3, 0xED, 0xA0, 0x80);       /* surrogate U+D800 */
    CHECK_ERROR(-EINVAL, 119, 4, 0xF4, 0x90, 0x80, 0x80); /* above U+10FFFF */
    CHECK_ERROR(-EINVAL, 119, 1, 0xF8);
    CHECK_ERROR(-EINVAL, 88, 119, 1, 0xFF, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0); /* pid node */
    CHECK_ERROR(-EINVAL, 88, 97, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0);        /* not an atom */
    CHECK_ERROR(-EINVAL, 113, 97, 1, 119, 1, 'f', 97, 0);                       /* export */
    /* the largest valid code point and 4-byte forms are fine */
    static const uint8_t ok[] = {119, 4, 0xF4, 0x8F, 0xBF, 0xBF};
    check_canon(ok, sizeof ok, ok, sizeof ok);
}

static void test_bad_scalars(void **state)
{
    (void)state;
    CHECK_ERROR(-EINVAL, 77, 0, 0, 0, 1, 0, 5);           /* 0 bits, 1 byte */
    CHECK_ERROR(-EINVAL, 77, 0, 0, 0, 1, 9, 5);           /* 9 bits */
    CHECK_ERROR(-EINVAL, 77, 0, 0, 0, 0, 8);              /* 8 bits of nothing */
    CHECK_ERROR(-EINVAL, 70, 0x7F, 0xF8, 0, 0, 0, 0, 0, 0);  /* NaN */
    CHECK_ERROR(-EINVAL, 70, 0xFF, 0xF0, 0, 0, 0, 0, 0, 0);  /* -inf */
    static const char *bad_text[] = {"15", ".5", "5.", "5.0e", " 1.5", "1.0e999", "0x1.0p0",
                                     "inf", "1.5 ", "", "1.50000000000000000000000000000"};
    for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++) {
        uint8_t f[32] = {TT_FLOAT};
        assert_true(strlen(bad_text[i]) <= 31);
        memcpy(f + 1, bad_text[i], strlen(bad_text[i]));
        check_error(f, sizeof f, -EINVAL);
    }
    CHECK_ERROR(-EINVAL, 103, 119, 1, 'n', 0, 0, 0, 7, 0, 0, 0, 0, 4);        /* creation 4 */
    CHECK_ERROR(-EINVAL, 102, 119, 1, 'n', 0, 0, 0, 7, 4);
    CHECK_ERROR(-EINVAL, 101, 119, 1, 'n', 0, 0, 0, 7, 4);
    CHECK_ERROR(-EINVAL, 114, 0, 1, 119, 1, 'n', 4, 0, 0, 0, 7);
    CHECK_ERROR(-EINVAL, 90, 0, 6, 119, 1, 'n', 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0,
                0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6);                            /* 6 id words */
    CHECK_ERROR(-EINVAL, 113, 119, 1, 'm', 119, 1, 'f', 98, 0, 0, 1, 0);      /* arity 256 */
    CHECK_ERROR(-EINVAL, 113, 119, 1, 'm', 119, 1, 'f', 119, 1, 'a');         /* arity atom */
    CHECK_ERROR(-EINVAL, 113, 119, 1, 'm', 106, 97, 1);                      /* function [] */
}

/* ---- decoders ---- */

static void test_get_tuple(void **state)
{
    (void)state;
    static const uint8_t s[] = {104, 2, 119, 1, 'a', 97, 1};
    static const uint8_t l[] = {105, 0, 0, 0, 2, 119, 1, 'a', 97, 1};
    uint32_t n = 9;
    size_t pos = 0;
    assert_int_equal(term_get_tuple(s, sizeof s, &pos, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(pos, 2);
    pos = 0;
    assert_int_equal(term_get_tuple(l, sizeof l, &pos, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(pos, 5);
    pos = 0;
    assert_int_equal(term_get_tuple(l, 4, &pos, &n), -EINVAL);      /* short header */
    assert_int_equal(term_get_tuple(s, 1, &pos, &n), -EINVAL);
    assert_int_equal(term_get_tuple(s, 3, &pos, &n), -EINVAL);      /* arity 2, 1 byte left */
    pos = 2;
    assert_int_equal(term_get_tuple(s, sizeof s, &pos, &n), -EINVAL);  /* an atom */
    pos = sizeof s;
    assert_int_equal(term_get_tuple(s, sizeof s, &pos, &n), -EINVAL);
}

static void test_get_list(void **state)
{
    (void)state;
    static const uint8_t l[] = {108, 0, 0, 0, 2, 97, 1, 97, 2, 106};
    static const uint8_t nil[] = {106};
    static const uint8_t str[] = {107, 0, 1, 5};
    uint32_t n = 9;
    size_t pos = 0;
    assert_int_equal(term_get_list(l, sizeof l, &pos, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(pos, 5);
    pos = 0;
    assert_int_equal(term_get_list(nil, 1, &pos, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(pos, 1);
    pos = 0;
    assert_int_equal(term_get_list(str, sizeof str, &pos, &n), -EINVAL);
    assert_int_equal(term_get_list(l, 4, &pos, &n), -EINVAL);
    assert_int_equal(term_get_list(l, 7, &pos, &n), -EINVAL);  /* no room for 2 + tail */
    pos = 1;
    assert_int_equal(term_get_list(nil, 1, &pos, &n), -EINVAL);
}

static void test_get_atom(void **state)
{
    (void)state;
    const struct vec e_acute[] = {V(100, 0, 1, 0xE9), V(115, 1, 0xE9),
                                         V(118, 0, 2, 0xC3, 0xA9), V(119, 2, 0xC3, 0xA9)};
    char out[256 * 4 + 1];
    for (size_t i = 0; i < 4; i++) {
        size_t pos = 0;
        memset(out, 'z', sizeof out);
        assert_int_equal(term_get_atom(e_acute[i].p, e_acute[i].n, &pos, out, 3), 0);
        assert_string_equal(out, "\xC3\xA9");
        assert_int_equal(pos, e_acute[i].n);
        pos = 0;
        assert_int_equal(term_get_atom(e_acute[i].p, e_acute[i].n, &pos, out, 2), -ENOSPC);
        assert_int_equal(term_get_atom(e_acute[i].p, e_acute[i].n - 1, &pos, out, 3), -EINVAL);
        assert_int_equal(term_is_atom(e_acute[i].p, e_acute[i].n, 0, "\xC3\xA9"), 1);
        assert_int_equal(term_is_atom(e_acute[i].p, e_acute[i].n, 0, "\xC3"), 0);
        assert_int_equal(term_is_atom(e_acute[i].p, e_acute[i].n, 0, "e"), 0);
    }
    uint8_t big[3 + 255];
    big[0] = TT_ATOM;
    big[1] = 0;
    big[2] = 255;
    memset(big + 3, 0xFF, 255);  /* 255 x y-diaeresis: 510 bytes of UTF-8 */
    size_t pos = 0;
    assert_int_equal(term_get_atom(big, sizeof big, &pos, out, sizeof out), 0);
    assert_int_equal(strlen(out), 510);
    assert_memory_equal(out + 508, "\xC3\xBF", 2);
    pos = 0;
    assert_int_equal(term_get_atom(big, sizeof big, &pos, out, 510), -ENOSPC);
    static const uint8_t num[] = {97, 1};
    assert_int_equal(term_get_atom(num, 2, &pos, out, sizeof out), -EINVAL);
    static const uint8_t bad[] = {119, 1, 0xFF};
    assert_int_equal(term_get_atom(bad, 3, &pos, out, sizeof out), -EINVAL);
}

/* Found by fuzzing (test/fuzz/regress/term): an atom with a NUL character
 * used to come out of term_get_atom cut at the NUL, so 'locker\0x' read as
 * 'locker' (a REG_SEND routed, a request op matched, by the wrong name). */
static void test_get_atom_nul(void **state)
{
    (void)state;
    const struct vec with_nul[] = {V(115, 1, 0), V(100, 0, 2, 'a', 0), V(119, 3, 'a', 0, 'b'),
                                   V(118, 0, 8, 'l', 'o', 'c', 'k', 'e', 'r', 0, 'x')};
    char out[256 * 4 + 1];
    for (size_t i = 0; i < sizeof with_nul / sizeof with_nul[0]; i++) {
        size_t pos = 0;
        assert_int_equal(term_get_atom(with_nul[i].p, with_nul[i].n, &pos, out, sizeof out),
                         -EINVAL);
        assert_int_equal(pos, 0);
        /* Still a valid term (BEAM has such atoms): only the C-string
         * decoder refuses it. */
        assert_int_equal(term_skip(with_nul[i].p, with_nul[i].n, &pos), 0);
        assert_int_equal(pos, with_nul[i].n);
        assert_int_equal(term_is_atom(with_nul[i].p, with_nul[i].n, 0, "a"), 0);
    }
    assert_int_equal(term_is_atom(with_nul[3].p, with_nul[3].n, 0, "locker"), 0);
}

static void test_is_atom(void **state)
{
    (void)state;
    const struct vec locker[] = {V(100, 0, 6, 'l', 'o', 'c', 'k', 'e', 'r'),
                                        V(115, 6, 'l', 'o', 'c', 'k', 'e', 'r'),
                                        V(118, 0, 6, 'l', 'o', 'c', 'k', 'e', 'r'),
                                        V(119, 6, 'l', 'o', 'c', 'k', 'e', 'r')};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(term_is_atom(locker[i].p, locker[i].n, 0, "locker"), 1);
        assert_int_equal(term_is_atom(locker[i].p, locker[i].n, 0, "locke"), 0);
        assert_int_equal(term_is_atom(locker[i].p, locker[i].n, 0, "lockers"), 0);
        assert_int_equal(term_is_atom(locker[i].p, locker[i].n - 1, 0, "locker"), 0);
    }
    static const uint8_t t[] = {104, 2, 119, 0, 107, 0, 1, 'a'};
    assert_int_equal(term_is_atom(t, sizeof t, 2, ""), 1);
    assert_int_equal(term_is_atom(t, sizeof t, 0, ""), 0);
    assert_int_equal(term_is_atom(t, sizeof t, 4, "a"), 0);
    assert_int_equal(term_is_atom(t, sizeof t, 99, "a"), 0);
    assert_int_equal(term_peek(t, sizeof t, 0), TT_SMALL_TUPLE);
    assert_int_equal(term_peek(t, sizeof t, 4), TT_STRING);
    assert_int_equal(term_peek(t, sizeof t, sizeof t), -EINVAL);
}

static void test_get_int64(void **state)
{
    (void)state;
    const struct {
        struct vec v;
        int rc;
        int64_t want;
    } cases[] = {
        {V(97, 200), 0, 200},
        {V(98, 255, 255, 255, 0), 0, -256},
        {V(110, 6, 0, 0, 0, 0, 0, 0, 1), 0, (int64_t)1 << 40},
        {V(110, 8, 0, 255, 255, 255, 255, 255, 255, 255, 127), 0, INT64_MAX},
        {V(110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128), 0, INT64_MIN},
        {V(110, 8, 1, 255, 255, 255, 255, 255, 255, 255, 127), 0, -INT64_MAX},
        {V(110, 8, 0, 0, 0, 0, 0, 0, 0, 0, 128), -ERANGE, 0},   /* INT64_MAX + 1 */
        {V(110, 8, 1, 1, 0, 0, 0, 0, 0, 0, 128), -ERANGE, 0},   /* INT64_MIN - 1 */
        {V(110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), -ERANGE, 0},  /* 2^64 */
        {V(110, 12, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, -5}, /* leading zeros */
        {V(111, 0, 0, 0, 1, 0, 7), 0, 7},
        {V(110, 2, 1, 0, 0), 0, 0},                             /* negative zero */
        {V(110, 0, 0), 0, 0},
        {V(70, 63, 240, 0, 0, 0, 0, 0, 0), -EINVAL, 0},         /* 1.0 */
        {V(98, 0, 0, 1), -EINVAL, 0},
        {V(110, 3, 0, 1, 2), -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = 12345;
        size_t pos = 0;
        assert_int_equal(term_get_int64(cases[i].v.p, cases[i].v.n, &pos, &v), cases[i].rc);
        if (cases[i].rc == 0) {
            assert_true(v == cases[i].want);
            assert_int_equal(pos, cases[i].v.n);
        }
    }
}

/* ---- hash ---- */

static int popcount64(uint64_t x)
{
    int n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_hash_basics(void **state)
{
    (void)state;
    uint8_t src[256];
    uint64_t h[257];
    for (int i = 0; i < 256; i++)
        src[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= 256; n++) {  /* exact-size copies: no read past the end */
        uint8_t *d = dup_exact(src, n);
        h[n] = term_hash(d, n);
        assert_true(h[n] == term_hash(src, n));
        assert_true(h[n] == term_hash_seed(src, n, 0));
        assert_true(term_hash_seed(d, n, 1) != term_hash_seed(d, n, 2));
        free(d);
    }
    qsort(h, 257, sizeof h[0], cmp_u64);
    for (int i = 1; i < 257; i++)
        assert_true(h[i] != h[i - 1]);
    static const uint8_t zeros[64];
    assert_true(term_hash(zeros, 8) != term_hash(zeros, 9));
    assert_true(term_hash(zeros, 0) != term_hash(zeros, 1));
}

/* Flipping any one input bit flips about half of the output bits. */
static void test_hash_avalanche(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 49, 64, 97,
                                  200};
    uint8_t buf[200];
    long total = 0, flips = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
        size_t n = lens[l];
        uint64_t base = term_hash(buf, n);
        for (size_t bit = 0; bit < n * 8; bit++) {
            buf[bit / 8] ^= (uint8_t)(1u << bit % 8);
            int d = popcount64(base ^ term_hash(buf, n));
            buf[bit / 8] ^= (uint8_t)(1u << bit % 8);
            assert_true(d >= 8 && d <= 56);
            total += d;
            flips++;
        }
    }
    double avg = (double)total / (double)flips;
    assert_true(avg > 31.0 && avg < 33.0);
}

/* Sequential integer keys, as 8-byte words and as canonical terms, spread
 * evenly over buckets chosen from low and from high hash bits. */
static void test_hash_distribution(void **state)
{
    (void)state;
    enum { KEYS = 1 << 16, BUCKETS = 1 << 10 };
    static uint64_t hs[KEYS];
    static unsigned lo[BUCKETS], hi[BUCKETS];
    for (int form = 0; form < 2; form++) {
        memset(lo, 0, sizeof lo);
        memset(hi, 0, sizeof hi);
        for (uint32_t k = 0; k < KEYS; k++) {
            uint8_t t[8] = {TT_INT};
            size_t n = 5;
            if (form == 0) {
                memcpy(t, &k, 4);
                n = 8;
            } else {
                t[1] = (uint8_t)(k >> 24);
                t[2] = (uint8_t)(k >> 16);
                t[3] = (uint8_t)(k >> 8);
                t[4] = (uint8_t)k;
            }
            hs[k] = term_hash(t, n);
            lo[hs[k] % BUCKETS]++;
            hi[hs[k] >> 54]++;
        }
        for (int b = 0; b < BUCKETS; b++) {  /* mean 64, sd 8 */
            assert_true(lo[b] > 20 && lo[b] < 120);
            assert_true(hi[b] > 20 && hi[b] < 120);
        }
        qsort(hs, KEYS, sizeof hs[0], cmp_u64);
        for (int i = 1; i < KEYS; i++)
            assert_true(hs[i] != hs[i - 1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equivalent_encodings),
        cmocka_unit_test(test_beam_output_is_canonical),
        cmocka_unit_test(test_distinct_terms_stay_distinct),
        cmocka_unit_test(test_mixed_tuple_and_truncation),
        cmocka_unit_test(test_map_key_order),
        cmocka_unit_test(test_duplicate_map_keys),
        cmocka_unit_test(test_span_and_append),
        cmocka_unit_test(test_long_atoms),
        cmocka_unit_test(test_long_lists),
        cmocka_unit_test(test_list_tail_chain),
        cmocka_unit_test(test_large_tuples_and_bigs),
        cmocka_unit_test(test_funs),
        cmocka_unit_test(test_nested_rewrites),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_bad_tags),
        cmocka_unit_test(test_bad_atoms),
        cmocka_unit_test(test_bad_scalars),
        cmocka_unit_test(test_get_tuple),
        cmocka_unit_test(test_get_list),
        cmocka_unit_test(test_get_atom),
        cmocka_unit_test(test_get_atom_nul),
        cmocka_unit_test(test_is_atom),
        cmocka_unit_test(test_get_int64),
        cmocka_unit_test(test_hash_basics),
        cmocka_unit_test(test_hash_avalanche),
        cmocka_unit_test(test_hash_distribution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
