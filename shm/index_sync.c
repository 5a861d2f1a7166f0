#include "shm/index_sync.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/runtime/hash.h"
#include "maildir/legacy.h"

int index_dir_clean(const struct index_dirstamp *stamp, const struct stat *st)
{
    return stamp->verified && stamp->sec == (int64_t)st->st_mtim.tv_sec &&
           stamp->nsec == (int64_t)st->st_mtim.tv_nsec && stamp->ino == (uint64_t)st->st_ino;
}

void index_dir_stamp(struct index_dirstamp *stamp, const struct stat *st,
                     const struct timespec *read_at, int changed_by_us)
{
    int64_t sec = (int64_t)st->st_mtim.tv_sec;
    int64_t nsec = (int64_t)st->st_mtim.tv_nsec;
    int64_t age_sec = (int64_t)read_at->tv_sec - sec;

    memset(stamp, 0, sizeof(*stamp));
    stamp->sec = sec;
    stamp->nsec = nsec;
    stamp->ino = (uint64_t)st->st_ino;
    /* At least one whole second between the mtime and the read. */
    stamp->verified = !changed_by_us &&
                      (age_sec > 1 || (age_sec == 1 && (int64_t)read_at->tv_nsec >= nsec));
}

/* ---- sizes the index already knows, by unique part ------------------- */

struct known {
    const struct maildir *md;
    uint32_t *slots; /* message index + 1; 0 = empty */
    size_t mask;
};

static int known_init(struct known *k, const struct maildir *md)
{
    memset(k, 0, sizeof(*k));
    k->md = md;
    if (md == NULL || md->count == 0 || md->count >= UINT32_MAX / 2)
        return 0;
    size_t cap = 16;
    while (cap < md->count * 2)
        cap *= 2;
    k->slots = calloc(cap, sizeof(*k->slots));
    if (k->slots == NULL)
        return -1;
    k->mask = cap - 1;
    for (size_t i = 0; i < md->count; i++) {
        const struct maildir_msg *m = &md->msgs[i];
        size_t s = hash64(maildir_msg_name(md, i), m->unique_len, HASH_SEED_A) & k->mask;
        while (k->slots[s] != 0)
            s = (s + 1) & k->mask;
        k->slots[s] = (uint32_t)i + 1;
    }
    return 0;
}

static int known_size(void *arg, const char *name, size_t unique_len, uint64_t *size)
{
    const struct known *k = arg;
    if (k->slots == NULL)
        return -1;
    for (size_t s = hash64(name, unique_len, HASH_SEED_A) & k->mask; k->slots[s] != 0;
         s = (s + 1) & k->mask) {
        size_t i = k->slots[s] - 1;
        const struct maildir_msg *m = &k->md->msgs[i];
        if (m->unique_len == unique_len &&
            memcmp(maildir_msg_name(k->md, i), name, unique_len) == 0) {
            *size = m->size;
            return 0;
        }
    }
    return -1;
}

/* ---- the sync -------------------------------------------------------- */

struct sync {
    const char *root;
    int rootfd, curfd;
    struct stat new_st, cur_st;   /* before reading */
    struct timespec read_at;      /* when those stats were taken */
    struct index_entry old;       /* what the index had (old.md may be NULL) */
    int new_ok, cur_ok;
};

static void close_keep_errno(int fd)
{
    int saved = errno;
    if (fd >= 0)
        close(fd);
    errno = saved;
}

static int stat_dirs(const char *root, struct stat *new_st, struct stat *cur_st)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/new", root) >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (stat(path, new_st) == -1)
        return -1;
    memcpy(path + strlen(root), "/cur", 4);
    return stat(path, cur_st);
}

/* Open the root (creating the maildir on a first login) and cur/. */
static int open_dirs(struct sync *s, int have_dirs)
{
    if (!have_dirs && mkdir(s->root, 0700) == -1 && errno != EEXIST)
        return -1;
    s->rootfd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->rootfd == -1)
        return -1;
    if (!have_dirs) {
        if (maildir_make_dirs(s->rootfd) == -1 ||
            fstatat(s->rootfd, "new", &s->new_st, 0) == -1 ||
            fstatat(s->rootfd, "cur", &s->cur_st, 0) == -1)
            return -1;
    }
    s->curfd = openat(s->rootfd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return s->curfd == -1 ? -1 : 0;
}

