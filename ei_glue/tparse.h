/*
 * Erlang term syntax <-> canonical external term format, for lockerctl.
 *
 * Model. A user types one term in Erlang syntax on a command line; tparse
 * turns it into the canonical bytes of term.h (no 131 version byte), so the
 * result is directly a lockerd key or value and equals what a BEAM node
 * would send for the same term. tprint and tprint_json go the other way for
 * display. Nothing here touches the network or global state.
 *
 * Accepted syntax (what erl_parse:parse_term/1 accepts for literals):
 *  - integers: 42, -7, +7, 1_000_000, Base#Digits (2..36, e.g. 16#ff,
 *    -2#1010), any size (bignums); $c character literals with escapes
 *    ($a, $\n, $\x{41}, $\101, $\^A);
 *  - floats: 1.5, 1.0e3, -2.5E-3 (a '.' with digits on both sides is
 *    required: 1e3 is not a float, as in Erlang); overflow is an error,
 *    underflow gives 0.0;
 *  - atoms: bare (a lowercase or Latin-1 lowercase letter, then letters,
 *    digits, _ and @: ok, lk1@vm) or quoted ('Any Thing', up to 255
 *    characters); reserved words (end, fun, case, ...) must be quoted;
 *  - strings "..." (adjacent strings concatenate: "a" "b" is "ab"); UTF-8
 *    characters in the text become code points;
 *  - escapes in strings, quoted atoms and $: \b \d \e \f \n \r \s \t \v,
 *    \NNN (1-3 octal digits), \xHH, \x{H...}, \^X (control), \C for any
 *    other C (\\ \" \'); code points must be valid Unicode scalar values;
 *  - binaries: <<>>, <<1,2,3>>, <<"abc">>, <<"a", 1, $b>>, and the /utf8
 *    type on a string or integer segment (<<"héllo"/utf8>>, <<1024/utf8>>);
 *  - tuples {}, {a, 1}; lists [], [a, b], [1 | 2], [a | [b]] (a list tail
 *    is flattened, as in Erlang); maps #{k => v} (a repeated key keeps the
 *    last value, as in Erlang);
 *  - whitespace and % comments anywhere between tokens; an optional final
 *    '.'.
 *
 * Refused with a message (tparse returns -EINVAL):
 *  - pids (<0.85.0>), refs (#Ref<...>), ports (#Port<...>) and funs
 *    (fun ..., #Fun<...>): they cannot be written down;
 *  - variables, operators other than a sign on a number, records, ':='
 *    in map literals;
 *  - binary segment sizes and types other than /utf8 (<<1:16>>,
 *    <<X/binary>>, <<1.5/float>>) and byte values outside 0..255 (Erlang
 *    would silently truncate <<256>> to <<0>>; here it is an error);
 *  - nesting deeper than TPARSE_MAX_DEPTH containers, integer literals over
 *    TPARSE_MAX_DIGITS characters.
 *
 * Printing (tprint) follows io:format("~p") on one line: {a,1}, [1,2|c],
 * #{a => 1,b => 2}, "abc" for a list of printable Latin-1 characters,
 * <<"abc">> for a printable binary, <<"héllo"/utf8>> for printable UTF-8,
 * else <<1,2,3>>; floats in Erlang's shortest round-trip form (1.0e3, 0.1,
 * 1.5e-5); atoms quoted when needed. Output is UTF-8: Latin-1 characters in
 * strings and atoms are written as UTF-8, atom characters above U+00FF are
 * written as themselves (like ~tp). Terms with no literal syntax print as
 * <NODE.ID.SERIAL> (pid), #Port<NODE.ID>, #Ref<NODE.W2.W1.W0> (id words
 * high to low, like BEAM), fun M:F/A and #Fun<MODULE.INDEX.UNIQ>.
 * Bitstrings print as <<1,2:3>>. Map pairs come in canonical key order
 * (memcmp of the canonical key bytes, as lockerd stores them), not
 * Erlang's term order: #{b => 1, aa => 2} prints b first, because shorter
 * atoms encode smaller. Everything tprint prints, except pids, refs,
 * ports, funs and bitstrings, parses back with tparse to the same bytes.
 *
 * JSON (tprint_json), every term maps to exactly one shape:
 *    integer fitting int64     JSON number without '.' or exponent: 42
 *    other integer             {"integer": "123456789012345678901234"}
 *    float                     JSON number with '.' or exponent: 1.5, 1.0e3
 *    atom                      {"atom": "name"}  (true/false/undefined too)
 *    printable Latin-1 list    {"string": "text"} (same rule as tprint)
 *    other proper list         [e1, e2, ...]      ([] for the empty list)
 *    improper list [a, b | t]  {"improper_list": [a, b], "tail": t}
 *    tuple                     {"tuple": [e1, e2, ...]}
 *    map                       {"map": [[k1, v1], [k2, v2], ...]}
 *    binary, valid UTF-8       {"binary": "text"}
 *    binary, other             {"bytes": [1, 2, 255]}
 *    bitstring                 {"bitstring": "<<1,2:3>>"}
 *    pid / port / ref / fun    {"pid": "<lk1@vm.3.0>"}, {"port": ...},
 *                              {"ref": ...}, {"fun": ...} holding the
 *                              tprint text
 * JSON booleans and null never appear. Strings are escaped as JSON needs:
 * '"' and '\\' with a backslash, other characters below U+0020 as \u00XX;
 * other characters pass through as UTF-8. Output is one line, with ", "
 * and ": " separators.
 *
 * Errors: tparse returns 0, -EINVAL (syntax; *err filled) or -ENOMEM; the
 * tprint functions return 0, -EINVAL (malformed or truncated input, or
 * bytes after the term), -E2BIG (nested too deep) or -ENOMEM. On any error
 * `out` is left as it was. tprint and tprint_json accept any valid
 * external encoding (with or without the leading 131) and read only
 * t[0..len). Floats are read with strtod, so tparse needs LC_NUMERIC to be
 * "C" (the default unless the program calls setlocale); printing works in
 * any locale.
 */
