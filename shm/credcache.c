/*
 * The credential cache's LMDB side: where the env lives, who may touch its
 * files, and short transactions (one per call, never across an epoll wait).
 */
#include "shm/credcache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/trusted_dir.h"
#include "shm/lmdb_env.h"

/* Room for the largest record: header, both parts and both strings. */
#define RECORD_MAX (64 + 2 * CREDCACHE_DK_LEN + CREDCACHE_USER_MAX + CREDCACHE_PATH_MAX)

struct credcache {
    MDB_env *env;
    MDB_dbi dbi;
    int writable;
    char dir[PATH_MAX];
    char error[128];
};

static int fail_mdb(struct credcache *cc, const char *what, int rc)
{
    if (cc != NULL)
        snprintf(cc->error, sizeof(cc->error), "%s: %s", what, mdb_strerror(rc));
    /* LMDB returns errno values for system errors and its own codes otherwise. */
    errno = rc > 0 ? rc : EIO;
    return -1;
}

const char *credcache_error(const struct credcache *cc)
{
    return cc->error;
}

static int cache_dir(const char *state_dir, char *out, size_t outlen)
{
    if (snprintf(out, outlen, "%s/%s", state_dir, CREDCACHE_DIR) >= (int)outlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int credcache_prepare_dir(const char *state_dir, uid_t owner, gid_t group)
{
    int shared = geteuid() == 0 && owner != 0;
    /* Shared: the helper writes, the mail group reads; setgid passes the group on. */
    mode_t mode = shared ? 02750 : 0700;

    /*
     * Only the directory: state_dir is root's alone, so the name is ours to
     * make and give away. Its files are the helper's, which sets their modes
     * (credcache_open); root never opens a name inside it.
     */
    int state_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (state_fd == -1)
        return -1;
    int rc = trusted_dir_give(state_fd, CREDCACHE_DIR, mode, owner, group);
    int saved = errno;
    close(state_fd);
    errno = saved;
    return rc;
}

/*
 * Whatever the umask: in a shared (setgid) directory the workers, the
 * group, read data.mdb and must write lock.mdb to take reader slots. By
 * descriptor, never following a symlink: see daemon/trusted_dir.h.
 */
static int fix_modes(const char *dir)
{
    struct stat st;
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd == -1)
        return -1;
    int shared = fstat(dir_fd, &st) == 0 && (st.st_mode & S_ISGID);
    int rc = file_set_mode_nofollow(dir_fd, "data.mdb", shared ? 0640 : 0600) == -1 ||
                     file_set_mode_nofollow(dir_fd, "lock.mdb", shared ? 0660 : 0600) == -1
                 ? -1
                 : 0;
    int saved = errno;
    close(dir_fd);
    errno = saved;
    return rc;
}

int credcache_open(const char *state_dir, int writable, struct credcache **out)
{
    struct credcache *cc = calloc(1, sizeof(*cc));
    MDB_txn *txn = NULL;
    int rc;

    if (cc == NULL)
        return -1;
    cc->writable = writable;
    if (cache_dir(state_dir, cc->dir, sizeof(cc->dir)) == -1)
        goto fail_errno;
    if (!writable) {
        /* Never create anything: until the helper made the env there is none to read. */
        char data[PATH_MAX + 16];
        snprintf(data, sizeof(data), "%s/data.mdb", cc->dir);
        if (access(data, R_OK) == -1)
            goto fail_errno;
        rc = mdb_env_create(&cc->env);
        if (rc == 0)
            rc = mdb_env_set_mapsize(cc->env, CREDCACHE_MAPSIZE);
        if (rc == 0)
            rc = mdb_env_set_maxreaders(cc->env, LMDBENV_MAX_READERS);
        if (rc == 0)
            rc = mdb_env_open(cc->env, cc->dir, MDB_NOTLS | MDB_RDONLY, 0);
        if (rc == 0)
            rc = lmdbenv_check_size(cc->env);
        if (rc != 0) {
            mdb_env_close(cc->env);
            cc->env = NULL;
        }
    } else {
        /*
         * NOMETASYNC: a crash may lose the last write, never the integrity,
         * and a lost cache entry is only one more backend lookup.
         */
        rc = lmdbenv_open(cc->dir, 0700, CREDCACHE_MAPSIZE, 0, MDB_NOMETASYNC, &cc->env);
    }
    if (rc != 0) {
        fail_mdb(cc, "open", rc);
        goto fail_errno;
    }
    if (writable && fix_modes(cc->dir) == -1) {
        snprintf(cc->error, sizeof(cc->error), "chmod: %s", strerror(errno));
        goto fail_errno;
    }
    rc = lmdbenv_txn_begin(cc->env, writable ? 0 : MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, NULL, 0, &cc->dbi);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn != NULL)
        mdb_txn_abort(txn);
    if (rc != 0) {
        fail_mdb(cc, "open database", rc);
        goto fail_errno;
    }
    *out = cc;
    return 0;

fail_errno:;
    int saved = errno;
    if (cc->env != NULL)
        mdb_env_close(cc->env);
    free(cc);
    errno = saved;
    return -1;
}

