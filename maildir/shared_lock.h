/*
 * A mailbox lock that hosts sharing the maildirs (over NFS) all see: the
 * file `fastpop.lock` in the maildir's root, made by link(2) from a file of
 * the holder's own, which is atomic on NFS too (a lost reply is caught by
 * the link count, as in the classic NFS-safe dotlock).
 *
 * The file says who holds it:  "fastpop-lock 1 host=H pid=P token=T\n"
 * (H follows config_host_name_valid()).
 * Its holder touches it every heartbeat (a third of the stale time); a lock
 * is stale when
 *   - its host is this host and its pid is gone (a crash here: at once), or
 *   - it was not touched for `stale` seconds by the file server's clock: the
 *     age is the mtime of a file the contender has just created in the same
 *     directory minus the lock's mtime, so host clocks need not agree.
 * A stale lock is taken over by renaming it aside (only one contender can)
 * and checking that what was renamed is the file judged stale.
 *
 * A holder that finds its lock gone or replaced (it hung longer than the
 * stale time and someone took over) must stop using the mailbox and apply
 * no deletion: shared_lock_held() says so before UPDATE.
 *
 * Caveat: NFS clients cache attributes; the lock is read through open(),
 * which revalidates them (close-to-open consistency). Pick `stale` well
 * above the longest pause a holder may take (a stopped VM, a hung disk).
 */
#ifndef FASTPOP_MAILDIR_SHARED_LOCK_H
#define FASTPOP_MAILDIR_SHARED_LOCK_H

#include <stdint.h>
#include <sys/types.h>

#define SHARED_LOCK_NAME "fastpop.lock"

struct shared_lock {
    dev_t dev;
    ino_t ino;               /* the lock file we made, while held */
    char token[17];          /* 16 hex digits, random */
    int held;
};

/*
 * Take the lock of the maildir root as (host, pid). Returns 0 with lk held;
 * -1 with errno EBUSY (a live holder; *holder, if not NULL, gets its
 * "host pid" for the log, at most 96 bytes with the NUL) or another errno
 * from the file system.
 */
int shared_lock_acquire(const char *root, const char *host, pid_t pid, int stale_seconds,
                        struct shared_lock *lk, char *holder, size_t holder_len);

/*
 * The heartbeat: touch the lock. 0, or -1 with errno ENOLCK when the lock is
 * no longer ours (then lk->held is 0), or another errno (a passing trouble
 * of the file system: try again at the next beat).
 */
int shared_lock_refresh(const char *root, struct shared_lock *lk);

/* 1 if the lock file is still the one lk made, else 0 (lk->held becomes 0). */
int shared_lock_held(const char *root, struct shared_lock *lk);

/* Remove the lock if it is still ours. Nothing to report: best effort. */
void shared_lock_release(const char *root, struct shared_lock *lk);

#endif
