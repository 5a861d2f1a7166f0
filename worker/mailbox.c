#include "mailbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/runtime/log.h"
#include "daemon/runtime/clock.h"
#include "maildir/expunge.h"
#include "maildir/filename.h"
#include "maildir/locate.h"
#include "maildir/open_file.h"
#include "shm/index_sync.h"
#include "shm/stats.h"
#include "shm/scoreboard.h"
#include "worker/loop.h"
#include "worker/offload.h"

/*
 * A broken index is replaced by this worker at most this often: a disk
 * that keeps damaging it would otherwise cost a removal and a new env at
 * every login. Between two tries logins scan, as they would anyway.
 */
#define INDEX_REBUILD_SECONDS 60.0

/* Set once a trouble with the index is logged; cleared when it works again. */
static int index_trouble_logged;
static double index_rebuilt_at = -INDEX_REBUILD_SECONDS;
/* A full index (index_max_mb) is a standing condition: logged once per worker. */
static int index_full_logged;

/*
 * The index only ever costs speed: a failure is counted, logged once per
 * spell of trouble (not per login: a full state_dir fails every write),
 * and the login goes on with a scan. A broken environment is replaced.
 */
static void report_index_error(struct loop *lp, const char *user, int code)
{
    struct mbindex *ix = lp->mbindex;
    stats_store_error(STATS_STORE_INDEX);
    if (code == MDB_MAP_FULL) {
        /* Per mailbox: the others still fit, so this is no spell of trouble. */
        if (!index_full_logged)
            log_warning("user=%s: mailbox index full (index_max_mb = %d): mailboxes whose "
                        "record does not fit are scanned at each login (logged once per "
                        "worker)", user, lp->cfg->index_max_mb);
        index_full_logged = 1;
        return;
    }
    if (ix != NULL && mbindex_broken(ix)) {
        double now = clock_mono();
        if (now - index_rebuilt_at >= INDEX_REBUILD_SECONDS) {
            index_rebuilt_at = now;
            int rc = mbindex_rebuild(ix);
            if (rc == 0) {
                log_warning("mailbox index unusable (%s); this worker started a new one",
                            mdb_strerror(code));
                index_trouble_logged = 0;
                return;
            }
            code = rc;
        }
        if (!index_trouble_logged)
            log_error("mailbox index unusable in this worker (%s): logins scan their "
                      "maildir until it is replaced", mdb_strerror(code));
        index_trouble_logged = 1;
        return;
    }
    if (!index_trouble_logged)
        log_warning("user=%s: mailbox index: %s; logins scan their maildir until it works "
                    "again (not logged again until then)", user, mdb_strerror(code));
    index_trouble_logged = 1;
}

/* A login that used the index without trouble ends a spell of it. */
static void report_index_ok(void)
{
    if (!index_trouble_logged)
        return;
    log_info("mailbox index works again");
    index_trouble_logged = 0;
}

/* The interval of the shared lock's heartbeat: a third of mailbox_lock_stale. */
static double beat_interval(const struct loop *lp)
{
    return lp->cfg->mailbox_lock_stale / 3.0;
}

/* Touch the shared lock, so that other hosts never find it stale while we hold it. */
static void on_beat(struct ev_loop *ev, struct ev_timer *timer)
{
    struct pop3_session *s = timer->data;
    if (shared_lock_refresh(s->root, &s->shared) == -1) {
        if (errno == ENOLCK) {
            log_warning("%s: the shared lock was taken over by another server (this "
                        "session held it too long without a heartbeat)", s->root);
            return;   /* no longer held: QUIT will delete nothing */
        }
        log_warning("%s: cannot touch the shared lock: %s", s->root, strerror(errno));
    }
    if (ev_timer_arm(ev, &s->beat, ev_loop_now(ev) + beat_interval(s->lp)) == -1)
        log_error("%s: no memory for the shared lock's heartbeat", s->root);
}

/* The lock file other hosts see; the maildir is made here on a first login. */
static enum mailbox_open_result take_shared_lock(struct conn *c, struct pop3_session *s)
{
    const struct config *cfg = c->lp->cfg;
    char holder[96] = "";
    int rc = shared_lock_acquire(s->root, cfg->host_name, getpid(), cfg->mailbox_lock_stale,
                                 &s->shared, holder, sizeof(holder));
    if (rc == -1 && errno == ENOENT && mkdir(s->root, 0700) == 0)
        rc = shared_lock_acquire(s->root, cfg->host_name, getpid(), cfg->mailbox_lock_stale,
                                 &s->shared, holder, sizeof(holder));
    if (rc == 0) {
        s->uses_shared = 1;
        s->lp = c->lp;
        ev_timer_init(&s->beat, on_beat, s);
        if (ev_timer_arm_in(c->lp->ev, &s->beat, beat_interval(c->lp)) == -1)
            log_error("user=%s: no memory for the shared lock's heartbeat", c->user);
        return MAILBOX_OPEN_OK;
    }
    if (errno == EBUSY) {
        log_info("user=%s: %s is in use by %s (shared lock)", c->user, s->root, holder);
        return MAILBOX_OPEN_IN_USE;
    }
    log_error("user=%s: cannot take the shared lock of %s: %s", c->user, s->root,
              strerror(errno));
    return MAILBOX_OPEN_FAILED;
}

