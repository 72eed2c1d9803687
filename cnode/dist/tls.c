/*
 * TLS transport on OpenSSL; see tls.h for the model.
 *
 * Invariants:
 * - OpenSSL's error queue is per thread and must be empty before each I/O
 *   call; every entry point clears it before and after, so one session's
 *   failure never shows up as another's.
 * - A session reports a failure once through errno/tls_error() and then
 *   stays failed: no further SSL call is made on it (OpenSSL forbids
 *   SSL_shutdown after a fatal error).
 * - tls_read never leaves decrypted bytes inside OpenSSL when its caller
 *   gives at least TLS_RECORD_MAX bytes of room: it starts a new record
 *   only while a whole record's plaintext fits. Bytes OpenSSL holds are
 *   invisible to epoll; with this rule only an end of stream noticed after
 *   some data can be left for the next call (tls_pending() says so).
 * - The socket is reached through our own BIO (send with MSG_NOSIGNAL,
 *   recv): OpenSSL's socket BIO writes with write(2), which raises SIGPIPE
 *   on a closed peer, and the client library runs inside applications
 *   that may not ignore it.
 * - Unexpected EOF is read as an ordinary close (SSL_OP_IGNORE_UNEXPECTED_EOF):
 *   the distribution frames its own messages, so truncation cannot go
 *   unnoticed, and BEAM peers do not always send close_notify.
 */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Largest plaintext of one TLS record (2^14, both 1.2 and 1.3). */
#define TLS_RECORD_MAX 16384

struct tls_ctx {
    SSL_CTX *ssl;
    BIO_METHOD *bio;  /* the socket BIO of every session (tls_bio_*) */
    enum tls_verify verify;
};

struct tls {
    SSL *ssl;
    int want_write;      /* the last blocked operation needs POLLOUT */
    int failed;          /* a fatal error was seen: no more SSL calls */
    int end_pending;     /* EOF/failure seen after data: report it next */
    int end_rc;          /* what the next call reports: 0 (EOF) or an errno */
    char err[320];
    /* The first certificate the verifier rejected (our callback's note). */
    int verr, vdepth;
    char vsubject[160];
};

/* ---- options ------------------------------------------------------------ */

int tls_cfg_option(struct tls_cfg *cfg, const char *opt, const char *val)
{
    if (!strcmp(opt, "-proto_dist") || !strcmp(opt, "--proto-dist")) {
        if (!strcmp(val, "inet_tls"))
            cfg->enabled = 1;
        else if (!strcmp(val, "inet_tcp"))
            cfg->enabled = 0;
        else
            return -EINVAL;
    } else if (!strcmp(opt, "--tls-cert")) {
        cfg->cert_file = val;
    } else if (!strcmp(opt, "--tls-key")) {
        cfg->key_file = val;
    } else if (!strcmp(opt, "--tls-ca")) {
        cfg->ca_file = val;
    } else if (!strcmp(opt, "--tls-verify")) {
        if (!strcmp(val, "peer"))
            cfg->verify = TLS_VERIFY_PEER;
        else if (!strcmp(val, "chain"))
            cfg->verify = TLS_VERIFY_CHAIN;
        else if (!strcmp(val, "none"))
            cfg->verify = TLS_VERIFY_NONE;
        else
            return -EINVAL;
    } else if (!strcmp(opt, "--tls-min")) {
        if (!strcmp(val, "1.2"))
            cfg->min_version = 12;
        else if (!strcmp(val, "1.3"))
            cfg->min_version = 13;
        else
            return -EINVAL;
    } else {
        return 0;
    }
    return 1;
}

const char *tls_cfg_usage(void)
{
    return "  -proto_dist inet_tls   TLS distribution, as erl -proto_dist inet_tls\n"
           "                         (default inet_tcp: plain TCP)\n"
           "  --tls-cert FILE        PEM certificate (chain) presented to peers\n"
           "  --tls-key FILE         PEM private key of --tls-cert\n"
           "  --tls-ca FILE          PEM CA certificates that peers' certificates\n"
           "                         must chain to\n"
           "  --tls-verify MODE      peer: check the chain both ways and that a dialled\n"
           "                         node's certificate names its host (default);\n"
           "                         chain: no host name check; none: no checks\n"
           "  --tls-min 1.2|1.3      lowest TLS version accepted (default 1.2)\n";
}

