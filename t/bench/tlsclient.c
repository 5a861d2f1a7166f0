/*
 * popload's TLS (OpenSSL): one client context per process, one SSL per
 * connection, non-blocking handshake, read and write.
 *
 * Resumption is by TLS 1.3 ticket (or a TLS 1.2 ticket with --tls-version
 * 1.2): with --tls-resume each connection slot keeps the newest session
 * the server sent it (the new-session callback) and offers it on the slot's
 * next handshake, as a mail client that polls one server does. Without
 * it, every handshake is a full one (tickets arrive and are dropped).
 *
 * The certificate is not verified: loopback only, throwaway certificates.
 * --tls-cert ecdsa|rsa narrows the signature algorithms the client offers,
 * so a server holding both an ECDSA and an RSA certificate must use that one.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "popload.h"

/* The slot's session holder travels as the SSL's app data. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **keep = SSL_get_app_data(ssl);
    if (keep == NULL)
        return 0;           /* not resuming: OpenSSL frees it */
    SSL_SESSION_free(*keep);
    *keep = sess;
    return 1;               /* ours now */
}

SSL_CTX *tlsc_ctx_new(const struct opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* Thousands of idle connections on the client side, too. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, o->tls_version == 12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    /* The client's own cache is off: each slot keeps its session itself. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    const char *sigalgs = NULL;
    if (o->tls_cert && strcmp(o->tls_cert, "ecdsa") == 0)
        sigalgs = "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512";
    else if (o->tls_cert && strcmp(o->tls_cert, "rsa") == 0)
        sigalgs = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:RSA+SHA256";
    if (sigalgs && SSL_CTX_set1_sigalgs_list(ctx, sigalgs) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (o->tls_groups && SSL_CTX_set1_groups_list(ctx, o->tls_groups) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL *tlsc_new(SSL_CTX *ctx, int fd, SSL_SESSION **keep)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_app_data(ssl, keep);
    if (keep && *keep)
        SSL_set_session(ssl, *keep);
    SSL_set_connect_state(ssl);
    return ssl;
}

/* 1 done, 0 not yet (*want_out: wait until writable), -1 failed (errno set). */
int tlsc_handshake(SSL *ssl, int *want_out)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    *want_out = 0;
    if (rc == 1)
        return 1;
    int err = SSL_get_error(ssl, rc);
    if (err == SSL_ERROR_WANT_READ)
        return 0;
    if (err == SSL_ERROR_WANT_WRITE) {
        *want_out = 1;
        return 0;
    }
    if (err != SSL_ERROR_SYSCALL || errno == 0)
        errno = EPROTO;
    ERR_clear_error();
    return -1;
}

/* As recv(2): >0 bytes, 0 the server closed, -1 with errno (EAGAIN: later). */
ssize_t tlsc_read(SSL *ssl, char *buf, size_t len)
{
    ERR_clear_error();
    int n = SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int err = SSL_get_error(ssl, n);
    if (err == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (err == SSL_ERROR_SYSCALL && errno == 0)
        return 0;           /* EOF without close_notify */
    if (err != SSL_ERROR_SYSCALL)
        errno = EPROTO;
    ERR_clear_error();
    return -1;
}

/* As send(2), all or nothing: after EAGAIN call again with the same bytes. */
ssize_t tlsc_write(SSL *ssl, const char *buf, size_t len)
{
    ERR_clear_error();
    int n = SSL_write(ssl, buf, (int)len);
    if (n > 0)
        return n;
    int err = SSL_get_error(ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (err != SSL_ERROR_SYSCALL || errno == 0)
        errno = EPIPE;
    ERR_clear_error();
    return -1;
}

/* A polite client: one close_notify, no wait for the server's. Then free. */
void tlsc_close(SSL *ssl, int polite)
{
    if (polite) {
        ERR_clear_error();
        if (SSL_shutdown(ssl) < 0)
            ERR_clear_error();
    }
    SSL_free(ssl);
}

/* What the first handshake of this process negotiated, for the report. */
void tlsc_describe(SSL *ssl, struct result *res)
{
    if (res->tls_version[0])
        return;
    snprintf(res->tls_version, sizeof(res->tls_version), "%s", SSL_get_version(ssl));
    snprintf(res->tls_cipher, sizeof(res->tls_cipher), "%s", SSL_get_cipher_name(ssl));
    const char *group = SSL_group_to_name(ssl, SSL_get_negotiated_group(ssl));
    snprintf(res->tls_group, sizeof(res->tls_group), "%s", group ? group : "?");
    X509 *peer = SSL_get1_peer_certificate(ssl);
    EVP_PKEY *key = peer ? X509_get0_pubkey(peer) : NULL;
    const char *kind = "?";
    if (key && EVP_PKEY_is_a(key, "EC"))
        kind = "ECDSA";
    else if (key && EVP_PKEY_is_a(key, "RSA"))
        kind = "RSA";
    snprintf(res->tls_key, sizeof(res->tls_key), "%s-%d", kind, key ? EVP_PKEY_get_bits(key) : 0);
    X509_free(peer);
}
