/*
 * Directories root shares with less privileged users, handled so that root
 * never follows a path one of them controls (README, "Security model"):
 *
 *  - run_dir, state_dir and the pidfile's directory must belong to root
 *    (to the running user when started unprivileged) and not be writable
 *    by group or others: then no one else can put a name inside them;
 *  - a subdirectory handed to a user (state_dir/index, state_dir/authcache)
 *    is made and changed through a descriptor opened with O_NOFOLLOW, and
 *    root never opens anything inside it afterwards;
 *  - a file's mode is changed by the process that owns it, through a
 *    descriptor (O_NOFOLLOW, fstat, fchmod), never by path.
 *
 * Functions return -1 with errno set (or a message in err) on failure.
 */
#ifndef FASTPOP_TRUSTED_DIR_H
#define FASTPOP_TRUSTED_DIR_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Open the directory path (what names it in the message: "state_dir") and
 * check that owner owns it and that group and others cannot write to it.
 * Returns an O_DIRECTORY descriptor; -1 with err saying what is wrong and
 * the commands that fix it. The configured path itself may be a symlink
 * (the operator's choice); what it leads to is checked.
 */
int trusted_dir_open(const char *path, const char *what, uid_t owner, char *err,
                     size_t errlen);

/* mkdir path (mode 0755) if it is missing, then trusted_dir_open() it and close it. */
int trusted_dir_make(const char *path, const char *what, uid_t owner, char *err,
                     size_t errlen);

/*
 * In the trusted directory parent_fd: create name (mode) if missing and give
 * it to uid:gid with mode. A symlink or a non-directory there is refused
 * (ENOTDIR; ELOOP on some kernels). The owner changes only when running as
 * root.
 */
int trusted_dir_give(int parent_fd, const char *name, mode_t mode, uid_t uid, gid_t gid);

/*
 * Set the mode of name in dir_fd, a regular file this process owns, without
 * following a symlink (ELOOP) and without blocking on a FIFO. A missing
 * file is not an error (0).
 */
int file_set_mode_nofollow(int dir_fd, const char *name, mode_t mode);

#endif
