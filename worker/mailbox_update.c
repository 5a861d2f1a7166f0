#include "worker/mailbox_update.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/runtime/log.h"
#include "maildir/expunge.h"
#include "shm/scoreboard.h"
#include "shm/stats.h"
#include "worker/loop.h"
#include "worker/offload.h"

/* An update on the loader thread: the job owns its session until done. */
struct mailbox_update_job {
    struct offload_job job;           /* first: offload hands this pointer back */
    struct loop *lp;
    struct conn *conn;                /* NULL once the connection closed */
    mailbox_updated_fn *updated;
    struct pop3_session *s;
    int slot;                         /* the scoreboard slot kept for an abandoned update */
    struct mailbox_update_result res;
    char user[sizeof(((struct conn *)0)->user)];
};

void mailbox_retrieved(struct pop3_session *s, size_t i)
{
    if (s->md->msgs[i].seen_due)
        return;
    s->md->msgs[i].seen_due = 1;
    s->seen_due++;
}

/*
 * Unlink every message marked deleted, then fsync cur/ so a removal that
 * is answered +OK stays removed. One index bracket around the whole batch
 * (shm/index_own.h). Logs nothing: the result says what failed.
 */
static void expunge_marked(struct pop3_session *s, struct mailbox_update_result *res)
{
    /* DELE loads the list and lowers live_count: nothing marked, nothing to walk. */
    if (s->md == NULL || s->live_count == s->count)
        return;
    if (mailbox_cur_fd(s) == -1) {
        res->cur_errno = errno;
        res->failed = (unsigned)(s->count - s->live_count);
        return;
    }
    index_own_before(mailbox_own(s), s->ix, s->root, s->cur_fd, 1);
    for (size_t i = 0; i < s->md->count; i++) {
        if (!s->md->msgs[i].deleted)
            continue;
        int removed;
        const char *name = maildir_msg_name(s->md, i);
        if (maildir_expunge(s->cur_fd, name, &removed) == -1) {
            if (res->failed++ == 0) {
                res->delete_errno = errno;
                snprintf(res->delete_name, sizeof(res->delete_name), "%s", name);
            }
        } else {
            res->deleted++;
        }
        /* Gone already, renamed, or still there: another program was at work. */
        if (removed != 1)
            index_own_foreign(mailbox_own(s));
    }
    if (res->deleted > 0 && fsync(s->cur_fd) == -1)
        res->fsync_errno = errno;
    index_own_after(mailbox_own(s), s->ix, s->cur_fd);
}

/* The Seen flag of every message retrieved and not deleted (no fsync: a flag may be lost). */
static void flag_retrieved(struct pop3_session *s, struct mailbox_update_result *res)
{
    for (size_t i = 0; s->seen_due > 0 && s->md != NULL && i < s->md->count; i++) {
        struct maildir_msg *m = &s->md->msgs[i];
        if (!m->seen_due)
            continue;
        m->seen_due = 0;
        s->seen_due--;
        /* Deleted at this UPDATE: a rename of a file about to go is wasted. */
        if (m->deleted && s->updated)
            continue;
        if (mailbox_mark_seen(s, i) == -1 && res->seen_failed++ == 0)
            res->seen_errno = errno;
    }
}

/* UPDATE itself, on the loop or the loader thread: nothing here logs or counts. */
static void update_mailbox(struct pop3_session *s, struct mailbox_update_result *res)
{
    memset(res, 0, sizeof(*res));
    s->updated = 1;
    expunge_marked(s, res);
    flag_retrieved(s, res);
}

