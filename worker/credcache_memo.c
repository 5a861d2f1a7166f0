/*
 * The per-worker memo of logins the helper accepted (see credcache_memo.h
 * for what it remembers and why that is safe).
 */
#include "worker/credcache_memo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "daemon/runtime/hash.h"

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

/* Two little-endian length or number fields feed the MAC; 4 or 8 bytes. */
static void le_bytes(uint64_t v, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(v >> (8 * i));
}

/*
 * P = HMAC(K, 1 len(name) name len(password) password), fed piece by piece
 * so the password is never copied; lengths first so no two inputs read
 * alike, a leading domain byte so a pre-tag is never a tag.
 */
int credmemo_pretag(struct credmemo *m, const char *name, const char *password,
                    unsigned char pretag[CREDMEMO_PRETAG_LEN])
{
    static const unsigned char domain = 1;
    size_t name_len = strlen(name), pw_len = strlen(password), out_len = 0;
    unsigned char nlen[4], plen[4];

    if (name_len > 0xffffffffu || pw_len > 0xffffffffu) {
        errno = EINVAL;
        return -1;
    }
    le_bytes(name_len, nlen, 4);
    le_bytes(pw_len, plen, 4);
    if (EVP_MAC_init(m->ctx, NULL, 0, NULL) != 1 ||   /* same key, fresh state */
        mac_update(m->ctx, &domain, 1) == -1 || mac_update(m->ctx, nlen, 4) == -1 ||
        mac_update(m->ctx, name, name_len) == -1 || mac_update(m->ctx, plen, 4) == -1 ||
        mac_update(m->ctx, password, pw_len) == -1 ||
        EVP_MAC_final(m->ctx, pretag, &out_len, CREDMEMO_PRETAG_LEN) != 1 ||
        out_len != CREDMEMO_PRETAG_LEN) {
        errno = EIO;
        return -1;
    }
    return 0;
}

/* T = HMAC(K, 2 pretag generation). */
static int make_tag(struct credmemo *m, const unsigned char pretag[CREDMEMO_PRETAG_LEN],
                    uint64_t generation, unsigned char tag[TAG_LEN])
{
    static const unsigned char domain = 2;
    unsigned char gen[8];
    size_t out_len = 0;

    le_bytes(generation, gen, 8);
    if (EVP_MAC_init(m->ctx, NULL, 0, NULL) != 1 || mac_update(m->ctx, &domain, 1) == -1 ||
        mac_update(m->ctx, pretag, CREDMEMO_PRETAG_LEN) == -1 ||
        mac_update(m->ctx, gen, sizeof(gen)) == -1 ||
        EVP_MAC_final(m->ctx, tag, &out_len, TAG_LEN) != 1 || out_len != TAG_LEN) {
        errno = EIO;
        return -1;
    }
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

int credmemo_check(struct credmemo *m, const char *name,
                   const unsigned char pretag[CREDMEMO_PRETAG_LEN], uint64_t generation)
{
    unsigned char tag[TAG_LEN] = { 0 };
    size_t name_len = strlen(name);
    /* The same work whatever the memo holds: the tag and the compare always run. */
    int ok = make_tag(m, pretag, generation, tag) == 0;
    uint64_t name_hash = hash64(name, name_len, m->seed);
    struct memo_entry *e = find(m, name_hash);
    static const unsigned char nothing[TAG_LEN];
    int match = CRYPTO_memcmp(e != NULL ? e->tag : nothing, tag, TAG_LEN) == 0;

    OPENSSL_cleanse(tag, sizeof(tag));
    if (ok && match && e != NULL && generation != 0) {
        e->used = ++m->tick;
        m->stats.hits++;
        return 1;
    }
    m->stats.misses++;
    return 0;
}

int credmemo_remember(struct credmemo *m, const char *name,
                      const unsigned char pretag[CREDMEMO_PRETAG_LEN], uint64_t generation)
{
    unsigned char tag[TAG_LEN];

    if (generation == 0) {
        errno = EINVAL;
        return -1;
    }
    if (make_tag(m, pretag, generation, tag) == -1)
        return -1;
    remember(m, hash64(name, strlen(name), m->seed), tag);
    OPENSSL_cleanse(tag, sizeof(tag));
    return 0;
}

void credmemo_get_stats(const struct credmemo *m, struct credmemo_stats *out)
{
    *out = m->stats;
}
