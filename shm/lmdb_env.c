#include "lmdb_env.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

int lmdbenv_open(const char *dir, mode_t mode, size_t mapsize, unsigned maxdbs,
                 unsigned flags, MDB_env **env)
{
    MDB_env *e = NULL;
    int rc;

    if (mkdir(dir, mode) == -1 && errno != EEXIST)
        return errno;
    rc = mdb_env_create(&e);
    if (rc != 0)
        return rc;
    rc = mdb_env_set_mapsize(e, mapsize ? mapsize : LMDBENV_DEFAULT_MAPSIZE);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(e, LMDBENV_MAX_READERS);
    if (rc == 0 && maxdbs > 0)
        rc = mdb_env_set_maxdbs(e, maxdbs);
    if (rc == 0)
        rc = mdb_env_open(e, dir, MDB_NOTLS | flags, mode & 0666);
    if (rc == 0)
        rc = lmdbenv_check_size(e);
    if (rc != 0) {
        mdb_env_close(e);
        return rc;
    }
    *env = e;
    return 0;
}

int lmdbenv_check_size(MDB_env *env)
{
    mdb_filehandle_t fd;
    struct stat st;
    MDB_envinfo info;
    MDB_stat ms;

    int rc = mdb_env_get_fd(env, &fd);
    if (rc != 0)
        return rc;
    if (fstat(fd, &st) == -1)
        return errno;
    /* mdb_env_open read both meta pages with pread: reading them again is safe. */
    rc = mdb_env_info(env, &info);
    if (rc == 0)
        rc = mdb_env_stat(env, &ms);
    if (rc != 0)
        return rc;
    if (st.st_size < 0 || (uint64_t)st.st_size / ms.ms_psize < (uint64_t)info.me_last_pgno + 1)
        return MDB_CORRUPTED;
    return 0;
}

int lmdbenv_txn_begin(MDB_env *env, unsigned flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin(env, NULL, flags, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the map; 0 means "take the size from the file". */
        rc = mdb_env_set_mapsize(env, 0);
        if (rc == 0)
            rc = mdb_txn_begin(env, NULL, flags, txn);
    }
    return rc;
}

int lmdbenv_grow(MDB_env *env)
{
    MDB_envinfo info;
    int rc = mdb_env_info(env, &info);
    if (rc != 0)
        return rc;
    if (info.me_mapsize > SIZE_MAX / 2)
        return MDB_MAP_FULL;
    return mdb_env_set_mapsize(env, info.me_mapsize * 2);
}