/* On the loop: say what failed, count what was deleted. */
static void report(const char *user, const char *root, const struct mailbox_update_result *res)
{
    if (res->cur_errno != 0)
        log_error("user=%s: cannot open %s/cur: %s", user, root, strerror(res->cur_errno));
    if (res->delete_errno != 0)
        log_error("user=%s: cannot delete %s/cur/%s: %s (%u of %u deletions failed)", user,
                  root, res->delete_name, strerror(res->delete_errno), res->failed,
                  res->failed + res->deleted);
    if (res->fsync_errno != 0)
        log_warning("user=%s: fsync %s/cur: %s", user, root, strerror(res->fsync_errno));
    if (res->seen_failed > 0)
        log_warning("user=%s: cannot mark %u retrieved messages of %s seen: %s", user,
                    res->seen_failed, root, strerror(res->seen_errno));
    if (res->index_rc != 0) {
        /* A cache: the next login lists cur/. Counted; the login path logs index trouble. */
        stats_store_error(STATS_STORE_INDEX);
        log_debug("%s: recording own changes in the index: %s", root,
                  mdb_strerror(res->index_rc));
    }
    stats_add(SV_DELETED, res->deleted);
}

void mailbox_apply_seen(struct pop3_session *s, const char *user)
{
    struct mailbox_update_result res;
    if (s == NULL || s->seen_due == 0)
        return;
    /* A session whose shared lock went to another host changes nothing. */
    if (s->uses_shared && !s->shared.held)
        return;
    memset(&res, 0, sizeof(res));
    flag_retrieved(s, &res);
    report(user, s->root, &res);
}

void mailbox_update_now(struct conn *c, struct mailbox_update_result *res)
{
    struct pop3_session *s = c->session;
    update_mailbox(s, res);
    report(c->user, s->root, res);
    /* Unlock now (the index record is written first): the client may log in again
     * before it reads our reply. */
    mailbox_close(s);
    c->session = NULL;
}

/* On the loader thread: the whole update, and the record while the lock is held. */
static void update_work(struct offload_job *job)
{
    struct mailbox_update_job *m = (struct mailbox_update_job *)job;
    update_mailbox(m->s, &m->res);
    /*
     * A shared lock's holder is the loop's to check (its heartbeat may find
     * it taken over meanwhile): mailbox_close records those on the loop.
     */
    if (!m->s->uses_shared)
        m->res.index_rc = mailbox_record_own(m->s);
}

/* On the loop: unlock, then answer the client, or let the slot go. */
static void update_done(struct offload_job *job)
{
    struct mailbox_update_job *m = (struct mailbox_update_job *)job;
    struct conn *c = m->conn;
    report(m->user, m->s->root, &m->res);
    if (c == NULL)
        log_info("user=%s: the QUIT update of a session that closed meanwhile is done: %u "
                 "deleted, %u failed; %s is unlocked", m->user, m->res.deleted, m->res.failed,
                 m->s->root);
    mailbox_close(m->s);
    if (c == NULL) {
        scoreboard_conn_close(m->lp->sb, m->slot);
        free(m);
        return;
    }
    c->update_job = NULL;
    mailbox_updated_fn *updated = m->updated;
    struct mailbox_update_result res = m->res;
    free(m);
    updated(c, &res);
}

int mailbox_update_start(struct conn *c, mailbox_updated_fn *updated)
{
    struct pop3_session *s = c->session;
    /* Nothing to unlink or rename: not worth a trip to the thread. */
    if (c->lp->offload == NULL || s->md == NULL ||
        (s->live_count == s->count && s->seen_due == 0))
        return 0;
    struct mailbox_update_job *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return 0;
    m->job.work = update_work;
    m->job.done = update_done;
    m->lp = c->lp;
    m->conn = c;
    m->updated = updated;
    m->s = s;
    m->slot = -1;
    snprintf(m->user, sizeof(m->user), "%s", c->user);
    c->session = NULL;
    c->update_job = m;
    offload_submit(c->lp->offload, &m->job);
    return 1;
}

void mailbox_update_abandon(struct conn *c)
{
    struct mailbox_update_job *m = c->update_job;
    if (m == NULL)
        return;
    /* The lock is the slot's: released with it, the job's end would unlock another's. */
    m->conn = NULL;
    m->slot = c->slot;
    c->slot = -1;
    c->update_job = NULL;
}
