#include "shm/credcache_check.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shm/credcache.h"
#include "shm/lmdb_env.h"

static int cache_file(const char *state_dir, const char *name, char *out, size_t outlen)
{
    if ((size_t)snprintf(out, outlen, "%s/%s/%s", state_dir, CREDCACHE_DIR, name) >= outlen)
        return ENAMETOOLONG;
    return 0;
}

/* Every record a key of ours with a value that decodes. */
static int check_records(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_cursor *cur;
    MDB_val key, val;
    struct credcache_record rec;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return rc;
    while ((rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
        int ours = key.mv_size > 0 && key.mv_size < CREDCACHE_KEY_MAX &&
                   credcache_decode(val.mv_data, val.mv_size, &rec) == 0;
        explicit_bzero(&rec, sizeof(rec));
        if (!ours) {
            rc = MDB_INCOMPATIBLE;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int credcache_check(const char *state_dir)
{
    char path[PATH_MAX];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;

    int rc = cache_file(state_dir, "data.mdb", path, sizeof(path));
    if (rc != 0)
        return rc;
    if (access(path, F_OK) == -1)
        return errno == ENOENT ? 0 : errno;
    path[strlen(path) - strlen("/data.mdb")] = '\0';
    rc = mdb_env_create(&env);
    if (rc != 0)
        return rc;
    rc = mdb_env_set_mapsize(env, CREDCACHE_MAPSIZE);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(env, LMDBENV_MAX_READERS);
    if (rc == 0)
        rc = mdb_env_open(env, path, MDB_NOTLS | MDB_RDONLY, 0);
    if (rc == 0)
        rc = lmdbenv_check_size(env);
    if (rc == 0)
        rc = lmdbenv_txn_begin(env, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
        if (rc == 0)
            rc = check_records(txn, dbi);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc;
}

int credcache_remove(const char *state_dir)
{
    static const char *const files[] = { "data.mdb", "lock.mdb" };
    char path[PATH_MAX];
    for (size_t i = 0; i < 2; i++) {
        int rc = cache_file(state_dir, files[i], path, sizeof(path));
        if (rc != 0)
            return rc;
        if (unlink(path) == -1 && errno != ENOENT)
            return errno;
    }
    return 0;
}
