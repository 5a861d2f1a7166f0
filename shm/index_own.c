#include "shm/index_own.h"

#include <errno.h>
#include <lmdb.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "shm/index_sync.h"

void index_own_start(struct index_own *o, const struct index_head *head)
{
    memset(o, 0, sizeof(*o));
    o->started = 1;
    o->serial = head->serial;
    o->stored = head->cur_dir;
    o->cur = head->cur_dir;
    /* A stale record (or none) vouches for nothing: cur/ is listed next time anyway. */
    o->trusted = head->serial != 0 && head->cur_dir.trust != INDEX_STALE;
}

void index_own_foreign(struct index_own *o)
{
    o->foreign = 1;
    o->trusted = 0;
}

void index_own_before(struct index_own *o, struct mbindex *ix, const char *root, int curfd,
                      int visible)
{
    struct stat st;
    if (!o->trusted)
        return;
    if (fstat(curfd, &st) == -1 || !index_same_dir(&o->cur, &st)) {
        index_own_foreign(o);
        return;
    }
    if (!visible || o->stored.trust == INDEX_STALE)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (index_stamp_settled(&o->stored, &now))
        return;
    struct index_dirstamp stale = o->stored;
    stale.trust = INDEX_STALE;
    struct maildir marker = { 0 };
    if (ix == NULL || mbindex_replace_cur(ix, root, &o->serial, &stale, &marker) != 0) {
        /* Not stored stale: the record might hide this change. Nothing more is trusted. */
        o->trusted = 0;
        return;
    }
    o->stored = stale;
    o->marker = 1;
}

void index_own_after(struct index_own *o, struct mbindex *ix, int curfd)
{
    struct stat st;
    if (!o->trusted)
        return;
    if (fstat(curfd, &st) == -1) {
        o->trusted = 0;
        return;
    }
    if (index_same_dir(&o->cur, &st))
        return; /* nothing changed (the flag was there already) */
    /* The oldest own change not confirmed by a listing: the record's, or this one. */
    int64_t since = o->cur.trust == INDEX_OURS ? o->cur.own_since : (int64_t)time(NULL);
    index_own_stamp(&o->cur, &st, since, ix != NULL ? mbindex_boot(ix) : 0);
    o->changes++;
    if (o->cur.trust != INDEX_OURS)
        o->trusted = 0; /* whole-second mtimes, or no boot id: list next time */
}

int index_own_record(struct index_own *o, struct mbindex *ix, const char *root,
                     const struct maildir *md, int skip_deleted)
{
    if (!o->started || ix == NULL || md == NULL || o->serial == 0)
        return 0;
    if (o->changes == 0 && !o->foreign && !o->marker)
        return 0;
    /* Without trust the record must not match cur/ as it is now. */
    struct index_dirstamp stamp = o->trusted ? o->cur : o->stored;
    if (!o->trusted) {
        if (o->stored.trust == INDEX_STALE && !o->marker)
            return 0; /* already stale, with the sizes it knows */
        stamp.trust = INDEX_STALE;
    }
    struct maildir *kept = NULL;
    if (skip_deleted) {
        kept = maildir_copy(md, 1);
        if (kept == NULL)
            return errno;
        md = kept;
    }
    int rc = mbindex_replace_cur(ix, root, &o->serial, &stamp, md);
    maildir_free(kept);
    /* Replaced meanwhile (a tool, or a record dropped for a wrong size): theirs stands. */
    if (rc == ESTALE || rc == MDB_NOTFOUND)
        rc = 0;
    if (rc == 0)
        o->started = 0;
    return rc;
}
