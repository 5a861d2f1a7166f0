#include "auth/scheme.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "daemon/runtime/escape.h"
#include "daemon/runtime/hex.h"
#include "daemon/runtime/base64.h"

enum encoding { ENC_GUESS, ENC_BASE64, ENC_HEX };

/* Longest salt taken from a stored {SSHA*} or SCRAM value; real ones are 4-16 bytes. */
#define SALT_MAX 256
#define SCHEME_NAME_MAX 32
#define SCRAM_KEY_LEN 32

struct scheme;
typedef enum scheme_result verify_fn(const struct scheme *s, enum encoding enc, const char *data,
                                     const char *password, int check_only);

struct scheme {
    const char *name;
    verify_fn *verify;
    const EVP_MD *(*md)(void);   /* digest schemes only */
};

static verify_fn verify_plain, verify_crypt, verify_digest, verify_salted, verify_scram;

static const struct scheme schemes[] = {
    { "PLAIN", verify_plain, NULL },
    { "CLEARTEXT", verify_plain, NULL },
    /* Dovecot checks all of these with one crypt() call; the prefix of the
     * stored string, not the scheme name, picks the algorithm. */
    { "CRYPT", verify_crypt, NULL },
    { "SHA512-CRYPT", verify_crypt, NULL },
    { "SHA256-CRYPT", verify_crypt, NULL },
    { "MD5-CRYPT", verify_crypt, NULL },
    { "BLF-CRYPT", verify_crypt, NULL },
    { "DES-CRYPT", verify_crypt, NULL },
    { "SHA", verify_digest, EVP_sha1 },
    { "SHA1", verify_digest, EVP_sha1 },
    { "SHA256", verify_digest, EVP_sha256 },
    { "SHA384", verify_digest, EVP_sha384 },
    { "SHA512", verify_digest, EVP_sha512 },
    { "SSHA", verify_salted, EVP_sha1 },
    { "SSHA256", verify_salted, EVP_sha256 },
    { "SSHA384", verify_salted, EVP_sha384 },
    { "SSHA512", verify_salted, EVP_sha512 },
    { "SCRAM-SHA-256", verify_scram, NULL },
};

static const struct scheme bare_crypt = { "crypt", verify_crypt, NULL };

/* Large and single-threaded use: see the header. */
static struct crypt_data crypt_area;

static enum scheme_result verify_plain(const struct scheme *s, enum encoding enc,
                                       const char *data, const char *password, int check_only)
{
    unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    unsigned int alen = 0, blen = 0;
    (void)s;
    (void)enc;

    if (check_only)
        return SCHEME_MATCH;
    /* Comparing digests keeps the time independent of where the strings differ
     * and of their lengths. */
    if (!EVP_Digest(data, strlen(data), a, &alen, EVP_sha256(), NULL) ||
        !EVP_Digest(password, strlen(password), b, &blen, EVP_sha256(), NULL))
        return SCHEME_MALFORMED;
    int same = alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    return same ? SCHEME_MATCH : SCHEME_MISMATCH;
}

static enum scheme_result verify_crypt(const struct scheme *s, enum encoding enc,
                                       const char *data, const char *password, int check_only)
{
    (void)s;
    (void)enc;

    /* "$id$...$hash": a bare setting without the hash part cannot be checked against. */
    if (data[0] == '$' && strrchr(data, '$')[1] == '\0')
        return SCHEME_MALFORMED;
    if (check_only) {
        int ok = crypt_checksalt(data);
        return ok == CRYPT_SALT_OK || ok == CRYPT_SALT_METHOD_LEGACY ||
                       ok == CRYPT_SALT_TOO_CHEAP
                   ? SCHEME_MATCH
                   : SCHEME_MALFORMED;
    }
    /* A stored value that is no valid setting ("!", "*", a locked "!$6$...")
     * makes crypt fail: that is a broken entry, not a wrong password. */
    const char *out = crypt_rn(password, data, &crypt_area, sizeof(crypt_area));
    enum scheme_result r;
    /* Hashing with a complete stored hash as the setting gives a string of the
     * same length; a different length means the stored value was cut. */
    if (out == NULL || out[0] == '*' || strlen(out) != strlen(data))
        r = SCHEME_MALFORMED;
    else if (CRYPTO_memcmp(out, data, strlen(data)) == 0)
        r = SCHEME_MATCH;
    else
        r = SCHEME_MISMATCH;
    explicit_bzero(&crypt_area, sizeof(crypt_area));
    return r;
}

