/*
 * The operator's view of the mailbox index, for `popctl index ...`. Both
 * commands only read: no new/ -> cur/ move, no tmp/ cleanup, no write to
 * the index or to a legacy file, so they are safe beside a running
 * fastpopd and before a migration.
 *
 * index_tool_check(): compare a maildir's record with the disk read from
 * scratch (every size counted again, except trusted ,W= hints). Prints one
 * line per difference and a verdict. Exit status: 0 when the record agrees
 * with the disk or is already known stale (the next login reads the
 * directory again), 1 when a warm login would serve a wrong list (a bug),
 * 2 on an error (printed).
 *
 * index_tool_uidl_diff(): the UIDLs a login would serve now, in POP3
 * order, beside the legacy file's (maildir/legacy.h), then the legacy
 * records whose message is gone. Exit status 0, or 2 on an error.
 */
#ifndef FASTPOP_SHM_INDEX_TOOL_H
#define FASTPOP_SHM_INDEX_TOOL_H

#include <stdio.h>

#include "maildir/legacy.h"
#include "maildir/scan.h"

/* recheck: the index_recheck setting, to judge a stamp of fastpop's own changes. */
int index_tool_check(const char *index_dir, const char *maildir, int recheck, FILE *out);
int index_tool_uidl_diff(const char *maildir, FILE *out);

/*
 * The list a login would build for the maildir at root now, read without
 * changing anything (legacy UIDLs and X-UIDL headers applied); *lg_out (may
 * be NULL) gets the legacy list. uidls_only: sizes are not counted (0), so
 * no message file is opened but for X-UIDL headers. Returns 0, or -1 with
 * errno (ELOOP: the maildir, cur/ or new/ is a symlink, not followed).
 */
int index_tool_read_truth(const char *root, int uidls_only, struct maildir **out,
                          struct legacy_list **lg_out);

#endif
