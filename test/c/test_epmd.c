/*
 * epmd codec: exact request bytes and reply parsing, including every
 * truncated prefix of each reply and the error results.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cnode/dist/epmd.h"

static void test_alive2_req_bytes(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out);
    assert_int_equal(epmd_alive2_req(&out, "lockerd", 0x1112), 0);
    const uint8_t want[] = {
        0x00, 0x14,             /* length 20 */
        120,                    /* ALIVE2_REQ */
        0x11, 0x12,             /* port */
        72,                     /* hidden node */
        0,                      /* protocol tcp */
        0x00, 0x06, 0x00, 0x06, /* highest, lowest */
        0x00, 0x07, 'l', 'o', 'c', 'k', 'e', 'r', 'd',
        0x00, 0x00, /* no extra */
    };
    assert_int_equal(buf_size(&out), sizeof want);
    assert_memory_equal(buf_head(&out), want, sizeof want);
    buf_free(&out);
}

static void test_alive2_req_rejects_bad_names(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(epmd_alive2_req(&out, "", 1), -EINVAL);
    assert_int_equal(epmd_alive2_req(&out, NULL, 1), -EINVAL);
    assert_int_equal(epmd_alive2_req(&out, "a@b", 1), -EINVAL);
    assert_int_equal(epmd_alive2_req(&out, longname, 1), -EINVAL);
    assert_int_equal(epmd_port_please2_req(&out, "x@y"), -EINVAL);
    assert_int_equal(buf_size(&out), 0);
    longname[255] = '\0'; /* exactly 255 is allowed */
    assert_int_equal(epmd_alive2_req(&out, longname, 1), 0);
    assert_int_equal(buf_size(&out), 2 + 13 + 255);
    buf_free(&out);
}

static void test_alive2_x_resp(void **state)
{
    (void)state;
    const uint8_t ok[] = {118, 0, 0x12, 0x34, 0x56, 0x78};
    uint32_t creation = 0;
    assert_int_equal(epmd_alive2_resp(ok, sizeof ok, &creation), 6);
    assert_int_equal(creation, 0x12345678);
    for (size_t i = 0; i < sizeof ok; i++) {
        creation = 7;
        assert_int_equal(epmd_alive2_resp(ok, i, &creation), 0);
        assert_int_equal(creation, 7);
    }
    /* Trailing bytes are not consumed. */
    const uint8_t more[] = {118, 0, 0, 0, 0, 3, 0xee};
    assert_int_equal(epmd_alive2_resp(more, sizeof more, &creation), 6);
    assert_int_equal(creation, 3);
}

static void test_alive2_resp_errors(void **state)
{
    (void)state;
    uint32_t creation = 7;
    const uint8_t taken[] = {118, 1, 0, 0, 0, 99};
    assert_int_equal(epmd_alive2_resp(taken, sizeof taken, &creation), -EADDRINUSE);
    /* Decided from the result byte: epmd may close right after it. */
    assert_int_equal(epmd_alive2_resp(taken, 2, &creation), -EADDRINUSE);
    assert_int_equal(epmd_alive2_resp(taken, 1, &creation), 0);
    const uint8_t bad[] = {'x', 0, 0, 0, 0, 1};
    assert_int_equal(epmd_alive2_resp(bad, sizeof bad, &creation), -EINVAL);
    assert_int_equal(epmd_alive2_resp(bad, 1, &creation), -EINVAL);
    assert_int_equal(creation, 7);
}

static void test_alive2_old_resp(void **state)
{
    (void)state;
    const uint8_t ok[] = {121, 0, 0x00, 0x03};
    uint32_t creation = 0;
    assert_int_equal(epmd_alive2_resp(ok, sizeof ok, &creation), 4);
    assert_int_equal(creation, 3);
    for (size_t i = 0; i < sizeof ok; i++)
        assert_int_equal(epmd_alive2_resp(ok, i, &creation), 0);
    const uint8_t taken[] = {121, 1, 0, 0};
    assert_int_equal(epmd_alive2_resp(taken, sizeof taken, &creation), -EADDRINUSE);
}

static void test_port_please2_req_bytes(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out);
    assert_int_equal(epmd_port_please2_req(&out, "peer"), 0);
    const uint8_t want[] = {0x00, 0x05, 122, 'p', 'e', 'e', 'r'};
    assert_int_equal(buf_size(&out), sizeof want);
    assert_memory_equal(buf_head(&out), want, sizeof want);
    buf_free(&out);
}

/* A real-looking reply: port 0x9c41, normal node, tcp, versions 6..6,
 * name "peer", two bytes of extra. */
static const uint8_t port2_ok[] = {
    119, 0, 0x9c, 0x41, 77, 0, 0x00, 0x06, 0x00, 0x05,
    0x00, 0x04, 'p', 'e', 'e', 'r', 0x00, 0x02, 0xab, 0xcd,
};

static void test_port2_resp(void **state)
{
    (void)state;
    uint16_t port = 0, hi = 0, lo = 0;
    assert_int_equal(epmd_port2_resp(port2_ok, sizeof port2_ok, &port, &hi, &lo),
                     (int)sizeof port2_ok);
    assert_int_equal(port, 0x9c41);
    assert_int_equal(hi, 6);
    assert_int_equal(lo, 5);
    /* highest/lowest are optional. */
    port = 0;
    assert_int_equal(epmd_port2_resp(port2_ok, sizeof port2_ok, &port, NULL, NULL),
                     (int)sizeof port2_ok);
    assert_int_equal(port, 0x9c41);
}

static void test_port2_resp_truncated(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof port2_ok; i++) {
        uint16_t port = 1, hi = 2, lo = 3;
        assert_int_equal(epmd_port2_resp(port2_ok, i, &port, &hi, &lo), 0);
        assert_int_equal(port, 1);
        assert_int_equal(hi, 2);
        assert_int_equal(lo, 3);
    }
}

static void test_port2_resp_errors(void **state)
{
    (void)state;
    uint16_t port = 1;
    const uint8_t noent[] = {119, 1};
    assert_int_equal(epmd_port2_resp(noent, sizeof noent, &port, NULL, NULL), -ENOENT);
    assert_int_equal(epmd_port2_resp(noent, 1, &port, NULL, NULL), 0);
    const uint8_t tag[] = {118, 0};
    assert_int_equal(epmd_port2_resp(tag, sizeof tag, &port, NULL, NULL), -EINVAL);
    uint8_t inverted[sizeof port2_ok];
    memcpy(inverted, port2_ok, sizeof inverted);
    inverted[7] = 4; /* highest 4 < lowest 5 */
    assert_int_equal(epmd_port2_resp(inverted, sizeof inverted, &port, NULL, NULL), -EINVAL);
    assert_int_equal(port, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alive2_req_bytes),
        cmocka_unit_test(test_alive2_req_rejects_bad_names),
        cmocka_unit_test(test_alive2_x_resp),
        cmocka_unit_test(test_alive2_resp_errors),
        cmocka_unit_test(test_alive2_old_resp),
        cmocka_unit_test(test_port_please2_req_bytes),
        cmocka_unit_test(test_port2_resp),
        cmocka_unit_test(test_port2_resp_truncated),
        cmocka_unit_test(test_port2_resp_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
