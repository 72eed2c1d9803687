/*
 * lkc-example: the client library in a few lines. Lock a key with this
 * node's pid, read it back from a master, release it.
 *
 *   bin/lkc-example --masters a@host,b@host,c@host '{example, 1}'
 */
#include <stdio.h>

#include "tool_args.h"

static int example(lkc *c, lkc_term key)
{
    struct lkc_result res;
    int rc = lkc_lock(c, key, lkc_self(c), 5000, 0, &res);
    if (rc) {
        fprintf(stderr, "lock: %s\n", lkc_strerror(rc));
        return 1;
    }
    printf("locked: w=%d votes=%d commits=%d\n", res.w, res.votes, res.commits);

    lkc_buf value, text;
    rc = lkc_dirty_read(c, key, &value);
    if (rc == 0 && lkc_format(lkc_term_of(&value), &text) == 0) {
        printf("value on a master: %s\n", (char *)text.data);
        lkc_buf_free(&text);
    } else if (rc) {
        fprintf(stderr, "dirty_read: %s\n", lkc_strerror(rc));
    }
    lkc_buf_free(&value);

    rc = lkc_release(c, key, lkc_self(c), 0, &res);
    if (rc) {
        fprintf(stderr, "release: %s\n", lkc_strerror(rc));
        return 1;
    }
    printf("released: votes=%d commits=%d\n", res.votes, res.commits);
    return 0;
}

int main(int argc, char **argv)
{
    struct tool_args a;
    int prc = tool_parse(argc, argv, "lkc-example", &a);
    if (prc) {
        FILE *f = prc > 0 ? stdout : stderr;
        fprintf(f, "usage: lkc-example [options] --masters A@H,B@H,C@H [KEY]\n"
                   "Locks KEY (Erlang syntax, default {example, 1}), reads it, releases it.\n"
                   "\nOptions:\n");
        tool_usage_common(f);
        return prc > 0 ? 0 : 2;
    }
    char err[512];
    lkc_buf key;
    if (lkc_parse(a.positional ? a.positional : "{example, 1}", &key, err, sizeof err)) {
        fprintf(stderr, "KEY: %s\n", err);
        return 2;
    }
    lkc *c;
    int rc = lkc_open(&a.o, &c, err, sizeof err);
    if (rc) {
        fprintf(stderr, "lkc_open: %s\n", err);
        lkc_buf_free(&key);
        return 1;
    }
    int status = example(c, lkc_term_of(&key));
    lkc_close(c);
    lkc_buf_free(&key);
    return status;
}
