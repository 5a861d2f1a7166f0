/*
 * Credential cache records: the byte layouts, the verifier and the decision
 * the helper takes from a record. No LMDB here (see credcache.c).
 *
 * Verifier record (private env; little-endian, version 4):
 *   u8 version, u8 flags (1 = positive part, 2 = negative part), u16 zero,
 *   u32 iterations, salt[16],
 *   positive: i64 verified_at, u64 generation, dk[32], u16 len + user,
 *             u16 len + maildir, policy
 *   negative: i64 failed_at, neg_dk[32]
 * Login-list record (shared env; version 5, so neither decodes as the other):
 *   u8 version, u8 zero, u16 zero, i64 verified_at, u64 generation,
 *   u16 len + user, u16 len + maildir, policy
 * policy: u32 flags, u32 login_delay, u32 expire_days (daemon/runtime/user_policy.h);
 * a policy user_policy_valid() refuses makes the record invalid.
 * Versions 2 and 3 are the same without the policy: they are not read (a
 * miss, so the backend is asked and the record rewritten with the policy),
 * never taken as a login without one. Version 1 (the verifier record in the
 * shared env) is no longer read either. A version this code does not know
 * is simply not used (a miss).
 */
#include "shm/credcache.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define RECORD_VERSION 4
#define LOGIN_VERSION 5
#define FLAG_POSITIVE 1u
#define FLAG_NEGATIVE 2u

struct writer {
    unsigned char *p;
    size_t left;
    int bad;
};

static void put(struct writer *w, const void *src, size_t n)
{
    if (w->bad || n > w->left) {
        w->bad = 1;
        return;
    }
    memcpy(w->p, src, n);
    w->p += n;
    w->left -= n;
}

