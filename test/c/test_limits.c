/*
 * The connection layer's pure limit logic: admission of an accepted socket
 * (--max-conns, --max-handshakes) and the log rate limiter that keeps a
 * hostile peer from filling the disk. Fake clock, no sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cnode/dist/conn.h"

static void test_admit(void **state)
{
    (void)state;
    assert_int_equal(conn_admit(0, 10, 0, 4), CONN_ADMIT);
    assert_int_equal(conn_admit(9, 10, 3, 4), CONN_ADMIT);
    /* The connection cap wins: it protects established peers' slots. */
    assert_int_equal(conn_admit(10, 10, 0, 4), CONN_REFUSE_CONNS);
    assert_int_equal(conn_admit(10, 10, 4, 4), CONN_REFUSE_CONNS);
    assert_int_equal(conn_admit(5, 10, 4, 4), CONN_REFUSE_HANDSHAKES);
    assert_int_equal(conn_admit(5, 10, 9, 4), CONN_REFUSE_HANDSHAKES);
    /* max_handshakes 0: no handshake cap (the client library's default). */
    assert_int_equal(conn_admit(5, 10, 1000, 0), CONN_ADMIT);
}

/* Burst 0 (refused accepts): one line per second, carrying the count. */
static void test_ratelim_no_burst(void **state)
{
    (void)state;
    struct conn_ratelim r;
    memset(&r, 0, sizeof r);
    uint32_t dropped = 99;
    int64_t t = 5000;
    assert_true(conn_ratelim_pass(&r, t, 0, &dropped));
    assert_int_equal(dropped, 0);
    for (int i = 0; i < 500; i++)
        assert_false(conn_ratelim_pass(&r, t + i, 0, &dropped));
    assert_false(conn_ratelim_pass(&r, t + CONN_RATELIM_MS - 1, 0, &dropped));
    assert_true(conn_ratelim_pass(&r, t + CONN_RATELIM_MS, 0, &dropped));
    assert_int_equal(dropped, 501);
    /* The next period starts over. */
    assert_false(conn_ratelim_pass(&r, t + CONN_RATELIM_MS + 1, 0, &dropped));
    assert_true(conn_ratelim_pass(&r, t + 2 * CONN_RATELIM_MS, 0, &dropped));
    assert_int_equal(dropped, 1);
}

/* Burst 10 (malformed frames of one peer): 10 lines, then one per second
 * however many events arrive. */
static void test_ratelim_burst(void **state)
{
    (void)state;
    struct conn_ratelim r;
    memset(&r, 0, sizeof r);
    uint32_t dropped;
    int passed = 0;
    for (int i = 0; i < 1000; i++)
        passed += conn_ratelim_pass(&r, 100, 10, &dropped);
    assert_int_equal(passed, 10);
    assert_int_equal(r.suppressed, 990);
    /* Simulate 10 s of flooding, 1000 events per second. */
    passed = 0;
    for (int64_t now = 101; now < 100 + 10 * CONN_RATELIM_MS; now++)
        passed += conn_ratelim_pass(&r, now, 10, &dropped);
    assert_true(passed <= 10);
    assert_true(passed >= 9);
}

static void test_ratelim_flush(void **state)
{
    (void)state;
    struct conn_ratelim r;
    memset(&r, 0, sizeof r);
    uint32_t dropped;
    assert_int_equal(conn_ratelim_flush(&r, 0), 0);
    assert_true(conn_ratelim_pass(&r, 1000, 0, &dropped));
    assert_false(conn_ratelim_pass(&r, 1001, 0, &dropped));
    assert_false(conn_ratelim_pass(&r, 1002, 0, &dropped));
    /* Not before the quiet second is over... */
    assert_int_equal(conn_ratelim_flush(&r, 1500), 0);
    /* ...then the count once. */
    assert_int_equal(conn_ratelim_flush(&r, 2000), 2);
    assert_int_equal(conn_ratelim_flush(&r, 5000), 0);
    /* A flush starts a quiet period of its own. */
    assert_false(conn_ratelim_pass(&r, 2001, 0, &dropped));
    assert_true(conn_ratelim_pass(&r, 3000, 0, &dropped));
    assert_int_equal(dropped, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admit),
        cmocka_unit_test(test_ratelim_no_burst),
        cmocka_unit_test(test_ratelim_burst),
        cmocka_unit_test(test_ratelim_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
