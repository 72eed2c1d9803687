/*
 * TLS transport (cnode/dist/tls.c) between two sessions on a non-blocking
 * socketpair, with certificates made by test/make_certs.sh (openssl CLI)
 * in a temporary directory: handshake in both versions, bulk data through
 * small socket buffers (blocked writes, partial reads) with nothing left
 * decrypted inside OpenSSL, every refusal with its reason, a peer that
 * does not speak TLS, end of stream, and the option parser.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cnode/dist/tls.h"

#define HOST "tls-unit.invalid"
#define ROOM 65536

static char dir[64];

static char *path(const char *name)
{
    static char bufs[8][128];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static int setup_certs(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lockerd_test_tls_XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_tls: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    const char *repo = getenv("LOCKERD_REPO");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/test/make_certs.sh %s %s", repo && *repo ? repo : ".", dir,
             HOST);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_tls: '%s' failed (openssl CLI installed? run from the repo "
                        "root or set LOCKERD_REPO)\n", cmd);
        return -1;
    }
    return 0;
}

static int remove_certs(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct tls_cfg cfg_of(const char *leaf, const char *ca)
{
    char cert[64], key[64];
    snprintf(cert, sizeof cert, "%s.pem", leaf);
    snprintf(key, sizeof key, "%s.key", leaf);
    struct tls_cfg c = {.enabled = 1, .cert_file = path(cert), .key_file = path(key),
                        .ca_file = path(ca)};
    return c;
}

/* Two sessions on a socketpair with small buffers, so writes block. */
struct pair {
    int fd[2];
    struct tls_ctx *sx, *cx;
    struct tls *srv, *cli;
};

