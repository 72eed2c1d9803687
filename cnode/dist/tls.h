/*
 * TLS transport for the distribution (erl -proto_dist inet_tls), on
 * OpenSSL.
 *
 * Model. A tls_ctx is built once from the options (certificate chain,
 * private key, CA bundle, verification mode, lowest protocol version) and
 * serves both roles: lockerd accepts TLS from BEAM clients and dials BEAM
 * servers with the same certificate, as one ssl_dist_optfile with the same
 * files in its server and client sections does. A struct tls is one
 * session on one connected non-blocking socket; the TLS handshake is not a
 * separate step: the first tls_read/tls_write drives it, so the
 * connection layer keeps its states (the TLS handshake is part of
 * CONN_HANDSHAKE and shares its deadline).
 *
 * tls_read/tls_write look like recv/send: a byte count, or -1 with errno
 * EAGAIN (try again when the socket is ready: readable, or writable when
 * tls_want_write() says so, whichever operation blocked), or another errno
 * with the reason in tls_error(). A TLS read may need to write (handshake,
 * key update) and a write may need to read, so a connection that blocked
 * retries both operations on any readiness; tls_pending() counts decrypted
 * bytes OpenSSL holds, which epoll cannot see.
 *
 * Verification (TLS_VERIFY_PEER, the default): both directions check the
 * peer's chain against the CA bundle (a client without a certificate is
 * refused, like {fail_if_no_peer_cert, true}); when dialling, the server's
 * certificate must also name the host part of the node dialled, which is
 * what a BEAM client checks too (it sends that host as SNI). CHAIN skips
 * the name check; NONE verifies nothing (encryption only).
 */
#ifndef LOCKERD_TLS_H
#define LOCKERD_TLS_H

#include <stddef.h>
#include <sys/types.h>

enum tls_verify { TLS_VERIFY_PEER, TLS_VERIFY_CHAIN, TLS_VERIFY_NONE };

struct tls_cfg {
    int enabled;            /* -proto_dist inet_tls */
    const char *cert_file;  /* PEM certificate, optionally followed by its chain */
    const char *key_file;   /* PEM private key */
    const char *ca_file;    /* PEM CA certificates trusted for peers */
    enum tls_verify verify;
    int min_version;        /* 12 or 13 (TLS 1.2 / 1.3); 0 = 12 */
    int max_version;        /* 0 = the newest (1.3); tests pin 12 */
};

/*
 * The command-line options shared by lockerd and the client tools:
 * -proto_dist inet_tls|inet_tcp, --tls-cert, --tls-key, --tls-ca,
 * --tls-verify peer|chain|none, --tls-min 1.2|1.3. Returns 1 if opt is
 * one of them (val consumed; cfg keeps the pointer), 0 if not, -EINVAL
 * for a bad value.
 */
int tls_cfg_option(struct tls_cfg *cfg, const char *opt, const char *val);
/* The --help lines for those options. */
const char *tls_cfg_usage(void);
/* Consistency of a parsed configuration: 0, or -EINVAL with err set. */
int tls_cfg_check(const struct tls_cfg *cfg, char *err, size_t errlen);

struct tls_ctx;
struct tls;

/* Load the files and build the context. 0, or -errno with err saying
 * which file and why. */
int tls_ctx_new(const struct tls_cfg *cfg, struct tls_ctx **out, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *x); /* NULL ok; after every session's tls_free */

/* A session on connected socket fd (not owned: the caller closes it).
 * server: 1 to accept, 0 to connect; host (connect only): the host part
 * of the node dialled, sent as SNI and checked in the server's
 * certificate. NULL on allocation failure. */
struct tls *tls_new(struct tls_ctx *x, int fd, int server, const char *host);
void tls_free(struct tls *t); /* NULL ok */
/* Best-effort close_notify before the caller closes the socket. */
void tls_shutdown(struct tls *t);

ssize_t tls_read(struct tls *t, void *p, size_t n);
ssize_t tls_write(struct tls *t, const void *p, size_t n);
size_t tls_pending(const struct tls *t);
/* The last operation blocked until the socket can take more bytes. */
int tls_want_write(const struct tls *t);
/* Why the session failed (for logs); "" while it has not. */
const char *tls_error(const struct tls *t);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" once the handshake is done, else "". */
const char *tls_describe(const struct tls *t, char *buf, size_t len);

#endif
