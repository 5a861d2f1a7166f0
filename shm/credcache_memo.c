/*
 * The per-worker memo of credential-cache matches (see credcache_memo.h for
 * what it remembers and why that is safe).
 */
#include "shm/credcache_memo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "daemon/hash.h"

#define TAG_LEN 32
#define KEY_LEN 32

struct memo_entry {
    uint64_t used;      /* tick of the last store or hit; 0 = empty */
    uint64_t name_hash;
    unsigned char tag[TAG_LEN];
};

struct credmemo {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;   /* holds K; re-initialised (same key) for every tag */
    uint64_t seed;      /* of the name hash: secret, so sets are hard to aim at */
    struct memo_entry *table;
    size_t sets;        /* a power of two; CREDMEMO_WAYS entries each */
    uint64_t tick;
    struct credmemo_stats stats;
};

_Static_assert(sizeof(struct memo_entry) == 48, "entries are 48 bytes (documented)");

int credmemo_new(size_t entries, struct credmemo **out)
{
    unsigned char key[KEY_LEN];
    struct credmemo *m;

    if (entries < CREDMEMO_WAYS) {
        errno = EINVAL;
        return -1;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -1;
    m->sets = 1;
    while (m->sets * 2 * CREDMEMO_WAYS <= entries)
        m->sets *= 2;
    m->stats.capacity = m->sets * CREDMEMO_WAYS;
    m->table = calloc(m->stats.capacity, sizeof(*m->table));
    if (m->table == NULL) {
        free(m);
        errno = ENOMEM;
        return -1;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    int ok = RAND_bytes(key, sizeof(key)) == 1 &&
             RAND_bytes((unsigned char *)&m->seed, sizeof(m->seed)) == 1;
    if (ok)
        ok = (m->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) != NULL &&
             (m->ctx = EVP_MAC_CTX_new(m->mac)) != NULL &&
             EVP_MAC_init(m->ctx, key, sizeof(key), params) == 1;
    /* From here on K exists only inside the MAC context. */
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok) {
        credmemo_free(m);
        errno = EIO;
        return -1;
    }
    *out = m;
    return 0;
}

void credmemo_free(struct credmemo *m)
{
    if (m == NULL)
        return;
    OPENSSL_cleanse(m->table, m->stats.capacity * sizeof(*m->table));
    free(m->table);
    EVP_MAC_CTX_free(m->ctx);   /* clears the HMAC key state */
    EVP_MAC_free(m->mac);
    OPENSSL_cleanse(m, sizeof(*m));
    free(m);
}

static int mac_update(EVP_MAC_CTX *ctx, const void *p, size_t n)
{
    return EVP_MAC_update(ctx, p, n) == 1 ? 0 : -1;
}

/*
 * T = HMAC(K, len(name) name salt iterations dk len(password) password):
 * every field that makes the record this record, lengths first so no two
 * inputs read alike. Fed piece by piece: the password is never copied.
 */
static int make_tag(struct credmemo *m, const char *name, size_t name_len,
                    const struct credcache_record *rec, const char *password,
                    unsigned char tag[TAG_LEN])
{
    size_t pw_len = strlen(password), out_len = 0;
    unsigned char lens[2 + 4 + 4] = {
        (unsigned char)name_len, (unsigned char)(name_len >> 8),
        (unsigned char)rec->iterations, (unsigned char)(rec->iterations >> 8),
        (unsigned char)(rec->iterations >> 16), (unsigned char)(rec->iterations >> 24),
        (unsigned char)pw_len, (unsigned char)(pw_len >> 8),
        (unsigned char)(pw_len >> 16), (unsigned char)(pw_len >> 24),
    };

    if (name_len > 0xffff || pw_len > 0xffffffffu)
        return -1;
    if (EVP_MAC_init(m->ctx, NULL, 0, NULL) != 1 ||   /* same key, fresh state */
        mac_update(m->ctx, lens, 2) == -1 || mac_update(m->ctx, name, name_len) == -1 ||
        mac_update(m->ctx, rec->salt, sizeof(rec->salt)) == -1 ||
        mac_update(m->ctx, lens + 2, 4) == -1 ||
        mac_update(m->ctx, rec->dk, sizeof(rec->dk)) == -1 ||
        mac_update(m->ctx, lens + 6, 4) == -1 || mac_update(m->ctx, password, pw_len) == -1 ||
        EVP_MAC_final(m->ctx, tag, &out_len, TAG_LEN) != 1 || out_len != TAG_LEN)
        return -1;
    return 0;
}

static struct memo_entry *set_of(struct credmemo *m, uint64_t name_hash)
{
    return &m->table[(name_hash & (m->sets - 1)) * CREDMEMO_WAYS];
}

/* The entry of name_hash, or NULL. */
static struct memo_entry *find(struct credmemo *m, uint64_t name_hash)
{
    struct memo_entry *set = set_of(m, name_hash);
    for (int w = 0; w < CREDMEMO_WAYS; w++) {
        if (set[w].used != 0 && set[w].name_hash == name_hash)
            return &set[w];
    }
    return NULL;
}

/* Store tag for name_hash: its own entry, else an empty one, else the least recent. */
static void remember(struct credmemo *m, uint64_t name_hash, const unsigned char tag[TAG_LEN])
{
    struct memo_entry *e = find(m, name_hash);
    if (e == NULL) {
        struct memo_entry *set = set_of(m, name_hash);
        e = &set[0];
        for (int w = 1; w < CREDMEMO_WAYS && e->used != 0; w++) {
            if (set[w].used < e->used)
                e = &set[w];
        }
        if (e->used != 0)
            m->stats.evictions++;
        else
            m->stats.entries++;
    }
    e->used = ++m->tick;
    e->name_hash = name_hash;
    memcpy(e->tag, tag, TAG_LEN);
}

enum credcache_verdict credmemo_judge(struct credmemo *m, const char *name,
                                      const struct credcache_record *rec, const char *password,
                                      time_t now, const struct credcache_ttl *ttl)
{
    unsigned char tag[TAG_LEN];
    int pos_match, neg_match, have_tag = 0;
    uint64_t name_hash = 0;
    size_t name_len = strlen(name);
    /* No entry or nothing live: the same tag and verifier work on a dummy, then MISS. */
    int live = rec != NULL && credcache_live(rec, now, ttl);
    const struct credcache_record *work = live ? rec : credcache_dummy_record();

    if (make_tag(m, name, name_len, work, password, tag) == 0) {
        have_tag = live && rec->has_positive;
        name_hash = hash64(name, name_len, m->seed);
        struct memo_entry *e = have_tag ? find(m, name_hash) : NULL;
        if (e != NULL && CRYPTO_memcmp(e->tag, tag, TAG_LEN) == 0) {
            e->used = ++m->tick;
            m->stats.hits++;
            OPENSSL_cleanse(tag, sizeof(tag));
            /* The password's verifier is rec->dk: the negative part matches iff it is the same. */
            neg_match = rec->has_negative &&
                        CRYPTO_memcmp(rec->dk, rec->neg_dk, sizeof(rec->dk)) == 0;
            return credcache_classify(rec, 1, neg_match, now, ttl);
        }
    }
    m->stats.misses++;
    int rc = credcache_match(work, password, &pos_match, &neg_match);
    if (rc == -1 || !live) {
        OPENSSL_cleanse(tag, sizeof(tag));
        return CREDCACHE_MISS;
    }
    if (pos_match && have_tag)
        remember(m, name_hash, tag);
    OPENSSL_cleanse(tag, sizeof(tag));
    return credcache_classify(rec, pos_match, neg_match, now, ttl);
}

void credmemo_get_stats(const struct credmemo *m, struct credmemo_stats *out)
{
    *out = m->stats;
}