/* digest(a || b) into out; 0 or -1. */
static int digest2(const EVP_MD *md, const void *a, size_t alen, const void *b, size_t blen,
                   unsigned char *out)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, md, NULL) && EVP_DigestUpdate(ctx, a, alen) &&
             EVP_DigestUpdate(ctx, b, blen) && EVP_DigestFinal_ex(ctx, out, NULL);
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

static long decode(enum encoding enc, const char *data, unsigned char *out, size_t outlen)
{
    if (enc == ENC_HEX)
        return hex_decode(data, strlen(data), out, outlen);
    return base64_decode(data, strlen(data), out, outlen, BASE64_PAD_OPTIONAL);
}

static enum scheme_result compare_digest(const EVP_MD *md, const unsigned char *want,
                                         size_t dlen, const unsigned char *salt, size_t saltlen,
                                         const char *password)
{
    unsigned char got[EVP_MAX_MD_SIZE];
    if (digest2(md, password, strlen(password), salt, saltlen, got) == -1)
        return SCHEME_MALFORMED;
    int same = CRYPTO_memcmp(got, want, dlen) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return same ? SCHEME_MATCH : SCHEME_MISMATCH;
}

static enum scheme_result verify_digest(const struct scheme *s, enum encoding enc,
                                        const char *data, const char *password, int check_only)
{
    const EVP_MD *md = s->md();
    size_t dlen = (size_t)EVP_MD_get_size(md);
    unsigned char raw[EVP_MAX_MD_SIZE + SALT_MAX];

    if (enc == ENC_GUESS)
        enc = strlen(data) == 2 * dlen ? ENC_HEX : ENC_BASE64;
    long n = decode(enc, data, raw, sizeof(raw));
    if (n < 0 || (size_t)n != dlen)
        return SCHEME_MALFORMED;
    if (check_only)
        return SCHEME_MATCH;
    return compare_digest(md, raw, dlen, NULL, 0, password);
}

static enum scheme_result verify_salted(const struct scheme *s, enum encoding enc,
                                        const char *data, const char *password, int check_only)
{
    const EVP_MD *md = s->md();
    size_t dlen = (size_t)EVP_MD_get_size(md);
    unsigned char raw[EVP_MAX_MD_SIZE + SALT_MAX];

    /* The length varies with the salt, so unlike {SHA} there is nothing to
     * guess from: base64 unless ".HEX" says otherwise. */
    long n = decode(enc == ENC_HEX ? ENC_HEX : ENC_BASE64, data, raw, sizeof(raw));
    if (n < 0 || (size_t)n <= dlen)
        return SCHEME_MALFORMED;
    if (check_only)
        return SCHEME_MATCH;
    return compare_digest(md, raw, dlen, raw + dlen, (size_t)n - dlen, password);
}


/* Decode one base64 field of exactly `want` bytes (0 = any length up to cap). */
static int scram_field(const char *p, size_t len, unsigned char *out, size_t cap, size_t want,
                       size_t *got)
{
    long n = base64_decode(p, len, out, cap, BASE64_PAD_OPTIONAL);
    if (n <= 0 || (want != 0 && (size_t)n != want))
        return -1;
    *got = (size_t)n;
    return 0;
}

static int scram_parse(const char *data, struct scheme_scram *st)
{
    const char *f[4];
    size_t len[4];
    const char *p = data;

    for (int i = 0; i < 4; i++) {
        const char *comma = strchr(p, ',');
        f[i] = p;
        if (i < 3 && comma == NULL)
            return -1;
        len[i] = i < 3 ? (size_t)(comma - p) : strlen(p);
        if (i == 3 && comma != NULL)
            return -1;
        p = comma ? comma + 1 : p + len[i];
    }

    st->iter = 0;
    if (len[0] == 0 || len[0] > 9)
        return -1;
    for (size_t i = 0; i < len[0]; i++) {
        if (f[0][i] < '0' || f[0][i] > '9')
            return -1;
        st->iter = st->iter * 10 + (unsigned long)(f[0][i] - '0');
    }
    if (st->iter < SCHEME_SCRAM_MIN_ITER || st->iter > SCHEME_SCRAM_MAX_ITER)
        return -1;

    size_t n;
    if (scram_field(f[1], len[1], st->salt, sizeof(st->salt), 0, &st->saltlen) == -1 ||
        scram_field(f[2], len[2], st->stored_key, sizeof(st->stored_key), SCRAM_KEY_LEN, &n) ==
            -1 ||
        scram_field(f[3], len[3], st->server_key, sizeof(st->server_key), SCRAM_KEY_LEN, &n) ==
            -1)
        return -1;
    return 0;
}