#ifndef LOCKERD_TPARSE_H
#define LOCKERD_TPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "../cnode/core/buf.h"

#define TPARSE_MAX_DEPTH 256
#define TPARSE_MAX_DIGITS 10000

struct tparse_err {
    size_t pos;     /* byte offset in the text of the offending character */
    char msg[128];  /* what was expected / what is wrong */
};

/* Parse the NUL-terminated `text` (exactly one term) and append its
 * canonical external format to `out`. `err` may be NULL. */
int tparse(const char *text, struct buf *out, struct tparse_err *err);

/* Render the line of `text` holding e->pos and, below it, a caret under
 * the offending character (columns counted in characters, tabs kept so the
 * caret lines up). Long lines are cut around the position with "...".
 * Always NUL-terminates `out` when cap > 0; truncates to fit. */
void tparse_caret(const char *text, const struct tparse_err *e, char *out, size_t cap);

/* Append the Erlang-syntax text of the term t[0..len) to out (no NUL). */
int tprint(const uint8_t *t, size_t len, struct buf *out);

/* Append the JSON rendering of the term t[0..len) to out (no NUL). */
int tprint_json(const uint8_t *t, size_t len, struct buf *out);

/* Internal, shared by tparse.c and tprint.c, so that the atoms tprint
 * leaves unquoted are exactly those tparse reads bare. erl_scan's classes:
 * Latin-1 lowercase letters start atoms, uppercase and '_' start
 * variables; both continue with letters, digits, '_' and '@'. */
static inline int tparse__atom_start(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 0xDF && c <= 0xFF && c != 0xF7);
}

static inline int tparse__var_start(uint32_t c)
{
    return (c >= 'A' && c <= 'Z') || c == '_' || (c >= 0xC0 && c <= 0xDE && c != 0xD7);
}

static inline int tparse__atom_char(uint32_t c)
{
    return tparse__atom_start(c) || tparse__var_start(c) || (c >= '0' && c <= '9') || c == '@';
}

/* Reserved words (OTP 25: maybe and else are not) must be quoted. */
int tparse__reserved(const char *s, size_t n);

/* Strict UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF) decode of the character at s[*i], i < n: 0, or -1 if invalid. */
static inline int tparse__utf8_next(const uint8_t *s, size_t n, size_t *i, uint32_t *cp)
{
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    uint8_t c = s[*i];
    size_t k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 4;
    if (k == 4 || k >= n - *i)
        return -1;
    uint32_t v = k ? c & (0x3Fu >> k) : c;
    for (size_t j = 1; j <= k; j++) {
        if ((s[*i + j] & 0xC0) != 0x80)
            return -1;
        v = v << 6 | (s[*i + j] & 0x3F);
    }
    if (v < min[k] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return -1;
    *cp = v;
    *i += k + 1;
    return 0;
}

/* UTF-8 of a valid code point into d[0..4); returns its length. */
static inline size_t tparse__utf8_put(uint8_t *d, uint32_t cp)
{
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const uint8_t lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t i = n; i-- > 1; cp >>= 6)
        d[i] = (uint8_t)(0x80 | (cp & 0x3F));
    d[0] = (uint8_t)(lead[n] | cp);
    return n;
}

#endif
