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

#include "daemon/log.h"
#include "maildir/expunge.h"
#include "maildir/filename.h"
#include "maildir/locate.h"
#include "maildir/open_file.h"
#include "shm/index_sync.h"
#include "shm/stats.h"
#include "shm/scoreboard.h"
#include "worker/loop.h"

/*
 * A broken index is replaced by this worker at most this often: a disk
 * that keeps damaging it would otherwise cost a removal and a new env at
 * every login. Between two tries logins scan, as they would anyway.
 */
#define INDEX_REBUILD_SECONDS 60.0

/* Set once a trouble with the index is logged; cleared when it works again. */
static int index_trouble_logged;
static double index_rebuilt_at = -INDEX_REBUILD_SECONDS;

/*
 * The index only ever costs speed: a failure is counted, logged once per
 * spell of trouble (not per login: a full state_dir fails every write),
 * and the login goes on with a scan. A broken environment is replaced.
 */
static void report_index_error(const struct conn *c, int code)
{
    struct mbindex *ix = c->lp->mbindex;
    stats_store_error(STATS_STORE_INDEX);
    if (ix != NULL && mbindex_broken(ix)) {
        double now = loop_now();
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
                    "again (not logged again until then)", c->user, mdb_strerror(code));
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

enum mailbox_open_result mailbox_open(struct conn *c, const char *maildir)
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
    /*
     * The index decides whether any directory is read (shm/index_sync.h);
     * a first login creates the maildir. cur/ is opened only when a
     * command needs a file, and a warm login reads only the record's head,
     * so it touches nothing but two stats and costs the same at any size.
     */
    struct index_sync_result res;
    s->ix = c->lp->mbindex;
    uint64_t sync_started = stats_clock();
    if (index_sync_lazy(s->ix, s->root, time(NULL), &s->head, &s->md, &res) == -1) {
        log_error("user=%s: cannot read maildir %s: %s", c->user, s->root, strerror(errno));
        goto failed;
    }
    stats_timing(res.warm ? STATS_TIME_INDEX_UNCHANGED : STATS_TIME_INDEX_RESCAN,
                 stats_clock() - sync_started);
    if (res.index_error != 0)
        report_index_error(c, res.index_error);
    else if (s->ix != NULL && (res.warm || res.written))
        report_index_ok();
    if (res.unreadable > 0 || res.duplicates > 0 || res.stuck_in_new > 0)
        log_warning("user=%s: %s: files not served: %u unreadable (another owner?), %u with "
                    "the unique name of another message, %u left in new/ (name taken in cur/ "
                    "or not movable)", c->user, s->root, res.unreadable, res.duplicates,
                    res.stuck_in_new);
    log_debug("user=%s index %s: read new=%d cur=%d moved=%u written=%d", c->user,
              res.warm ? "warm" : "read", res.read_new, res.read_cur, res.moved, res.written);
    s->live_count = s->count = s->head.count;
    s->live_size = s->total_size = s->head.total_size;
    c->session = s;
    return MAILBOX_OPEN_OK;
failed:
    mailbox_close(s);
    return MAILBOX_OPEN_FAILED;
}

/* The session's own changes, counted from the record its login answered from. */
static struct index_own *own(struct pop3_session *s)
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
        index_own_foreign(own(s));
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
static int cur_fd(struct pop3_session *s)
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
    if (cur_fd(s) == -1)
        return -1;
    const char *name = maildir_msg_name(s->md, i);
    int fd = open_regular(s->cur_fd, name);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    /* Another program changed its flags: same unique part, new name. */
    index_own_foreign(own(s));
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
    if (cur_fd(s) == -1)
        return -1;
    const char *name = maildir_msg_name(s->md, i);
    if (maildir_name_with_flag(name, 'S', want, sizeof(want)) == -1)
        return -1;
    int renames = strcmp(want, name) != 0;
    if (renames)
        index_own_before(own(s), s->ix, s->root, s->cur_fd, 0, s->md);
    int rc = maildir_add_flag(s->cur_fd, name, 'S', renamed, sizeof(renamed));
    if (renames)
        index_own_after(own(s), s->ix, s->cur_fd);
    /* Not the name we gave it: another program renamed or removed it, or took that name. */
    if (rc == -1 || strcmp(renamed, want) != 0)
        index_own_foreign(own(s));
    if (rc == -1)
        return -1;
    if (renamed[0] != '\0' && strcmp(renamed, name) != 0)
        return maildir_msg_rename(s->md, i, renamed);
    return 0;
}

void mailbox_update(struct pop3_session *s, unsigned *deleted, unsigned *failed)
{
    *deleted = *failed = 0;
    s->updated = 1;
    /* DELE loads the list and lowers live_count: nothing marked, nothing to walk. */
    if (s->md == NULL || s->live_count == s->count)
        return;
    /* One bracket around the whole batch of unlinks (shm/index_own.h). */
    if (cur_fd(s) != -1)
        index_own_before(own(s), s->ix, s->root, s->cur_fd, 1, s->md);
    for (size_t i = 0; i < s->md->count; i++) {
        if (!s->md->msgs[i].deleted)
            continue;
        if (cur_fd(s) == -1) {
            if (*failed == 0)
                log_error("cannot open %s/cur: %s", s->root, strerror(errno));
            (*failed)++;
            continue;
        }
        int removed;
        if (maildir_expunge(s->cur_fd, maildir_msg_name(s->md, i), &removed) == -1) {
            log_error("cannot delete %s/cur/%s: %s", s->root, maildir_msg_name(s->md, i),
                      strerror(errno));
            (*failed)++;
        } else {
            (*deleted)++;
        }
        /* Gone already, renamed, or still there: another program was at work. */
        if (removed != 1)
            index_own_foreign(own(s));
    }
    if (*deleted > 0 && fsync(s->cur_fd) == -1)
        log_warning("fsync %s/cur: %s", s->root, strerror(errno));
    if (s->cur_fd != -1)
        index_own_after(own(s), s->ix, s->cur_fd);
}

void mailbox_close(struct pop3_session *s)
{
    if (s == NULL)
        return;
    /* Under the lock still: no other session of this mailbox writes its record meanwhile. */
    if (s->locked && s->own.started) {
        int rc = index_own_record(&s->own, s->ix, s->root, s->md, s->updated);
        if (rc != 0) {
            /* A cache: the next login lists cur/. Counted; the login path logs index trouble. */
            stats_store_error(STATS_STORE_INDEX);
            log_debug("%s: recording own changes in the index: %s", s->root, mdb_strerror(rc));
        }
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