static enum scheme_result verify_scram(const struct scheme *s, enum encoding enc,
                                       const char *data, const char *password, int check_only)
{
    struct scheme_scram st;
    unsigned char salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN];
    unsigned int klen = 0;
    enum scheme_result r = SCHEME_MALFORMED;
    (void)s;
    (void)enc;

    if (scram_parse(data, &st) == -1)
        return SCHEME_MALFORMED;
    if (check_only)
        return SCHEME_MATCH;
    /* Dovecot does not SASLprep the password either, so hashes it wrote match. */
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), st.salt, (int)st.saltlen,
                          (int)st.iter, EVP_sha256(), sizeof(salted), salted) &&
        HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Client Key", 10,
             client_key, &klen) != NULL &&
        klen == sizeof(client_key) &&
        EVP_Digest(client_key, sizeof(client_key), stored_key, NULL, EVP_sha256(), NULL))
        r = CRYPTO_memcmp(stored_key, st.stored_key, sizeof(stored_key)) == 0 ? SCHEME_MATCH
                                                                              : SCHEME_MISMATCH;
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(stored_key, sizeof(stored_key));
    return r;
}

/*
 * Find the scheme of stored; *data is set to the value after the prefix.
 * NULL if there is no verifier for it.
 */
static const struct scheme *lookup(const char *stored, const char **data, enum encoding *enc)
{
    char name[SCHEME_NAME_MAX];

    *enc = ENC_GUESS;
    *data = stored;
    if (stored[0] == '$')
        return &bare_crypt;
    if (stored[0] != '{')
        return NULL;
    const char *end = strchr(stored, '}');
    size_t len = end ? (size_t)(end - stored - 1) : 0;
    if (end == NULL || len == 0 || len >= sizeof(name))
        return NULL;
    memcpy(name, stored + 1, len);
    name[len] = '\0';
    *data = end + 1;

    char *dot = strchr(name, '.');
    if (dot != NULL) {
        *dot++ = '\0';
        if (strcasecmp(dot, "HEX") == 0)
            *enc = ENC_HEX;
        else if (strcasecmp(dot, "B64") == 0 || strcasecmp(dot, "BASE64") == 0)
            *enc = ENC_BASE64;
        else
            return NULL;
    }
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (strcasecmp(schemes[i].name, name) != 0)
            continue;
        if (*enc != ENC_GUESS && schemes[i].md == NULL)
            return NULL;
        return &schemes[i];
    }
    return NULL;
}

static enum scheme_result run(const char *stored, const char *password, int check_only)
{
    const char *data;
    enum encoding enc;
    const struct scheme *s = lookup(stored, &data, &enc);

    if (s == NULL)
        return SCHEME_UNKNOWN;
    if (data[0] == '\0')
        return SCHEME_MALFORMED;
    return s->verify(s, enc, data, password, check_only);
}

enum scheme_result scheme_scram_keys(const char *stored, struct scheme_scram *keys)
{
    const char *data;
    enum encoding enc;
    const struct scheme *s = lookup(stored, &data, &enc);

    if (s == NULL || s->verify != verify_scram)
        return SCHEME_UNKNOWN;
    return scram_parse(data, keys) == 0 ? SCHEME_MATCH : SCHEME_MALFORMED;
}

const char *scheme_plaintext(const char *stored)
{
    const char *data;
    enum encoding enc;
    const struct scheme *s = lookup(stored, &data, &enc);

    return s != NULL && s->verify == verify_plain && data[0] != '\0' ? data : NULL;
}

enum scheme_result scheme_verify(const char *stored, const char *password)
{
    return run(stored, password, 0);
}

enum scheme_result scheme_check(const char *stored)
{
    return run(stored, "", 1);
}

void scheme_name(const char *stored, char *out, size_t outlen)
{
    const char *end = stored[0] == '{' ? strchr(stored, '}') : NULL;

    if (outlen == 0)
        return;
    if (end != NULL && (size_t)(end - stored) < SCHEME_NAME_MAX) {
        char raw[SCHEME_NAME_MAX + 2];
        snprintf(raw, sizeof(raw), "%.*s", (int)(end - stored + 1), stored);
        text_log_escape(raw, out, outlen);
    } else {
        snprintf(out, outlen, "%s", stored[0] == '$' ? "crypt" : "none");
    }
}

const char *scheme_result_str(enum scheme_result r)
{
    switch (r) {
    case SCHEME_MATCH:
        return "match";
    case SCHEME_MISMATCH:
        return "bad-password";
    case SCHEME_UNKNOWN:
        return "unknown-scheme";
    case SCHEME_MALFORMED:
        return "malformed-hash";
    }
    return "unknown";
}
