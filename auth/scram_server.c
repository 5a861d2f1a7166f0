#include "auth/scram_server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/passdb_file.h"
#include "auth/private_dir.h"
#include "auth/protocol.h"
#include "daemon/runtime/escape.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/username.h"
#include "daemon/runtime/base64.h"
#include "daemon/runtime/ipc.h"

#define MECH "SCRAM-SHA-256"
#define KEY_LEN SCHEME_SCRAM_KEY_LEN
#define SECRET_LEN 32
#define SNONCE_RANDOM 12
#define SNONCE_MAC 16
#define SNONCE_RAW (SNONCE_RANDOM + 8 + SNONCE_MAC)
#define DERIVED_SALT_LEN 16

/* Per start: the MAC key of server nonces (an exchange does not outlive the helper). */
static unsigned char secret[SECRET_LEN];
static int have_secret;
/* Persistent (auth/private_dir.h): the made-up salts, the same after a restart. */
static unsigned char salt_secret[SECRET_LEN];
static int have_salt_secret;
static time_t (*clock_fn)(void);
static uint64_t kdf_runs;

#define SALT_SECRET_FILE "scram-salt.key"

int scram_load_salt_secret(const char *state_dir)
{
    int dirfd = private_dir_open(state_dir);
    if (dirfd == -1)
        return -1;
    int rc = private_secret(dirfd, SALT_SECRET_FILE, salt_secret, sizeof(salt_secret));
    int saved = errno;
    close(dirfd);
    have_salt_secret = rc == 0;
    errno = saved;
    return rc;
}

void scram_forget_secrets(void)
{
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(salt_secret, sizeof(salt_secret));
    have_secret = have_salt_secret = 0;
}

uint64_t scram_kdf_runs(void)
{
    return kdf_runs;
}

void scram_set_secret(const unsigned char *s, size_t len)
{
    memset(secret, 0, sizeof(secret));
    memcpy(secret, s, len < sizeof(secret) ? len : sizeof(secret));
    have_secret = 1;
}

void scram_set_clock(time_t (*now)(void))
{
    clock_fn = now;
}

static time_t now_wall(void)
{
    return clock_fn ? clock_fn() : time(NULL);
}

static int ensure_secret(void)
{
    if (!have_secret) {
        if (RAND_bytes(secret, sizeof(secret)) != 1)
            return -1;
        have_secret = 1;
    }
    return 0;
}

/* HMAC-SHA256(key, a || b || c) into out (32 bytes). */
static int hmac3(const void *key, size_t keylen, const void *a, size_t alen, const void *b,
                 size_t blen, const void *c, size_t clen, unsigned char *out)
{
    unsigned char joined[3 * AUTH_SCRAM_MSG_MAX];
    unsigned int outlen = 0;

    if (alen + blen + clen > sizeof(joined))
        return -1;
    memcpy(joined, a, alen);
    memcpy(joined + alen, b, blen);
    memcpy(joined + alen + blen, c, clen);
    int ok = HMAC(EVP_sha256(), key, (int)keylen, joined, alen + blen + clen, out, &outlen) !=
                 NULL &&
             outlen == KEY_LEN;
    return ok ? 0 : -1;
}

