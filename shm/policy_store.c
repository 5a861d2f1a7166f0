#include "shm/policy_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/runtime/hash.h"
#include "daemon/runtime/limits.h"
#include "shm/lmdb_env.h"

struct policy_store {
    MDB_env *env;
    MDB_dbi dbi;
};

/* "L" + the user name: room for every name the helper protocol carries. */
#define KEY_MAX (1 + AUTH_USER_MAX)
_Static_assert(KEY_MAX <= 511, "LMDB's default key limit");

static int make_key(const char *user, char *key, MDB_val *k)
{
    size_t n = strlen(user);
    if (n == 0 || n >= AUTH_USER_MAX)
        return EINVAL;
    key[0] = 'L';
    memcpy(key + 1, user, n);
    k->mv_data = key;
    k->mv_size = n + 1;
    return 0;
}

int policy_store_open(const char *dir, struct policy_store **out)
{
    struct policy_store *ps = calloc(1, sizeof(*ps));
    MDB_txn *txn;

    if (ps == NULL)
        return ENOMEM;
    int rc = lmdbenv_open(dir, 0700, POLICY_STORE_MAPSIZE, 0, MDB_NOSYNC, &ps->env);
    if (rc == 0) {
        /* A worker killed inside a read txn leaves its reader slot: clear such slots. */
        (void)mdb_reader_check(ps->env, NULL);
        rc = lmdbenv_txn_begin(ps->env, 0, &txn);
        if (rc == 0) {
            rc = mdb_dbi_open(txn, NULL, 0, &ps->dbi);
            rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
        }
        if (rc != 0)
            mdb_env_close(ps->env);
    }
    if (rc != 0) {
        free(ps);
        return rc;
    }
    *out = ps;
    return 0;
}

void policy_store_close(struct policy_store *ps)
{
    if (ps == NULL)
        return;
    mdb_env_close(ps->env);
    free(ps);
}

