/*
 * A login's view of its maildir, through the index (shm/index.h).
 *
 * The rules, per directory (new/ and cur/ each have a stamp: mtime with
 * nanoseconds, inode, and how far it vouches for the recorded content):
 *  - verified: the directory was listed at least 1 s after its mtime, so
 *    any later change had to give it another mtime: a change within the
 *    same second (or clock tick) as the read is the race this excludes
 *    (Dovecot's MAILDIR_SYNC_SECS). Clocks of NFS clients and server must
 *    agree within a second.
 *  - ours (cur/ only): the record is a listing plus fastpop's own changes
 *    since (new/ moved in at login, RETR's Seen renames, QUIT's unlinks:
 *    shm/index_own.h), and the stamp is cur/ just after the last of them.
 *    Each own change is bracketed: cur/ is stat'ed just before it (it must
 *    still match the stamp, else another program changed cur/ and the
 *    record goes stale) and just after it (the new stamp). What this cannot
 *    see is another program's change to cur/ between those two stats, or
 *    after the second one within the same mtime tick (a few ms; none on
 *    Linux 6.13+ ext4/xfs/btrfs/tmpfs, whose multigrain timestamps give a
 *    change after a stat a new mtime): a stamp of our own changes is
 *    trusted only until index_recheck seconds after the oldest of them
 *    (mbindex_set_recheck), then cur/ is listed again. Not trusted at all
 *    on a file system with whole-second mtimes (nanoseconds 0), after a
 *    reboot (the index is not fsynced: it may have lost what the maildir
 *    kept), or when a file vanished from new/ under our moves.
 *  - clean: the stamp matches the directory and is verified, or ours and
 *    within index_recheck. Both clean: the index answers alone. The login
 *    costs one stat of new/ and one of cur/, one LMDB read, no getdents64,
 *    no per-message syscall (an empty mailbox is the same path).
 *  - otherwise each changed directory is read once: new/ is moved to cur/
 *    (the new files sized once: a ,W= hint or one read of the file); when
 *    cur/ is clean the moved files are added to the recorded list and cur/
 *    is not listed, else cur/ is listed and messages the index knows (by
 *    unique part) keep their size with no syscall. Then one short write
 *    txn stores the result. new/ after our moves is read again at the next
 *    login (cheap: it holds only what arrived since), as a delivery in the
 *    same tick as our moves would leave its mtime as it is.
 *  - a record must never match a cur/ that holds an own change it lacks
 *    (a session that died before storing it): an own change that would
 *    change what clients see (moves in, unlinks) made less than a second
 *    after the stamp it starts from, whose mtime it may share, first
 *    stores the record stale.
 *  - tmp/ is cleaned (maildir_clean_tmp) only on a login that reads a
 *    directory anyway, at most once per INDEX_TMP_CLEAN_SECS, the time
 *    recorded in the index.
 *  - legacy UIDL files (maildir/legacy.h) are read on every login that
 *    reads a directory; a warm login trusts what the index recorded.
 *
 * Without an index (ix NULL, or any LMDB error) a login scans exactly like
 * maildir_scan() and the client sees the same list.
 */
#ifndef FASTPOP_SHM_INDEX_SYNC_H
#define FASTPOP_SHM_INDEX_SYNC_H

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "maildir/scan.h"
#include "shm/index.h"

/* Abandoned deliveries are old after 36 h; looking hourly is plenty. */
enum { INDEX_TMP_CLEAN_SECS = 60 * 60 };

struct index_sync_result {
    int      warm;        /* answered from the index alone */
    int      read_new;    /* new/ was read */
    int      read_cur;    /* cur/ was read */
    unsigned moved;       /* files moved from new/ to cur/ */
    int      written;     /* the record was stored */
    int      index_error; /* an LMDB/errno code the index gave (0: none) */
    unsigned unreadable;  /* files not served (maildir/scan.h), counted */
    unsigned duplicates;  /* only when a directory was read */
    unsigned stuck_in_new;
};

/*
 * Sync the maildir at root (created with cur/ new/ tmp/ if missing) and
 * put its messages, in POP3 order with their UIDLs, in *md. ix may be NULL.
 * now is time(NULL), for tmp/ cleanup.
 * Returns 0, or -1 with errno for a maildir failure (as maildir_scan());
 * index failures only set res->index_error and fall back to a scan.
 */
int index_sync(struct mbindex *ix, const char *root, time_t now, struct maildir **md,
               struct index_sync_result *res);

/*
 * index_sync for a session that may never need its messages (a poller's
 * USER, PASS, STAT, QUIT): when the index answers alone (res->warm) only
 * the record's head is read, whatever the mailbox holds, and *md is NULL;
 * head->count and head->total_size answer STAT. Otherwise (and on a warm
 * login whose head could not be used) exactly index_sync: *md is the list
 * and head its count and size.
 */
int index_sync_lazy(struct mbindex *ix, const char *root, time_t now, struct index_head *head,
                    struct maildir **md, struct index_sync_result *res);

/*
 * index_sync_lazy's warm case alone, which reads no directory: 1 with
 * *head when the index answers the login by itself, else 0 (a directory
 * must be read: no index, no record, a stamp that does not match, any
 * error). Cheap whatever the mailbox holds, so a worker runs it inline
 * and sends only the other logins to its loader thread (worker/mailbox.c).
 */
int index_sync_warm(struct mbindex *ix, const char *root, struct index_head *head);

/*
 * The messages of the record index_sync_lazy's warm head came from, for
 * the first command that needs them. ESTALE when the record is no longer
 * that one (written again or removed since: not while the session holds
 * the mailbox lock, unless another host or tool writes the index), else
 * mbindex_get's codes. The caller must not serve a different list then.
 */
int index_load(struct mbindex *ix, const char *root, const struct index_head *head,
               struct maildir **md);

/* The rules above, exposed for tests and shm/index_own.c. */
int  index_same_dir(const struct index_dirstamp *stamp, const struct stat *st);
int  index_dir_clean(const struct index_dirstamp *stamp, const struct stat *st);
/* cur/: clean as verified, or as ours while now - own_since < recheck in this boot. */
int  index_cur_trusted(const struct index_dirstamp *stamp, const struct stat *st, time_t now,
                       int recheck, uint64_t boot);
/* Verified if read_at is 1 s past the mtime and !changed_by_us, else stale. */
void index_dir_stamp(struct index_dirstamp *stamp, const struct stat *st,
                     const struct timespec *read_at, int changed_by_us);
/* cur/ right after our own change: ours (since, boot), or stale (whole-second mtime, boot 0). */
void index_own_stamp(struct index_dirstamp *stamp, const struct stat *st, int64_t since,
                     uint64_t boot);
/* 1 when the stamp's mtime is at least 1 s before now: no change after now can share it. */
int  index_stamp_settled(const struct index_dirstamp *stamp, const struct timespec *now);

#endif