/* saslname: '=2C' -> ',', '=3D' -> '='; any other '=' or a ',' is malformed. */
static int decode_saslname(const char *p, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (ch == '=') {
            if (len - i >= 3 && strncmp(p + i, "=2C", 3) == 0)
                ch = ',';
            else if (len - i >= 3 && strncmp(p + i, "=3D", 3) == 0)
                ch = '=';
            else
                return -1;
            i += 2;
        } else if (ch == ',') {
            return -1;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

/* Length of the attribute value starting at p (up to ',' or the end). */
static size_t value_len(const char *p)
{
    return strcspn(p, ",");
}

int scram_parse_client_first(const char *msg, struct scram_client_first *cf)
{
    const char *p = msg;
    size_t n;

    memset(cf, 0, sizeof(*cf));
    if (p[0] == 'p') {
        errno = ENOTSUP;
        return -1;
    }
    if ((p[0] != 'n' && p[0] != 'y') || p[1] != ',')
        goto bad;
    p += 2;
    if (p[0] == 'a' && p[1] == '=') {
        n = value_len(p + 2);
        if (decode_saslname(p + 2, n, cf->authzid, sizeof(cf->authzid)) == -1)
            goto bad;
        p += 2 + n;
    }
    if (p[0] != ',')
        goto bad;
    p++;
    cf->gs2_len = (size_t)(p - msg);
    cf->bare = p;
    /* reserved-mext: a mandatory extension we cannot know, so we must refuse. */
    if (p[0] != 'n' || p[1] != '=')
        goto bad;
    n = value_len(p + 2);
    /* The name rule of every mechanism (daemon/runtime/username.h). */
    if (decode_saslname(p + 2, n, cf->user, sizeof(cf->user)) == -1 ||
        username_check(cf->user) == -1)
        goto bad;
    p += 2 + n;
    if (strncmp(p, ",r=", 3) != 0)
        goto bad;
    p += 3;
    n = value_len(p);
    if (n == 0 || n >= sizeof(cf->nonce))
        goto bad;
    for (size_t i = 0; i < n; i++) {
        /* printable ASCII except ',' (RFC 5802 section 7) */
        if (p[i] < 0x21 || p[i] > 0x7e)
            goto bad;
    }
    memcpy(cf->nonce, p, n);
    cf->nonce[n] = '\0';
    /* Optional extensions after the nonce are allowed and ignored. */
    return 0;
bad:
    errno = EINVAL;
    return -1;
}

int scram_derive_keys(const char *password, const unsigned char *salt, size_t saltlen,
                      unsigned long iter, struct scheme_scram *keys)
{
    unsigned char salted[KEY_LEN], client_key[KEY_LEN];
    unsigned int len = 0;
    int ok;

    memset(keys, 0, sizeof(*keys));
    if (saltlen > sizeof(keys->salt))
        return -1;
    kdf_runs++;
    keys->iter = iter;
    memcpy(keys->salt, salt, saltlen);
    keys->saltlen = saltlen;
    ok = PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)saltlen, (int)iter,
                           EVP_sha256(), KEY_LEN, salted) &&
         HMAC(EVP_sha256(), salted, KEY_LEN, (const unsigned char *)"Client Key", 10,
              client_key, &len) != NULL &&
         HMAC(EVP_sha256(), salted, KEY_LEN, (const unsigned char *)"Server Key", 10,
              keys->server_key, &len) != NULL &&
         EVP_Digest(client_key, KEY_LEN, keys->stored_key, NULL, EVP_sha256(), NULL);
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return ok ? 0 : -1;
}

int scram_verify_final(const struct scheme_scram *keys, const char *client_first,
                       const struct scram_client_first *cf, const char *server_first,
                       const char *client_final, char *server_final, size_t outlen)
{
    char want_c[AUTH_SCRAM_MSG_MAX];
    unsigned char proof[KEY_LEN + 4], sig[KEY_LEN], client_key[KEY_LEN], stored[KEY_LEN];
    char auth_msg[3 * AUTH_SCRAM_MSG_MAX];
    int rc = -1;

    errno = EINVAL;
    /* c= must be base64 of the very gs2 header the client sent first. */
    if (base64_encode(client_first, cf->gs2_len, want_c, sizeof(want_c)) == -1)
        return -1;
    size_t clen = strlen(want_c);
    if (strncmp(client_final, "c=", 2) != 0 || strncmp(client_final + 2, want_c, clen) != 0 ||
        client_final[2 + clen] != ',')
        return -1;
    const char *r = client_final + 2 + clen + 1;
    const char *server_nonce = server_first + 2;
    size_t nlen = value_len(server_nonce);
    if (strncmp(server_first, "r=", 2) != 0 || strncmp(r, "r=", 2) != 0 ||
        value_len(r + 2) != nlen || strncmp(r + 2, server_nonce, nlen) != 0)
        return -1;
    /* The proof is the last attribute; extensions may sit between. */
    const char *p = strstr(client_final, ",p=");
    if (p == NULL || strchr(p + 3, ',') != NULL)
        return -1;
    long plen = base64_decode(p + 3, strlen(p + 3), proof, sizeof(proof), BASE64_PAD_OPTIONAL);
    if (plen != KEY_LEN)
        return -1;

    size_t without_proof = (size_t)(p - client_final);
    int n = snprintf(auth_msg, sizeof(auth_msg), "%s,%s,%.*s", cf->bare, server_first,
                     (int)without_proof, client_final);
    if (n < 0 || (size_t)n >= sizeof(auth_msg))
        return -1;

    unsigned int len = 0;
    if (HMAC(EVP_sha256(), keys->stored_key, KEY_LEN, (unsigned char *)auth_msg, (size_t)n, sig,
             &len) == NULL)
        goto out;
    for (int i = 0; i < KEY_LEN; i++)
        client_key[i] = proof[i] ^ sig[i];
    if (!EVP_Digest(client_key, KEY_LEN, stored, NULL, EVP_sha256(), NULL))
        goto out;
    if (CRYPTO_memcmp(stored, keys->stored_key, KEY_LEN) != 0) {
        errno = EACCES;
        goto out;
    }
    if (HMAC(EVP_sha256(), keys->server_key, KEY_LEN, (unsigned char *)auth_msg, (size_t)n, sig,
             &len) == NULL ||
        outlen < 3 || base64_encode(sig, KEY_LEN, server_final + 2, outlen - 2) == -1)
        goto out;
    memcpy(server_final, "v=", 2);
    rc = 0;
out:
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(sig, sizeof(sig));
    return rc;
}

