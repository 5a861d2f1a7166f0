#include "shm/index.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/runtime/hash.h"
#include "shm/index_record.h"
#include "shm/lmdb_env.h"

/* A full map is doubled and the write retried, up to 4096 times the start size. */
#define PUT_TRIES 12

struct mbindex {
    /*
     * Every call below holds it from start to end: a worker's loop and its
     * loader thread (worker/offload.h) share one env, and LMDB lets a map
     * be resized only while no txn of the process is open.
     */
    pthread_mutex_t lock;
    MDB_env *env;      /* NULL after a rebuild that could not open a new one */
    MDB_dbi dbi;
    int broken;        /* the LMDB code that broke it, or 0 */
    int recheck;       /* seconds: mbindex_set_recheck */
    uint64_t boot;     /* mbindex_boot */
    size_t mapsize;
    size_t max_mapsize; /* the map never grows past it (0: no limit of ours) */
    char dir[PATH_MAX];
};

/* ---- keys ------------------------------------------------------------ */

void index_path_normalize(char *path)
{
    char *out = path;
    const char *in = path;
    while (*in) {
        if (in[0] == '/' && in[1] == '/') {
            in++;
        } else if (in[0] == '/' && in[1] == '.' && (in[2] == '/' || in[2] == '\0')) {
            in += 2;
        } else {
            *out++ = *in++;
        }
    }
    if (out == path && *path == '/')
        *out++ = '/'; /* "/." is the root */
    while (out > path + 1 && out[-1] == '/')
        out--;
    *out = '\0';
}

/* 'M' then 128 bits of hash: room for other kinds of keys later. */
enum { KEY_LEN = 17 };

static void make_key(const char *path, unsigned char key[KEY_LEN])
{
    key[0] = 'M';
    hash128(path, strlen(path), key + 1);
}

/* ---- environment ----------------------------------------------------- */

static int is_broken_code(int rc)
{
    return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID ||
           rc == MDB_VERSION_MISMATCH || rc == MDB_PANIC || rc == MDB_INCOMPATIBLE;
}

static int note(struct mbindex *ix, int rc)
{
    if (is_broken_code(rc) && !ix->broken)
        ix->broken = rc;
    return rc;
}

int mbindex_broken(struct mbindex *ix)
{
    pthread_mutex_lock(&ix->lock);
    int broken = ix->broken != 0;
    pthread_mutex_unlock(&ix->lock);
    return broken;
}

/*
 * LMDB unmaps the old map before it maps the resized one: when that mmap
 * fails (no address space left) the env has no map at all and the next
 * txn would fault. Such an env is closed; ix fails every call with rc,
 * as a broken one, until mbindex_rebuild() opens it again (its files are
 * fine, and without an env it removes nothing).
 */
static void drop_env(struct mbindex *ix, int rc)
{
    mdb_env_close(ix->env);
    ix->env = NULL;
    ix->broken = rc;
}

/*
 * A map above ix->max_mapsize is set to it (LMDB rounds a size below the
 * pages in use up to them). Under the lock, with no txn open.
 */
static int shrink_to_limit(struct mbindex *ix)
{
    MDB_envinfo info;
    int rc = mdb_env_info(ix->env, &info);
    if (rc == 0 && info.me_mapsize > ix->max_mapsize) {
        rc = mdb_env_set_mapsize(ix->env, ix->max_mapsize);
        if (rc != 0)
            drop_env(ix, rc);
    }
    return rc;
}

/* Open the env in ix->dir into ix->env and ix->dbi. */
static int open_env(struct mbindex *ix)
{
    MDB_txn *txn;
    int rc = lmdbenv_open(ix->dir, 0700, ix->mapsize, 0, MDB_NOSYNC, &ix->env);
    if (rc != 0) {
        ix->env = NULL;
        return rc;
    }
    /* The unnamed database: opened once, in a txn of its own. */
    rc = lmdbenv_txn_begin(ix->env, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, &ix->dbi);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc != 0) {
        mdb_env_close(ix->env);
        ix->env = NULL;
        return rc;
    }
    /*
     * A process killed inside a read txn leaves its reader slot taken, which
     * pins old pages: clear the slots of dead processes here, as the mail
     * user, since every replacement of a dead worker passes by. Best effort:
     * a failure only leaves the slots for the next opener.
     */
    int dead;
    (void)mdb_reader_check(ix->env, &dead);
    return 0;
}