/*
 * A login whose maildir is read on the loader thread (worker/offload.h).
 * The thread touches only the job and its session s, which nothing else
 * sees until done: the loop keeps the mailbox lock and the scoreboard slot
 * meanwhile, even for a connection that closed (conn is NULL then).
 */
struct mailbox_job {
    struct offload_job job;           /* first: offload hands this pointer back */
    struct loop *lp;
    struct conn *conn;                /* NULL once the connection closed */
    mailbox_opened_fn *opened;
    struct pop3_session *s;
    int slot;                         /* the scoreboard slot kept for an abandoned load */
    time_t now;
    int rc, err;                      /* index_sync_lazy's */
    struct index_sync_result res;
    uint64_t took;                    /* microseconds */
    char user[sizeof(((struct conn *)0)->user)];
};

/*
 * The outcome of a sync of s, logged and counted here, on the loop: OK
 * with the counts set, or another result with s freed (lock released).
 */
static enum mailbox_open_result settle(struct loop *lp, const char *user,
                                       struct pop3_session *s, int rc, int err,
                                       const struct index_sync_result *res, uint64_t took)
{
    if (rc == -1) {
        if (err == E2BIG) {
            log_warning("user=%s: %s holds more than max_messages (%d) messages: login "
                        "refused", user, s->root, lp->cfg->max_messages);
            mailbox_close(s);
            return MAILBOX_OPEN_TOO_BIG;
        }
        log_error("user=%s: cannot read maildir %s: %s", user, s->root, strerror(err));
        mailbox_close(s);
        return MAILBOX_OPEN_FAILED;
    }
    stats_timing(res->warm ? STATS_TIME_INDEX_UNCHANGED : STATS_TIME_INDEX_RESCAN, took);
    if (res->index_error != 0)
        report_index_error(lp, user, res->index_error);
    else if (s->ix != NULL && (res->warm || res->written))
        report_index_ok();
    if (res->unreadable > 0 || res->duplicates > 0 || res->stuck_in_new > 0)
        log_warning("user=%s: %s: files not served: %u unreadable (another owner?), %u with "
                    "the unique name of another message, %u left in new/ (name taken in cur/ "
                    "or not movable)", user, s->root, res->unreadable, res->duplicates,
                    res->stuck_in_new);
    log_debug("user=%s index %s: read new=%d cur=%d moved=%u written=%d", user,
              res->warm ? "warm" : "read", res->read_new, res->read_cur, res->moved,
              res->written);
    /* A record written before max_messages was lowered: refused like a listing. */
    if (s->head.count > (uint64_t)lp->cfg->max_messages) {
        log_warning("user=%s: %s holds %llu messages, more than max_messages (%d): login "
                    "refused", user, s->root, (unsigned long long)s->head.count,
                    lp->cfg->max_messages);
        mailbox_close(s);
        return MAILBOX_OPEN_TOO_BIG;
    }
    s->live_count = s->count = s->head.count;
    s->live_size = s->total_size = s->head.total_size;
    return MAILBOX_OPEN_OK;
}

/* On the loader thread: the whole sync, which may read every file of the maildir. */
static void load_work(struct offload_job *job)
{
    struct mailbox_job *m = (struct mailbox_job *)job;
    uint64_t started = clock_mono_us();
    m->rc = index_sync_lazy(m->s->ix, m->s->root, m->now, &m->s->head, &m->s->md, &m->res);
    m->err = m->rc == -1 ? errno : 0;
    m->took = clock_mono_us() - started;
}

/* On the loop: hand the session to its connection, or let it go with its slot. */
static void load_done(struct offload_job *job)
{
    struct mailbox_job *m = (struct mailbox_job *)job;
    struct conn *c = m->conn;
    /* The session line is out already: this one says when the lock goes. */
    if (c == NULL)
        log_info("user=%s: the mailbox read for a session that closed meanwhile is done; "
                 "%s is unlocked", m->user, m->s->root);
    enum mailbox_open_result res = settle(m->lp, m->user, m->s, m->rc, m->err, &m->res,
                                          m->took);
    if (c == NULL) {
        if (res == MAILBOX_OPEN_OK)
            mailbox_close(m->s);
        scoreboard_conn_close(m->lp->sb, m->slot);
        free(m);
        return;
    }
    c->mailbox_job = NULL;
    if (res == MAILBOX_OPEN_OK)
        c->session = m->s;
    mailbox_opened_fn *opened = m->opened;
    free(m);
    opened(c, res);
}

