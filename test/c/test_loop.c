/*
 * The loop's adaptive coalescing against a real pipe: a watcher reads
 * what is there and reports one message per byte, standing in for the
 * messages the connection layer reports, each from its own caller unless
 * a test says they all came from one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cnode/core/loop.h"

struct fixture {
    struct loop *l;
    struct loop_io io;
    int fds[2];
};

static int one_caller; /* every message of a read from the same sender */

static void on_read(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)events;
    char b[128];
    ssize_t n = read(io->fd, b, sizeof b);
    if (n > 0)
        loop_note_work(l, (size_t)n, one_caller ? 1 : (size_t)n);
}

static int setup(void **state)
{
    static struct fixture f;
    one_caller = 0;
    if (pipe(f.fds) || !(f.l = loop_new()) ||
        loop_io_add(f.l, &f.io, f.fds[0], LOOP_IN, on_read, NULL))
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    loop_io_del(f->l, &f->io);
    loop_free(f->l);
    close(f->fds[0]);
    close(f->fds[1]);
    return 0;
}

static void put(struct fixture *f, size_t n)
{
    static const char xs[128] = {0};
    assert_true(n <= sizeof xs);
    assert_int_equal(write(f->fds[1], xs, n), (ssize_t)n);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Microseconds one iteration takes with nothing to read. */
static int64_t idle_iteration_us(struct fixture *f)
{
    int64_t t0 = now_us();
    assert_int_equal(loop_run_once(f->l, 0), 0);
    return now_us() - t0;
}

static void test_off_by_default(void **state)
{
    struct fixture *f = *state;
    put(f, 8);
    assert_int_equal(loop_run_once(f->l, 0), 0);
    assert_false(loop_coalescing(f->l));
}

static void test_adaptive_on_off(void **state)
{
    struct fixture *f = *state;
    loop_set_coalesce(f->l, 20000); /* 20 ms: unmistakable in timings */

    /* Lone requests (under 3 units per wakeup) never turn it on. */
    for (int i = 0; i < 10; i++) {
        put(f, 2);
        assert_int_equal(loop_run_once(f->l, 0), 0);
        assert_false(loop_coalescing(f->l));
    }
    assert_true(idle_iteration_us(f) < 15000);

    /* A natural batch turns it on: the next iteration sleeps first. */
    put(f, 3);
    assert_int_equal(loop_run_once(f->l, 0), 0);
    assert_true(loop_coalescing(f->l));
    put(f, 2); /* arrives "during" the sleep: a productive one */
    int64_t t0 = now_us();
    assert_int_equal(loop_run_once(f->l, 0), 0);
    assert_true(now_us() - t0 >= 20000);
    assert_true(loop_coalescing(f->l));

    /* Sleeps that gather nothing: off after four of them. Only iterations
     * that did work are followed by a sleep, so feed one unit each time. */
    for (int i = 0; i < 4; i++) {
        assert_true(loop_coalescing(f->l));
        put(f, 1);
        assert_int_equal(loop_run_once(f->l, 0), 0);
    }
    assert_false(loop_coalescing(f->l));

    /* Cooling down: even a big batch does not turn it back on at once. */
    put(f, 8);
    assert_int_equal(loop_run_once(f->l, 0), 0);
    assert_false(loop_coalescing(f->l));
    for (int i = 0; i < 300; i++)
        assert_int_equal(loop_run_once(f->l, 0), 0);
    put(f, 3);
    assert_int_equal(loop_run_once(f->l, 0), 0);
    assert_true(loop_coalescing(f->l));

    /* Disabling wins at once. */
    loop_set_coalesce(f->l, 0);
    put(f, 8);
    assert_int_equal(loop_run_once(f->l, 0), 0);
    t0 = now_us();
    assert_int_equal(loop_run_once(f->l, 0), 0);
    assert_true(now_us() - t0 < 15000);
}

/* Batches of 64 messages and more are answered without the sleep (the
 * mode stays on); a smaller batch brings the sleep back. */
static void test_big_batches_do_not_sleep(void **state)
{
    struct fixture *f = *state;
    loop_set_coalesce(f->l, 20000);
    put(f, 3);
    assert_int_equal(loop_run_once(f->l, 0), 0);
    assert_true(loop_coalescing(f->l));
    put(f, 70);
    int64_t t0 = now_us();
    assert_int_equal(loop_run_once(f->l, 0), 0); /* the sleep the 3 earned */
    assert_true(now_us() - t0 >= 20000);
    for (int i = 0; i < 3; i++) {
        put(f, 70);
        t0 = now_us();
        assert_int_equal(loop_run_once(f->l, 0), 0);
        assert_true(now_us() - t0 < 15000);
        assert_true(loop_coalescing(f->l));
    }
    /* The last 70 were read without a sleep before; a small batch now is
     * followed by one again. */
    put(f, 5);
    assert_int_equal(loop_run_once(f->l, 0), 0);
    put(f, 2);
    t0 = now_us();
    assert_int_equal(loop_run_once(f->l, 0), 0);
    assert_true(now_us() - t0 >= 20000);
    assert_true(loop_coalescing(f->l));
}

/* One caller pipelining many calls (runs of one sender count once) never
 * turns it on: a sleep would only hold back its window. */
static void test_one_pipelining_caller(void **state)
{
    struct fixture *f = *state;
    loop_set_coalesce(f->l, 20000);
    one_caller = 1;
    for (int i = 0; i < 10; i++) {
        put(f, 40);
        assert_int_equal(loop_run_once(f->l, 0), 0);
        assert_false(loop_coalescing(f->l));
    }
    int64_t t0 = now_us();
    put(f, 40);
    assert_int_equal(loop_run_once(f->l, 0), 0);
    assert_true(now_us() - t0 < 15000);
    /* the same batch from as many callers turns it on */
    one_caller = 0;
    put(f, 40);
    assert_int_equal(loop_run_once(f->l, 0), 0);
    assert_true(loop_coalescing(f->l));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_off_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adaptive_on_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_batches_do_not_sleep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_pipelining_caller, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