int tls_cfg_check(const struct tls_cfg *cfg, char *err, size_t errlen)
{
    if (!cfg->enabled) {
        if (cfg->cert_file || cfg->key_file || cfg->ca_file) {
            snprintf(err, errlen, "--tls-cert/--tls-key/--tls-ca need -proto_dist inet_tls");
            return -EINVAL;
        }
        return 0;
    }
    if (!cfg->cert_file || !cfg->key_file) {
        snprintf(err, errlen, "-proto_dist inet_tls needs --tls-cert and --tls-key");
        return -EINVAL;
    }
    if (!cfg->ca_file && cfg->verify != TLS_VERIFY_NONE) {
        snprintf(err, errlen, "-proto_dist inet_tls needs --tls-ca to verify peers "
                              "(or --tls-verify none)");
        return -EINVAL;
    }
    return 0;
}

/* ---- socket BIO: recv/send without SIGPIPE ----------------------------- */

static int tls_bio_fd(BIO *b) { return (int)(intptr_t)BIO_get_data(b); }

static int tls_bio_write(BIO *b, const char *p, int n)
{
    BIO_clear_retry_flags(b);
    ssize_t r = send(tls_bio_fd(b), p, (size_t)n, MSG_NOSIGNAL);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)r;
}

static int tls_bio_read(BIO *b, char *p, int n)
{
    BIO_clear_retry_flags(b);
    ssize_t r = recv(tls_bio_fd(b), p, (size_t)n, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    else if (r == 0)
        BIO_set_flags(b, BIO_FLAGS_IN_EOF); /* what BIO_eof() reports */
    return (int)r;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
        return 0;
    }
}

static BIO_METHOD *tls_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lockerd socket");
    if (m && (!BIO_meth_set_write(m, tls_bio_write) || !BIO_meth_set_read(m, tls_bio_read) ||
              !BIO_meth_set_ctrl(m, tls_bio_ctrl))) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ---- context ------------------------------------------------------------ */

/* The first reason OpenSSL queued for a failure (a system error as its
 * errno text), and an empty queue. */
static const char *tls_last_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();
    const char *r = e && !ERR_SYSTEM_ERROR(e) ? ERR_reason_error_string(e) : NULL;
    if (e && ERR_SYSTEM_ERROR(e))
        snprintf(buf, len, "%s", strerror(ERR_GET_REASON(e)));
    else if (r)
        snprintf(buf, len, "%s", r);
    else if (e)
        snprintf(buf, len, "OpenSSL error 0x%lx", e);
    else
        snprintf(buf, len, "%s", errno ? strerror(errno) : "unknown error");
    ERR_clear_error();
    return buf;
}

static int tls_verify_cb(int ok, X509_STORE_CTX *store);

