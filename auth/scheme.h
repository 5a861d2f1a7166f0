/*
 * Password schemes: checking a plaintext password against a stored one in
 * the formats Dovecot and OpenLDAP write.
 *
 *   {PLAIN} {CLEARTEXT}          the password itself (unsafe: anyone who reads
 *                                the file has it; for migrations and tests)
 *   {CRYPT} {SHA512-CRYPT} {SHA256-CRYPT} {MD5-CRYPT} {BLF-CRYPT} {DES-CRYPT}
 *   and a bare "$..." string     crypt(3) from libxcrypt: $y$ $6$ $5$ $2b$ $1$...
 *   {SHA} {SHA1} {SHA256} {SHA384} {SHA512}
 *                                unsalted digest, base64, or hex when the text is
 *                                exactly twice the digest length (as Dovecot does)
 *   {SSHA} {SSHA256} {SSHA384} {SSHA512}
 *                                base64(digest(password || salt) || salt)
 *   {SCRAM-SHA-256}              iter,b64 salt,b64 StoredKey,b64 ServerKey
 *
 * Scheme names match case-insensitively; the digest schemes also take a
 * ".HEX" or ".B64" suffix ({SHA256.HEX}) that forces the encoding.
 * A string with neither a {SCHEME} prefix nor a leading '$' is not guessed at:
 * it is SCHEME_UNKNOWN (Dovecot would try crypt(3), which means DES).
 *
 * Every comparison of secret-derived bytes is constant-time. The crypt(3)
 * work area is static: the helper is single-threaded, and at ~32 KiB it does
 * not belong on the stack.
 */
#ifndef FASTPOP_AUTH_SCHEME_H
#define FASTPOP_AUTH_SCHEME_H

#include <stddef.h>

enum scheme_result {
    SCHEME_MATCH = 0,
    SCHEME_MISMATCH = 1,
    SCHEME_UNKNOWN = 2,     /* no verifier for this {SCHEME} */
    SCHEME_MALFORMED = 3,   /* known scheme, but the stored value cannot be parsed */
};

/* SCRAM iteration counts accepted (Dovecot's minimum; the maximum bounds the work). */
#define SCHEME_SCRAM_MIN_ITER 4096
#define SCHEME_SCRAM_MAX_ITER 10000000

/* The keys of a {SCRAM-SHA-256} stored value (Dovecot's format). */
#define SCHEME_SCRAM_KEY_LEN 32
#define SCHEME_SCRAM_SALT_MAX 256
struct scheme_scram {
    unsigned long iter;
    unsigned char salt[SCHEME_SCRAM_SALT_MAX];
    size_t saltlen;
    unsigned char stored_key[SCHEME_SCRAM_KEY_LEN];
    unsigned char server_key[SCHEME_SCRAM_KEY_LEN];
};

/*
 * For a SCRAM server: the keys of stored when it is {SCRAM-SHA-256}.
 * Returns SCHEME_MATCH (keys filled), SCHEME_UNKNOWN (another scheme) or
 * SCHEME_MALFORMED. The caller wipes keys.
 */
enum scheme_result scheme_scram_keys(const char *stored, struct scheme_scram *keys);

/* The password itself when stored is {PLAIN}/{CLEARTEXT}, else NULL. */
const char *scheme_plaintext(const char *stored);

/*
 * Check password against stored. Never logs: the caller knows the user.
 * Returns one of enum scheme_result.
 */
enum scheme_result scheme_verify(const char *stored, const char *password);

/*
 * Check that stored names a known scheme and parses, without doing the
 * (possibly slow) verification. For warnings at load time. Returns
 * SCHEME_MATCH when the value looks usable, else SCHEME_UNKNOWN/SCHEME_MALFORMED.
 * Caveat: for crypt(3) only the method prefix is checked (crypt_checksalt),
 * so e.g. an out-of-range bcrypt cost shows only when verifying.
 */
enum scheme_result scheme_check(const char *stored);

/*
 * Copy the {SCHEME} prefix of stored (or "crypt" for a bare "$..." string,
 * "none" otherwise) into out, for log messages that must not show the hash.
 */
void scheme_name(const char *stored, char *out, size_t outlen);

/* A short word for a result, for "reason=" fields. */
const char *scheme_result_str(enum scheme_result r);

#endif
