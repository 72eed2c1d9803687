/*
 * The operations layer (cnode/ops): the HTTP head parser (valid heads,
 * every truncated prefix is "need more", malformed and oversized heads),
 * the Prometheus text writer, the readiness rule, the service-manager
 * parsers, the procfs stat parser, handshake-failure classes, server
 * result classes, the start-up cluster checks, and the endpoint itself
 * over a real loopback socket driven by the event loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

#include "cnode/core/hist.h"
#include "cnode/core/log.h"
#include "cnode/core/loop.h"
#include "cnode/dist/conn.h"
#include "cnode/ops/checks.h"
#include "cnode/ops/endpoint.h"
#include "cnode/ops/http.h"
#include "cnode/ops/mx.h"
#include "cnode/ops/ops.h"
#include "cnode/ops/proc.h"
#include "cnode/ops/service.h"
#include "cnode/server/server.h"

static const char *const valid_heads[] = {
    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9741\r\nUser-Agent: Prometheus/2.42.0\r\n"
    "Accept: text/plain;version=0.0.4\r\nAccept-Encoding: gzip\r\n\r\n",
    "GET /readyz?verbose=1 HTTP/1.0\r\n\r\n",
    "HEAD /healthz HTTP/1.1\nHost: x\n\n",
    "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
};

static void test_http_valid_and_prefixes(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof valid_heads / sizeof valid_heads[0]; k++) {
        const char *h = valid_heads[k];
        size_t n = strlen(h);
        struct http_req r;
        for (size_t i = 0; i < n; i++)
            assert_int_equal(http_parse(h, i, 4096, &r), 0);
        assert_int_equal(http_parse(h, n, 4096, &r), (int)n);
        assert_int_equal(r.has_body, 0);
    }
    struct http_req r;
    assert_int_equal(http_parse(valid_heads[0], strlen(valid_heads[0]), 4096, &r) > 0, 1);
    assert_int_equal(r.method, HTTP_GET);
    assert_string_equal(r.path, "/metrics");
    assert_int_equal(r.minor, 1);
    http_parse(valid_heads[1], strlen(valid_heads[1]), 4096, &r);
    assert_string_equal(r.path, "/readyz");
    assert_int_equal(r.minor, 0);
    http_parse(valid_heads[2], strlen(valid_heads[2]), 4096, &r);
    assert_int_equal(r.method, HTTP_HEAD);
    http_parse(valid_heads[3], strlen(valid_heads[3]), 4096, &r);
    assert_int_equal(r.method, HTTP_OTHER);
    /* A pipelined second request is not part of the first head. */
    const char two[] = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    assert_int_equal(http_parse(two, sizeof two - 1, 4096, &r), 19);
    assert_string_equal(r.path, "/a");
}

static void test_http_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\r\n\r\n",
        "GET\r\n\r\n",
        "GET /x\r\n\r\n",
        "GET x HTTP/1.1\r\n\r\n",
        "GET /x HTTP/2.0\r\n\r\n",
        "GET /x HTTP/1.1 extra\r\n\r\n",
        "GET /x\x01y HTTP/1.1\r\n\r\n",
        "G(T /x HTTP/1.1\r\n\r\n",
        "GET /x HTTP/1.1\r\nno colon\r\n\r\n",
        "GET /x HTTP/1.1\r\n folded: x\r\n\r\n",
        "GET /x HTTP/1.1\r\nContent-Length: x1\r\n\r\n",
        "GET /x HTTP/1.1\r\nX: a\x01b\r\n\r\n",
    };
    struct http_req r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(http_parse(bad[i], strlen(bad[i]), 4096, &r), -EINVAL);
    const char body1[] = "GET /x HTTP/1.1\r\nContent-Length: 12\r\n\r\n";
    assert_true(http_parse(body1, sizeof body1 - 1, 4096, &r) > 0);
    assert_int_equal(r.has_body, 1);
    const char body2[] = "GET /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_true(http_parse(body2, sizeof body2 - 1, 4096, &r) > 0);
    assert_int_equal(r.has_body, 1);
    /* Over the bound without an end: too large, never "need more". */
    char big[5000];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    assert_int_equal(http_parse(big, sizeof big, 4096, &r), -E2BIG);
    assert_int_equal(http_parse(big, 4095, 4096, &r), 0);
    /* A path longer than HTTP_PATH_MAX. */
    char lp[600];
    snprintf(lp, sizeof lp, "GET /%0400d HTTP/1.1\r\n\r\n", 0);
    assert_int_equal(http_parse(lp, strlen(lp), 4096, &r), -E2BIG);
}