static void pair_open(struct pair *p, const struct tls_cfg *srv, const struct tls_cfg *cli,
                      const char *host)
{
    char err[256] = "";
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
    int small = 4096;
    for (int i = 0; i < 2; i++) {
        setsockopt(p->fd[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        setsockopt(p->fd[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    if (tls_ctx_new(srv, &p->sx, err, sizeof err) || tls_ctx_new(cli, &p->cx, err, sizeof err))
        fail_msg("tls_ctx_new: %s", err);
    p->srv = tls_new(p->sx, p->fd[0], 1, NULL);
    p->cli = tls_new(p->cx, p->fd[1], 0, host);
    assert_non_null(p->srv);
    assert_non_null(p->cli);
}

static void pair_close(struct pair *p)
{
    tls_free(p->srv);
    tls_free(p->cli);
    tls_ctx_free(p->sx);
    tls_ctx_free(p->cx);
    close(p->fd[0]);
    close(p->fd[1]);
}

/* One step of a session: 1 progressing or waiting, 0 failed (or EOF). */
static int step(struct tls *t, uint8_t *in, size_t *got, size_t cap)
{
    uint8_t scratch[ROOM];
    uint8_t *dst = in ? in + *got : scratch;
    size_t room = in ? cap - *got : sizeof scratch;
    if (room > ROOM)
        room = ROOM;
    if (!room)
        return 1;
    ssize_t n = tls_read(t, dst, room);
    if (n > 0) {
        if (in)
            *got += (size_t)n;
        /* The invariant: with a record's room, nothing stays decrypted. */
        assert_int_equal(tls_pending(t), 0);
        return 1;
    }
    return n < 0 && errno == EAGAIN;
}

static int done(const struct tls *t)
{
    char d[256];
    return tls_describe(t, d, sizeof d)[0] != 0;
}

/* Drive both sides until both finished the handshake (1) or one failed (0). */
static int handshake(struct pair *p)
{
    for (int i = 0; i < 200; i++) {
        int a = step(p->cli, NULL, NULL, 0), b = step(p->srv, NULL, NULL, 0);
        if (!a || !b)
            return 0;
        if (done(p->cli) && done(p->srv))
            return 1;
    }
    fail_msg("handshake did not finish in 200 steps");
    return 0;
}

/* Drive until both sides failed or closed; their reasons in p's sessions. */
static void until_both_fail(struct pair *p)
{
    int a = 1, b = 1;
    for (int i = 0; i < 200 && (a || b); i++) {
        if (a)
            a = step(p->cli, NULL, NULL, 0);
        if (b)
            b = step(p->srv, NULL, NULL, 0);
    }
    assert_false(a || b);
}

static void expect(const char *got, const char *want)
{
    if (!strstr(got, want))
        fail_msg("expected \"%s\" in \"%s\"", want, got);
}

/* ---- cases ---- */

static void handshake_version(int max_version, const char *want)
{
    struct tls_cfg c = cfg_of("node", "ca.pem");
    c.max_version = max_version;
    struct pair p;
    pair_open(&p, &c, &c, HOST);
    assert_true(handshake(&p));
    char d[256];
    expect(tls_describe(p.cli, d, sizeof d), want);
    expect(tls_describe(p.srv, d, sizeof d), want);
    expect(d, "peer certificate /CN=" HOST);
    pair_close(&p);
}

static void test_handshake_13(void **state)
{
    (void)state;
    handshake_version(0, "TLSv1.3");
}

static void test_handshake_12(void **state)
{
    (void)state;
    handshake_version(12, "TLSv1.2");
}

/* 1 MiB each way through 4 KiB socket buffers, both directions at once. */
static void bulk(int max_version)
{
    struct tls_cfg c = cfg_of("node", "ca.pem");
    c.max_version = max_version;
    struct pair p;
    pair_open(&p, &c, &c, "127.0.0.1"); /* an IP literal: matched as an IP */
    assert_true(handshake(&p));
    const size_t total = 1 << 20;
    uint8_t *src = malloc(total), *at_srv = malloc(total), *at_cli = malloc(total);
    assert_non_null(src);
    assert_non_null(at_srv);
    assert_non_null(at_cli);
    for (size_t i = 0; i < total; i++)
        src[i] = (uint8_t)(i * 2654435761u >> 13);
    size_t sent_c = 0, sent_s = 0, got_s = 0, got_c = 0;
    int blocked = 0;
    for (int i = 0; i < 100000 && (got_s < total || got_c < total); i++) {
        ssize_t n;
        if (sent_c < total) {
            n = tls_write(p.cli, src + sent_c, total - sent_c);
            if (n > 0)
                sent_c += (size_t)n;
            else
                assert_int_equal(errno, EAGAIN);
            blocked += n <= 0 && tls_want_write(p.cli);
        }
        if (sent_s < total) {
            n = tls_write(p.srv, src + sent_s, total - sent_s);
            if (n > 0)
                sent_s += (size_t)n;
            else
                assert_int_equal(errno, EAGAIN);
        }
        assert_true(step(p.srv, at_srv, &got_s, total));
        assert_true(step(p.cli, at_cli, &got_c, total));
    }
    assert_int_equal(got_s, total);
    assert_int_equal(got_c, total);
    assert_memory_equal(at_srv, src, total);
    assert_memory_equal(at_cli, src, total);
    assert_true(blocked > 0); /* the small buffers did make writes wait */
    free(src);
    free(at_srv);
    free(at_cli);
    pair_close(&p);
}

static void test_bulk_13(void **state)
{
    (void)state;
    bulk(0);
}

static void test_bulk_12(void **state)
{
    (void)state;
    bulk(12);
}

static void refused(const char *srv_leaf, const char *cli_leaf, const char *host,
                    enum tls_verify verify, const char *cli_want, const char *srv_want)
{
    struct tls_cfg s = cfg_of(srv_leaf, "ca.pem"), c = cfg_of(cli_leaf, "ca.pem");
    s.verify = c.verify = verify;
    struct pair p;
    pair_open(&p, &s, &c, host);
    until_both_fail(&p);
    if (cli_want)
        expect(tls_error(p.cli), cli_want);
    if (srv_want)
        expect(tls_error(p.srv), srv_want);
    pair_close(&p);
}

/* The client refuses the server's certificate, the server hears why. */
static void test_server_cert_refused(void **state)
{
    (void)state;
    refused("wrong", "node", HOST, TLS_VERIFY_PEER,
            "peer certificate refused: unable to get local issuer certificate (depth 0, "
            "subject /CN=" HOST ")",
            "alert from the peer");
    refused("expired", "node", HOST, TLS_VERIFY_PEER,
            "peer certificate refused: certificate has expired", "refused our certificate");
    refused("other", "node", HOST, TLS_VERIFY_PEER,
            "peer certificate refused: hostname mismatch", NULL);
}

/* The server refuses the client's certificate. */
static void test_client_cert_refused(void **state)
{
    (void)state;
    refused("node", "wrong", HOST, TLS_VERIFY_PEER, NULL,
            "peer certificate refused: unable to get local issuer certificate");
    refused("node", "expired", HOST, TLS_VERIFY_PEER, NULL,
            "peer certificate refused: certificate has expired");
}

/* chain: no host name check; none: nothing checked. */
static void test_verify_modes(void **state)
{
    (void)state;
    struct tls_cfg s = cfg_of("other", "ca.pem"), c = cfg_of("node", "ca.pem");
    s.verify = c.verify = TLS_VERIFY_CHAIN;
    struct pair p;
    pair_open(&p, &s, &c, HOST);
    assert_true(handshake(&p));
    pair_close(&p);

    s = cfg_of("expired", "ca.pem");
    c = cfg_of("wrong", "ca.pem");
    s.verify = c.verify = TLS_VERIFY_NONE;
    s.ca_file = c.ca_file = NULL;
    pair_open(&p, &s, &c, HOST);
    assert_true(handshake(&p));
    pair_close(&p);
}

/* A plain-TCP distribution peer's first message reaches a TLS server. */
static void test_not_tls(void **state)
{
    (void)state;
    struct tls_cfg c = cfg_of("node", "ca.pem");
    struct pair p;
    pair_open(&p, &c, &c, HOST);
    const uint8_t send_name[] = {0, 20, 'N', 0, 0, 0, 0x0d, 0x07, 0x07, 0x4f, 0xbc,
                                 0, 0, 0, 1, 0, 5, 'a', '@', 'h', 'o', 's', 't'};
    assert_int_equal(send(p.fd[1], send_name, sizeof send_name, 0), (ssize_t)sizeof send_name);
    uint8_t buf[64];
    assert_int_equal(tls_read(p.srv, buf, sizeof buf), -1);
    assert_int_equal(errno, EPROTO);
    expect(tls_error(p.srv), "does not speak TLS");
    /* failed sessions stay failed */
    assert_int_equal(tls_read(p.srv, buf, sizeof buf), -1);
    assert_int_equal(tls_write(p.srv, buf, 1), -1);
    pair_close(&p);
}

/* A peer closing mid-handshake, and data followed by a close. */
static void test_end_of_stream(void **state)
{
    (void)state;
    struct tls_cfg c = cfg_of("node", "ca.pem");
    struct pair p;
    pair_open(&p, &c, &c, HOST);
    assert_true(step(p.cli, NULL, NULL, 0)); /* hello sent */
    shutdown(p.fd[1], SHUT_RDWR);
    uint8_t buf[ROOM];
    ssize_t n;
    while ((n = tls_read(p.srv, buf, sizeof buf)) < 0 && errno == EAGAIN)
        ;
    assert_int_equal(n, -1);
    expect(tls_error(p.srv), "the peer closed the connection");
    pair_close(&p);

    pair_open(&p, &c, &c, HOST);
    assert_true(handshake(&p));
    assert_int_equal(tls_write(p.cli, "last words", 10), 10);
    tls_shutdown(p.cli); /* close_notify */
    shutdown(p.fd[1], SHUT_WR);
    while ((n = tls_read(p.srv, buf, sizeof buf)) < 0 && errno == EAGAIN)
        ;
    assert_int_equal(n, 10);
    assert_memory_equal(buf, "last words", 10);
    assert_int_equal(tls_read(p.srv, buf, sizeof buf), 0);
    pair_close(&p);
}

static void test_ctx_errors(void **state)
{
    (void)state;
    char err[256];
    struct tls_ctx *x;
    struct tls_cfg c = cfg_of("node", "ca.pem");
    c.cert_file = path("missing.pem");
    assert_int_equal(tls_ctx_new(&c, &x, err, sizeof err), -EINVAL);
    expect(err, "--tls-cert");
    expect(err, "No such file");
    c = cfg_of("node", "ca.pem");
    c.key_file = path("wrong.key");
    assert_int_equal(tls_ctx_new(&c, &x, err, sizeof err), -EINVAL);
    expect(err, "--tls-key");
    c = cfg_of("node", "ca.pem");
    c.key_file = path("encrypted.key");
    assert_int_equal(tls_ctx_new(&c, &x, err, sizeof err), -EINVAL);
    expect(err, "encrypted");
    c = cfg_of("node", "node.key");
    assert_int_equal(tls_ctx_new(&c, &x, err, sizeof err), -EINVAL);
    expect(err, "--tls-ca");
    assert_null(x);
}

static void test_options(void **state)
{
    (void)state;
    struct tls_cfg c = {0};
    char err[256];
    assert_int_equal(tls_cfg_option(&c, "-sname", "x"), 0);
    assert_int_equal(tls_cfg_option(&c, "-proto_dist", "inet6_tls"), -EINVAL);
    assert_int_equal(tls_cfg_option(&c, "--tls-cert", "c.pem"), 1);
    assert_int_equal(tls_cfg_check(&c, err, sizeof err), -EINVAL); /* not enabled */
    expect(err, "-proto_dist inet_tls");
    assert_int_equal(tls_cfg_option(&c, "-proto_dist", "inet_tls"), 1);
    assert_int_equal(tls_cfg_check(&c, err, sizeof err), -EINVAL); /* no key */
    assert_int_equal(tls_cfg_option(&c, "--tls-key", "k.pem"), 1);
    assert_int_equal(tls_cfg_check(&c, err, sizeof err), -EINVAL); /* no CA */
    expect(err, "--tls-ca");
    assert_int_equal(tls_cfg_option(&c, "--tls-verify", "none"), 1);
    assert_int_equal(tls_cfg_check(&c, err, sizeof err), 0);
    assert_int_equal(tls_cfg_option(&c, "--tls-verify", "some"), -EINVAL);
    assert_int_equal(tls_cfg_option(&c, "--tls-min", "1.3"), 1);
    assert_int_equal(c.min_version, 13);
    assert_int_equal(tls_cfg_option(&c, "--tls-min", "1.1"), -EINVAL);
    assert_int_equal(tls_cfg_option(&c, "--proto-dist", "inet_tcp"), 1);
    assert_int_equal(c.enabled, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_handshake_13),
        cmocka_unit_test(test_handshake_12),
        cmocka_unit_test(test_bulk_13),
        cmocka_unit_test(test_bulk_12),
        cmocka_unit_test(test_server_cert_refused),
        cmocka_unit_test(test_client_cert_refused),
        cmocka_unit_test(test_verify_modes),
        cmocka_unit_test(test_not_tls),
        cmocka_unit_test(test_end_of_stream),
    };
    return cmocka_run_group_tests(tests, setup_certs, remove_certs);
}
