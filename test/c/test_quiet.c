/*
 * The quiet period of a restarted master (cnode/server/quiet.c) against
 * real state files in a fresh temporary directory: first start, restart,
 * the record growing only by steps, explicit periods, and the files that
 * must stop a start (corrupt, unreadable directory).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cnode/core/log.h"
#include "cnode/server/quiet.h"

#define FLOOR 10000

static char dir[256], path[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lockerd-quiet-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/n.state", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(path);
    unlink(tmp);
    rmdir(dir);
    return 0;
}

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_round_up(void **state)
{
    (void)state;
    assert_int_equal(quiet_round_up(0), 1000);
    assert_int_equal(quiet_round_up(1000), 1000);
    assert_int_equal(quiet_round_up(1001), 2000);
    assert_int_equal(quiet_round_up(2000), 2000);
    assert_int_equal(quiet_round_up(2500), 4000);
    assert_int_equal(quiet_round_up(60000), 64000);
}

static void test_first_start_then_restart(void **state)
{
    (void)state;
    char err[256] = "";
    struct quiet *q = quiet_open(path, -1, FLOOR, 5000, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_until(q), 0);
    assert_false(quiet_active(q, 5000));
    assert_int_equal(access(path, R_OK), 0); /* created at first start */

    assert_int_equal(quiet_note_lease(q, 30000), 0);
    assert_int_equal(quiet_longest(q), 32000);
    assert_int_equal(quiet_note_lease(q, 31000), 0); /* within the step */
    assert_int_equal(quiet_longest(q), 32000);
    quiet_free(q);

    /* Restart: quiet for the recorded lease (above the floor). */
    q = quiet_open(path, -1, FLOOR, 100, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_until(q), 100 + 32000);
    assert_true(quiet_active(q, 100));
    assert_true(quiet_active(q, 100 + 31999));
    assert_false(quiet_active(q, 100 + 32000));
    assert_false(quiet_active(q, 100 + 40000));
    quiet_free(q);
}

static void test_restart_short_leases_uses_floor(void **state)
{
    (void)state;
    char err[256] = "";
    struct quiet *q = quiet_open(path, -1, FLOOR, 0, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_note_lease(q, 2000), 0);
    quiet_free(q);
    q = quiet_open(path, -1, FLOOR, 7, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_until(q), 7 + FLOOR);
    assert_int_equal(quiet_longest(q), 2000);
    quiet_free(q);
}

static void test_explicit_period(void **state)
{
    (void)state;
    char err[256] = "";
    /* Fixed at every start, even the first... */
    struct quiet *q = quiet_open(path, 1500, FLOOR, 10, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_until(q), 1510);
    assert_int_equal(quiet_note_lease(q, 90000), 0);
    quiet_free(q);
    /* ... and instead of the computed one after a restart; 0 disables. */
    q = quiet_open(path, 0, FLOOR, 10, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_until(q), 0);
    assert_false(quiet_active(q, 10));
    assert_int_equal(quiet_longest(q), 128000);
    quiet_free(q);
    /* Without a state file nothing is recorded and nothing detected. */
    q = quiet_open(NULL, -1, FLOOR, 10, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_until(q), 0);
    assert_int_equal(quiet_note_lease(q, 5000), 0);
    quiet_free(q);
}

static void test_bad_files_stop_the_start(void **state)
{
    (void)state;
    char err[256] = "";
    write_file("something else\n");
    assert_null(quiet_open(path, -1, FLOOR, 0, err, sizeof err));
    assert_non_null(strstr(err, "not a lockerd state file"));

    write_file("lockerd-state 1\nlongest_lease_ms -5\n");
    err[0] = 0;
    assert_null(quiet_open(path, -1, FLOOR, 0, err, sizeof err));
    assert_non_null(strstr(err, path));

    /* An explicit period does not make a corrupt file acceptable either:
     * the operator should look at it. */
    assert_null(quiet_open(path, 0, FLOOR, 0, err, sizeof err));

    char missing[400];
    snprintf(missing, sizeof missing, "%s/no/such/dir/n.state", dir);
    err[0] = 0;
    assert_null(quiet_open(missing, -1, FLOOR, 0, err, sizeof err));
    assert_non_null(strstr(err, "cannot create"));
}

static void test_write_failure_keeps_old_record(void **state)
{
    (void)state;
    char err[256] = "", tmp[320];
    struct quiet *q = quiet_open(path, -1, FLOOR, 0, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_note_lease(q, 2000), 0);
    /* A directory where the temporary file goes: the rewrite fails (for
     * root too), the old record stays, the next lease retries. */
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(mkdir(tmp, 0700), 0);
    assert_true(quiet_note_lease(q, 50000) < 0);
    assert_int_equal(quiet_longest(q), 2000);
    assert_int_equal(rmdir(tmp), 0);
    assert_int_equal(quiet_note_lease(q, 50000), 0);
    assert_int_equal(quiet_longest(q), 64000);
    quiet_free(q);
    q = quiet_open(path, -1, FLOOR, 0, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_until(q), 64000);
    quiet_free(q);
}

/* Every start serves a new fencing epoch (recorded before it serves); a
 * larger epoch seen in a token is recorded and survives the next start;
 * a file of an older release (no epoch line) starts at epoch 1; without a
 * state file there are no epochs (no tokens). */
static void test_fence_epochs(void **state)
{
    (void)state;
    char err[256];
    write_file("lockerd-state 1\nlongest_lease_ms 0\n");
    struct quiet *q = quiet_open(path, 0, FLOOR, 0, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_epoch(q), 1);
    quiet_free(q);
    q = quiet_open(path, 0, FLOOR, 0, err, sizeof err);
    assert_int_equal(quiet_epoch(q), 2);
    assert_int_equal(quiet_note_epoch(q, 1), 0); /* older: nothing to do */
    assert_int_equal(quiet_epoch(q), 2);
    assert_int_equal(quiet_note_epoch(q, 9), 0);
    assert_int_equal(quiet_epoch(q), 9);
    assert_int_equal(quiet_note_epoch(q, QUIET_EPOCH_MAX), -ERANGE);
    quiet_free(q);
    q = quiet_open(path, 0, FLOOR, 0, err, sizeof err);
    assert_int_equal(quiet_epoch(q), 10);
    quiet_free(q);
    q = quiet_open(NULL, -1, FLOOR, 0, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(quiet_epoch(q), 0);
    quiet_free(q);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_up),
        cmocka_unit_test_setup_teardown(test_first_start_then_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_short_leases_uses_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_period, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files_stop_the_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_keeps_old_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fence_epochs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
