#include "tls_ticket.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

/* HMAC-SHA256(secret, label) into out (32 bytes). */
static void derive(const unsigned char *secret, const char *label, unsigned char *out)
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), secret, 32, (const unsigned char *)label, strlen(label), out, &len);
}

static void key_of(const unsigned char *secret, struct tls_ticket_key *key)
{
    unsigned char name[32];
    derive(secret, "fastpop ticket name", name);
    memcpy(key->name, name, TLS_TICKET_NAME_LEN);
    derive(secret, "fastpop ticket aes", key->aes);
    derive(secret, "fastpop ticket mac", key->mac);
    key->valid = 1;
}

static void step(unsigned char *secret)
{
    unsigned char next[32];
    derive(secret, "fastpop ticket next", next);
    memcpy(secret, next, sizeof(next));
    OPENSSL_cleanse(next, sizeof(next));
}

static uint64_t period_of(const struct tls_ticket_keys *k, time_t now)
{
    return now > 0 ? (uint64_t)now / k->lifetime : 0;
}

int tls_ticket_keys_init(struct tls_ticket_keys *k, unsigned lifetime, time_t now)
{
    memset(k, 0, sizeof(*k));
    k->lifetime = lifetime > 0 ? lifetime : 1;
    k->period = period_of(k, now);
    if (RAND_bytes(k->secret, sizeof(k->secret)) != 1)
        return -1;
    key_of(k->secret, &k->current);
    return 0;
}

void tls_ticket_keys_advance(struct tls_ticket_keys *k, time_t now)
{
    uint64_t target = period_of(k, now);
    if (target <= k->period)
        return;
    /* Each period is one HMAC: even a long-idle process catches up quickly. */
    if (k->period + 1 < target) {
        while (k->period + 1 < target) {
            step(k->secret);
            k->period++;
        }
        key_of(k->secret, &k->current);   /* target's previous, as a step-by-step walk has it */
    }
    k->previous = k->current;
    step(k->secret);
    k->period++;
    key_of(k->secret, &k->current);
}

int tls_ticket_keys_find(const struct tls_ticket_keys *k, const unsigned char *name,
                         const struct tls_ticket_key **key)
{
    if (k->current.valid && CRYPTO_memcmp(name, k->current.name, TLS_TICKET_NAME_LEN) == 0) {
        *key = &k->current;
        return 1;
    }
    if (k->previous.valid && CRYPTO_memcmp(name, k->previous.name, TLS_TICKET_NAME_LEN) == 0) {
        *key = &k->previous;
        return 2;
    }
    return 0;
}

void tls_ticket_keys_wipe(struct tls_ticket_keys *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

static int set_mac_key(EVP_MAC_CTX *mac, const struct tls_ticket_key *key)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key->mac,
                                          sizeof(key->mac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(mac, params) == 1 ? 0 : -1;
}

int tls_ticket_key_cb(SSL *ssl, unsigned char *name, unsigned char *iv,
                      EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int enc)
{
    struct tls_ticket_keys *k = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const struct tls_ticket_key *key;
    if (k == NULL)
        return -1;
    tls_ticket_keys_advance(k, time(NULL));
    if (enc) {
        key = &k->current;
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1 ||
            EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key->aes, iv) != 1 ||
            set_mac_key(mac, key) == -1)
            return -1;
        memcpy(name, key->name, TLS_TICKET_NAME_LEN);
        return 1;
    }
    int found = tls_ticket_keys_find(k, name, &key);
    if (found == 0)
        return 0;   /* unknown or expired key: a full handshake */
    if (set_mac_key(mac, key) == -1 ||
        EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key->aes, iv) != 1)
        return -1;
    /*
     * TLS 1.3 clients use a ticket once (RFC 8446 C.4; OpenSSL's client
     * cache, NSS and BoringSSL do): unless the resumed session issues a
     * fresh one, the client is left without and every other connection
     * is a full handshake. 2 asks OpenSSL for a new ticket.
     */
    if (SSL_version(ssl) >= TLS1_3_VERSION)
        return 2;
    return found;
}