static void test_mx_format(void **state)
{
    (void)state;
    char v[64];
    mx_format_value(v, sizeof v, 3);
    assert_string_equal(v, "3");
    mx_format_value(v, sizeof v, 0.25);
    assert_string_equal(v, "0.25");
    mx_format_value(v, sizeof v, 1e-05);
    assert_string_equal(v, "1e-05");
    mx_format_value(v, sizeof v, 1.0 / 0.0);
    assert_string_equal(v, "+Inf");
    struct buf b;
    buf_init(&b);
    struct mx m = {.out = &b};
    mx_family(&m, "x_total", "counter", "Help with \\ and\nnewline.");
    mx_sample(&m, "x_total", 7, "peer", "a\"b\\c\nd", "k", "v", NULL);
    mx_sample(&m, "x_total", 1, NULL);
    assert_int_equal(m.err, 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_string_equal((char *)b.data,
                        "# HELP x_total Help with \\\\ and\\nnewline.\n"
                        "# TYPE x_total counter\n"
                        "x_total{peer=\"a\\\"b\\\\c\\nd\",k=\"v\"} 7\n"
                        "x_total 1\n");
    buf_free(&b);
}

static void test_mx_hist(void **state)
{
    (void)state;
    static const int64_t le[] = {10, 100};
    struct hist h;
    hist_init(&h, le, 2);
    hist_observe(&h, 5);
    hist_observe(&h, 10);
    hist_observe(&h, 50);
    hist_observe(&h, 1000);
    struct buf b;
    buf_init(&b);
    struct mx m = {.out = &b};
    mx_hist(&m, "t_seconds", &h, 1e6, "op", "lock");
    buf_append(&b, "", 1);
    assert_string_equal((char *)b.data,
                        "t_seconds_bucket{op=\"lock\",le=\"1e-05\"} 2\n"
                        "t_seconds_bucket{op=\"lock\",le=\"0.0001\"} 3\n"
                        "t_seconds_bucket{op=\"lock\",le=\"+Inf\"} 4\n"
                        "t_seconds_sum{op=\"lock\"} 0.001065\n"
                        "t_seconds_count{op=\"lock\"} 4\n");
    buf_free(&b);
}

static void test_readiness(void **state)
{
    (void)state;
    char why[160];
    assert_int_equal(ops_readiness(1000, 0, 1, 2, 3, 2, why, sizeof why), 1);
    assert_int_equal(ops_readiness(1000, 0, 1, 1, 3, 2, why, sizeof why), 0);
    assert_non_null(strstr(why, "1 of the 2 masters needed"));
    assert_int_equal(ops_readiness(1000, 5000, 1, 3, 3, 2, why, sizeof why), 0);
    assert_non_null(strstr(why, "quiet period"));
    assert_non_null(strstr(why, "4.0 s left"));
    assert_int_equal(ops_readiness(1000, 1000, 1, 3, 3, 2, why, sizeof why), 1);
    assert_int_equal(ops_readiness(1000, 0, 0, 3, 3, 2, why, sizeof why), 0);
    /* No masters known: nothing to wait for; W above the masters: all. */
    assert_int_equal(ops_readiness(1000, 0, 1, 0, 0, 1, why, sizeof why), 1);
    assert_int_equal(ops_readiness(1000, 0, 1, 2, 2, 5, why, sizeof why), 1);
    assert_int_equal(ops_readiness(1000, 0, 1, 1, 2, 5, why, sizeof why), 0);
}

static void test_service_parsers(void **state)
{
    (void)state;
    assert_int_equal(svc_watchdog_ms("30000000", NULL, 42), 15000);
    assert_int_equal(svc_watchdog_ms("30000000", "42", 42), 15000);
    assert_int_equal(svc_watchdog_ms("30000000", "41", 42), 0);
    assert_int_equal(svc_watchdog_ms("1000", NULL, 1), 1);
    assert_int_equal(svc_watchdog_ms("", NULL, 1), 0);
    assert_int_equal(svc_watchdog_ms(NULL, NULL, 1), 0);
    assert_int_equal(svc_watchdog_ms("12x", NULL, 1), 0);
    assert_int_equal(svc_watchdog_ms("-5", NULL, 1), 0);
    uint64_t dev, ino;
    assert_int_equal(svc_parse_journal_stream("8:12345", &dev, &ino), 0);
    assert_int_equal(dev, 8);
    assert_int_equal(ino, 12345);
    assert_int_equal(svc_parse_journal_stream("8:", &dev, &ino), -EINVAL);
    assert_int_equal(svc_parse_journal_stream(":1", &dev, &ino), -EINVAL);
    assert_int_equal(svc_parse_journal_stream("8:1x", &dev, &ino), -EINVAL);
    assert_int_equal(svc_parse_journal_stream(NULL, &dev, &ino), -EINVAL);
}

static void test_addr_and_stat(void **state)
{
    (void)state;
    char host[64];
    uint16_t port;
    assert_int_equal(ep_split_addr("127.0.0.1:9741", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9741);
    assert_int_equal(ep_split_addr("[::1]:80", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(ep_split_addr(":0", host, sizeof host, &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(ep_split_addr("::1:80", host, sizeof host, &port), -EINVAL);
    assert_int_equal(ep_split_addr("127.0.0.1", host, sizeof host, &port), -EINVAL);
    assert_int_equal(ep_split_addr("127.0.0.1:70000", host, sizeof host, &port), -EINVAL);
    assert_int_equal(ep_split_addr("h:1x", host, sizeof host, &port), -EINVAL);
    uint64_t start, vsize;
    int64_t rss;
    const char stat[] = "123 (lock erd) (x) S 1 123 123 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 "
                        "0 777 8458240 1433 18446744073709551615";
    assert_int_equal(proc_parse_stat(stat, &start, &vsize, &rss), 0);
    assert_int_equal(start, 777);
    assert_int_equal(vsize, 8458240);
    assert_int_equal(rss, 1433);
    assert_int_equal(proc_parse_stat("123 (x) S 1 2", &start, &vsize, &rss), -EINVAL);
    struct proc_usage u;
    proc_usage_read(&u);
    assert_true(u.rss_bytes > 0);
    assert_true(u.open_fds >= 3);
    assert_true(u.start_time > 1e9);
}

static void test_classes(void **state)
{
    (void)state;
    assert_int_equal(conn_hs_fail_class("bad digest in challenge reply from a@h (cookie mismatch)"),
                     CONN_HSF_COOKIE);
    assert_int_equal(conn_hs_fail_class("refused b@h: not on the --allow list"),
                     CONN_HSF_NOT_ALLOWED);
    assert_int_equal(conn_hs_fail_class("connection set-up timed out"), CONN_HSF_TIMEOUT);
    assert_int_equal(conn_hs_fail_class("TLS handshake failed: the peer closed the connection"),
                     CONN_HSF_TLS);
    assert_int_equal(conn_hs_fail_class("peer closed the connection"), CONN_HSF_CLOSED);
    assert_int_equal(conn_hs_fail_class("Connection reset by peer"), CONN_HSF_IO);
    assert_int_equal(conn_hs_fail_class("expected a name message, got tag 1 length 3"),
                     CONN_HSF_PROTOCOL);
    assert_string_equal(conn_hs_fail_name(CONN_HSF_COOKIE), "cookie");
    /* Server results from reply terms (external format, no 131). */
    static const uint8_t ok[] = {119, 2, 'o', 'k'};
    static const uint8_t err_nf[] = {104, 2, 119, 5, 'e', 'r', 'r', 'o', 'r', 119, 9,
                                     'n', 'o', 't', '_', 'f', 'o', 'u', 'n', 'd'};
    static const uint8_t err_lim[] = {104, 2, 119, 5, 'e', 'r', 'r', 'o', 'r', 104, 2, 119, 5,
                                      'l', 'i', 'm', 'i', 't', 119, 6, 'l', 'e', 'a', 's', 'e',
                                      's'};
    static const uint8_t err_odd[] = {104, 2, 119, 5, 'e', 'r', 'r', 'o', 'r', 97, 1};
    assert_int_equal(server_result_of(0, ok, sizeof ok), SERVER_RES_OK);
    assert_int_equal(server_result_of(0, err_nf, sizeof err_nf), SERVER_RES_NOT_FOUND);
    assert_int_equal(server_result_of(0, err_lim, sizeof err_lim), SERVER_RES_LIMIT);
    assert_int_equal(server_result_of(0, err_odd, sizeof err_odd), SERVER_RES_ERROR);
    assert_int_equal(server_result_of(1, NULL, 0), SERVER_RES_WAITING);
    assert_int_equal(server_result_of(-ENOENT, NULL, 0), SERVER_RES_UNKNOWN);
    assert_int_equal(server_result_of(-ENOMEM, NULL, 0), SERVER_RES_ERROR);
    assert_string_equal(server_result_name(SERVER_RES_NOT_EXPECTED), "not_expected_value");
    assert_string_equal(server_request_name(0), "get_write_lock");
    assert_string_equal(server_request_name(SERVER_REQ_UNKNOWN), "unknown");
}

static int fake_resolve(void *ud, const char *host)
{
    (*(int *)ud)++;
    return strcmp(host, "nowhere") ? 0 : -ENOENT;
}

static void test_cluster_checks(void **state)
{
    (void)state;
    char *masters[] = {"a@h1", "b@h2", "c@nowhere", "d@nowhere"};
    char *replicas[] = {"r@h1"};
    int calls = 0;
    /* Listed, one bad host (checked once), own host h0 never asked. */
    assert_int_equal(checks_cluster("a@h1", masters, 4, NULL, 0, fake_resolve, &calls), 1);
    assert_int_equal(calls, 2); /* h2, nowhere */
    calls = 0;
    assert_int_equal(checks_cluster("x@h0", masters, 2, NULL, 0, fake_resolve, &calls), 1);
    assert_int_equal(checks_cluster("r@h1", masters, 2, replicas, 1, fake_resolve, &calls), 0);
    assert_int_equal(checks_cluster("x@h0", NULL, 0, NULL, 0, fake_resolve, &calls), 0);
}

/* ---- the endpoint over loopback ---- */

static int fake_serve(void *ud, const struct http_req *r, struct buf *body, const char **ctype)
{
    (void)ud;
    if (strcmp(r->path, "/metrics"))
        return 404;
    *ctype = MX_CONTENT_TYPE;
    buf_append(body, "m 1\n", 4);
    return 200;
}

/* Send req (len bytes) to the endpoint, drive the loop, return the reply. */
static void exchange(struct loop *l, struct endpoint *e, const char *req, size_t len, char *out,
                     size_t cap)
{
    char host[64];
    uint16_t port;
    assert_int_equal(ep_split_addr(ep_address(e), host, sizeof host, &port), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, req + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        loop_run_once(l, 10);
        if (n < 0 && errno != EAGAIN)
            break; /* closed on us (431): read what was answered */
    }
    size_t got = 0;
    for (int i = 0; i < 200 && got < cap - 1; i++) {
        loop_run_once(l, 5);
        ssize_t n = recv(fd, out + got, cap - 1 - got, MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n > 0)
            got += (size_t)n;
    }
    out[got] = '\0';
    close(fd);
}

static void test_endpoint(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    char err[200];
    struct endpoint *e = ep_new(l, "127.0.0.1:0", fake_serve, NULL, err, sizeof err);
    assert_non_null(e);
    char out[8192];
    const char get[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    exchange(l, e, get, sizeof get - 1, out, sizeof out);
    assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(out, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(out, "Content-Length: 4\r\n"));
    assert_non_null(strstr(out, "\r\n\r\nm 1\n"));
    const char head[] = "HEAD /metrics HTTP/1.1\r\n\r\n";
    exchange(l, e, head, sizeof head - 1, out, sizeof out);
    assert_non_null(strstr(out, "Content-Length: 4\r\n"));
    assert_null(strstr(out, "m 1"));
    const char nf[] = "GET /nope HTTP/1.1\r\n\r\n";
    exchange(l, e, nf, sizeof nf - 1, out, sizeof out);
    assert_non_null(strstr(out, "HTTP/1.1 404 Not Found"));
    const char post[] = "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    exchange(l, e, post, sizeof post - 1, out, sizeof out);
    assert_non_null(strstr(out, "HTTP/1.1 405 Method Not Allowed"));
    assert_non_null(strstr(out, "Allow: GET, HEAD"));
    const char body[] = "GET /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    exchange(l, e, body, sizeof body - 1, out, sizeof out);
    assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request"));
    const char junk[] = "\x16\x03\x01\x02\x00\x01\r\n\r\n";
    exchange(l, e, junk, sizeof junk - 1, out, sizeof out);
    assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request"));
    char big[EP_MAX_HEAD + 100];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    exchange(l, e, big, sizeof big, out, sizeof out);
    assert_non_null(strstr(out, "HTTP/1.1 431"));
    assert_int_equal(ep_count_of(e, 200), 2);
    assert_int_equal(ep_count_of(e, 400), 2);
    assert_int_equal(ep_conns(e), 0);
    ep_free(e);
    loop_free(l);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_valid_and_prefixes),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_mx_format),
        cmocka_unit_test(test_mx_hist),
        cmocka_unit_test(test_readiness),
        cmocka_unit_test(test_service_parsers),
        cmocka_unit_test(test_addr_and_stat),
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_cluster_checks),
        cmocka_unit_test(test_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
