#include "tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "worker/tls_ticket.h"

#define TLS_MAX_NAMES 16

/* The certificates for one set of names (an RSA and an ECDSA pair may share it). */
struct tls_group {
    SSL_CTX *ctx;
    char names[TLS_MAX_NAMES][256];
    int name_count;
};

struct tls_context {
    struct tls_group group[CONFIG_MAX_CERTS];
    int count;
    struct tls_ticket_keys tickets;   /* shared by every group's SSL_CTX */
};

const char *tls_last_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

const char *tls_session_version(const SSL *ssl)
{
    return ssl ? SSL_get_version(ssl) : "no";
}

/* SAN DNS names, or the CN when there are none (old certificates). */
static int leaf_names(X509 *x, struct tls_group *g)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    g->name_count = 0;
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && g->name_count < TLS_MAX_NAMES; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type != GEN_DNS)
            continue;
        const unsigned char *dns = ASN1_STRING_get0_data(gn->d.dNSName);
        int len = ASN1_STRING_length(gn->d.dNSName);
        if (len <= 0 || len >= 256 || memchr(dns, '\0', (size_t)len) != NULL)
            continue;
        memcpy(g->names[g->name_count], dns, (size_t)len);
        g->names[g->name_count][len] = '\0';
        g->name_count++;
    }
    GENERAL_NAMES_free(sans);
    if (g->name_count == 0) {
        int len = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
                                            g->names[0], sizeof(g->names[0]));
        if (len > 0)
            g->name_count = 1;
    }
    return 0;
}

static int same_names(const struct tls_group *a, const struct tls_group *b)
{
    if (a->name_count != b->name_count)
        return 0;
    for (int i = 0; i < a->name_count; i++) {
        if (strcasecmp(a->names[i], b->names[i]) != 0)
            return 0;
    }
    return 1;
}

