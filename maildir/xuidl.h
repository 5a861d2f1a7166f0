/*
 * X-UIDL: headers. qpopper and older UW ipop3d kept a message's UIDL in
 * the message itself; a site whose mbox files were converted to maildirs
 * (mb2md and the like keep headers) has it in every old message, and its
 * users' clients know those UIDLs. With x_uidl_header = yes (default no:
 * otherwise the header is whatever a sender wrote) a message that no legacy
 * list knows (maildir/legacy.h; a list wins: it is what the last server
 * served) is served with the value of its first X-UIDL header, when that
 * is a valid UIDL (maildir_uidl_valid) that no other message of the
 * mailbox has; else it keeps fastpop's own.
 *
 * Cost: the header block of each such message is read once; the index
 * keeps the chosen UIDLs (an index record says it was made with X-UIDL
 * headers read: LEGACY_XUIDL_FLAG) and a later sync asks it (known) instead
 * of reading the file again.
 */
#ifndef FASTPOP_MAILDIR_XUIDL_H
#define FASTPOP_MAILDIR_XUIDL_H

#include <stddef.h>

#include "maildir/legacy.h"
#include "maildir/scan.h"

/*
 * The most of a message read to find its X-UIDL header: qpopper writes it
 * among the headers, and 64 KiB holds any real header block; a header past
 * it (or in a message with no end of headers) is not looked for.
 */
enum { XUIDL_HEADER_MAX = 64 * 1024 };

/*
 * The X-UIDL of cur/name (curfd is cur/), into out (cap >= MAILDIR_UIDL_SIZE).
 * Returns 1 and the value, 0 when the message has none (or an invalid
 * one), -1 with errno from open/read (ENOENT: it vanished; ELOOP, ENOTSUP:
 * not a regular file; EACCES: another owner's).
 */
int xuidl_read(int curfd, const char *name, char *out, size_t cap, size_t *len);

/* The UIDL an earlier sync chose for the unique name (1), or 0 when it does not know it. */
typedef int (*xuidl_known_fn)(void *arg, const char *name, size_t unique_len, const char **uidl,
                              size_t *len);

/*
 * Apply X-UIDL headers to md (in POP3 order; lg may be NULL): see above.
 * known may be NULL. A message that vanished or is not a regular file
 * keeps its own UIDL. Returns 0, or -1 with errno (ENOMEM, a read error).
 */
int xuidl_apply(int curfd, const struct legacy_list *lg, struct maildir *md, xuidl_known_fn known,
                void *arg);

#endif