void mailbox_abandon(struct conn *c)
{
    struct mailbox_job *m = c->mailbox_job;
    if (m == NULL)
        return;
    /* The lock is the slot's: released with it, the job's end would unlock another's. */
    m->conn = NULL;
    m->slot = c->slot;
    c->slot = -1;
    c->mailbox_job = NULL;
}

/* Read the maildir on the loader thread: LOADING, or -1 if no job could be made. */
static int start_load(struct conn *c, struct pop3_session *s, mailbox_opened_fn *opened)
{
    struct mailbox_job *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -1;
    m->job.work = load_work;
    m->job.done = load_done;
    m->lp = c->lp;
    m->conn = c;
    m->opened = opened;
    m->s = s;
    m->slot = -1;
    m->now = time(NULL);
    snprintf(m->user, sizeof(m->user), "%s", c->user);
    c->mailbox_job = m;
    offload_submit(c->lp->offload, &m->job);
    return 0;
}

enum mailbox_open_result mailbox_open(struct conn *c, const char *maildir,
                                      mailbox_opened_fn *opened)
{
    size_t len = strlen(maildir);
    struct pop3_session *s = calloc(1, sizeof(*s) + len + 1);
    if (s == NULL) {
        log_error("user=%s: out of memory opening the mailbox", c->user);
        return MAILBOX_OPEN_FAILED;
    }
    memcpy(s->root, maildir, len + 1);
    index_path_normalize(s->root);
    s->cur_fd = -1;
    s->sb = c->lp->sb;
    s->slot = c->slot;

    if (scoreboard_mailbox_lock(s->sb, s->slot, s->root) == -1) {
        int busy = errno == EBUSY;
        if (!busy)
            log_error("user=%s: cannot lock %s: %s", c->user, s->root, strerror(errno));
        free(s);
        return busy ? MAILBOX_OPEN_IN_USE : MAILBOX_OPEN_FAILED;
    }
    s->locked = 1;
    if (c->lp->cfg->mailbox_lock == CONFIG_MAILBOX_LOCK_SHARED) {
        enum mailbox_open_result shared = take_shared_lock(c, s);
        if (shared != MAILBOX_OPEN_OK) {
            mailbox_close(s);
            return shared;
        }
    }
    /*
     * The index decides whether any directory is read (shm/index_sync.h);
     * a first login creates the maildir. cur/ is opened only when a
     * command needs a file, and a warm login reads only the record's head,
     * so it touches nothing but two stats and costs the same at any size:
     * that one is answered here. Any other may list and size every file,
     * which the loader thread does while the loop serves the rest.
     */
    struct index_sync_result res;
    s->ix = c->lp->mbindex;
    uint64_t sync_started = clock_mono_us();
    if (index_sync_warm(s->ix, s->root, &s->head)) {
        memset(&res, 0, sizeof(res));
        res.warm = 1;
    } else if (c->lp->offload != NULL && start_load(c, s, opened) == 0) {
        return MAILBOX_OPEN_LOADING;
    } else {
        int rc = index_sync_lazy(s->ix, s->root, time(NULL), &s->head, &s->md, &res);
        if (rc == -1) {
            int err = errno;
            return settle(c->lp, c->user, s, rc, err, &res, 0);
        }
    }
    enum mailbox_open_result r = settle(c->lp, c->user, s, 0, 0, &res,
                                        clock_mono_us() - sync_started);
    if (r == MAILBOX_OPEN_OK)
        c->session = s;
    return r;
}

struct index_own *mailbox_own(struct pop3_session *s)
{
    if (!s->own.started)
        index_own_start(&s->own, &s->head);
    return &s->own;
}

unsigned mailbox_count(const struct pop3_session *s)
{
    return (unsigned)s->count;
}

int mailbox_load(struct pop3_session *s, const char *user)
{
    if (s->md != NULL)
        return 0;
    if (s->load_failed)
        return -1;
    int rc = s->ix != NULL ? index_load(s->ix, s->root, &s->head, &s->md) : ESTALE;
    if (rc == 0)
        return 0;
    /*
     * The record changed or the index broke since the login (another host
     * or a tool wrote it: we hold the lock). A scan that finds exactly the
     * count and size the client was told is that list; anything else is
     * not served, since message numbers must not change within a session.
     */
    struct maildir *md;
    struct index_sync_result res;
    if (index_sync(NULL, s->root, time(NULL), &md, &res) == 0) {
        /* Not the record's list: nothing of it is taken on trust. */
        index_own_foreign(mailbox_own(s));
        if (md->count == s->count && md->total_size == s->total_size) {
            log_warning("user=%s: mailbox index record of %s changed during the session "
                        "(%s); the maildir, scanned again, still matches", user, s->root,
                        mdb_strerror(rc));
            s->md = md;
            return 0;
        }
        maildir_free(md);
    }
    log_error("user=%s: mailbox index record of %s changed during the session (%s) and the "
              "maildir no longer matches what the login announced", user, s->root,
              mdb_strerror(rc));
    s->load_failed = 1;
    return -1;
}