/* "*.example.org" covers exactly one more label. */
static int name_matches(const char *pattern, const char *host)
{
    if (strcasecmp(pattern, host) == 0)
        return 1;
    if (pattern[0] != '*' || pattern[1] != '.')
        return 0;
    const char *dot = strchr(host, '.');
    return dot != NULL && dot != host && strcasecmp(dot + 1, pattern + 2) == 0;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    struct tls_context *t = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    (void)alert;
    if (host == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    for (int g = 0; g < t->count; g++) {
        for (int n = 0; n < t->group[g].name_count; n++) {
            if (name_matches(t->group[g].names[n], host)) {
                if (g > 0) {
                    /* The security level travels with the certificate settings the
                     * switch replaces: a legacy connection must get level 0 back. */
                    int legacy = SSL_get_min_proto_version(ssl) == TLS1_VERSION;
                    SSL_set_SSL_CTX(ssl, t->group[g].ctx);
                    if (legacy)
                        SSL_set_security_level(ssl, 0);
                }
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    /* An unknown name gets the default certificate, as most servers do. */
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *new_ctx(const struct config *cfg, struct tls_context *t, char *err,
                        size_t errlen)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context: %s", tls_last_error(why, sizeof(why)));
        return NULL;
    }
    int min = cfg->tls_min_version == CONFIG_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, min);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /*
     * Partial writes let RETR stream record by record; moving buffers let
     * the output buffer compact between retries; released buffers keep an
     * idle TLS connection from holding about 34 KB of OpenSSL memory.
     */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* A per-process session cache is useless across workers; tickets are shared. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /*
     * One TLS 1.3 ticket per handshake, not OpenSSL's two: a POP3 client
     * holds one connection at a time, and each ticket costs a session
     * encoding, an encryption and a MAC (about 7% of a full ECDSA
     * handshake, t/bench/README.md). A resumed session gets a fresh one
     * (worker/tls_ticket.c), so the client always holds one.
     */
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"fastpop", 7);
    SSL_CTX_set_dh_auto(ctx, 1);
    if (SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
        snprintf(err, errlen, "%s:%d: tls_ciphers: no usable cipher in \"%s\"", cfg->path,
                 config_line_of(cfg, "tls_ciphers"), cfg->tls_ciphers);
        goto fail;
    }
    if (SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1) {
        snprintf(err, errlen, "%s:%d: tls_ciphersuites: no usable suite in \"%s\"", cfg->path,
                 config_line_of(cfg, "tls_ciphersuites"), cfg->tls_ciphersuites);
        goto fail;
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, t);
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

static int load_pair(const struct config *cfg, int i, struct tls_context *t, char *err,
                     size_t errlen)
{
    char why[256];
    const char *cert = cfg->tls_cert[i], *key = cfg->tls_key[i];
    struct tls_group probe;

    FILE *f = fopen(cert, "r");
    if (f == NULL) {
        snprintf(err, errlen, "tls_cert %s: cannot open: %m", cert);
        return -1;
    }
    X509 *leaf = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (leaf == NULL) {
        snprintf(err, errlen, "tls_cert %s: not a PEM certificate: %s", cert,
                 tls_last_error(why, sizeof(why)));
        return -1;
    }
    leaf_names(leaf, &probe);
    X509_free(leaf);

    struct tls_group *g = NULL;
    for (int k = 0; k < t->count; k++) {
        if (same_names(&t->group[k], &probe))
            g = &t->group[k];
    }
    if (g == NULL) {
        g = &t->group[t->count];
        *g = probe;
        g->ctx = new_ctx(cfg, t, err, errlen);
        if (g->ctx == NULL)
            return -1;
        t->count++;
    }
    if (SSL_CTX_use_certificate_chain_file(g->ctx, cert) != 1) {
        snprintf(err, errlen, "tls_cert %s: %s", cert, tls_last_error(why, sizeof(why)));
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(g->ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "tls_key %s: %s", key, tls_last_error(why, sizeof(why)));
        return -1;
    }
    if (SSL_CTX_check_private_key(g->ctx) != 1) {
        snprintf(err, errlen, "tls_key %s does not belong to tls_cert %s", key, cert);
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/*
 * Every context encrypts and decrypts tickets with the same rotating keys
 * (worker/tls_ticket.h), whichever certificate SNI chose. A reload carries
 * the schedule over, so tickets issued before still resume; a changed
 * tls_ticket_lifetime starts a new one (periods of another length).
 */
static int use_ticket_keys(struct tls_context *t, const struct config *cfg,
                           const struct tls_context *previous)
{
    if (previous != NULL && previous->tickets.lifetime == (unsigned)cfg->tls_ticket_lifetime)
        t->tickets = previous->tickets;
    else if (tls_ticket_keys_init(&t->tickets, (unsigned)cfg->tls_ticket_lifetime,
                                  time(NULL)) == -1)
        return -1;
    /* A ticket may be read while its key is kept: from one period to two. */
    long timeout = 2L * cfg->tls_ticket_lifetime;
    for (int g = 0; g < t->count; g++) {
        SSL_CTX_set_app_data(t->group[g].ctx, &t->tickets);
        SSL_CTX_set_timeout(t->group[g].ctx, timeout);
        if (SSL_CTX_set_tlsext_ticket_key_evp_cb(t->group[g].ctx, tls_ticket_key_cb) != 1)
            return -1;
    }
    return 0;
}

void tls_context_tick(struct tls_context *t, time_t now)
{
    if (t != NULL)
        tls_ticket_keys_advance(&t->tickets, now);
}

struct tls_context *tls_context_build(const struct config *cfg,
                                      const struct tls_context *previous, char *err,
                                      size_t errlen)
{
    struct tls_context *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < cfg->tls_cert_count; i++) {
        if (load_pair(cfg, i, t, err, errlen) == -1) {
            tls_context_free(t);
            return NULL;
        }
    }
    if (t->count > 0 && use_ticket_keys(t, cfg, previous) == -1) {
        snprintf(err, errlen, "cannot set the session ticket keys");
        tls_context_free(t);
        return NULL;
    }
    return t;
}

void tls_context_free(struct tls_context *t)
{
    if (t == NULL)
        return;
    for (int g = 0; g < t->count; g++)
        SSL_CTX_free(t->group[g].ctx);
    tls_ticket_keys_wipe(&t->tickets);
    free(t);
}

SSL *tls_session_new(struct tls_context *t, int fd, int legacy)
{
    if (t == NULL || t->count == 0)
        return NULL;
    SSL *ssl = SSL_new(t->group[0].ctx);
    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    if (legacy) {
        /* Old clients: TLS 1.0 and the ciphers OpenSSL 3 hides at level 0. */
        SSL_set_security_level(ssl, 0);
        SSL_set_min_proto_version(ssl, TLS1_VERSION);
        SSL_set_cipher_list(ssl, "DEFAULT:@SECLEVEL=0");
    }
    SSL_set_accept_state(ssl);
    return ssl;
}