int policy_store_last_login(struct policy_store *ps, const char *user, int64_t *when,
                            int *found)
{
    char key[KEY_MAX];
    MDB_val k, v;
    MDB_txn *txn;

    *found = 0;
    int rc = make_key(user, key, &k);
    if (rc == 0)
        rc = lmdbenv_txn_begin(ps->env, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_get(txn, ps->dbi, &k, &v);
    /* A value of another size is not ours to read: as if absent. */
    if (rc == 0 && v.mv_size == sizeof(*when)) {
        memcpy(when, v.mv_data, sizeof(*when));
        *found = 1;
    }
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int policy_store_set_last_login(struct policy_store *ps, const char *user, int64_t when)
{
    char key[KEY_MAX];
    MDB_val k, v;
    MDB_txn *txn;
    int rc = make_key(user, key, &k);

    /* Full: grow (no txn is open then) and write again, once. */
    for (int attempt = 0; rc == 0; attempt++) {
        if ((rc = lmdbenv_txn_begin(ps->env, 0, &txn)) != 0)
            return rc;
        v.mv_data = &when;
        v.mv_size = sizeof(when);
        rc = mdb_put(txn, ps->dbi, &k, &v, 0);
        rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
        if (rc != MDB_MAP_FULL || attempt == 1)
            return rc;
        rc = lmdbenv_grow(ps->env);
    }
    return rc;
}

/* LMDB's default key limit. */
#define EXPIRE_KEY_MAX 511

/* The key of one message's retrieval day: 0 if the UIDL does not fit. */
static size_t expire_key(const uint8_t maildir_hash[16], const struct policy_store_msg *m,
                         unsigned char key[EXPIRE_KEY_MAX])
{
    if (1 + 16 + m->uidl_len > EXPIRE_KEY_MAX || m->uidl_len == 0)
        return 0;
    key[0] = 'E';
    memcpy(key + 1, maildir_hash, 16);
    memcpy(key + 17, m->uidl, m->uidl_len);
    return 17 + m->uidl_len;
}

/* One message's step of policy_store_retrievals() in txn. */
static int retrieval_step(MDB_txn *txn, MDB_dbi dbi, const uint8_t hash[16],
                          struct policy_store_msg *m, uint32_t today)
{
    unsigned char key[EXPIRE_KEY_MAX];
    MDB_val k = { expire_key(hash, m, key), key }, v;

    m->day = POLICY_STORE_NOT_RETRIEVED;
    if (k.mv_size == 0)
        return 0;
    if (m->forget) {
        int rc = mdb_del(txn, dbi, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0 && v.mv_size == sizeof(m->day)) {
        memcpy(&m->day, v.mv_data, sizeof(m->day));
        return 0;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    if (!m->retrieved_now)
        return 0;
    v.mv_data = &today;
    v.mv_size = sizeof(today);
    if ((rc = mdb_put(txn, dbi, &k, &v, 0)) == 0)
        m->day = today;
    return rc;
}

int policy_store_retrievals(struct policy_store *ps, const char *path,
                            struct policy_store_msg *msgs, size_t n, uint32_t today)
{
    uint8_t hash[16];
    MDB_txn *txn;
    int rc = 0;

    hash128(path, strlen(path), hash);
    /* Full: grow (no txn is open then) and run the pass again, once. */
    for (int attempt = 0; rc == 0; attempt++) {
        if ((rc = lmdbenv_txn_begin(ps->env, 0, &txn)) != 0)
            return rc;
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = retrieval_step(txn, ps->dbi, hash, &msgs[i], today);
        rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
        if (rc != MDB_MAP_FULL || attempt == 1)
            return rc;
        rc = lmdbenv_grow(ps->env);
    }
    return rc;
}

/* Order of UIDLs for the prune's lookups: length, then bytes. */
static int uidl_order(const void *a, const void *b)
{
    const struct policy_store_msg *x = *(const struct policy_store_msg *const *)a;
    const struct policy_store_msg *y = *(const struct policy_store_msg *const *)b;
    if (x->uidl_len != y->uidl_len)
        return x->uidl_len < y->uidl_len ? -1 : 1;
    return memcmp(x->uidl, y->uidl, x->uidl_len);
}

/* Drop the records under prefix (17 bytes) whose UIDL is not in sorted[0..n). */
static int prune_txn(MDB_txn *txn, MDB_dbi dbi, const unsigned char *prefix,
                     const struct policy_store_msg **sorted, size_t n, size_t *dropped)
{
    MDB_cursor *cur;
    MDB_val k = { 17, (void *)prefix }, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);

    if (rc != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && k.mv_size > 17 && memcmp(k.mv_data, prefix, 17) == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct policy_store_msg probe = { (const char *)k.mv_data + 17, k.mv_size - 17, 0, 0, 0 };
        const struct policy_store_msg *p = &probe;
        if (bsearch(&p, sorted, n, sizeof(*sorted), uidl_order) != NULL)
            continue;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        (*dropped)++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

int policy_store_prune(struct policy_store *ps, const char *path,
                       const struct policy_store_msg *msgs, size_t n, size_t *dropped)
{
    unsigned char prefix[17];
    MDB_txn *txn;

    *dropped = 0;
    const struct policy_store_msg **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (sorted == NULL)
        return ENOMEM;
    for (size_t i = 0; i < n; i++)
        sorted[i] = &msgs[i];
    qsort(sorted, n, sizeof(*sorted), uidl_order);
    prefix[0] = 'E';
    hash128(path, strlen(path), prefix + 1);
    int rc = lmdbenv_txn_begin(ps->env, 0, &txn);
    if (rc == 0) {
        rc = prune_txn(txn, ps->dbi, prefix, sorted, n, dropped);
        rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
    }
    free((void *)sorted);
    if (rc != 0)
        *dropped = 0;
    return rc;
}
