/*
 * The credential cache's LMDB side: where the two envs live, who may touch
 * their files, and short transactions (one per call, never across an epoll
 * wait). Each env is one file plus its lock file (MDB_NOSUBDIR), so the
 * file names can carry the format.
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

#include "daemon/runtime/trusted_dir.h"
#include "shm/lmdb_env.h"

/* Room for the largest record: header, both parts (the positive one with its policy) and both strings. */
#define RECORD_MAX (80 + 2 * CREDCACHE_DK_LEN + CREDCACHE_USER_MAX + CREDCACHE_PATH_MAX)

struct credcache {
    MDB_env *env;
    MDB_dbi dbi;
    enum credcache_kind kind;
    int writable;
    char dir[PATH_MAX];     /* the directory holding the env's two files */
    char path[PATH_MAX];    /* the data file; the lock file is path + "-lock" */
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

/* Where kind's env lives: its directory and its data file. */
static int env_paths(const char *state_dir, enum credcache_kind kind, char *dir, size_t dirlen,
                     char *path, size_t pathlen)
{
    int n = kind == CREDCACHE_PRIVATE
                ? snprintf(dir, dirlen, "%s/%s/%s", state_dir, CREDCACHE_DIR,
                           CREDCACHE_PRIVATE_DIR)
                : snprintf(dir, dirlen, "%s/%s", state_dir, CREDCACHE_DIR);
    if (n < 0 || (size_t)n >= dirlen ||
        snprintf(path, pathlen, "%s/%s", dir,
                 kind == CREDCACHE_PRIVATE ? CREDCACHE_PRIVATE_FILE : CREDCACHE_SHARED_FILE) >=
            (int)pathlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int credcache_exists(const char *state_dir, enum credcache_kind kind)
{
    char dir[PATH_MAX], path[PATH_MAX];

    if (env_paths(state_dir, kind, dir, sizeof(dir), path, sizeof(path)) == -1)
        return -1;
    if (access(path, F_OK) == 0)
        return 1;
    return errno == ENOENT ? 0 : -1;
}

int credcache_remove_old_format(const char *state_dir, int *removed)
{
    static const char *const old_files[] = { "data.mdb", "lock.mdb" };
    char dir[PATH_MAX];

    *removed = 0;
    if (snprintf(dir, sizeof(dir), "%s/%s", state_dir, CREDCACHE_DIR) >= (int)sizeof(dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd == -1)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < sizeof(old_files) / sizeof(old_files[0]); i++) {
        if (unlinkat(dir_fd, old_files[i], 0) == 0)
            ++*removed;
        else if (errno != ENOENT)
            rc = -1;
    }
    int saved = errno;
    close(dir_fd);
    errno = saved;
    return rc;
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
 * Whatever the umask: in the shared (setgid) directory the workers, the
 * group, read the login list and must write its lock file to take reader
 * slots. The private env is the helper's alone (0600), even though private/
 * inherits the setgid bit. By descriptor, never following a symlink: see
 * daemon/runtime/trusted_dir.h.
 */
static int fix_modes(const struct credcache *cc)
{
    struct stat st;
    char lock[NAME_MAX + 1];
    const char *data = strrchr(cc->path, '/') + 1;

    snprintf(lock, sizeof(lock), "%s-lock", data);
    int dir_fd = open(cc->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd == -1)
        return -1;
    int shared = cc->kind == CREDCACHE_SHARED && fstat(dir_fd, &st) == 0 &&
                 (st.st_mode & S_ISGID);
    /* private/ must be ours and closed to everyone else (auth/private_dir.h made it so). */
    if (cc->kind == CREDCACHE_PRIVATE &&
        (fstat(dir_fd, &st) == -1 || st.st_uid != geteuid() || (st.st_mode & 077) != 0)) {
        close(dir_fd);
        errno = EPERM;
        return -1;
    }
    int rc = file_set_mode_nofollow(dir_fd, data, shared ? 0640 : 0600) == -1 ||
                     file_set_mode_nofollow(dir_fd, lock, shared ? 0660 : 0600) == -1
                 ? -1
                 : 0;
    int saved = errno;
    close(dir_fd);
    errno = saved;
    return rc;
}

int credcache_open(const char *state_dir, enum credcache_kind kind, int writable,
                   struct credcache **out)
{
    struct credcache *cc = calloc(1, sizeof(*cc));
    MDB_txn *txn = NULL;
    int rc;

    if (cc == NULL)
        return -1;
    cc->kind = kind;
    cc->writable = writable;
    if (env_paths(state_dir, kind, cc->dir, sizeof(cc->dir), cc->path, sizeof(cc->path)) == -1)
        goto fail_errno;
    /* Never create anything read-only: until the helper made the env there is none to read. */
    if (!writable && access(cc->path, R_OK) == -1)
        goto fail_errno;
    /*
     * Never create a directory either: authcache/ is the master's, private/
     * the helper's (auth/private_dir.h), each with its modes.
     * NOMETASYNC: a crash may lose the last write, never the integrity,
     * and a lost cache entry is only one more backend lookup.
     */
    rc = mdb_env_create(&cc->env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(cc->env, CREDCACHE_MAPSIZE);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(cc->env, LMDBENV_MAX_READERS);
    if (rc == 0)
        rc = mdb_env_open(cc->env, cc->path,
                          MDB_NOTLS | MDB_NOSUBDIR | (writable ? MDB_NOMETASYNC : MDB_RDONLY),
                          0600);
    /* A file cut short would fault the first reader: refused here, replaced by the master. */
    if (rc == 0)
        rc = lmdbenv_check_size(cc->env);
    if (rc != 0) {
        fail_mdb(cc, "open", rc);
        goto fail_errno;
    }
    if (writable && fix_modes(cc) == -1) {
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

/*
 * Decode one stored value as cc's kind of record into out (a struct
 * credcache_record or credcache_login): 0, or -1 if it does not decode.
 */
static int decode_value(const struct credcache *cc, const MDB_val *val, void *out)
{
    return cc->kind == CREDCACHE_PRIVATE ? credcache_decode(val->mv_data, val->mv_size, out)
                                         : credcache_login_decode(val->mv_data, val->mv_size,
                                                                  out);
}

static long encode_value(const struct credcache *cc, const void *in, unsigned char *out,
                         size_t outlen)
{
    return cc->kind == CREDCACHE_PRIVATE ? credcache_encode(in, out, outlen)
                                         : credcache_login_encode(in, out, outlen);
}

/* A get or put on the other kind's env is a programming error: EINVAL, never a misread. */
static int check_kind(const struct credcache *cc, enum credcache_kind kind)
{
    if (cc->kind != kind) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static int get_value(struct credcache *cc, const char *name, void *out, int *found)
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
    if (rc == 0 && decode_value(cc, &val, out) == 0)
        *found = 1;
    mdb_txn_abort(txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return fail_mdb(cc, "get", rc);
    return 0;
}

int credcache_get(struct credcache *cc, const char *name, struct credcache_record *rec,
                  int *found)
{
    *found = 0;
    return check_kind(cc, CREDCACHE_PRIVATE) == -1 ? -1 : get_value(cc, name, rec, found);
}

int credcache_get_login(struct credcache *cc, const char *name, struct credcache_login *login,
                        int *found)
{
    *found = 0;
    return check_kind(cc, CREDCACHE_SHARED) == -1 ? -1 : get_value(cc, name, login, found);
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

static int put_value(struct credcache *cc, const char *name, const void *in)
{
    unsigned char data[RECORD_MAX];
    struct put_arg a;

    if (make_key(name, &a.key) == -1)
        return -1;
    long n = encode_value(cc, in, data, sizeof(data));
    if (n < 0)
        return -1;
    a.val.mv_data = data;
    a.val.mv_size = (size_t)n;
    int rc = write_txn(cc, put_body, &a);
    explicit_bzero(data, sizeof(data));
    return rc;
}

int credcache_put(struct credcache *cc, const char *name, const struct credcache_record *rec)
{
    return check_kind(cc, CREDCACHE_PRIVATE) == -1 ? -1 : put_value(cc, name, rec);
}

int credcache_put_login(struct credcache *cc, const char *name,
                        const struct credcache_login *login)
{
    return check_kind(cc, CREDCACHE_SHARED) == -1 ? -1 : put_value(cc, name, login);
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

/* One decoded record of either kind, for the walks. */
union any_record {
    struct credcache_record rec;
    struct credcache_login login;
};

struct walk_arg {
    /* rec is cc's kind (rec->rec or rec->login); WALK_REWRITE stores it back changed. */
    enum walk_action (*visit)(const struct credcache *cc, union any_record *rec, void *arg);
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
        union any_record rec;
        enum walk_action act = decode_value(cc, &val, &rec) == -1 ? WALK_DELETE
                                                                   : w->visit(cc, &rec, w->arg);
        if (act == WALK_REWRITE) {
            long n = encode_value(cc, &rec, data, sizeof(data));
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

/* Live: younger than ttl and not dated beyond the clock slack into the future. */
static int younger(int64_t t, time_t now, long ttl)
{
    int64_t age = (int64_t)now - t;
    return age < ttl && age > -CREDCACHE_CLOCK_SLACK;
}

static enum walk_action sweep_visit(const struct credcache *cc, union any_record *any, void *arg)
{
    struct sweep_arg *a = arg;

    if (cc->kind == CREDCACHE_SHARED)
        return younger(any->login.verified_at, a->now, a->ttl->positive) ? WALK_KEEP
                                                                         : WALK_DELETE;
    const struct credcache_record *rec = &any->rec;
    long keep = a->ttl->stale > a->ttl->positive ? a->ttl->stale : a->ttl->positive;
    int pos_live = rec->has_positive && younger(rec->verified_at, a->now, keep);
    int neg_live = rec->has_negative && younger(rec->failed_at, a->now, a->ttl->negative);

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

static enum walk_action forget_visit(const struct credcache *cc, union any_record *any,
                                     void *arg)
{
    struct forget_arg *a = arg;

    if (cc->kind == CREDCACHE_SHARED) {
        if (strcmp(any->login.user, a->user) != 0)
            return WALK_KEEP;
        a->forgotten++;
        return WALK_DELETE;
    }
    struct credcache_record *rec = &any->rec;
    if (!rec->has_positive || strcmp(rec->user, a->user) != 0)
        return WALK_KEEP;
    a->forgotten++;
    rec->has_positive = 0;
    rec->verified_at = 0;
    rec->generation = 0;
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
