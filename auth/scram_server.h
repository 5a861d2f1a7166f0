/*
 * The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677), run in the helper:
 * it needs StoredKey and ServerKey, which never leave this process. The
 * worker relays the SASL messages (auth/protocol.h, AUTH_MSG_SCRAM_*).
 *
 * Who can use it: users stored as {SCRAM-SHA-256} (Dovecot's format), and
 * users stored as {PLAIN}/{CLEARTEXT}, whose keys are derived on the fly
 * (salt made from a persistent secret and the name, 4096 iterations). A user
 * with a one-way hash of another kind ($6$, {SSHA}...) cannot: SCRAM needs
 * what that hash does not keep. Such a user, and an unknown one, still gets
 * a normal-looking challenge (a salt made the same way, the same after a
 * restart) and fails at the end, so the exchange does not tell who exists
 * or how they are stored.
 *
 * Equal cost: START derives nothing for anyone (it only looks the user up
 * for the salt and count); FINISH runs exactly one PBKDF2 (4096 iterations)
 * for everyone, a thrown-away one for users with stored keys. Both steps
 * take a token of the client's rate limit first (auth/requests.c).
 *
 * Stateless between the two steps: the server nonce is
 * base64(random[12] || expiry[8] || HMAC-SHA256(secret, random || expiry ||
 * client-first-bare)[0..16]); at FINISH the helper checks the MAC and the
 * expiry and rebuilds server-first itself, so a worker can neither choose
 * the nonce nor replay an old exchange. The secret is drawn at start: a
 * helper restart fails the exchanges in flight (the client gets -ERR).
 *
 * Not supported: channel binding (a "p=" gs2 flag is refused; "y" is fine,
 * as we do not offer -PLUS), an authzid other than the user, SASLprep
 * (like Dovecot: the password bytes are used as they are).
 */
#ifndef FASTPOP_AUTH_SCRAM_SERVER_H
#define FASTPOP_AUTH_SCRAM_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "auth/passdb.h"
#include "auth/protocol.h"
#include "auth/scheme.h"
#include "daemon/runtime/buf.h"

#define SCRAM_NONCE_MAX 256
#define SCRAM_ITERATIONS_DERIVED 4096
/* How long a client may take between server-first and its final message. */
#define SCRAM_EXCHANGE_SECONDS 300

struct scram_client_first {
    char authzid[AUTH_USER_MAX];    /* "" if none */
    char user[AUTH_USER_MAX];       /* decoded (=2C, =3D) */
    char nonce[SCRAM_NONCE_MAX];
    size_t gs2_len;                 /* the gs2 header is msg[0..gs2_len) */
    const char *bare;               /* client-first-message-bare, inside msg */
};

/* Parse a client-first message. 0, or -1 (EINVAL syntax, ENOTSUP channel binding). */
int scram_parse_client_first(const char *msg, struct scram_client_first *cf);

/*
 * Check the client-final message against keys and the exchange so far;
 * on success write "v=<ServerSignature>" into server_final. Returns 0, or -1
 * with errno EINVAL (malformed, or c=/r= do not match) or EACCES (bad proof).
 */
int scram_verify_final(const struct scheme_scram *keys, const char *client_first,
                       const struct scram_client_first *cf, const char *server_first,
                       const char *client_final, char *server_final, size_t outlen);

/* Derive the keys a {PLAIN} password would have with this salt and count. */
int scram_derive_keys(const char *password, const unsigned char *salt, size_t saltlen,
                      unsigned long iter, struct scheme_scram *keys);

/*
 * A START or FINISH request (auth/protocol.h) for pdb: the CHALLENGE or the
 * RESULT into reply, and its status into *status. Returns 0, or -1 when no
 * answer can be made (no secret for the nonces): the caller drops the peer.
 * Failures are logged like passdb_check()'s, with mechanism=SCRAM-SHA-256.
 * The brute-force penalty and the rate limit are the caller's
 * (auth/requests.c).
 */
int scram_server_start(struct passdb *pdb, uint32_t id, const struct auth_scram_request *q,
                       struct buf *reply, enum auth_status *status);
int scram_server_finish(struct passdb *pdb, uint32_t id, const struct auth_scram_request *q,
                        struct buf *reply, enum auth_status *status);

/* The n= user of q's client-first message, for the penalty; "" if it does not parse. */
void scram_request_user(const struct auth_scram_request *q, char *user, size_t len);

/*
 * Load (or make, once) the secret of the made-up salts from the helper's
 * private directory (auth/private_dir.h) under state_dir. 0, or -1 with
 * errno: the caller logs it, and salts come from a per-start secret.
 */
int scram_load_salt_secret(const char *state_dir);

/* For tests: replace the per-start secret and the clock; forget both secrets (a "restart"). */
void scram_set_secret(const unsigned char *secret, size_t len);
void scram_set_clock(time_t (*now)(void));
void scram_forget_secrets(void);
/* PBKDF2 runs so far in this process (for tests: the cost of each step). */
uint64_t scram_kdf_runs(void);

#endif