/* An encrypted key would make OpenSSL prompt on the terminal: refuse. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *asked)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(int *)asked = 1;
    return 0;
}

static int tls_ctx_load(SSL_CTX *s, const struct tls_cfg *cfg, char *err, size_t errlen)
{
    char why[200];
    int asked = 0;
    SSL_CTX_set_default_passwd_cb(s, tls_no_passphrase);
    SSL_CTX_set_default_passwd_cb_userdata(s, &asked);
    if (SSL_CTX_use_certificate_chain_file(s, cfg->cert_file) != 1) {
        snprintf(err, errlen, "cannot load --tls-cert %s: %s", cfg->cert_file,
                 tls_last_reason(why, sizeof why));
        return -EINVAL;
    }
    int ok = SSL_CTX_use_PrivateKey_file(s, cfg->key_file, SSL_FILETYPE_PEM);
    SSL_CTX_set_default_passwd_cb_userdata(s, NULL);
    if (ok != 1) {
        snprintf(err, errlen, "cannot load --tls-key %s: %s", cfg->key_file,
                 asked ? "the key is encrypted (passphrases are not supported)"
                       : tls_last_reason(why, sizeof why));
        ERR_clear_error();
        return -EINVAL;
    }
    if (SSL_CTX_check_private_key(s) != 1) {
        snprintf(err, errlen, "--tls-key %s does not match --tls-cert %s: %s", cfg->key_file,
                 cfg->cert_file, tls_last_reason(why, sizeof why));
        return -EINVAL;
    }
    if (!cfg->ca_file)
        return 0;
    if (SSL_CTX_load_verify_locations(s, cfg->ca_file, NULL) != 1) {
        snprintf(err, errlen, "cannot load --tls-ca %s: %s", cfg->ca_file,
                 tls_last_reason(why, sizeof why));
        return -EINVAL;
    }
    /* Named in our certificate request, so a client holding several
     * certificates can pick one our CAs issued. */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
    if (names)
        SSL_CTX_set_client_CA_list(s, names);
    ERR_clear_error();
    return 0;
}

int tls_ctx_new(const struct tls_cfg *cfg, struct tls_ctx **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc = tls_cfg_check(cfg, err, errlen);
    if (rc)
        return rc;
    struct tls_ctx *x = calloc(1, sizeof *x);
    SSL_CTX *s = SSL_CTX_new(TLS_method());
    if (!x || !s || !(x->bio = tls_bio_method())) {
        snprintf(err, errlen, "out of memory creating the TLS context");
        rc = -ENOMEM;
        goto fail;
    }
    x->ssl = s;
    x->verify = cfg->verify;
    SSL_CTX_set_min_proto_version(s, cfg->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    if (cfg->max_version == 12)
        SSL_CTX_set_max_proto_version(s, TLS1_2_VERSION);
    /* Moving/partial writes: the output buffer grows (and may move) between
     * a blocked write and its retry. Released buffers: idle peers cost
     * little. No tickets, no cache: a distribution connection lives long
     * and resumption would only add state. */
    SSL_CTX_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(s, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_num_tickets(s, 0);
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    if ((rc = tls_ctx_load(s, cfg, err, errlen)) != 0)
        goto fail;
    /* The server side's mode; a client's is set per session (tls_new). */
    SSL_CTX_set_verify(s, cfg->verify == TLS_VERIFY_NONE
                              ? SSL_VERIFY_NONE
                              : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       tls_verify_cb);
    *out = x;
    return 0;
fail:
    SSL_CTX_free(s);
    if (x)
        BIO_meth_free(x->bio);
    free(x);
    ERR_clear_error();
    return rc;
}

void tls_ctx_free(struct tls_ctx *x)
{
    if (!x)
        return;
    SSL_CTX_free(x->ssl);
    BIO_meth_free(x->bio);
    free(x);
}

/* ---- sessions ----------------------------------------------------------- */

/* Remember why the chain was refused; OpenSSL's own error only says
 * "certificate verify failed". */
static int tls_verify_cb(int ok, X509_STORE_CTX *store)
{
    if (ok)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tls *t = ssl ? SSL_get_app_data(ssl) : NULL;
    if (t && !t->verr) {
        t->verr = X509_STORE_CTX_get_error(store);
        t->vdepth = X509_STORE_CTX_get_error_depth(store);
        X509 *cert = X509_STORE_CTX_get_current_cert(store);
        t->vsubject[0] = 0;
        if (cert)
            X509_NAME_oneline(X509_get_subject_name(cert), t->vsubject, sizeof t->vsubject);
    }
    return ok;
}

static int tls_is_ip(const char *host)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
    ASN1_OCTET_STRING_free(ip);
    ERR_clear_error();
    return ip != NULL;
}

/* Client side: SNI and the expected name, as a BEAM client does (an IP
 * literal is matched against IP entries and not sent as SNI). */
static int tls_client_setup(struct tls *t, const struct tls_ctx *x, const char *host)
{
    /* A server cannot be asked for a certificate it did not send:
     * no FAIL_IF_NO_PEER_CERT here. */
    SSL_set_verify(t->ssl, x->verify == TLS_VERIFY_NONE ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                   tls_verify_cb);
    if (!host || !*host)
        return 0;
    int ip = tls_is_ip(host);
    if (!ip && SSL_set_tlsext_host_name(t->ssl, host) != 1)
        return -1;
    if (x->verify != TLS_VERIFY_PEER)
        return 0;
    X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) : SSL_set1_host(t->ssl, host)) == 1
               ? 0 : -1;
}

