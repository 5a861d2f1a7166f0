#include "shm/credcache_check.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shm/credcache.h"
#include "shm/lmdb_env.h"

/* The data file of one store, and its lock file (LMDB's name for MDB_NOSUBDIR). */
static int store_file(const char *state_dir, enum credcache_kind kind, int lock, char *out,
                      size_t outlen)
{
    int n = kind == CREDCACHE_PRIVATE
                ? snprintf(out, outlen, "%s/%s/%s/%s%s", state_dir, CREDCACHE_DIR,
                           CREDCACHE_PRIVATE_DIR, CREDCACHE_PRIVATE_FILE, lock ? "-lock" : "")
                : snprintf(out, outlen, "%s/%s/%s%s", state_dir, CREDCACHE_DIR,
                           CREDCACHE_SHARED_FILE, lock ? "-lock" : "");
    return n < 0 || (size_t)n >= outlen ? ENAMETOOLONG : 0;
}

/* Every record a key of ours with a value that decodes as this store's kind. */
static int check_records(MDB_txn *txn, MDB_dbi dbi, enum credcache_kind kind)
{
    MDB_cursor *cur;
    MDB_val key, val;
    struct credcache_record rec;
    struct credcache_login login;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return rc;
    while ((rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
        int decodes = kind == CREDCACHE_PRIVATE
                          ? credcache_decode(val.mv_data, val.mv_size, &rec) == 0
                          : credcache_login_decode(val.mv_data, val.mv_size, &login) == 0;
        explicit_bzero(&rec, sizeof(rec));
        if (!(key.mv_size > 0 && key.mv_size < CREDCACHE_KEY_MAX && decodes)) {
            rc = MDB_INCOMPATIBLE;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int check_store(const char *state_dir, enum credcache_kind kind)
{
    char path[PATH_MAX];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;

    int rc = store_file(state_dir, kind, 0, path, sizeof(path));
    if (rc != 0)
        return rc;
    if (access(path, F_OK) == -1)
        return errno == ENOENT ? 0 : errno;
    rc = mdb_env_create(&env);
    if (rc != 0)
        return rc;
    rc = mdb_env_set_mapsize(env, CREDCACHE_MAPSIZE);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(env, LMDBENV_MAX_READERS);
    if (rc == 0)
        rc = mdb_env_open(env, path, MDB_NOTLS | MDB_NOSUBDIR | MDB_RDONLY, 0);
    if (rc == 0)
        rc = lmdbenv_check_size(env);
    if (rc == 0)
        rc = lmdbenv_txn_begin(env, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
        if (rc == 0)
            rc = check_records(txn, dbi, kind);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc;
}

int credcache_check(const char *state_dir)
{
    int rc = check_store(state_dir, CREDCACHE_SHARED);
    return rc != 0 ? rc : check_store(state_dir, CREDCACHE_PRIVATE);
}

int credcache_remove(const char *state_dir)
{
    char path[PATH_MAX];
    for (int kind = CREDCACHE_SHARED; kind <= CREDCACHE_PRIVATE; kind++) {
        for (int lock = 0; lock <= 1; lock++) {
            int rc = store_file(state_dir, (enum credcache_kind)kind, lock, path, sizeof(path));
            if (rc != 0)
                return rc;
            if (unlink(path) == -1 && errno != ENOENT)
                return errno;
        }
    }
    return 0;
}
