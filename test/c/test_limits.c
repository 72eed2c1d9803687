/*
 * Pure limit logic: admission of an accepted socket (--max-conns,
 * --max-handshakes, --max-handshakes-per-source), output backpressure
 * marks, the log rate limiter and escaping that keep a hostile peer from
 * filling or forging the log, the defaults sized from memory, and the
 * parsing that ties a waiter to its caller. Fake clock, no sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>

#include <cmocka.h>

#include "cnode/core/log.h"
#include "cnode/core/sysmem.h"
#include "cnode/server/waitown.h"
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

/* Defaults are shares of the memory: a 256 MiB machine gets a 64 MiB
 * store, 32 MiB of output for all peers, 16 MiB for one. */
static void test_sysmem_defaults(void **state)
{
    (void)state;
    struct sysmem_limits d;
    sysmem_defaults((size_t)256 << 20, &d);
    assert_int_equal(d.max_memory, (size_t)64 << 20);
    assert_int_equal(d.max_leases, ((size_t)64 << 20) / 256);
    assert_int_equal(d.max_waiters, 32768);
    assert_int_equal(d.max_out_total, (size_t)32 << 20);
    assert_int_equal(d.max_out, (size_t)16 << 20);
    assert_int_equal(d.max_hs_per_source, 8);
    /* Large machines: per-peer output stays at 256 MiB, waiters at 1M. */
    sysmem_defaults((size_t)64 << 30, &d);
    assert_int_equal(d.max_out, (size_t)256 << 20);
    assert_int_equal(d.max_waiters, 1000000);
    /* Tiny or unknown: never 0 (0 would mean no limit). */
    sysmem_defaults(0, &d);
    assert_true(d.max_memory && d.max_leases && d.max_waiters && d.max_out_total);
    sysmem_defaults(1, &d);
    assert_int_equal(d.max_waiters, 1024);
    assert_true(d.max_out >= 65536);
}

/* A waiter ctx (Len:32 Pid Len:32 Tag) and gen_server tags: a bare
 * reference, or [alias | Ref]. */
static void test_waitown_ctx(void **state)
{
    (void)state;
    uint8_t ctx[64], ref[] = {90, 0, 3, 1, 2, 3, 4};
    uint8_t pid[] = {88, 119, 1, 'a', 0, 0, 0, 1};
    uint8_t tag[] = {108, 0, 0, 0, 1, 119, 5, 'a', 'l', 'i', 'a', 's', 90, 0, 3, 1, 2, 3, 4};
    put_u32(ctx, sizeof pid);
    memcpy(ctx + 4, pid, sizeof pid);
    put_u32(ctx + 4 + sizeof pid, sizeof tag);
    memcpy(ctx + 8 + sizeof pid, tag, sizeof tag);
    size_t len = 8 + sizeof pid + sizeof tag;
    struct term p, t, r = {ref, sizeof ref};
    assert_int_equal(waitown_ctx(ctx, len, &p, &t), 0);
    assert_int_equal(p.len, sizeof pid);
    assert_int_equal(t.len, sizeof tag);
    assert_true(waitown_tag_has_ref(t, r));
    assert_true(waitown_tag_has_ref(r, r));
    ref[6] = 5;
    assert_false(waitown_tag_has_ref(t, r));
    /* Truncated, or an rpc waiter's internal ctx: not a caller's. */
    assert_int_equal(waitown_ctx(ctx, len - 1, &p, &t), -EINVAL);
    uint8_t internal[12] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(waitown_ctx(internal, sizeof internal, &p, &t), -EINVAL);
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
        cmocka_unit_test(test_sysmem_defaults),
        cmocka_unit_test(test_waitown_ctx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