static uint64_t read_boot_id(void)
{
    char id[64];
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (f == NULL)
        return 0;
    size_t n = fread(id, 1, sizeof(id), f);
    fclose(f);
    if (n < 32)
        return 0;
    uint64_t h = hash64(id, n, HASH_SEED_A);
    return h != 0 ? h : 1;
}

int mbindex_open(const char *dir, size_t mapsize, struct mbindex **out)
{
    struct mbindex *ix = calloc(1, sizeof(*ix));
    if (ix == NULL)
        return ENOMEM;
    if ((size_t)snprintf(ix->dir, sizeof(ix->dir), "%s", dir) >= sizeof(ix->dir)) {
        free(ix);
        return ENAMETOOLONG;
    }
    ix->mapsize = mapsize;
    ix->recheck = INDEX_RECHECK_DEFAULT;
    ix->boot = read_boot_id();
    int rc = pthread_mutex_init(&ix->lock, NULL);
    if (rc != 0) {
        free(ix);
        return rc;
    }
    rc = open_env(ix);
    if (rc != 0) {
        pthread_mutex_destroy(&ix->lock);
        free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

void mbindex_close(struct mbindex *ix)
{
    if (ix == NULL)
        return;
    if (ix->env != NULL)
        mdb_env_close(ix->env);
    pthread_mutex_destroy(&ix->lock);
    free(ix);
}

int mbindex_limit_size(struct mbindex *ix, size_t max)
{
    pthread_mutex_lock(&ix->lock);
    ix->max_mapsize = max;
    int rc = ix->env != NULL ? shrink_to_limit(ix) : 0;
    pthread_mutex_unlock(&ix->lock);
    return rc;
}

/*
 * Every key is one of ours ('M' and a hash): anything else is another
 * program's environment (MDB_INCOMPATIBLE), which is not written into.
 * The walk also reads every branch and leaf page, so a page of garbage is
 * found here, before the workers run, and not at some login.
 */
static int check_keys(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_cursor *cur;
    MDB_val key, val;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return rc;
    while ((rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
        if (key.mv_size != KEY_LEN || ((const char *)key.mv_data)[0] != 'M') {
            rc = MDB_INCOMPATIBLE;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int check_env(const char *dir)
{
    struct mbindex *ix;
    int rc = mbindex_open(dir, 0, &ix);
    if (rc != 0)
        return rc;
    MDB_txn *txn;
    rc = lmdbenv_txn_begin(ix->env, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = check_keys(txn, ix->dbi);
        mdb_txn_abort(txn);
    }
    mbindex_close(ix);
    return rc;
}

static int data_file(const char *dir, char *path, size_t len)
{
    return (size_t)snprintf(path, len, "%s/data.mdb", dir) >= len ? ENAMETOOLONG : 0;
}

static int remove_env_files(const char *dir)
{
    static const char *const files[] = { "data.mdb", "lock.mdb" };
    char path[PATH_MAX];
    for (size_t i = 0; i < 2; i++) {
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, files[i]) >= sizeof(path))
            return ENAMETOOLONG;
        if (unlink(path) == -1 && errno != ENOENT)
            return errno;
    }
    return 0;
}

int mbindex_remove(const char *dir)
{
    return remove_env_files(dir);
}

int mbindex_prepare(const char *dir, int *reset)
{
    *reset = 0;
    int rc = check_env(dir);
    /*
     * Files its user may not open are not its index (left by another user,
     * or planted symlinks): they go like broken ones. Only names in dir,
     * which belongs to that user, are removed, never what they point to.
     */
    if (is_broken_code(rc) || rc == EACCES) {
        *reset = 1;
        rc = remove_env_files(dir);
        if (rc == 0)
            rc = check_env(dir);
    }
    return rc;
}

/*
 * Remove the files of a broken env, unless another process already
 * replaced them: data.mdb must still be the file with inode ino on dev. Two workers that find the same damage then make one
 * new env, not two that undo each other.
 */
static int remove_if_same(const char *dir, ino_t ino, dev_t dev)
{
    char path[PATH_MAX];
    struct stat st;
    int rc = data_file(dir, path, sizeof(path));
    if (rc != 0)
        return rc;
    if (stat(path, &st) == -1)
        return errno == ENOENT ? 0 : errno;
    if (st.st_ino != ino || st.st_dev != dev)
        return 0;
    return remove_env_files(dir);
}

int mbindex_open_rebuilding(const char *dir, size_t mapsize, struct mbindex **out, int *reset)
{
    char path[PATH_MAX];
    struct stat before;
    *reset = 0;
    int rc = data_file(dir, path, sizeof(path));
    if (rc != 0)
        return rc;
    int known = stat(path, &before) == 0;
    rc = mbindex_open(dir, mapsize, out);
    if (!is_broken_code(rc) || !known)
        return rc;
    rc = remove_if_same(dir, before.st_ino, before.st_dev);
    if (rc != 0)
        return rc;
    *reset = 1;
    return mbindex_open(dir, mapsize, out);
}

int mbindex_rebuild(struct mbindex *ix)
{
    mdb_filehandle_t fd;
    struct stat ours;
    int rc = 0;
    pthread_mutex_lock(&ix->lock);
    /* Without an env (a rebuild failed before), or not knowing its file: remove nothing. */
    if (ix->env != NULL) {
        if (mdb_env_get_fd(ix->env, &fd) == 0 && fstat(fd, &ours) == 0)
            rc = remove_if_same(ix->dir, ours.st_ino, ours.st_dev);
        /* No txn is open: every call of this file ends its own. */
        mdb_env_close(ix->env);
        ix->env = NULL;
    }
    if (rc == 0)
        rc = open_env(ix);
    if (rc == 0 && ix->max_mapsize != 0)
        rc = shrink_to_limit(ix);
    /* Until an env opens again every call fails at once, as while broken. */
    ix->broken = rc == 0 ? 0 : rc;
    pthread_mutex_unlock(&ix->lock);
    return rc;
}

/* ---- records --------------------------------------------------------- */

/*
 * path's record decoded into e, or only its head into head (the other is
 * NULL): then the messages' pages are not even touched. The record is
 * copied out, so no read txn outlives the call.
 */
static int record_get(struct mbindex *ix, const char *path, struct index_entry *e,
                      struct index_head *head)
{
    unsigned char keybuf[KEY_LEN];
    MDB_val key = { KEY_LEN, keybuf }, val;
    MDB_txn *txn;

    make_key(path, keybuf);
    pthread_mutex_lock(&ix->lock);
    int rc = ix->broken;
    if (rc == 0)
        rc = lmdbenv_txn_begin(ix->env, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_get(txn, ix->dbi, &key, &val);
        if (rc == 0)
            rc = e != NULL ? index_decode(val.mv_data, val.mv_size, path, e)
                           : index_decode_head(val.mv_data, val.mv_size, path, head);
        mdb_txn_abort(txn);
    }
    rc = note(ix, rc);
    pthread_mutex_unlock(&ix->lock);
    return rc;
}

int mbindex_get(struct mbindex *ix, const char *path, struct index_entry *e)
{
    return record_get(ix, path, e, NULL);
}

int mbindex_get_head(struct mbindex *ix, const char *path, struct index_head *head)
{
    return record_get(ix, path, NULL, head);
}

/* Doubling the map stays within max_mapsize (the owner's index_max_mb). */
static int may_grow(struct mbindex *ix)
{
    MDB_envinfo info;
    if (ix->max_mapsize == 0)
        return 1;
    return mdb_env_info(ix->env, &info) == 0 && info.me_mapsize <= ix->max_mapsize / 2;
}

/*
 * With expect: the record of path must still be the one with that serial,
 * checked in the write txn itself; e's new/ stamp, legacy kind and tmp/
 * cleanup time are then taken from it (mbindex_replace_cur).
 */
static int keep_stored_fields(struct mbindex *ix, MDB_txn *txn, MDB_val *key, const char *path,
                              uint64_t expect, struct index_entry *e)
{
    MDB_val val;
    struct index_head h;
    int rc = mdb_get(txn, ix->dbi, key, &val);
    if (rc == 0)
        rc = index_decode_head(val.mv_data, val.mv_size, path, &h);
    if (rc == 0 && h.serial != expect)
        rc = ESTALE;
    if (rc == 0) {
        e->new_dir = h.new_dir;
        e->tmp_cleaned = h.tmp_cleaned;
        e->legacy = h.legacy;
    }
    return rc;
}

static int write_record(struct mbindex *ix, const char *path, const struct index_entry *given,
                        const uint64_t *expect, uint64_t *serial_out)
{
    unsigned char keybuf[KEY_LEN];
    size_t path_len = strlen(path);
    struct index_entry e = *given;
    int rc = 0;

    if (path_len > UINT32_MAX)
        return ENAMETOOLONG;
    make_key(path, keybuf);
    pthread_mutex_lock(&ix->lock);
    rc = ix->broken;
    for (int tries = 0; rc == 0 && tries < PUT_TRIES; tries++) {
        MDB_val key = { KEY_LEN, keybuf };
        MDB_val val = { index_record_len(path_len, e.md), NULL };
        MDB_txn *txn;
        uint64_t serial = index_record_serial();
        rc = lmdbenv_txn_begin(ix->env, 0, &txn);
        if (rc != 0)
            break;
        if (expect != NULL)
            rc = keep_stored_fields(ix, txn, &key, path, *expect, &e);
        /* MDB_RESERVE: encode straight into the map, no second copy. */
        if (rc == 0)
            rc = mdb_put(txn, ix->dbi, &key, &val, MDB_RESERVE);
        if (rc == 0) {
            index_record_encode(val.mv_data, path, path_len, &e, serial);
            rc = mdb_txn_commit(txn);
            if (rc == 0 && serial_out != NULL)
                *serial_out = serial;
        } else {
            mdb_txn_abort(txn);
        }
        if (rc != MDB_MAP_FULL || !may_grow(ix))
            break;
        rc = lmdbenv_grow(ix->env);
        if (rc != 0) {
            /* MDB_MAP_FULL: at the largest size_t map; anything else: no map left. */
            if (rc != MDB_MAP_FULL)
                drop_env(ix, rc);
            break;
        }
    }
    rc = note(ix, rc);
    pthread_mutex_unlock(&ix->lock);
    return rc;
}

int mbindex_put(struct mbindex *ix, const char *path, const struct index_entry *e,
                uint64_t *serial)
{
    return write_record(ix, path, e, NULL, serial);
}

int mbindex_replace_cur(struct mbindex *ix, const char *path, uint64_t *serial,
                        const struct index_dirstamp *cur_dir, const struct maildir *md)
{
    /* encode_into only reads the list. */
    struct index_entry e = { .cur_dir = *cur_dir, .md = (struct maildir *)md };
    uint64_t expect = *serial;
    return write_record(ix, path, &e, &expect, serial);
}

void mbindex_set_recheck(struct mbindex *ix, int seconds)
{
    ix->recheck = seconds < 0 ? 0 : seconds;
}

int mbindex_recheck(const struct mbindex *ix)
{
    return ix->recheck;
}

uint64_t mbindex_boot(const struct mbindex *ix)
{
    return ix->boot;
}

int mbindex_del(struct mbindex *ix, const char *path)
{
    unsigned char keybuf[KEY_LEN];
    MDB_val key = { KEY_LEN, keybuf };
    MDB_txn *txn;

    make_key(path, keybuf);
    pthread_mutex_lock(&ix->lock);
    int rc = ix->broken;
    if (rc == 0)
        rc = lmdbenv_txn_begin(ix->env, 0, &txn);
    if (rc == 0) {
        rc = mdb_del(txn, ix->dbi, &key, NULL);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    rc = note(ix, rc);
    pthread_mutex_unlock(&ix->lock);
    return rc;
}
