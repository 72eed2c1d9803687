/*
 * Fuzz target: post-handshake framing (cnode/dist/frame.c).
 *
 * Input: Max:8 | Stream. The stream is split the way a connection does it
 * (frame_split until it returns 0), with max_body = Max (a small limit, so
 * the oversize path is common). Checked for every frame:
 * - consumed = 4 + body_len <= bytes left, and the body lies inside the input
 *   right after its 4-byte header, whose value it matches;
 * - each proper prefix of the frame gives 0 (need more) - the header alone
 *   is enough to refuse an oversize one, so the check covers only
 *   frames that were accepted;
 * - -EMSGSIZE exactly when the header announces more than Max, decided from
 *   the 4 header bytes alone (the same answer with nothing after them);
 * - fewer than 4 bytes left: 0.
 */
#include <errno.h>

#include "cnode/dist/frame.h"
#include "fuzz.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Every proper prefix of an accepted frame is "need more". Checking all of
 * them is quadratic, so long frames get a sample of lengths. */
static void check_prefixes(const uint8_t *in, size_t frame, size_t max)
{
    size_t step = frame > 64 ? frame / 32 : 1;
    for (size_t k = 0; k < frame; k += step) {
        const uint8_t *b = NULL;
        size_t bl = 0;
        FUZZ_CHECK(frame_split(in, k, max, &b, &bl) == 0);
    }
    FUZZ_CHECK(frame_split(in, frame - 1, max, NULL, NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1, pos = 0;
    for (;;) {
        const uint8_t *body = NULL;
        size_t body_len = (size_t)-1;
        int rc = frame_split(in + pos, len - pos, max, &body, &body_len);
        if (len - pos < 4) {
            FUZZ_CHECK(rc == 0);
            break;
        }
        uint32_t announced = be32(in + pos);
        if (rc == -EMSGSIZE) {
            FUZZ_CHECK(announced > max);
            FUZZ_CHECK(frame_split(in + pos, 4, max, NULL, NULL) == -EMSGSIZE);
            break;
        }
        FUZZ_CHECK(rc >= 0);
        FUZZ_CHECK(announced <= max);
        if (rc == 0) {
            FUZZ_CHECK(len - pos - 4 < announced);
            break;
        }
        size_t consumed = (size_t)rc;
        FUZZ_CHECK(consumed <= len - pos);
        FUZZ_CHECK(consumed == 4 + body_len && body_len == announced);
        FUZZ_CHECK(body == in + pos + 4);
        FUZZ_CHECK(fuzz_inside(body, body_len, in, len));
        /* The out-parameters are optional. */
        FUZZ_CHECK(frame_split(in + pos, len - pos, max, NULL, NULL) == rc);
        check_prefixes(in + pos, consumed, max);
        pos += consumed;
    }
    return 0;
}
