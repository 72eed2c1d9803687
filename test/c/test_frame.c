/*
 * frame_split(): byte vectors for whole frames, ticks, every truncated
 * prefix, back-to-back frames and the size limit decided from the header.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cnode/dist/frame.h"

/* Len 7: pass-through byte, then 131 and a small made-up tail. */
static const uint8_t frame7[] = {0, 0, 0, 7, FRAME_PASS_THROUGH, 131, 104, 1, 97, 2, 106};
static const uint8_t tick[] = {0, 0, 0, 0};

static void test_valid_frame(void **state)
{
    (void)state;
    const uint8_t *body = NULL;
    size_t blen = 99;
    assert_int_equal(frame_split(frame7, sizeof frame7, 1024, &body, &blen), 11);
    assert_ptr_equal(body, frame7 + 4);
    assert_int_equal(blen, 7);
    assert_int_equal(body[0], FRAME_PASS_THROUGH);
    assert_int_equal(body[6], 106);
}

static void test_tick(void **state)
{
    (void)state;
    const uint8_t *body = NULL;
    size_t blen = 99;
    assert_int_equal(frame_split(tick, sizeof tick, 1024, &body, &blen), 4);
    assert_int_equal(blen, 0);
    /* A tick is valid even with a zero size limit. */
    assert_int_equal(frame_split(tick, sizeof tick, 0, &body, &blen), 4);
}

static void test_every_prefix_needs_more(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof frame7; i++) {
        const uint8_t *body = NULL;
        size_t blen = 12345;
        assert_int_equal(frame_split(frame7, i, 1024, &body, &blen), 0);
        assert_null(body);
        assert_int_equal(blen, 12345);
    }
    for (size_t i = 0; i < sizeof tick; i++) {
        const uint8_t *body;
        size_t blen;
        assert_int_equal(frame_split(tick, i, 1024, &body, &blen), 0);
    }
}

static size_t put(uint8_t *dst, size_t at, const uint8_t *src, size_t n)
{
    memcpy(dst + at, src, n);
    return at + n;
}

static void test_back_to_back(void **state)
{
    (void)state;
    uint8_t in[sizeof frame7 + sizeof tick + sizeof frame7 + 2];
    size_t len = 0;
    len = put(in, len, frame7, sizeof frame7);
    len = put(in, len, tick, sizeof tick);
    len = put(in, len, frame7, sizeof frame7);
    in[len++] = 0; /* start of a fourth header */
    in[len++] = 0;

    const uint8_t *body;
    size_t blen, pos = 0;
    int rc = frame_split(in + pos, len - pos, 64, &body, &blen);
    assert_int_equal(rc, 11);
    assert_int_equal(blen, 7);
    pos += (size_t)rc;
    rc = frame_split(in + pos, len - pos, 64, &body, &blen);
    assert_int_equal(rc, 4);
    assert_int_equal(blen, 0);
    pos += (size_t)rc;
    rc = frame_split(in + pos, len - pos, 64, &body, &blen);
    assert_int_equal(rc, 11);
    assert_ptr_equal(body, in + 15 + 4);
    assert_memory_equal(body, frame7 + 4, 7);
    pos += (size_t)rc;
    assert_int_equal(frame_split(in + pos, len - pos, 64, &body, &blen), 0);
    assert_int_equal(pos, len - 2);
}

static void test_oversize_from_header(void **state)
{
    (void)state;
    const uint8_t *body;
    size_t blen;
    /* Exactly at the limit is fine; one more is refused. */
    assert_int_equal(frame_split(frame7, sizeof frame7, 7, &body, &blen), 11);
    assert_int_equal(frame_split(frame7, sizeof frame7, 6, &body, &blen), -EMSGSIZE);
    /* Only the header present: still decided. */
    const uint8_t big[] = {0x00, 0x10, 0x00, 0x01};
    assert_int_equal(frame_split(big, 4, 1 << 20, &body, &blen), -EMSGSIZE);
    assert_int_equal(frame_split(big, 3, 1 << 20, &body, &blen), 0);
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(frame_split(huge, 4, SIZE_MAX, &body, &blen), -EMSGSIZE);
    const uint8_t limit[] = {0x00, 0x10, 0x00, 0x00};
    assert_int_equal(frame_split(limit, 4, 1 << 20, &body, &blen), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_frame),
        cmocka_unit_test(test_tick),
        cmocka_unit_test(test_every_prefix_needs_more),
        cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_oversize_from_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
