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

#include "cnode/core/log.h"
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

/* One address holding its share of handshake slots is refused, others
 * are not; 0 disables the per-source cap. */
static void test_admit_source(void **state)
{
    (void)state;
    assert_int_equal(conn_admit_source(0, 8), CONN_ADMIT);
    assert_int_equal(conn_admit_source(7, 8), CONN_ADMIT);
    assert_int_equal(conn_admit_source(8, 8), CONN_REFUSE_SOURCE);
    assert_int_equal(conn_admit_source(1000, 0), CONN_ADMIT);
}

/* Per connection: stop reading at half of --max-out, resume at a
 * quarter; nothing in between changes the state. */
static void test_water_conn(void **state)
{
    (void)state;
    struct conn_water w;
    conn_water_init(&w, 16u << 20, 0);
    assert_false(conn_over_water(&w, 0, 0, 0));
    assert_false(conn_over_water(&w, (8u << 20) - 1, 0, 0));
    assert_true(conn_over_water(&w, 8u << 20, 0, 0));
    /* Throttled: still over until at most a quarter is queued. */
    assert_true(conn_over_water(&w, (4u << 20) + 1, 0, 1));
    assert_false(conn_over_water(&w, 4u << 20, 0, 1));
    /* No total cap: the total does not matter. */
    assert_false(conn_over_water(&w, 1u << 20, SIZE_MAX, 0));
}

/* The total cap throttles only connections holding more than the floor:
 * peers that read what they are sent keep being served. */
static void test_water_total(void **state)
{
    (void)state;
    struct conn_water w;
    conn_water_init(&w, 256u << 20, 64u << 20);
    size_t th = 32u << 20, tl = 16u << 20;
    assert_false(conn_over_water(&w, CONN_WATER_FLOOR, th - 1, 0));
    assert_true(conn_over_water(&w, CONN_WATER_FLOOR, th, 0));
    assert_false(conn_over_water(&w, CONN_WATER_FLOOR - 1, th * 4, 0));
    assert_false(conn_over_water(&w, 0, th * 4, 0));
    /* Throttled by the total: resumes below the total's low mark, or once
     * its own queue is under half the floor. */
    assert_true(conn_over_water(&w, CONN_WATER_FLOOR, tl + 1, 1));
    assert_false(conn_over_water(&w, CONN_WATER_FLOOR, tl, 1));
    assert_false(conn_over_water(&w, CONN_WATER_FLOOR / 2, th * 4, 1));
}

/* Peer text in logs: printable ASCII kept, everything else \xNN, the
 * backslash too (so an escape in the log is never the peer's text), and
 * the cap honoured with a "..." mark. */
static void test_log_escape(void **state)
{
    (void)state;
    char out[64];
    log_escape(out, sizeof out, "a@b", 3);
    assert_string_equal(out, "a@b");
    const char *forged = "x\n[error] forged\x1b[2J";
    log_escape(out, sizeof out, forged, strlen(forged));
    assert_string_equal(out, "x\\x0a[error] forged\\x1b[2J");
    const char *bs = "back\\slash\xff";
    log_escape(out, sizeof out, bs, strlen(bs));
    assert_string_equal(out, "back\\x5cslash\\xff");
    size_t n = log_escape(out, 8, "0123456789", 10);
    assert_string_equal(out, "0123...");
    assert_int_equal(n, 7);
    n = log_escape(out, 8, "\n\n\n\n", 4);
    assert_true(n < 8);
    assert_null(strchr(out, '\n'));
    assert_string_equal(log_str(out, sizeof out, NULL), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admit),
        cmocka_unit_test(test_ratelim_no_burst),
        cmocka_unit_test(test_ratelim_burst),
        cmocka_unit_test(test_ratelim_flush),
        cmocka_unit_test(test_admit_source),
        cmocka_unit_test(test_water_conn),
        cmocka_unit_test(test_water_total),
        cmocka_unit_test(test_log_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
