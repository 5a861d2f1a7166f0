/*
 * Changing messages in cur/ on behalf of a session: deleting them at UPDATE
 * and setting flags (Seen after RETR). Both work from the name recorded at
 * scan time and, when another program renamed the file meanwhile, find it
 * again by its unique part (maildir/locate.h).
 */
#ifndef FASTPOP_MAILDIR_EXPUNGE_H
#define FASTPOP_MAILDIR_EXPUNGE_H

#include <stddef.h>

/*
 * Unlink the message recorded as name in the directory curfd. If name is
 * gone, the file with the same unique part is unlinked instead. *removed
 * is 1 when this call unlinked the message under name, 2 under another name
 * (someone else renamed it), 0 when it was already gone (someone else
 * deleted it): all are success.
 *
 * Returns 0, or -1 with errno from unlinkat/maildir_locate, or EAGAIN when
 * the file kept being renamed under us (4 tries).
 */
int maildir_expunge(int curfd, const char *name, int *removed);

/*
 * Set flag (a letter; 'S' for Seen) on the message recorded as name in the
 * directory curfd, by renaming it per maildir_name_with_flag(). If name is
 * gone, the file with the same unique part is renamed instead. The name
 * the message has afterwards goes to newname (newsz bytes, NUL-terminated;
 * NAME_MAX + 1 is always enough): the same name when the flag was already
 * set, "" when the message is gone, which is not an error.
 *
 * The rename never replaces a file (RENAME_NOREPLACE): when some other file
 * already has the flagged name (any process of the mail user can put one
 * there), the flag is skipped and newname is the message's current name.
 *
 * Returns 0, or -1 with errno EINVAL (bad flag), ERANGE (newname too
 * small), from renameat2/maildir_locate, or EAGAIN (renamed under us 4 times).
 */
int maildir_add_flag(int curfd, const char *name, char flag, char *newname,
                     size_t newsz);

#endif
