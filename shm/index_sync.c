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
#include "maildir/xuidl.h"
#include "shm/stats.h"

int index_same_dir(const struct index_dirstamp *stamp, const struct stat *st)
{
    return stamp->sec == (int64_t)st->st_mtim.tv_sec &&
           stamp->nsec == (int64_t)st->st_mtim.tv_nsec && stamp->ino == (uint64_t)st->st_ino;
}

int index_dir_clean(const struct index_dirstamp *stamp, const struct stat *st)
{
    return stamp->trust == INDEX_VERIFIED && index_same_dir(stamp, st);
}

int index_cur_trusted(const struct index_dirstamp *stamp, const struct stat *st, time_t now,
                      int recheck, uint64_t boot)
{
    if (!index_same_dir(stamp, st))
        return 0;
    if (stamp->trust == INDEX_VERIFIED)
        return 1;
    /* A clock that went back makes the age unknown: list. */
    return stamp->trust == INDEX_OURS && boot != 0 && stamp->own_boot == boot &&
           (int64_t)now >= stamp->own_since && (int64_t)now - stamp->own_since < recheck;
}

/* At least one whole second between the mtime of stamp and at. */
static int second_passed(int64_t sec, int64_t nsec, const struct timespec *at)
{
    int64_t age_sec = (int64_t)at->tv_sec - sec;
    return age_sec > 1 || (age_sec == 1 && (int64_t)at->tv_nsec >= nsec);
}

void index_dir_stamp(struct index_dirstamp *stamp, const struct stat *st,
                     const struct timespec *read_at, int changed_by_us)
{
    memset(stamp, 0, sizeof(*stamp));
    stamp->sec = (int64_t)st->st_mtim.tv_sec;
    stamp->nsec = (int64_t)st->st_mtim.tv_nsec;
    stamp->ino = (uint64_t)st->st_ino;
    stamp->trust = !changed_by_us && second_passed(stamp->sec, stamp->nsec, read_at)
                   ? INDEX_VERIFIED : INDEX_STALE;
}

void index_own_stamp(struct index_dirstamp *stamp, const struct stat *st, int64_t since,
                     uint64_t boot)
{
    memset(stamp, 0, sizeof(*stamp));
    stamp->sec = (int64_t)st->st_mtim.tv_sec;
    stamp->nsec = (int64_t)st->st_mtim.tv_nsec;
    stamp->ino = (uint64_t)st->st_ino;
    stamp->own_since = since;
    stamp->own_boot = boot;
    /*
     * Whole seconds: a file system (or NFS server) that keeps no finer
     * mtime, where "the same tick" lasts a second; its own changes are not
     * taken on trust. Nor without knowing the boot.
     */
    stamp->trust = stamp->nsec != 0 && boot != 0 ? INDEX_OURS : INDEX_STALE;
}