/* The messages of cur/ now: listed, or the index's plus what we moved. */
static int build_list(struct sync *s, struct maildir *list, unsigned *moved,
                      struct index_sync_result *res)
{
    *moved = 0;
    if (!s->new_ok) {
        res->read_new = 1;
        unsigned left;
        if (maildir_move_new(s->rootfd, s->curfd, s->cur_ok ? list : NULL, moved, &left) == -1)
            return -1;
        list->stuck_in_new = left;
    }
    if (s->cur_ok) {
        const struct maildir *old = s->old.md;
        for (size_t i = 0; i < old->count; i++) {
            if (maildir_add(list, maildir_msg_name(old, i), old->msgs[i].size) == -1)
                return -1;
        }
        return 0;
    }
    res->read_cur = 1;
    struct known k;
    if (known_init(&k, s->old.md) == -1)
        return -1;
    int rc = maildir_list_dir(s->curfd, list, known_size, &k);
    int saved = errno;
    free(k.slots);
    errno = saved;
    return rc;
}

/* A login that reads: list, legacy UIDLs, stamps, then one write. */
static int sync_read(struct sync *s, struct mbindex *ix, time_t now, struct maildir **mdp,
                     struct index_sync_result *res)
{
    struct index_entry e = { 0 };
    struct legacy_list *lg = NULL;
    unsigned moved;

    e.tmp_cleaned = s->old.md ? s->old.tmp_cleaned : 0;
    if (s->old.md == NULL || now - e.tmp_cleaned >= INDEX_TMP_CLEAN_SECS ||
        now < e.tmp_cleaned) {
        maildir_clean_tmp(s->rootfd, now);
        e.tmp_cleaned = now;
    }
    e.md = maildir_new();
    if (e.md == NULL || build_list(s, e.md, &moved, res) == -1)
        goto fail;
    res->moved = moved;
    maildir_sort(e.md);
    res->unreadable = e.md->unreadable;
    res->duplicates = e.md->duplicates;
    res->stuck_in_new = e.md->stuck_in_new;
    /* Unreadable legacy UIDLs fail the login: serving others would re-download all. */
    if (legacy_load(s->rootfd, &lg) == -1 || legacy_apply(lg, e.md) == -1)
        goto fail;
    e.legacy = lg ? (uint32_t)lg->kind : LEGACY_NONE;
    legacy_free(lg);
    lg = NULL;
    maildir_trim(e.md);

    /* Stamps: see index_sync.h. A directory we changed is stamped unverified. */
    struct stat after;
    if (s->new_ok)
        e.new_dir = s->old.new_dir;
    else if (moved > 0 && fstatat(s->rootfd, "new", &after, 0) == 0)
        index_dir_stamp(&e.new_dir, &after, &s->read_at, 1);
    else
        index_dir_stamp(&e.new_dir, &s->new_st, &s->read_at, moved > 0);
    if (s->cur_ok && moved == 0)
        e.cur_dir = s->old.cur_dir;
    else if (moved > 0 && fstat(s->curfd, &after) == 0)
        index_dir_stamp(&e.cur_dir, &after, &s->read_at, 1);
    else
        index_dir_stamp(&e.cur_dir, &s->cur_st, &s->read_at, moved > 0);

    /*
     * Sizes are remembered by unique part (known_size), which two files
     * with one unique part break: once the served one is gone the other
     * would inherit its size. Such a mailbox is not indexed until it has
     * none; every login reads its sizes from the files.
     */
    if (ix != NULL && e.md->duplicates > 0) {
        mbindex_del(ix, s->root);
    } else if (ix != NULL) {
        int rc = mbindex_put(ix, s->root, &e);
        if (rc == 0)
            res->written = 1;
        else
            res->index_error = rc;
    }
    *mdp = e.md;
    return 0;

fail:
    legacy_free(lg);
    maildir_free(e.md);
    return -1;
}

