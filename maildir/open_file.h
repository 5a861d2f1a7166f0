/*
 * Opening a file in a maildir, where any process with the mail uid may have
 * put something else in its place: a FIFO (open(2) would block the whole
 * worker until a writer came), a device, or a symlink pointing anywhere the
 * mail uid can read. One rule for message files, their sizing and the
 * legacy UIDL files.
 */
#ifndef FASTPOP_MAILDIR_OPEN_FILE_H
#define FASTPOP_MAILDIR_OPEN_FILE_H

#include <sys/stat.h>

/*
 * Open name in dirfd read-only with O_NOFOLLOW | O_NONBLOCK | O_NOCTTY
 * (reads of a regular file ignore O_NONBLOCK) and keep it only if fstat
 * says it is a regular file; its stat goes to *st (may be NULL).
 * Returns the descriptor, or -1 with errno from openat/fstat (ENOENT when
 * it vanished, ELOOP for a symlink, EACCES/EPERM for another owner's file)
 * or ENOTSUP when it is not a regular file.
 */
int maildir_open_file(int dirfd, const char *name, struct stat *st);

#endif