struct tls *tls_new(struct tls_ctx *x, int fd, int server, const char *host)
{
    struct tls *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ssl = SSL_new(x->ssl);
    BIO *bio = BIO_new(x->bio);
    if (!t->ssl || !bio) {
        BIO_free(bio);
        goto fail;
    }
    BIO_set_data(bio, (void *)(intptr_t)fd);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio); /* the SSL owns the BIO now */
    SSL_set_app_data(t->ssl, t);
    if (server)
        SSL_set_accept_state(t->ssl);
    else if (tls_client_setup(t, x, host) == 0)
        SSL_set_connect_state(t->ssl);
    else
        goto fail;
    ERR_clear_error();
    return t;
fail:
    ERR_clear_error();
    SSL_free(t->ssl);
    free(t);
    return NULL;
}

void tls_free(struct tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

void tls_shutdown(struct tls *t)
{
    if (!t || t->failed || !SSL_is_init_finished(t->ssl))
        return;
    ERR_clear_error();
    SSL_shutdown(t->ssl); /* one non-blocking try: close_notify, no wait */
    ERR_clear_error();
}

/* ---- failures ----------------------------------------------------------- */

/* A hint for alerts the peer sent: most mean it refused our certificate. */
static const char *tls_alert_hint(int alert)
{
    switch (alert) {
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_CERTIFICATE_REQUIRED:
        return " (the peer refused our certificate: check --tls-cert against its CA)";
    case SSL_AD_PROTOCOL_VERSION:
        return " (no TLS version in common: check --tls-min and the peer's versions)";
    case SSL_AD_HANDSHAKE_FAILURE:
        return " (no cipher or version in common, or the peer refused us)";
    default:
        return "";
    }
}

/* The reason for SSL_ERROR_SSL, into t->err. */
static void tls_describe_failure(struct tls *t)
{
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_REASON(e);
    const char *what = SSL_is_init_finished(t->ssl) ? "TLS error" : "TLS handshake failed";
    char txt[160];
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(txt, sizeof txt, "%s", r ? r : "unknown OpenSSL error");
    if (t->verr) {
        snprintf(t->err, sizeof t->err,
                 "%s: peer certificate refused: %s (depth %d, subject %s)", what,
                 X509_verify_cert_error_string(t->verr), t->vdepth,
                 t->vsubject[0] ? t->vsubject : "?");
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET &&
               reason < SSL_AD_REASON_OFFSET + 256) {
        snprintf(t->err, sizeof t->err, "%s: alert from the peer: %s%s", what, txt,
                 tls_alert_hint(reason - SSL_AD_REASON_OFFSET));
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
               (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
                reason == SSL_R_HTTP_REQUEST || reason == SSL_R_UNSUPPORTED_PROTOCOL) &&
               !SSL_is_init_finished(t->ssl)) {
        snprintf(t->err, sizeof t->err,
                 "%s: %s (the peer does not speak TLS: plain TCP distribution?)", what, txt);
    } else {
        snprintf(t->err, sizeof t->err, "%s: %s", what, txt);
    }
}

/* Map a non-positive SSL_read/SSL_write result: -1 with errno (EAGAIN to
 * wait, else fatal with t->err set), or 0 for a clean end of stream. */
static int tls_status(struct tls *t, int ret)
{
    int e = SSL_get_error(t->ssl, ret);
    int saved = errno;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        t->want_write = 0;
        ERR_clear_error();
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        t->want_write = 1;
        ERR_clear_error();
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        if (SSL_is_init_finished(t->ssl))
            return 0;
        saved = ECONNRESET; /* closed before the handshake finished */
        __attribute__((fallthrough));
    case SSL_ERROR_SYSCALL:
        t->failed = 1;
        saved = saved ? saved : ECONNRESET;
        ERR_clear_error();
        errno = saved;
        if (SSL_is_init_finished(t->ssl)) {
            snprintf(t->err, sizeof t->err, "%s", strerror(saved));
            return -1;
        }
        /* A peer refusing us often just closes, and a plain TCP peer gives
         * up on our hello. */
        snprintf(t->err, sizeof t->err,
                 "TLS handshake failed: the peer closed the connection (%s; it may have "
                 "refused our certificate, or it does not speak TLS)",
                 saved == ECONNRESET ? "end of stream" : strerror(saved));
        return -1;
    default:
        t->failed = 1;
        tls_describe_failure(t);
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

/* ---- I/O ---------------------------------------------------------------- */

static ssize_t tls_report_end(struct tls *t)
{
    t->end_pending = 0;
    if (t->end_rc == 0)
        return 0;
    errno = t->end_rc;
    return -1;
}

ssize_t tls_read(struct tls *t, void *p, size_t n)
{
    if (t->end_pending)
        return tls_report_end(t);
    if (t->failed) {
        errno = EPROTO;
        return -1;
    }
    size_t got = 0;
    /* The first record is read whatever the room; later ones only while a
     * whole record fits, so nothing decrypted stays behind (see top). */
    while (got < n && (got == 0 || n - got >= TLS_RECORD_MAX || SSL_pending(t->ssl) > 0)) {
        size_t room = n - got;
        ERR_clear_error();
        int r = SSL_read(t->ssl, (char *)p + got, room > INT_MAX ? INT_MAX : (int)room);
        if (r > 0) {
            got += (size_t)r;
            t->want_write = 0;
            continue;
        }
        int rc = tls_status(t, r);
        if (rc < 0 && errno == EAGAIN)
            break;
        if (!got)
            return rc;
        /* Deliver what came before the end; report the end next call. */
        t->end_pending = 1;
        t->end_rc = rc == 0 ? 0 : errno;
        break;
    }
    if (got)
        return (ssize_t)got;
    errno = EAGAIN;
    return -1;
}

ssize_t tls_write(struct tls *t, const void *p, size_t n)
{
    if (t->failed) {
        errno = EPROTO;
        return -1;
    }
    size_t put = 0;
    while (put < n) {
        size_t left = n - put;
        ERR_clear_error();
        int r = SSL_write(t->ssl, (const char *)p + put, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0) {
            put += (size_t)r;
            t->want_write = 0;
            continue;
        }
        int rc = tls_status(t, r);
        if (rc == 0) {
            /* close_notify received while writing: the peer is going */
            t->failed = 1;
            snprintf(t->err, sizeof t->err, "peer closed the connection");
            errno = EPIPE;
            rc = -1;
        }
        /* Report what went out; a failure shows again on the next call. */
        return put ? (ssize_t)put : rc;
    }
    return (ssize_t)put;
}

size_t tls_pending(const struct tls *t)
{
    if (t->end_pending)
        return 1;
    return t->failed ? 0 : (size_t)SSL_pending(t->ssl);
}

int tls_want_write(const struct tls *t) { return t->want_write; }

const char *tls_error(const struct tls *t) { return t->err; }

const char *tls_describe(const struct tls *t, char *buf, size_t len)
{
    buf[0] = 0;
    if (!SSL_is_init_finished(t->ssl))
        return buf;
    char subject[160] = "";
    X509 *peer = SSL_get1_peer_certificate(t->ssl);
    if (peer) {
        X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject);
        X509_free(peer);
    }
    snprintf(buf, len, "%s %s%s%s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl),
             subject[0] ? ", peer certificate " : "", subject);
    return buf;
}