int index_stamp_settled(const struct index_dirstamp *stamp, const struct timespec *now)
{
    return second_passed(stamp->sec, stamp->nsec, now);
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

/* The index of the recorded message with this unique name, or -1. */
static long find_known(const struct known *k, const char *name, size_t unique_len)
{
    if (k->slots == NULL)
        return -1;
    for (size_t s = hash64(name, unique_len, HASH_SEED_A) & k->mask; k->slots[s] != 0;
         s = (s + 1) & k->mask) {
        size_t i = k->slots[s] - 1;
        const struct maildir_msg *m = &k->md->msgs[i];
        if (m->unique_len == unique_len &&
            memcmp(maildir_msg_name(k->md, i), name, unique_len) == 0)
            return (long)i;
    }
    return -1;
}

static int known_size(void *arg, const char *name, size_t unique_len, uint64_t *size)
{
    const struct known *k = arg;
    long i = find_known(k, name, unique_len);
    if (i < 0)
        return -1;
    *size = k->md->msgs[i].size;
    return 0;
}

/* The UIDL the index recorded for a message, when X-UIDL headers chose it (maildir/xuidl.h). */
static int known_uidl(void *arg, const char *name, size_t unique_len, const char **uidl,
                      size_t *len)
{
    const struct known *k = arg;
    long i = find_known(k, name, unique_len);
    if (i < 0)
        return 0;
    *uidl = maildir_msg_uidl(k->md, (size_t)i, len);
    return 1;
}

/* ---- the sync -------------------------------------------------------- */

struct sync {
    struct mbindex *ix;
    const char *root;
    int rootfd, curfd;
    struct stat new_st, cur_st;   /* before reading */
    struct timespec read_at;      /* when those stats were taken */
    time_t now;
    struct index_entry old;       /* what the index had (old.md may be NULL) */
    int new_ok, cur_ok;
    uint64_t boot;                /* mbindex_boot, or 0 without an index */
    struct index_dirstamp cur_stamp; /* cur/ as the new record knows it */
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

/*
 * The index's list, for a login that does not list cur/. UIDLs all our own
 * (no legacy file then) are copied as they are; legacy ones are derived
 * again from the names, since legacy_apply() must find the list as a scan
 * would make it. (Appending to the decoded list itself instead of copying
 * it measured twice as slow on 100,000 messages: growing it reallocates.)
 */
static int copy_old(const struct sync *s, struct maildir *list)
{
    const struct maildir *old = s->old.md;
    if (s->old.legacy == LEGACY_NONE && list->count == 0) {
        struct maildir *copy = maildir_copy(old, 0);
        if (copy == NULL)
            return -1;
        struct maildir empty = *list;
        *list = *copy;
        list->stuck_in_new = empty.stuck_in_new;
        *copy = empty;
        maildir_free(copy);
        return 0;
    }
    for (size_t i = 0; i < old->count; i++) {
        if (maildir_add(list, maildir_msg_name(old, i), old->msgs[i].size) == -1)
            return -1;
    }
    return 0;
}

static int same_stat(const struct stat *a, const struct stat *b)
{
    return a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ino == b->st_ino;
}

/*
 * new/ moved into a cur/ the index knows (and that has not changed since):
 * the index's list plus what we moved, and cur/ stamped as our own change
 * (index_sync.h). 1 when cur/ must be listed after all: a file vanished
 * from new/ under us (another program moves mail too, maybe into cur/).
 * 0 done, -1 error.
 */
static int absorb_moves(struct sync *s, struct maildir *list, unsigned *moved)
{
    struct stat after;
    unsigned left, vanished;
    struct maildir *added = maildir_new();

    if (added == NULL)
        return -1;
    if (maildir_move_new(s->rootfd, s->curfd, added, moved, &left, &vanished) == -1 ||
        fstat(s->curfd, &after) == -1) {
        maildir_free(added);
        return -1;
    }
    list->stuck_in_new = left;
    int rc = vanished > 0 ? 1 : copy_old(s, list);
    for (size_t i = 0; rc == 0 && i < added->count; i++)
        rc = maildir_add(list, maildir_msg_name(added, i), added->msgs[i].size);
    maildir_free(added);
    if (rc != 0)
        return rc;
    if (*moved == 0) {
        s->cur_stamp = s->old.cur_dir;
    } else {
        const struct index_dirstamp *old = &s->old.cur_dir;
        index_own_stamp(&s->cur_stamp, &after,
                        old->trust == INDEX_OURS ? old->own_since : (int64_t)s->now, s->boot);
    }
    return 0;
}

/*
 * cur/ listed, messages the index knows keep their size. After our own
 * moves (moved > 0) its mtime is theirs: unchanged across the listing, the
 * listing holds everything up to it, a stamp like an own change's.
 */
static int list_cur(struct sync *s, struct maildir *list, unsigned moved,
                    struct index_sync_result *res)
{
    struct stat before, after;
    struct timespec at;

    res->read_cur = 1;
    stats_add(SV_DIR_READS + STATS_DIR_CUR, 1);
    if (fstat(s->curfd, &before) == -1)
        return -1;
    clock_gettime(CLOCK_REALTIME, &at);
    struct known k;
    if (known_init(&k, s->old.md) == -1)
        return -1;
    int rc = maildir_list_dir(s->curfd, list, known_size, &k);
    int saved = errno;
    free(k.slots);
    errno = saved;
    if (rc == -1 || fstat(s->curfd, &after) == -1)
        return -1;
    if (moved == 0) {
        index_dir_stamp(&s->cur_stamp, &before, &at, 0);
    } else if (same_stat(&before, &after)) {
        index_own_stamp(&s->cur_stamp, &before, (int64_t)s->now, s->boot);
    } else {
        index_dir_stamp(&s->cur_stamp, &before, &at, 1);
    }
    return 0;
}

/*
 * Our moves leave cur/'s mtime as it is when they fall in the tick of its
 * stamp (the stamp is less than a second old, our own change's): should
 * this login die before its record is stored, the old record would still
 * match cur/ and hide what was moved. So it is stored stale first, as a
 * marker without messages (shm/index_own.h: the list of a big mailbox is
 * megabytes, and this login stores it again anyway).
 */
static int stale_first(struct sync *s)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (index_stamp_settled(&s->old.cur_dir, &now))
        return 0;
    struct maildir marker = { 0 };
    struct index_entry e = s->old;
    e.cur_dir.trust = INDEX_STALE;
    e.md = &marker;
    return mbindex_put(s->ix, s->root, &e, NULL) == 0 ? 0 : -1;
}

/* The messages of cur/ now: listed, or the index's plus what we moved. */
static int build_list(struct sync *s, struct maildir *list, unsigned *moved,
                      struct index_sync_result *res)
{
    *moved = 0;
    if (!s->new_ok) {
        res->read_new = 1;
        stats_add(SV_DIR_READS + STATS_DIR_NEW, 1);
        /* cur/ must still be what the index knows as we move into it. */
        struct stat now_st;
        if (s->cur_ok && fstat(s->curfd, &now_st) == -1)
            return -1;
        if (s->cur_ok && index_same_dir(&s->old.cur_dir, &now_st) && stale_first(s) == 0) {
            int rc = absorb_moves(s, list, moved);
            if (rc != 1)
                return rc;
            /* Whatever was moved is in cur/ now: the listing finds it. */
        } else {
            unsigned left;
            if (maildir_move_new(s->rootfd, s->curfd, NULL, moved, &left, NULL) == -1)
                return -1;
            list->stuck_in_new = left;
        }
    }
    return list_cur(s, list, *moved, res);
}

/* A login that reads: list, legacy UIDLs, stamps, then one write. */
static int sync_read(struct sync *s, struct mbindex *ix, struct maildir **mdp,
                     struct index_head *head, struct index_sync_result *res)
{
    struct index_entry e = { 0 };
    struct legacy_list *lg = NULL;
    unsigned moved;
    time_t now = s->now;

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
    if (legacy_x_uidl_header()) {
        /* Only a record made with X-UIDL headers read vouches for what they hold. */
        struct known k;
        const struct maildir *old = s->old.legacy & LEGACY_XUIDL_FLAG ? s->old.md : NULL;
        if (known_init(&k, old) == -1)
            goto fail;
        int rc = xuidl_apply(s->curfd, lg, e.md, known_uidl, &k);
        free(k.slots);
        if (rc == -1)
            goto fail;
        e.legacy |= LEGACY_XUIDL_FLAG;
    }
    legacy_free(lg);
    lg = NULL;
    maildir_trim(e.md);

    /* Stamps: see index_sync.h. new/ after our moves is read again. */
    struct stat after;
    if (s->new_ok)
        e.new_dir = s->old.new_dir;
    else if (moved > 0 && fstatat(s->rootfd, "new", &after, 0) == 0)
        index_dir_stamp(&e.new_dir, &after, &s->read_at, 1);
    else
        index_dir_stamp(&e.new_dir, &s->new_st, &s->read_at, moved > 0);
    e.cur_dir = s->cur_stamp;

    /*
     * Sizes are remembered by unique part (known_size), which two files
     * with one unique part break: once the served one is gone the other
     * would inherit its size. Such a mailbox is not indexed until it has
     * none; every login reads its sizes from the files.
     */
    if (ix != NULL && e.md->duplicates > 0) {
        mbindex_del(ix, s->root);
    } else if (ix != NULL) {
        int rc = mbindex_put(ix, s->root, &e, &e.serial);
        if (rc == 0)
            res->written = 1;
        else
            res->index_error = rc;
    }
    /* The session's own changes start from this record (serial 0: none written). */
    head->new_dir = e.new_dir;
    head->cur_dir = e.cur_dir;
    head->tmp_cleaned = e.tmp_cleaned;
    head->legacy = e.legacy;
    head->count = e.md->count;
    head->total_size = e.md->total_size;
    head->serial = res->written ? e.serial : 0;
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
                        const struct stat *cur_st, time_t now, struct index_head *head)
{
    return mbindex_get_head(ix, root, head) == 0 && index_dir_clean(&head->new_dir, new_st) &&
           index_cur_trusted(&head->cur_dir, cur_st, now, mbindex_recheck(ix),
                             mbindex_boot(ix));
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
    struct sync s = { .ix = ix, .root = root, .rootfd = -1, .curfd = -1, .now = now,
                      .boot = ix != NULL ? mbindex_boot(ix) : 0 };
    struct index_head h;
    int recheck = ix != NULL ? mbindex_recheck(ix) : 0;

    memset(res, 0, sizeof(*res));
    *mdp = NULL;
    clock_gettime(CLOCK_REALTIME, &s.read_at);
    int have_dirs = stat_dirs(root, &s.new_st, &s.cur_st) == 0;
    if (!have_dirs && errno != ENOENT)
        return -1;
    if (ix != NULL && have_dirs && lazy && head_answers(ix, root, &s.new_st, &s.cur_st, now, &h)) {
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
            s.cur_ok = index_cur_trusted(&s.old.cur_dir, &s.cur_st, now, recheck, s.boot);
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
        rc = sync_read(&s, ix, mdp, head, res);
    maildir_free(s.old.md);
    close_keep_errno(s.curfd);
    close_keep_errno(s.rootfd);
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
           head_answers(ix, root, &new_st, &cur_st, time(NULL), head);
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