/* cur/, opened at the first command that needs a message file. */
int mailbox_cur_fd(struct pop3_session *s)
{
    if (s->cur_fd == -1 && maildir_open_cur(s->root, &s->cur_fd) == -1)
        return -1;
    return s->cur_fd;
}

/* A message file only if it is a regular file (maildir/open_file.h); else ENOTSUP. */
static int open_regular(int dirfd, const char *name)
{
    int fd = maildir_open_file(dirfd, name, NULL);
    if (fd == -1 && errno == ELOOP)
        errno = ENOTSUP;
    return fd;
}

int mailbox_open_message(struct pop3_session *s, size_t i)
{
    if (mailbox_cur_fd(s) == -1)
        return -1;
    const char *name = maildir_msg_name(s->md, i);
    int fd = open_regular(s->cur_fd, name);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    /* Another program changed its flags: same unique part, new name. */
    index_own_foreign(mailbox_own(s));
    char found[NAME_MAX + 1];
    if (maildir_locate(s->cur_fd, name, s->md->msgs[i].unique_len, found, sizeof(found)) == -1)
        return -1;
    if (maildir_msg_rename(s->md, i, found) == -1)
        return -1;
    return open_regular(s->cur_fd, maildir_msg_name(s->md, i));
}

int mailbox_mark_seen(struct pop3_session *s, size_t i)
{
    char renamed[NAME_MAX + 1], want[NAME_MAX + 1];
    if (mailbox_cur_fd(s) == -1)
        return -1;
    const char *name = maildir_msg_name(s->md, i);
    if (maildir_name_with_flag(name, 'S', want, sizeof(want)) == -1)
        return -1;
    int renames = strcmp(want, name) != 0;
    if (renames)
        index_own_before(mailbox_own(s), s->ix, s->root, s->cur_fd, 0);
    int rc = maildir_add_flag(s->cur_fd, name, 'S', renamed, sizeof(renamed));
    if (renames)
        index_own_after(mailbox_own(s), s->ix, s->cur_fd);
    /* Not the name we gave it: another program renamed or removed it, or took that name. */
    if (rc == -1 || strcmp(renamed, want) != 0)
        index_own_foreign(mailbox_own(s));
    if (rc == -1)
        return -1;
    if (renamed[0] != '\0' && strcmp(renamed, name) != 0)
        return maildir_msg_rename(s->md, i, renamed);
    return 0;
}

int mailbox_still_locked(struct pop3_session *s, const char *user)
{
    /* held drops to 0 when a heartbeat already found the lock gone. */
    if (!s->uses_shared || (s->shared.held && shared_lock_held(s->root, &s->shared)))
        return 1;
    log_warning("user=%s: the shared lock of %s was taken over by another server: this "
                "session changes nothing", user, s->root);
    return 0;
}

int mailbox_record_own(struct pop3_session *s)
{
    s->own_recorded = 1;
    if (!s->own.started)
        return 0;
    return index_own_record(&s->own, s->ix, s->root, s->md, s->updated);
}

void mailbox_close(struct pop3_session *s)
{
    if (s == NULL)
        return;
    /*
     * Under the lock still: no other session of this mailbox writes its record
     * meanwhile. A session that lost its shared lock to another host records
     * nothing: that host may be changing cur/ now.
     */
    int lost = s->uses_shared && !s->shared.held;
    if (s->locked && !s->own_recorded && !lost) {
        int rc = mailbox_record_own(s);
        if (rc != 0) {
            /* A cache: the next login lists cur/. Counted; the login path logs index trouble. */
            stats_store_error(STATS_STORE_INDEX);
            log_debug("%s: recording own changes in the index: %s", s->root, mdb_strerror(rc));
        }
    }
    if (s->uses_shared) {
        ev_timer_cancel(s->lp->ev, &s->beat);
        shared_lock_release(s->root, &s->shared);
    }
    if (s->cur_fd >= 0)
        close(s->cur_fd);
    if (s->locked)
        scoreboard_mailbox_unlock(s->sb, s->slot);
    maildir_free(s->md);
    free(s);
}

void mailbox_forget_index(struct pop3_session *s)
{
    if (s != NULL && s->ix != NULL)
        mbindex_del(s->ix, s->root);
}
