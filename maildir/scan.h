/*
 * Reading a maildir into a message list for one POP3 session: the picture
 * the index caches (maildir/ knows nothing of the index).
 *
 * maildir_scan() on the root (the directory holding cur/ new/ tmp/):
 *  1. creates cur/ new/ tmp/ (mode 0700) when missing;
 *  2. removes regular files in tmp/ whose mtime is more than 36 hours
 *     before now (maildir.html; a delivery never takes that long);
 *  3. renames every regular file new/X to cur/X:2, (X kept as is if it has
 *     a ':' or is too long for the suffix), without replacing a file
 *     already in cur/;
 *  4. lists cur/, skipping names starting with '.' and anything not a
 *     regular file (symlinks included), with each message's size (,W= from
 *     the name when present, else counted per maildir/size.h) and UIDL
 *     (maildir/uidl.h);
 *  5. sorts the list in Courier's order: by leading timestamp of the name,
 *     then by the unique parts compared as signed chars (what courierpop3d
 *     does), then by the whole name.
 */
#ifndef FASTPOP_MAILDIR_SCAN_H
#define FASTPOP_MAILDIR_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* tmp/ files older than this are abandoned deliveries (djb, Dovecot). */
enum { MAILDIR_TMP_MAX_AGE = 36 * 60 * 60 };

struct maildir_msg {
    uint64_t size;       /* POP3 size: LIST, STAT */
    uint64_t timestamp;  /* leading number of the name, for ordering */
    uint32_t name_off;   /* current name in cur/: maildir_msg_name() */
    uint32_t uidl_off;   /* maildir_msg_uidl() */
    uint16_t unique_len; /* bytes of the name before ':' */
    uint16_t uidl_len;   /* legacy UIDLs (maildir/legacy.h) may pass 70 */
    uint8_t  deleted;    /* DELE mark: the session's to set and clear */
    uint8_t  seen_due;   /* retrieved: the session flags it Seen at its end (its own too) */
};

/*
 * Messages in POP3 order: msgs[0] is message 1. Names and UIDLs live in
 * one string block, so 100,000 messages cost a few allocations. Fields
 * other than msgs[i].deleted and seen_due are read-only for callers.
 */
struct maildir {
    struct maildir_msg *msgs;
    size_t              count;
    uint64_t            total_size; /* of all messages, for STAT */
    char               *strings;
    size_t              strings_len;
    size_t              strings_cap;
    size_t              msgs_cap;
    /* Files not served (see the caveats of maildir_scan), for the log. */
    unsigned            unreadable;  /* could not be opened: EACCES, EPERM */
    unsigned            duplicates;  /* their unique part is another file's too */
    unsigned            stuck_in_new; /* left in new/ (see maildir_move_new) */
};

/*
 * Scan the maildir at root (steps above) and put a new list in *md, to be
 * released with maildir_free(). now is the current time, for tmp/ cleanup.
 *
 * Returns 0, or -1 with errno: ENOENT when root does not exist (the caller
 * decides whether to create it), ENOTDIR, EACCES, ENOMEM, EOVERFLOW (the
 * string block passed 4 GiB), or from a failed syscall.
 * Caveats:
 *  - Messages that vanish during the scan (another session deleted them)
 *    are skipped, not errors. So are files this user may not open (owned
 *    by someone else: a misdelivery), counted in md->unreadable: one such
 *    file must not make the whole mailbox unusable. Any other failure to
 *    read a message, or to move one out of new/, fails the whole scan.
 *  - tmp/ cleanup is best effort; its failures are ignored.
 *  - A file in new/ whose cur/ name already exists, or that this user may
 *    not move, stays in new/ (counted in md->stuck_in_new); anything in
 *    new/ that is not a regular file stays there, uncounted.
 *  - Of two files with the same unique part (a restored backup, a broken
 *    delivery agent) only the first in name order is served, so UIDLs stay
 *    unique (RFC 1939); the other is counted in md->duplicates and left on
 *    disk, to be served once the first is deleted.
 */
int maildir_scan(const char *root, time_t now, struct maildir **md);

void maildir_free(struct maildir *md);