/* --- the helper's side of the exchange ------------------------------------- */

struct exchange {
    struct scheme_scram keys;
    int usable;                 /* keys belong to the user (else: made up) */
    const char *why;            /* reason= when not usable */
};

/*
 * The salt a user without stored SCRAM keys is shown: from the persistent
 * secret, so it is the same after a restart (a salt that changed with every
 * restart would tell "no such user" from a stored one, whose salt never
 * changes). Without that secret (it could not be loaded, logged at start),
 * from the per-start one.
 */
static int derived_salt(const char *user, unsigned char *salt)
{
    unsigned char mac[KEY_LEN];
    const unsigned char *key = have_salt_secret ? salt_secret : secret;
    if (hmac3(key, SECRET_LEN, "salt", 5, user, strlen(user), "", 0, mac) == -1)
        return -1;
    memcpy(salt, mac, DERIVED_SALT_LEN);
    return 0;
}

/*
 * What START shows user: the salt and iteration count, and nothing derived,
 * for anyone: a stored user's own, else made-up ones (a {PLAIN} user's keys
 * are derived from that salt at FINISH). -1: the backend cannot answer.
 */
static int find_salt(struct passdb *pdb, const char *user, struct scheme_scram *keys)
{
    const char *stored;

    memset(keys, 0, sizeof(*keys));
    if (passdb_file_lookup_stored(pdb, user, &stored) == -1)
        return -1;
    if (stored != NULL && scheme_scram_keys(stored, keys) == SCHEME_MATCH)
        return 0;
    memset(keys, 0, sizeof(*keys));
    if (derived_salt(user, keys->salt) == -1)
        return -1;
    keys->saltlen = DERIVED_SALT_LEN;
    keys->iter = SCRAM_ITERATIONS_DERIVED;
    return 0;
}

/*
 * The keys for user, at the cost of exactly one derivation whoever user is:
 * a {PLAIN} user's keys are derived, an unknown user or one without a usable
 * secret gets made-up keys that never verify, and a user with stored keys
 * pays a derivation that is thrown away. So FINISH takes the same time for
 * all of them. -1: the backend cannot answer (tempfail).
 */