void credcache_close(struct credcache *cc)
{
    if (cc == NULL)
        return;
    mdb_env_close(cc->env);
    free(cc);
}

static int make_key(const char *name, MDB_val *key)
{
    size_t n = strlen(name);
    if (n == 0 || n >= CREDCACHE_KEY_MAX) {
        errno = EINVAL;
        return -1;
    }
    key->mv_data = (void *)name;
    key->mv_size = n;
    return 0;
}

int credcache_get(struct credcache *cc, const char *name, struct credcache_record *rec,
                  int *found)
{
    MDB_txn *txn;
    MDB_val key, val;

    *found = 0;
    if (make_key(name, &key) == -1)
        return -1;
    int rc = lmdbenv_txn_begin(cc->env, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail_mdb(cc, "read txn", rc);
    rc = mdb_get(txn, cc->dbi, &key, &val);
    /* The value points into the map: decode (copy) before the txn ends. */
    if (rc == 0 && credcache_decode(val.mv_data, val.mv_size, rec) == 0)
        *found = 1;
    mdb_txn_abort(txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return fail_mdb(cc, "get", rc);
    return 0;
}

/* Run one write txn; MDB_MAP_FULL grows the map and tries once more. */
static int write_txn(struct credcache *cc, int (*body)(struct credcache *cc, MDB_txn *txn,
                                                       void *arg),
                     void *arg)
{
    if (!cc->writable) {
        errno = EROFS;
        return -1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        MDB_txn *txn;
        int rc = lmdbenv_txn_begin(cc->env, 0, &txn);
        if (rc != 0)
            return fail_mdb(cc, "write txn", rc);
        rc = body(cc, txn, arg);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (rc == MDB_MAP_FULL && attempt == 0 && lmdbenv_grow(cc->env) == 0)
            continue;
        if (rc != 0)
            return fail_mdb(cc, "write", rc);
        return 0;
    }
    return fail_mdb(cc, "write", MDB_MAP_FULL);
}

struct put_arg {
    MDB_val key;
    MDB_val val;
};

static int put_body(struct credcache *cc, MDB_txn *txn, void *arg)
{
    struct put_arg *a = arg;
    return mdb_put(txn, cc->dbi, &a->key, &a->val, 0);
}

int credcache_put(struct credcache *cc, const char *name, const struct credcache_record *rec)
{
    unsigned char data[RECORD_MAX];
    struct put_arg a;

    if (make_key(name, &a.key) == -1)
        return -1;
    long n = credcache_encode(rec, data, sizeof(data));
    if (n < 0)
        return -1;
    a.val.mv_data = data;
    a.val.mv_size = (size_t)n;
    int rc = write_txn(cc, put_body, &a);
    explicit_bzero(data, sizeof(data));
    return rc;
}

struct flush_arg {
    const char *name;
    size_t removed;
};

static int flush_body(struct credcache *cc, MDB_txn *txn, void *arg)
{
    struct flush_arg *a = arg;
    MDB_stat st;
    int rc;

    a->removed = 0;
    if (a->name == NULL) {
        rc = mdb_stat(txn, cc->dbi, &st);
        if (rc == 0)
            rc = mdb_drop(txn, cc->dbi, 0);
        if (rc == 0)
            a->removed = st.ms_entries;
        return rc;
    }
    MDB_val key;
    if (make_key(a->name, &key) == -1)
        return EINVAL;
    rc = mdb_del(txn, cc->dbi, &key, NULL);
    if (rc == 0)
        a->removed = 1;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int credcache_flush(struct credcache *cc, const char *name, size_t *removed)
{
    struct flush_arg a = { name, 0 };
    int rc = write_txn(cc, flush_body, &a);
    *removed = rc == 0 ? a.removed : 0;
    return rc;
}

/* What a walk over every record does with one. */
enum walk_action { WALK_KEEP, WALK_REWRITE, WALK_DELETE };

struct walk_arg {
    enum walk_action (*visit)(struct credcache_record *rec, void *arg);
    void *arg;
    size_t deleted;
};

/* Visit every record in one write txn; one that does not decode is deleted. */
static int walk_body(struct credcache *cc, MDB_txn *txn, void *arg)
{
    struct walk_arg *w = arg;
    MDB_cursor *cur;
    MDB_val key, val;
    unsigned char data[RECORD_MAX];

    w->deleted = 0;
    int rc = mdb_cursor_open(txn, cc->dbi, &cur);
    if (rc != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct credcache_record rec;
        enum walk_action act = credcache_decode(val.mv_data, val.mv_size, &rec) == -1
                                   ? WALK_DELETE
                                   : w->visit(&rec, w->arg);
        if (act == WALK_REWRITE) {
            long n = credcache_encode(&rec, data, sizeof(data));
            if (n < 0) {
                act = WALK_DELETE;
            } else {
                MDB_val nval = { (size_t)n, data };
                rc = mdb_cursor_put(cur, &key, &nval, MDB_CURRENT);
            }
        }
        explicit_bzero(&rec, sizeof(rec));
        if (act == WALK_DELETE) {
            rc = mdb_cursor_del(cur, 0);
            w->deleted += rc == 0;
        }
        if (rc != 0)
            break;
    }
    explicit_bzero(data, sizeof(data));
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

struct sweep_arg {
    time_t now;
    const struct credcache_ttl *ttl;
};

static enum walk_action sweep_visit(struct credcache_record *rec, void *arg)
{
    struct sweep_arg *a = arg;
    long keep = a->ttl->stale > a->ttl->positive ? a->ttl->stale : a->ttl->positive;
    int64_t pos_age = (int64_t)a->now - rec->verified_at;
    int64_t neg_age = (int64_t)a->now - rec->failed_at;
    int pos_live = rec->has_positive && pos_age < keep && pos_age > -CREDCACHE_CLOCK_SLACK;
    int neg_live = rec->has_negative && neg_age < a->ttl->negative &&
                   neg_age > -CREDCACHE_CLOCK_SLACK;

    return pos_live || neg_live ? WALK_KEEP : WALK_DELETE;
}

int credcache_sweep(struct credcache *cc, time_t now, const struct credcache_ttl *ttl,
                    size_t *removed)
{
    struct sweep_arg a = { now, ttl };
    struct walk_arg w = { sweep_visit, &a, 0 };
    int dead;

    *removed = 0;
    /* Slots of workers that died inside a read txn would pin old pages forever. */
    (void)mdb_reader_check(cc->env, &dead);
    int rc = write_txn(cc, walk_body, &w);
    if (rc == 0)
        *removed = w.deleted;
    return rc;
}

struct forget_arg {
    const char *user;
    size_t forgotten;
};

static enum walk_action forget_visit(struct credcache_record *rec, void *arg)
{
    struct forget_arg *a = arg;

    if (!rec->has_positive || strcmp(rec->user, a->user) != 0)
        return WALK_KEEP;
    a->forgotten++;
    rec->has_positive = 0;
    rec->verified_at = 0;
    explicit_bzero(rec->dk, sizeof(rec->dk));
    explicit_bzero(rec->user, sizeof(rec->user));
    explicit_bzero(rec->maildir, sizeof(rec->maildir));
    /* A remembered failure is still worth keeping: it spares the backend. */
    return rec->has_negative ? WALK_REWRITE : WALK_DELETE;
}

int credcache_forget_user(struct credcache *cc, const char *user, size_t *forgotten)
{
    struct forget_arg a = { user, 0 };
    struct walk_arg w = { forget_visit, &a, 0 };

    *forgotten = 0;
    if (user[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    int rc = write_txn(cc, walk_body, &w);
    if (rc == 0)
        *forgotten = a.forgotten;
    return rc;
}
