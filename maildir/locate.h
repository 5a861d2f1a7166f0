/*
 * Finding a message's current file in cur/ when another program (an IMAP
 * server, a mail client over IMAP) renamed it to change its flags. Only
 * the unique part, before ':', identifies a message.
 */
#ifndef FASTPOP_MAILDIR_LOCATE_H
#define FASTPOP_MAILDIR_LOCATE_H

#include <stddef.h>

/*
 * Open root/cur as a directory (O_CLOEXEC) for the *at() calls of
 * locate.h and expunge.h; the fd goes to *curfd.
 * Returns 0, or -1 with errno from open().
 */
int maildir_open_cur(const char *root, int *curfd);

/*
 * Find in the directory curfd (the message directory, normally cur/) the
 * file whose unique part is [unique, unique+unique_len), skipping names
 * starting with '.', and write its name into name (namesz bytes,
 * NUL-terminated).
 *
 * Returns 0, or -1 with errno ENOENT (no such message: it is gone), ERANGE
 * (name too small) or from opendir/readdir.
 * Caveats: reads the whole directory (one readdir pass), so call it only
 * after open/unlink/rename of the recorded name failed with ENOENT. If two
 * files share the unique part, the first one readdir returns wins.
 */
int maildir_locate(int curfd, const char *unique, size_t unique_len, char *name,
                   size_t namesz);

#endif