static int find_keys(struct passdb *pdb, const char *user, struct exchange *ex)
{
    const char *stored;
    unsigned char salt[DERIVED_SALT_LEN], junk[16];
    struct scheme_scram wasted;

    memset(ex, 0, sizeof(*ex));
    if (passdb_file_lookup_stored(pdb, user, &stored) == -1)
        return -1;
    if (derived_salt(user, salt) == -1)
        return -1;
    if (stored != NULL && scheme_scram_keys(stored, &ex->keys) == SCHEME_MATCH) {
        ex->usable = 1;
        int rc = scram_derive_keys("", salt, sizeof(salt), SCRAM_ITERATIONS_DERIVED, &wasted);
        OPENSSL_cleanse(&wasted, sizeof(wasted));
        return rc;
    }
    const char *plain = stored ? scheme_plaintext(stored) : NULL;
    if (plain != NULL) {
        if (scram_derive_keys(plain, salt, sizeof(salt), SCRAM_ITERATIONS_DERIVED, &ex->keys) ==
            -1)
            return -1;
        ex->usable = 1;
        return 0;
    }
    ex->why = stored == NULL ? "unknown-user" : "no-scram-secret";
    char fake[2 * sizeof(junk) + 1];
    if (RAND_bytes(junk, sizeof(junk)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(junk); i++)
        snprintf(fake + 2 * i, 3, "%02x", junk[i]);
    return scram_derive_keys(fake, salt, sizeof(salt), SCRAM_ITERATIONS_DERIVED, &ex->keys);
}

/* A fresh server nonce bound to client-first-bare, into out (base64). */
static int make_snonce(const char *bare, time_t expires, char *out, size_t outlen)
{
    unsigned char raw[SNONCE_RAW], mac[KEY_LEN];
    uint64_t e = (uint64_t)expires;

    if (RAND_bytes(raw, SNONCE_RANDOM) != 1)
        return -1;
    for (int i = 0; i < 8; i++)
        raw[SNONCE_RANDOM + i] = (unsigned char)(e >> (8 * i));
    if (hmac3(secret, sizeof(secret), raw, SNONCE_RANDOM + 8, bare, strlen(bare), "", 0, mac) ==
        -1)
        return -1;
    memcpy(raw + SNONCE_RANDOM + 8, mac, SNONCE_MAC);
    return base64_encode(raw, sizeof(raw), out, outlen);
}

/* 0 if snonce (len bytes of base64) is ours, for this bare, and not expired. */
static int check_snonce(const char *snonce, size_t len, const char *bare)
{
    unsigned char raw[SNONCE_RAW + 4], mac[KEY_LEN];
    uint64_t e = 0;

    if (base64_decode(snonce, len, raw, sizeof(raw), BASE64_PAD_OPTIONAL) != SNONCE_RAW)
        return -1;
    for (int i = 0; i < 8; i++)
        e |= (uint64_t)raw[SNONCE_RANDOM + i] << (8 * i);
    if (hmac3(secret, sizeof(secret), raw, SNONCE_RANDOM + 8, bare, strlen(bare), "", 0, mac) ==
            -1 ||
        CRYPTO_memcmp(mac, raw + SNONCE_RANDOM + 8, SNONCE_MAC) != 0)
        return -1;
    return (time_t)e >= now_wall() ? 0 : -1;
}

static int server_first_for(const struct scram_client_first *cf, const char *snonce,
                            const struct scheme_scram *keys, char *out, size_t outlen)
{
    char salt[2 * SCHEME_SCRAM_SALT_MAX];
    if (base64_encode(keys->salt, keys->saltlen, salt, sizeof(salt)) == -1)
        return -1;
    int n = snprintf(out, outlen, "r=%s%s,s=%s,i=%lu", cf->nonce, snonce, salt, keys->iter);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static void log_failure(const char *user, const char *ip, const char *what, const char *reason)
{
    char u[TEXT_LOG_ESCAPE_SIZE(AUTH_USER_MAX)], i[TEXT_LOG_ESCAPE_SIZE(AUTH_IP_MAX)];
    text_log_escape(user, u, sizeof(u));
    text_log_escape(ip, i, sizeof(i));
    log_info("auth %s user=%s ip=%s mechanism=" MECH " reason=%s", what, u, i, reason);
}

/* Where a step's answer goes, and how it ended. */
struct step {
    struct buf *reply;
    uint32_t id;
    enum auth_status status;
};

static int reply_challenge(struct step *st, enum auth_status status, const char *user,
                           const char *server_first, const char *message)
{
    st->status = status;
    return protocol_encode_scram_challenge(st->reply, st->id, status, user, server_first,
                                           message);
}

static int handle_start(struct passdb *pdb, const char *client_first, const char *ip,
                        struct step *reply)
{
    struct scram_client_first cf;
    struct scheme_scram keys;
    char snonce[2 * SNONCE_RAW], server_first[AUTH_SCRAM_MSG_MAX];

    if (scram_parse_client_first(client_first, &cf) == -1) {
        const char *why = errno == ENOTSUP ? "channel-binding" : "malformed";
        log_failure(cf.user, ip, "failed", why);
        return reply_challenge(reply, AUTH_FAIL, cf.user, "", why);
    }
    if (cf.authzid[0] != '\0' && strcmp(cf.authzid, cf.user) != 0) {
        log_failure(cf.user, ip, "failed", "authzid");
        return reply_challenge(reply, AUTH_FAIL, cf.user, "", "authzid");
    }
    if (find_salt(pdb, cf.user, &keys) == -1) {
        log_failure(cf.user, ip, "tempfail", "backend");
        return reply_challenge(reply, AUTH_TEMPFAIL, cf.user, "", "backend unavailable");
    }
    int rc = make_snonce(cf.bare, now_wall() + SCRAM_EXCHANGE_SECONDS, snonce, sizeof(snonce));
    if (rc == 0)
        rc = server_first_for(&cf, snonce, &keys, server_first, sizeof(server_first));
    OPENSSL_cleanse(&keys, sizeof(keys));
    if (rc == -1)
        return reply_challenge(reply, AUTH_TEMPFAIL, cf.user, "", "cannot make a nonce");
    return reply_challenge(reply, AUTH_OK, cf.user, server_first, "");
}

static int reply_result(struct step *st, const struct auth_result *res, const char *server_final)
{
    st->status = res->status;
    return protocol_encode_scram_result(st->reply, st->id, res->status, res->user, res->maildir,
                                        server_final, res->message,
                                        res->status == AUTH_OK ? &res->policy : NULL);
}

static int handle_finish(struct passdb *pdb, const char *client_first, const char *server_first,
                         const char *client_final, const char *ip, struct step *reply)
{
    struct scram_client_first cf;
    struct exchange ex;
    struct auth_result res = { .status = AUTH_FAIL };
    char rebuilt[AUTH_SCRAM_MSG_MAX], server_final[128] = "";
    const char *why = NULL;

    if (scram_parse_client_first(client_first, &cf) == -1 ||
        strncmp(server_first, "r=", 2) != 0 || strncmp(server_first + 2, cf.nonce,
                                                        strlen(cf.nonce)) != 0) {
        log_failure(cf.user, ip, "failed", "malformed");
        return reply_result(reply, &res, "");
    }
    const char *snonce = server_first + 2 + strlen(cf.nonce);
    if (check_snonce(snonce, value_len(snonce), cf.bare) == -1) {
        log_failure(cf.user, ip, "failed", "stale-exchange");
        return reply_result(reply, &res, "");
    }
    if (find_keys(pdb, cf.user, &ex) == -1) {
        res.status = AUTH_TEMPFAIL;
        snprintf(res.message, sizeof(res.message), "backend unavailable");
        log_failure(cf.user, ip, "tempfail", "backend");
        return reply_result(reply, &res, "");
    }
    char sn[2 * SNONCE_RAW];
    snprintf(sn, sizeof(sn), "%.*s", (int)value_len(snonce), snonce);
    /* Rebuilt from our own data: a salt or count changed since START fails here. */
    if (server_first_for(&cf, sn, &ex.keys, rebuilt, sizeof(rebuilt)) == -1 ||
        strcmp(rebuilt, server_first) != 0) {
        why = "stale-exchange";
    } else if (scram_verify_final(&ex.keys, client_first, &cf, server_first, client_final,
                                  server_final, sizeof(server_final)) == -1) {
        why = errno == EACCES ? (ex.usable ? "bad-password" : ex.why) : "malformed";
        if (why == NULL)
            why = "bad-password";
    }
    OPENSSL_cleanse(&ex, sizeof(ex));
    if (why != NULL) {
        log_failure(cf.user, ip, "failed", why);
        return reply_result(reply, &res, "");
    }
    const char *reason;
    if (passdb_file_result_ok(pdb, cf.user, &res, &reason) == -1) {
        /* A refused account (disablepop3) gets no server-final either: it is no success. */
        log_failure(cf.user, ip, res.status == AUTH_REFUSED ? "refused" : "tempfail", reason);
        server_final[0] = '\0';
    } else {
        char u[TEXT_LOG_ESCAPE_SIZE(AUTH_USER_MAX)], i[TEXT_LOG_ESCAPE_SIZE(AUTH_IP_MAX)];
        log_debug("auth ok user=%s ip=%s mechanism=" MECH, text_log_escape(cf.user, u, sizeof(u)),
                  text_log_escape(ip, i, sizeof(i)));
    }
    return reply_result(reply, &res, server_final);
}

void scram_request_user(const struct auth_scram_request *q, char *user, size_t len)
{
    struct scram_client_first cf;

    /* cf.user is whatever was decoded before a parse error: keep only a clean parse. */
    if (scram_parse_client_first(q->client_first, &cf) == 0)
        snprintf(user, len, "%s", cf.user);
    else if (len > 0)
        user[0] = '\0';
}

int scram_server_start(struct passdb *pdb, uint32_t id, const struct auth_scram_request *q,
                       struct buf *reply, enum auth_status *status)
{
    struct step st = { reply, id, AUTH_TEMPFAIL };

    if (ensure_secret() == -1 || handle_start(pdb, q->client_first, q->ip, &st) == -1)
        return -1;
    *status = st.status;
    return 0;
}

int scram_server_finish(struct passdb *pdb, uint32_t id, const struct auth_scram_request *q,
                        struct buf *reply, enum auth_status *status)
{
    struct step st = { reply, id, AUTH_TEMPFAIL };

    if (ensure_secret() == -1 ||
        handle_finish(pdb, q->client_first, q->server_first, q->client_final, q->ip, &st) == -1)
        return -1;
    *status = st.status;
    return 0;
}
