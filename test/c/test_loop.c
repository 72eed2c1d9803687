/*
 * The loop's adaptive coalescing against a real pipe: a watcher reads
 * what is there and reports one unit of work per byte, standing in for
 * the frames the connection layer reports.
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

static void on_read(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)events;
    char b[64];
    ssize_t n = read(io->fd, b, sizeof b);
    if (n > 0)
        loop_note_work(l, (size_t)n);
}

static int setup(void **state)
{
    static struct fixture f;
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
    assert_int_equal(write(f->fds[1], "xxxxxxxxxxxxxxxx", n), (ssize_t)n);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_off_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adaptive_on_off, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