static void head_of(const struct index_entry *e, struct index_head *head)
{
    head->new_dir = e->new_dir;
    head->cur_dir = e->cur_dir;
    head->tmp_cleaned = e->tmp_cleaned;
    head->legacy = e->legacy;
    head->count = e->md->count;
    head->total_size = e->md->total_size;
    head->serial = e->serial;
}

/* The index answers alone: the record's head and both directories agree. */
static int head_answers(struct mbindex *ix, const char *root, const struct stat *new_st,
                        const struct stat *cur_st, struct index_head *head)
{
    return mbindex_get_head(ix, root, head) == 0 && index_dir_clean(&head->new_dir, new_st) &&
           index_dir_clean(&head->cur_dir, cur_st);
}

/*
 * Both sync flavours. lazy: a warm login stops at the head (*mdp NULL).
 * Otherwise the whole record is read, as a changed directory needs the
 * sizes it knows, and head describes the list handed back.
 */
static int sync_any(struct mbindex *ix, const char *root, time_t now, int lazy,
                    struct index_head *head, struct maildir **mdp,
                    struct index_sync_result *res)
{
    struct sync s = { .root = root, .rootfd = -1, .curfd = -1 };
    struct index_head h;

    memset(res, 0, sizeof(*res));
    *mdp = NULL;
    clock_gettime(CLOCK_REALTIME, &s.read_at);
    int have_dirs = stat_dirs(root, &s.new_st, &s.cur_st) == 0;
    if (!have_dirs && errno != ENOENT)
        return -1;
    if (ix != NULL && have_dirs && lazy && head_answers(ix, root, &s.new_st, &s.cur_st, &h)) {
        res->warm = 1;
        *head = h;
        return 0;
    }
    /* Anything else is decided on the whole record, read below. */
    if (ix != NULL && have_dirs) {
        int rc = mbindex_get(ix, root, &s.old);
        if (rc != 0 && rc != MDB_NOTFOUND)
            res->index_error = rc;
        if (rc == 0) {
            s.new_ok = index_dir_clean(&s.old.new_dir, &s.new_st);
            s.cur_ok = index_dir_clean(&s.old.cur_dir, &s.cur_st);
        }
    }
    if (s.new_ok && s.cur_ok) {
        res->warm = 1;
        *mdp = s.old.md;
        head_of(&s.old, head);
        return 0;
    }
    int rc = open_dirs(&s, have_dirs);
    if (rc == 0)
        rc = sync_read(&s, ix, now, mdp, res);
    maildir_free(s.old.md);
    close_keep_errno(s.curfd);
    close_keep_errno(s.rootfd);
    if (rc == 0) {
        /* A list we built: its serial is unknown here, and nothing loads it again. */
        memset(head, 0, sizeof(*head));
        head->count = (*mdp)->count;
        head->total_size = (*mdp)->total_size;
    }
    return rc;
}

int index_sync(struct mbindex *ix, const char *root, time_t now, struct maildir **mdp,
               struct index_sync_result *res)
{
    struct index_head head;
    return sync_any(ix, root, now, 0, &head, mdp, res);
}

int index_sync_lazy(struct mbindex *ix, const char *root, time_t now, struct index_head *head,
                    struct maildir **mdp, struct index_sync_result *res)
{
    return sync_any(ix, root, now, 1, head, mdp, res);
}

int index_sync_warm(struct mbindex *ix, const char *root, struct index_head *head)
{
    struct stat new_st, cur_st;
    return ix != NULL && stat_dirs(root, &new_st, &cur_st) == 0 &&
           head_answers(ix, root, &new_st, &cur_st, head);
}

int index_load(struct mbindex *ix, const char *root, const struct index_head *head,
               struct maildir **mdp)
{
    struct index_entry e = { 0 };
    int rc = mbindex_get(ix, root, &e);
    if (rc == MDB_NOTFOUND)
        return ESTALE;
    if (rc != 0)
        return rc;
    /* The decode checked that the messages add up to the record's own count and size. */
    if (e.serial != head->serial || e.md->count != head->count ||
        e.md->total_size != head->total_size) {
        maildir_free(e.md);
        return ESTALE;
    }
    *mdp = e.md;
    return 0;
}
