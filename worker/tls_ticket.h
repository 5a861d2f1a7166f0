/*
 * Session-ticket keys that rotate, the same in every worker without any
 * message between them.
 *
 * Time is cut into periods of tls_ticket_lifetime seconds (period = Unix
 * time / lifetime, so every process of the host agrees). Each period has a
 * 32-byte secret; the next one is HMAC-SHA256(secret, "next"), and each
 * period's ticket key (16-byte name, AES-256-CBC key, HMAC-SHA256 key) is
 * derived from its secret the same way. The master makes a random first
 * secret; workers inherit it with the state at fork and step forward on
 * their own, so they all compute the same keys.
 *
 * New tickets use the current period's key; the previous period's key
 * still decrypts (a ticket issued just before a rotation lives its full
 * lifetime, and OpenSSL then issues a fresh one); anything older is
 * unknown and the client does a full handshake. A resumed TLS 1.3
 * session always gets a fresh ticket: clients use each one once. Stepping forward
 * overwrites the old secret: a process holds the keys of the current and
 * the previous period and what follows, never an older one, so a leak of a
 * worker's memory does not decrypt tickets older than two periods.
 *
 * Caveats: a wall clock that steps back keeps the current key until time
 * catches up (keys never go back). Workers check the clock per ticket, so
 * at the instant of a rotation one may still be a period behind: a ticket
 * it cannot yet read gets a full handshake.
 */
#ifndef FASTPOP_TLS_TICKET_H
#define FASTPOP_TLS_TICKET_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <time.h>

#define TLS_TICKET_NAME_LEN 16

struct tls_ticket_key {
    unsigned char name[TLS_TICKET_NAME_LEN];
    unsigned char aes[32];
    unsigned char mac[32];
    int valid;
};

struct tls_ticket_keys {
    unsigned lifetime;            /* seconds per period */
    uint64_t period;              /* of secret and current */
    unsigned char secret[32];
    struct tls_ticket_key current, previous;
};

/* A random first secret for the period of now. -1 if the RNG fails. */
int tls_ticket_keys_init(struct tls_ticket_keys *k, unsigned lifetime, time_t now);
/* Step forward to the period of now (never back). */
void tls_ticket_keys_advance(struct tls_ticket_keys *k, time_t now);
/* The key named name: 1 current, 2 previous (the ticket should be renewed), 0 none. */
int tls_ticket_keys_find(const struct tls_ticket_keys *k, const unsigned char *name,
                         const struct tls_ticket_key **key);
void tls_ticket_keys_wipe(struct tls_ticket_keys *k);

/*
 * The OpenSSL callback (SSL_CTX_set_tlsext_ticket_key_evp_cb) for an
 * SSL_CTX whose app data (SSL_CTX_set_app_data) is a struct tls_ticket_keys.
 */
int tls_ticket_key_cb(SSL *ssl, unsigned char *name, unsigned char *iv,
                      EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int enc);

#endif
