/*
 * A login's view of its maildir, through the index (shm/index.h).
 *
 * The rules, per directory (new/ and cur/ each have a stamp):
 *  - clean: its mtime (seconds and nanoseconds) and inode equal the
 *    stamp, and the stamp is verified. A verified stamp is one whose mtime
 *    was at least 1 s older than the moment the directory was read, so any
 *    later change had to give it another mtime: a change within the same
 *    second (or clock tick) as the read is the race this excludes
 *    (Dovecot's MAILDIR_SYNC_SECS). Clocks of NFS clients and server must
 *    agree within a second.
 *  - both clean: the index answers alone. The login costs one stat of
 *    new/ and one of cur/, one LMDB read, no getdents64, no per-message
 *    syscall (an empty mailbox is the same path, with a tiny record).
 *  - otherwise each changed directory is read once: new/ is moved to cur/
 *    (the new files sized once: a ,W= hint or one read of the file); cur/
 *    is listed, and messages the index knows (by unique part) keep their
 *    size with no syscall. Then one short write txn stores the result.
 *  - our own changes: a directory this login changed (new/ -> cur/ moves)
 *    is stored unverified, because a change by someone else in the same
 *    clock tick as ours would leave the same mtime. Renames and unlinks of
 *    a session (RETR's Seen flag, QUIT) are not written back for the same
 *    reason: cur/'s mtime moves, and the next login lists cur/ once (no
 *    per-message syscall, sizes reused), then is warm again.
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

/* The rules above, exposed for tests. */
int  index_dir_clean(const struct index_dirstamp *stamp, const struct stat *st);
void index_dir_stamp(struct index_dirstamp *stamp, const struct stat *st,
                     const struct timespec *read_at, int changed_by_us);

#endif
