/*
 * Fuzz target: term validation and canonicalisation (ei_glue/term.c).
 *
 * Input: external-format bytes without the 131 version byte; the term at
 * offset 0 is read (bytes after it are left alone, as in a frame). Checked:
 * - term_canon, term_canon_span, term_skip and term_next agree on
 *   success/failure (same error) and on the length read;
 * - term_canon_span's span has the same bytes as term_canon's output, and
 *   points into the input when it says nothing was rewritten;
 * - the output is canonical: term_canon_span of it returns a span into it
 *   covering all of it (no rewrite), and canon(canon(x)) == canon(x);
 * - the bounded decoders never read past the end (ASan) and agree with the
 *   validator on what they accept at the top level.
 */
#include <errno.h>
#include <string.h>

#include "ei_glue/term.h"
#include "fuzz.h"

/* The same term read by each API. */
static void check_agreement(const uint8_t *in, size_t len, int rc, size_t pos,
                            const struct buf *canon)
{
    size_t p = 0;
    FUZZ_CHECK(term_skip(in, len, &p) == rc);
    if (!rc)
        FUZZ_CHECK(p == pos);

    struct term t = {NULL, 0};
    p = 0;
    FUZZ_CHECK(term_next(in, len, &p, &t) == rc);
    if (!rc)
        FUZZ_CHECK(p == pos && t.p == in && t.len == pos);

    struct buf scratch;
    buf_init(&scratch);
    p = 0;
    t = (struct term){NULL, 0};
    FUZZ_CHECK(term_canon_span(in, len, &p, &scratch, &t) == rc);
    if (!rc) {
        FUZZ_CHECK(p == pos && t.len == canon->len);
        FUZZ_CHECK(memcmp(t.p, canon->data, canon->len) == 0);
        if (scratch.len == 0)
            FUZZ_CHECK(t.p == in && t.len == pos);
        else
            FUZZ_CHECK(t.p == scratch.data && t.len == scratch.len);
    }
    buf_free(&scratch);
}

/* canon(x) is a fixed point: no rewrite, and canonicalising it again gives
 * the same bytes. */
static void check_canonical(const struct buf *canon)
{
    struct buf again;
    buf_init(&again);
    size_t p = 0;
    struct term t = {NULL, 0};
    FUZZ_CHECK(term_canon_span(canon->data, canon->len, &p, &again, &t) == 0);
    FUZZ_CHECK(p == canon->len);
    FUZZ_CHECK(again.len == 0 && t.p == canon->data && t.len == canon->len);
    p = 0;
    FUZZ_CHECK(term_canon(canon->data, canon->len, &p, &again) == 0);
    FUZZ_CHECK(p == canon->len && again.len == canon->len);
    FUZZ_CHECK(memcmp(again.data, canon->data, canon->len) == 0);
    buf_free(&again);
}

/* The bounded decoders: in bounds whatever the input; what they accept at
 * offset 0 is a term the validator accepts, when it is one whole term. */
static void check_decoders(const uint8_t *in, size_t len, int rc)
{
    char atom[256 * 4 + 1];
    size_t p = 0;
    if (term_get_atom(in, len, &p, atom, sizeof atom) == 0) {
        FUZZ_CHECK(p <= len && memchr(atom, '\0', sizeof atom));
        if (rc == 0)
            FUZZ_CHECK(term_is_atom(in, len, 0, atom) == 1);
    }
    int64_t v;
    p = 0;
    if (term_get_int64(in, len, &p, &v) == 0)
        FUZZ_CHECK(p <= len);
    uint32_t n;
    p = 0;
    if (term_get_tuple(in, len, &p, &n) == 0)
        FUZZ_CHECK(p <= len);
    p = 0;
    if (term_get_list(in, len, &p, &n) == 0)
        FUZZ_CHECK(p <= len);
    (void)term_peek(in, len, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf canon;
    buf_init(&canon);
    size_t pos = 0;
    int rc = term_canon(data, size, &pos, &canon);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
    if (!rc) {
        FUZZ_CHECK(pos >= 1 && pos <= size && canon.len >= 1);
    }
    check_agreement(data, size, rc, pos, &canon);
    if (!rc)
        check_canonical(&canon);
    check_decoders(data, size, rc);
    buf_free(&canon);
    return 0;
}