/*
 * The most messages a list may hold in this process (0: no limit, the
 * start): adding one more fails with E2BIG, which every function here
 * then returns, so a mailbox of millions of files costs a listing and
 * memory bounded by max, not by the mailbox. Set once, before any list is
 * built and before other threads start (a worker's max_messages).
 */
void maildir_set_max_messages(size_t max);

/* Current file name of message i (0-based) in cur/, NUL-terminated. */
const char *maildir_msg_name(const struct maildir *md, size_t i);

/*
 * UIDL of message i (0-based): *len bytes, NOT NUL-terminated (a verbatim
 * UIDL is the start of the name).
 */
const char *maildir_msg_uidl(const struct maildir *md, size_t i, size_t *len);

/*
 * Record that message i is now called name in cur/ (after a flag change
 * or maildir_locate()); name must have the same unique part.
 * Returns 0, or -1 with errno EINVAL (other unique part), ENOMEM, EOVERFLOW.
 * Caveat: pointers from maildir_msg_name()/maildir_msg_uidl() become invalid.
 */
int maildir_msg_rename(struct maildir *md, size_t i, const char *name);

/*
 * Building blocks of maildir_scan() for a scan that reuses what a cache
 * (shm/index_sync.h) already knows. The steps are the ones listed above;
 * directory fds stay the caller's.
 */

/*
 * A size the caller already knows for the message whose unique part is
 * [name, name+unique_len): 0 with *size set, or -1 (unknown: count it).
 * Message files never change once delivered, so a size found by unique
 * part stays right across flag renames.
 */
typedef int (*maildir_size_lookup)(void *arg, const char *name, size_t unique_len,
                                   uint64_t *size);

/* An empty list (NULL with errno ENOMEM), for maildir_add()/maildir_free(). */
struct maildir *maildir_new(void);

/*
 * A compact copy of md (names, sizes, UIDLs, order), without the messages
 * marked deleted when skip_deleted: the list after an UPDATE. NULL with errno.
 */
struct maildir *maildir_copy(const struct maildir *md, int skip_deleted);

/* Steps 1 and 2 on the open root. make_dirs: 0, or -1 with errno. */
int  maildir_make_dirs(int rootfd);
void maildir_clean_tmp(int rootfd, time_t now);

/*
 * Step 3. *moved counts the files renamed, *left those left in new/ because
 * their cur/ name exists or they may not be moved (EACCES, EPERM),
 * *vanished (may be NULL) those listed in new/ that were gone when renamed
 * (another program moved or removed them). When added is not NULL every
 * moved file is also appended to it under its cur/ name, sized like step 4
 * (a file that vanished meanwhile is left out).
 * Returns 0, or -1 with errno (readdir, rename, size).
 */
int maildir_move_new(int rootfd, int curfd, struct maildir *added, unsigned *moved,
                     unsigned *left, unsigned *vanished);

/*
 * rename() that never replaces an existing target: -1 with errno EEXIST
 * then, so a file already there (another message, a planted link) is never
 * lost. Where the file system cannot refuse (old NFS) it checks first,
 * which leaves a race, but no worse than plain rename.
 */
int maildir_rename_noreplace(int from, const char *old, int to, const char *new);

/*
 * Step 4 on the directory dirfd (cur/, or new/ for a read-only look):
 * append its messages to md. lookup (may be NULL) is asked first, so a
 * known message costs no syscall. Returns 0, or -1 with errno.
 */
int maildir_list_dir(int dirfd, struct maildir *md, maildir_size_lookup lookup, void *arg);

/*
 * Append the message called name with the given POP3 size, with its own
 * UIDL (maildir/uidl.h). Returns 0, or -1 with errno ENOMEM, EOVERFLOW.
 */
int maildir_add(struct maildir *md, const char *name, uint64_t size);

/*
 * Give message i another UIDL (a legacy one: 1-65535 bytes, kept as is).
 * Returns 0, or -1 with errno EINVAL (empty or too long), ENOMEM, EOVERFLOW.
 * Caveat: pointers from maildir_msg_uidl() become invalid.
 */
int maildir_set_uidl(struct maildir *md, size_t i, const char *uidl, size_t len);

/* Step 5: put the list in Courier's order. */
/* Give back the growth slack of a finished list (it lives as long as the session). */
void maildir_trim(struct maildir *md);
void maildir_sort(struct maildir *md);

#endif