static void put_uint(struct writer *w, uint64_t v, size_t bytes)
{
    unsigned char b[8];
    for (size_t i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put(w, b, bytes);
}

static void put_str(struct writer *w, const char *s, size_t cap)
{
    size_t n = strlen(s);
    if (n >= cap) {
        w->bad = 1;
        return;
    }
    put_uint(w, n, 2);
    put(w, s, n);
}

static void put_policy(struct writer *w, const struct user_policy *p)
{
    if (!user_policy_valid(p))
        w->bad = 1;
    put_uint(w, p->flags, 4);
    put_uint(w, p->login_delay, 4);
    put_uint(w, p->expire_days, 4);
}

long credcache_encode(const struct credcache_record *rec, unsigned char *out, size_t outlen)
{
    struct writer w = { out, outlen, 0 };
    unsigned flags = (rec->has_positive ? FLAG_POSITIVE : 0) |
                     (rec->has_negative ? FLAG_NEGATIVE : 0);

    if (rec->iterations == 0 || rec->iterations > CREDCACHE_ITER_MAX) {
        errno = EINVAL;
        return -1;
    }
    put_uint(&w, RECORD_VERSION, 1);
    put_uint(&w, flags, 1);
    put_uint(&w, 0, 2);
    put_uint(&w, rec->iterations, 4);
    put(&w, rec->salt, sizeof(rec->salt));
    if (rec->has_positive) {
        put_uint(&w, (uint64_t)rec->verified_at, 8);
        put_uint(&w, rec->generation, 8);
        put(&w, rec->dk, sizeof(rec->dk));
        put_str(&w, rec->user, sizeof(rec->user));
        put_str(&w, rec->maildir, sizeof(rec->maildir));
        put_policy(&w, &rec->policy);
    }
    if (rec->has_negative) {
        put_uint(&w, (uint64_t)rec->failed_at, 8);
        put(&w, rec->neg_dk, sizeof(rec->neg_dk));
    }
    if (w.bad) {
        errno = ENOBUFS;
        return -1;
    }
    return (long)(outlen - w.left);
}

struct reader {
    const unsigned char *p;
    size_t left;
    int bad;
};

static void get(struct reader *r, void *dst, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
}

static uint64_t get_uint(struct reader *r, size_t bytes)
{
    unsigned char b[8];
    uint64_t v = 0;
    get(r, b, bytes);
    for (size_t i = 0; i < bytes; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static void get_str(struct reader *r, char *out, size_t cap)
{
    size_t n = (size_t)get_uint(r, 2);
    if (r->bad || n >= cap || n > r->left || memchr(r->p, '\0', n) != NULL) {
        r->bad = 1;
        out[0] = '\0';
        return;
    }
    get(r, out, n);
    out[n] = '\0';
}

static void get_policy(struct reader *r, struct user_policy *p)
{
    p->flags = (uint32_t)get_uint(r, 4);
    p->login_delay = (uint32_t)get_uint(r, 4);
    p->expire_days = (uint32_t)get_uint(r, 4);
    if (!user_policy_valid(p))
        r->bad = 1;
}

int credcache_decode(const void *data, size_t len, struct credcache_record *rec)
{
    struct reader r = { data, len, 0 };

    memset(rec, 0, sizeof(*rec));
    unsigned version = (unsigned)get_uint(&r, 1);
    unsigned flags = (unsigned)get_uint(&r, 1);
    unsigned zero = (unsigned)get_uint(&r, 2);
    rec->iterations = (uint32_t)get_uint(&r, 4);
    get(&r, rec->salt, sizeof(rec->salt));
    if (r.bad || version != RECORD_VERSION || zero != 0 ||
        (flags & ~(FLAG_POSITIVE | FLAG_NEGATIVE)) != 0 || rec->iterations == 0 ||
        rec->iterations > CREDCACHE_ITER_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (flags & FLAG_POSITIVE) {
        rec->has_positive = 1;
        rec->verified_at = (int64_t)get_uint(&r, 8);
        rec->generation = get_uint(&r, 8);
        get(&r, rec->dk, sizeof(rec->dk));
        get_str(&r, rec->user, sizeof(rec->user));
        get_str(&r, rec->maildir, sizeof(rec->maildir));
        get_policy(&r, &rec->policy);
        if (rec->user[0] == '\0' || rec->maildir[0] != '/' || rec->generation == 0)
            r.bad = 1;
    }
    if (flags & FLAG_NEGATIVE) {
        rec->has_negative = 1;
        rec->failed_at = (int64_t)get_uint(&r, 8);
        get(&r, rec->neg_dk, sizeof(rec->neg_dk));
    }
    if (r.bad || r.left != 0) {
        memset(rec, 0, sizeof(*rec));
        errno = EINVAL;
        return -1;
    }
    return 0;
}

long credcache_login_encode(const struct credcache_login *login, unsigned char *out,
                            size_t outlen)
{
    struct writer w = { out, outlen, 0 };

    if (login->generation == 0 || login->user[0] == '\0' || login->maildir[0] != '/') {
        errno = EINVAL;
        return -1;
    }
    put_uint(&w, LOGIN_VERSION, 1);
    put_uint(&w, 0, 3);
    put_uint(&w, (uint64_t)login->verified_at, 8);
    put_uint(&w, login->generation, 8);
    put_str(&w, login->user, sizeof(login->user));
    put_str(&w, login->maildir, sizeof(login->maildir));
    put_policy(&w, &login->policy);
    if (w.bad) {
        errno = ENOBUFS;
        return -1;
    }
    return (long)(outlen - w.left);
}

int credcache_login_decode(const void *data, size_t len, struct credcache_login *login)
{
    struct reader r = { data, len, 0 };

    memset(login, 0, sizeof(*login));
    unsigned version = (unsigned)get_uint(&r, 1);
    unsigned zero = (unsigned)get_uint(&r, 3);
    login->verified_at = (int64_t)get_uint(&r, 8);
    login->generation = get_uint(&r, 8);
    get_str(&r, login->user, sizeof(login->user));
    get_str(&r, login->maildir, sizeof(login->maildir));
    get_policy(&r, &login->policy);
    if (r.bad || r.left != 0 || version != LOGIN_VERSION || zero != 0 ||
        login->generation == 0 || login->user[0] == '\0' || login->maildir[0] != '/') {
        memset(login, 0, sizeof(*login));
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int credcache_login_of(const struct credcache_record *rec, struct credcache_login *out)
{
    memset(out, 0, sizeof(*out));
    if (!rec->has_positive || rec->generation == 0) {
        errno = EINVAL;
        return -1;
    }
    out->verified_at = rec->verified_at;
    out->generation = rec->generation;
    memcpy(out->user, rec->user, sizeof(out->user));
    memcpy(out->maildir, rec->maildir, sizeof(out->maildir));
    out->policy = rec->policy;
    return 0;
}

int credcache_derive(const struct credcache_record *rec, const char *password,
                     unsigned char dk[CREDCACHE_DK_LEN])
{
    if (rec->iterations == 0 || rec->iterations > CREDCACHE_ITER_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (!PKCS5_PBKDF2_HMAC(password, (int)strlen(password), rec->salt, (int)sizeof(rec->salt),
                           (int)rec->iterations, EVP_sha256(), CREDCACHE_DK_LEN, dk)) {
        errno = EIO;
        return -1;
    }
    return 0;
}

/* Seconds since t, or -1 for a time in the future beyond the slack. */
static int64_t age(int64_t t, time_t now)
{
    int64_t a = (int64_t)now - t;
    if (a < -CREDCACHE_CLOCK_SLACK)
        return -1;
    return a < 0 ? 0 : a;
}

static int fresh(int64_t t, time_t now, long ttl)
{
    int64_t a = age(t, now);
    return ttl > 0 && a >= 0 && a < ttl;
}

int credcache_login_fresh(const struct credcache_login *login, time_t now, long ttl)
{
    return fresh(login->verified_at, now, ttl);
}

/* Which parts of rec are live at now under ttl. */
static void liveness(const struct credcache_record *rec, time_t now,
                     const struct credcache_ttl *ttl, int *pos_fresh, int *pos_stale,
                     int *neg_fresh)
{
    *pos_fresh = rec->has_positive && fresh(rec->verified_at, now, ttl->positive);
    *pos_stale = rec->has_positive && !*pos_fresh &&
                 fresh(rec->verified_at, now, ttl->stale > ttl->positive ? ttl->stale : 0);
    *neg_fresh = rec->has_negative && fresh(rec->failed_at, now, ttl->negative);
}

int credcache_live(const struct credcache_record *rec, time_t now,
                   const struct credcache_ttl *ttl)
{
    int pos_fresh, pos_stale, neg_fresh;
    liveness(rec, now, ttl, &pos_fresh, &pos_stale, &neg_fresh);
    return pos_fresh || pos_stale || neg_fresh;
}

int credcache_match(const struct credcache_record *rec, const char *password, int *pos_match,
                    int *neg_match)
{
    unsigned char dk[CREDCACHE_DK_LEN];

    *pos_match = *neg_match = 0;
    if (credcache_derive(rec, password, dk) == -1)
        return -1;
    /* Both compares always run: which one matched must not show in the time. */
    *pos_match = rec->has_positive && CRYPTO_memcmp(dk, rec->dk, sizeof(dk)) == 0;
    *neg_match = rec->has_negative && CRYPTO_memcmp(dk, rec->neg_dk, sizeof(dk)) == 0;
    OPENSSL_cleanse(dk, sizeof(dk));
    return 0;
}

enum credcache_verdict credcache_classify(const struct credcache_record *rec, int pos_match,
                                          int neg_match, time_t now,
                                          const struct credcache_ttl *ttl)
{
    int pos_fresh, pos_stale, neg_fresh;
    liveness(rec, now, ttl, &pos_fresh, &pos_stale, &neg_fresh);
    if (pos_match && pos_fresh)
        return CREDCACHE_HIT_OK;
    if (pos_match && pos_stale)
        return CREDCACHE_STALE_OK;
    if (neg_match && neg_fresh)
        return CREDCACHE_HIT_FAIL;
    return CREDCACHE_MISS;
}

enum credcache_verdict credcache_judge(const struct credcache_record *rec, const char *password,
                                       time_t now, const struct credcache_ttl *ttl)
{
    int pos_match, neg_match;

    if (!credcache_live(rec, now, ttl))
        return CREDCACHE_MISS;   /* nothing to compare: spare the PBKDF2 */
    if (credcache_match(rec, password, &pos_match, &neg_match) == -1)
        return CREDCACHE_MISS;
    return credcache_classify(rec, pos_match, neg_match, now, ttl);
}

const struct credcache_record *credcache_dummy_record(void)
{
    /* Never matches anything that matters: its verdict is always thrown away. */
    static const struct credcache_record dummy = {
        .iterations = CREDCACHE_ITERATIONS, .has_positive = 1, .has_negative = 1,
    };
    return &dummy;
}

enum credcache_verdict credcache_judge_even(const struct credcache_record *rec,
                                            const char *password, time_t now,
                                            const struct credcache_ttl *ttl)
{
    int pos_match, neg_match;

    if (rec == NULL || !credcache_live(rec, now, ttl)) {
        (void)credcache_match(credcache_dummy_record(), password, &pos_match, &neg_match);
        return CREDCACHE_MISS;
    }
    if (credcache_match(rec, password, &pos_match, &neg_match) == -1)
        return CREDCACHE_MISS;
    return credcache_classify(rec, pos_match, neg_match, now, ttl);
}

int credcache_record_init(struct credcache_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->iterations = CREDCACHE_ITERATIONS;
    if (RAND_bytes(rec->salt, sizeof(rec->salt)) != 1) {
        errno = EIO;
        return -1;
    }
    return 0;
}

int credcache_record_ok(struct credcache_record *rec, const char *password, const char *user,
                        const char *maildir, const struct user_policy *policy, time_t now)
{
    unsigned char dk[CREDCACHE_DK_LEN];

    if (strlen(user) >= sizeof(rec->user) || strlen(maildir) >= sizeof(rec->maildir) ||
        user[0] == '\0' || maildir[0] != '/' || (policy != NULL && !user_policy_valid(policy))) {
        errno = EINVAL;
        return -1;
    }
    if (credcache_derive(rec, password, dk) == -1)
        return -1;
    /* A password that failed before and works now must stop failing from the cache. */
    if (rec->has_negative && CRYPTO_memcmp(dk, rec->neg_dk, sizeof(dk)) == 0) {
        rec->has_negative = 0;
        OPENSSL_cleanse(rec->neg_dk, sizeof(rec->neg_dk));
    }
    /*
     * Another password (or none before): the workers' memories of the old
     * one are bound to the old generation and must stop answering. Random,
     * not a counter: a flushed and re-created record starts from nothing.
     */
    if (!rec->has_positive || rec->generation == 0 ||
        CRYPTO_memcmp(dk, rec->dk, sizeof(dk)) != 0) {
        uint64_t gen = 0;
        while (gen == 0) {
            if (RAND_bytes((unsigned char *)&gen, sizeof(gen)) != 1) {
                OPENSSL_cleanse(dk, sizeof(dk));
                errno = EIO;
                return -1;
            }
        }
        rec->generation = gen;
    }
    rec->has_positive = 1;
    rec->verified_at = (int64_t)now;
    memcpy(rec->dk, dk, sizeof(dk));
    strcpy(rec->user, user);
    strcpy(rec->maildir, maildir);
    if (policy != NULL)
        rec->policy = *policy;
    else
        user_policy_init(&rec->policy);
    OPENSSL_cleanse(dk, sizeof(dk));
    return 0;
}

int credcache_record_fail(struct credcache_record *rec, const char *password, time_t now)
{
    unsigned char dk[CREDCACHE_DK_LEN];

    if (credcache_derive(rec, password, dk) == -1)
        return -1;
    /* The backend's word is newer: a positive part for this very password is wrong now. */
    if (rec->has_positive && CRYPTO_memcmp(dk, rec->dk, sizeof(dk)) == 0) {
        rec->has_positive = 0;
        rec->generation = 0;
    }
    rec->has_negative = 1;
    rec->failed_at = (int64_t)now;
    memcpy(rec->neg_dk, dk, sizeof(dk));
    OPENSSL_cleanse(dk, sizeof(dk));
    return 0;
}
