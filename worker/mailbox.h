/*
 * A logged-in session's mailbox: the exclusive POP3 lock (RFC 1939 section
 * 8), the message list as it was at login, and the DELE marks.
 *
 * The lock lives in the scoreboard (shm/scoreboard.h), keyed by the
 * normalized maildir path: it conflicts across workers and within one, costs
 * no file descriptor per session, and the master releases it when its
 * holder dies (even kill -9), so a crashed session never leaves a mailbox
 * stuck. With mailbox_lock = shared a session also holds the maildir's lock
 * file (maildir/shared_lock.h), which fastpop hosts sharing the maildirs over
 * NFS all respect; the worker touches it every third of mailbox_lock_stale
 * (a timer of the worker's event loop), and a session whose lock was taken over meanwhile
 * deletes nothing at QUIT. Neither lock keeps out other servers.
 */
#ifndef FASTPOP_MAILBOX_H
#define FASTPOP_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include "maildir/scan.h"
#include "maildir/shared_lock.h"
#include "shm/index.h"
#include "shm/index_own.h"
#include "worker/conn.h"

enum mailbox_open_result {
    MAILBOX_OPEN_OK,
    MAILBOX_OPEN_IN_USE,   /* another session holds the lock */
    MAILBOX_OPEN_FAILED,   /* logged; the client gets [SYS/TEMP] */
    MAILBOX_OPEN_TOO_BIG,  /* more than max_messages: logged; the client gets [SYS/PERM] */
    MAILBOX_OPEN_LOADING,  /* read on the loader thread: the outcome comes later */
};

/* The outcome of a login whose mailbox was LOADING, called from the loop. */
typedef void mailbox_opened_fn(struct conn *c, enum mailbox_open_result result);

/*
 * The message list is loaded lazily: a warm login reads only the index
 * record's head (count and size answer STAT), and md stays NULL until a
 * command needs a message (mailbox_load). A poller's USER, PASS, STAT,
 * QUIT thus costs the same on 10 messages or 100,000.
 */
struct pop3_session {
    struct scoreboard *sb;    /* holds the lock, for the slot below */
    int slot;
    int locked;
    int uses_shared;              /* mailbox_lock = shared: holds (or lost) the one below */
    struct shared_lock shared;
    struct loop *lp;              /* whose event loop runs the heartbeat */
    struct ev_timer beat;         /* the next touch of shared, while it is held */
    int cur_fd;
    struct mbindex *ix;       /* where md comes from while it is NULL */
    struct index_head head;   /* the record the login answered from */
    struct maildir *md;       /* NULL until mailbox_load */
    int load_failed;          /* mailbox_load failed once: it is not tried again */
    int updated;              /* mailbox_update ran: the messages marked deleted are gone */
    int own_recorded;         /* mailbox_record_own ran: mailbox_close does not again */
    size_t seen_due;          /* messages retrieved with mark_seen, flagged at the end */
    struct index_own own;     /* our renames and unlinks, for the index (shm/index_own.h) */
    size_t count;             /* messages numbered in this session */
    uint64_t total_size;
    size_t live_count;        /* messages not marked deleted */
    uint64_t live_size;
    char root[];              /* the maildir path */
};

/*
 * Lock maildir for c and get its message list; on success c->session is
 * set. A login the index answers alone (shm/index_sync.h: two stats and
 * the record's head) is done here, as is any when the worker has no loader
 * thread. Any other may list and size hundreds of thousands of files: it
 * is LOADING, read on the worker's loader thread (worker/offload.h) while
 * the loop serves the other connections, and opened(c, outcome) follows
 * from the loop, with c->session set on OK. The lock is held meanwhile.
 */
enum mailbox_open_result mailbox_open(struct conn *c, const char *maildir,
                                      mailbox_opened_fn *opened);
/*
 * c is closing while its mailbox is LOADING (a no-op otherwise): the load
 * runs to its end alone (the index then holds its result), and only then
 * are the lock and c's scoreboard slot, which this takes over, released:
 * so no other session reads that maildir meanwhile, and the slot's lock
 * is never another session's when it is released.
 */
void mailbox_abandon(struct conn *c);
/* Messages numbered in this session (deleted ones included). */
unsigned mailbox_count(const struct pop3_session *s);
/*
 * Make s->md available (a no-op once loaded). -1 (logged, with user) when
 * the index can no longer give the list the login announced: the command
 * fails with [SYS/TEMP] and nothing is served from another list.
 */
int mailbox_load(struct pop3_session *s, const char *user);
/*
 * Open message i (0-based) for reading, following a rename by another
 * program. Returns the fd, or -1 with errno (ENOENT: the message is gone;
 * ENOTSUP: it is not a regular file, e.g. a FIFO or a symlink put there).
 */
int mailbox_open_message(struct pop3_session *s, size_t i);
/* Mark message i seen (S flag) by renaming; a vanished message is no error. */
int mailbox_mark_seen(struct pop3_session *s, size_t i);
/*
 * cur/ of s, opened at the first call that needs it; -1 with errno. Like
 * mailbox_own, for worker/mailbox_update.c, which may run them on the
 * loader thread while it owns s.
 */
int mailbox_cur_fd(struct pop3_session *s);
/* The session's own changes, counted from the record its login answered from. */
struct index_own *mailbox_own(struct pop3_session *s);
/*
 * Store the session's own changes in the index (shm/index_own.h), once:
 * mailbox_close does not again. Logs and counts nothing (safe on the
 * loader thread): 0, or the LMDB or errno code for the caller to count.
 */
int mailbox_record_own(struct pop3_session *s);
/*
 * Whether the session may still change the mailbox: 0 when its shared lock
 * was taken over by another host (logged with user), 1 otherwise.
 */
int mailbox_still_locked(struct pop3_session *s, const char *user);
/*
 * Record the session's own changes in the index (shm/index_own.h), unlock
 * and free. Deletes nothing.
 */
void mailbox_close(struct pop3_session *s);

/*
 * A message's file no longer has the size the session announced (it
 * changed, or the index carried a wrong size): drop the mailbox's index
 * record, so the next login reads every size from the files again.
 */
void mailbox_forget_index(struct pop3_session *s);

#endif
