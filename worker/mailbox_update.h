/*
 * The UPDATE state's work on a mailbox (RFC 1939 section 6), and the Seen
 * flags of the messages a session retrieved.
 *
 * Seen (mark_seen) is applied when the session ends, not at RETR: a
 * message that is retrieved and then deleted in the same session (a
 * client that leaves nothing on the server) then costs an unlink and no
 * rename, and RETR touches no directory. A session that ends without QUIT
 * still gets its flags (mailbox_apply_seen, on the loop); only a killed
 * worker loses them, which loses nothing a client sees (the flag is not
 * part of the UIDL).
 *
 * QUIT's update (unlinks, the fsync of cur/, the Seen renames, the index
 * record) runs on the worker's loader thread (worker/offload.h) when there
 * is one, so the metadata calls of one session, each a journal write of
 * the file system, do not stop the loop that serves the others. The reply
 * follows the update: +OK only once every unlink is done, cur/ is fsynced
 * and the record is written; the mailbox lock is held until then. A
 * connection that closes meanwhile does not stop it (the client sent QUIT:
 * the deletions are due), and the lock goes with the job's end.
 */
#ifndef FASTPOP_WORKER_MAILBOX_UPDATE_H
#define FASTPOP_WORKER_MAILBOX_UPDATE_H

#include <limits.h>
#include <stddef.h>

#include "worker/conn.h"
#include "worker/mailbox.h"

/* What an update did, filled on whichever thread ran it; logged on the loop. */
struct mailbox_update_result {
    unsigned deleted;          /* marked deleted and no longer there (removed now or before) */
    unsigned failed;           /* marked deleted and still there */
    unsigned seen_failed;      /* Seen renames that failed (the message stays unflagged) */
    int cur_errno;             /* cur/ could not be opened (0: it could) */
    int delete_errno;          /* the first failed unlink's */
    char delete_name[NAME_MAX + 1];
    int fsync_errno;           /* the fsync of cur/ after the unlinks */
    int seen_errno;            /* the first failed Seen rename's */
    int index_rc;              /* recording own changes: 0, or an LMDB or errno code */
};

/* The outcome of an update that ran on the loader thread, called from the loop. */
typedef void mailbox_updated_fn(struct conn *c, const struct mailbox_update_result *res);

/* RETR of message i (0-based) finished: its Seen flag is due at the session's end. */
void mailbox_retrieved(struct pop3_session *s, size_t i);

/*
 * The session ends without UPDATE (no QUIT): give the retrieved messages
 * their Seen flag now, on the loop. Deletes nothing. Logged with user.
 */
void mailbox_apply_seen(struct pop3_session *s, const char *user);

/*
 * QUIT in TRANSACTION, the shared lock checked: start the update of
 * c->session. 1: it runs on the loader thread, c->session is the job's
 * (NULL here), and updated(c, result) follows from the loop with the
 * session closed and unlocked. 0: not offloaded (nothing to unlink or
 * rename, or no loader thread): the caller runs mailbox_update_now.
 */
int mailbox_update_start(struct conn *c, mailbox_updated_fn *updated);

/*
 * The update inline, on the loop: unlink the messages marked deleted,
 * fsync cur/, apply the Seen flags, then log and close the session
 * (c->session is NULL afterwards).
 */
void mailbox_update_now(struct conn *c, struct mailbox_update_result *res);

/*
 * c is closing while its update runs (a no-op otherwise): the update runs
 * to its end alone, and only then are the lock and c's scoreboard slot,
 * which this takes over, released (as mailbox_abandon does for a load).
 */
void mailbox_update_abandon(struct conn *c);

#endif
