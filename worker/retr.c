#include "retr.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "daemon/runtime/log.h"
#include "maildir/stream.h"
#include "shm/stats.h"
#include "worker/expire.h"
#include "worker/mailbox.h"
#include "worker/mailbox_update.h"

/* One chunk read from the file at a time; small, since idle TLS and plain
 * sessions must stay cheap and the page cache already holds the file. */
#define RETR_CHUNK 16384

struct retr_job {
    struct conn_job job;
    int fd;
    size_t index;
    int is_top;
    uint64_t announced;          /* the POP3 size LIST gave */
    struct maildir_stream st;
    size_t have, pos;
    char chunk[RETR_CHUNK];
};

static void retr_release(struct conn_job *job)
{
    struct retr_job *r = (struct retr_job *)job;
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

static int retr_finish(struct conn *c, struct retr_job *r)
{
    size_t body_end = buf_len(&c->out);
    if (maildir_stream_finish(&r->st, &c->out) == -1)
        return -1;
    uint64_t sent = maildir_stream_octets(&r->st);
    if (!r->is_top && sent != r->announced) {
        /* The terminating dot must never follow a wrong size. */
        buf_truncate(&c->out, body_end);
        /*
         * The file changed after login. The +OK already promised another
         * size, so the only honest move is to drop the connection before
         * the final dot: the client then knows this RETR failed.
         */
        log_error("user=%s message %zu changed during the session (%llu octets, announced "
                  "%llu); closing", c->user, r->index + 1, (unsigned long long)sent,
                  (unsigned long long)r->announced);
        /* The size may have come from the index: never announce it again. */
        mailbox_forget_index(c->session);
        errno = EIO;
        return -1;
    }
    if (r->is_top) {
        c->stats.top++;
        c->stats.top_bytes += sent;
        stats_add(SV_TOP_BYTES, sent);
    } else {
        c->stats.retr++;
        c->stats.retr_bytes += sent;
        stats_add(SV_RETR_BYTES, sent);
        expire_note_retr(c, r->index);
        /* Flagged at the session's end, unless deleted then (worker/mailbox_update.h). */
        if (c->lp->cfg->mark_seen)
            mailbox_retrieved(c->session, r->index);
    }
    return 1;
}

static int retr_produce(struct conn *c, struct conn_job *job, size_t high_water)
{
    struct retr_job *r = (struct retr_job *)job;

    for (int rounds = 0; rounds < 64; rounds++) {
        if (r->pos == r->have) {
            if (maildir_stream_done(&r->st))
                return retr_finish(c, r);
            ssize_t n = read(r->fd, r->chunk, sizeof(r->chunk));
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1) {
                log_error("user=%s: reading message %zu: %m", c->user, r->index + 1);
                return -1;
            }
            if (n == 0)
                return retr_finish(c, r);
            r->have = (size_t)n;
            r->pos = 0;
        }
        size_t used = 0;
        if (maildir_stream_feed(&r->st, r->chunk + r->pos, r->have - r->pos, &c->out,
                                high_water, &used) == -1)
            return -1;
        r->pos += used;
        if (buf_len(&c->out) >= high_water)
            return 0;
    }
    return 0;
}

struct conn_job *retr_job_new(struct conn *c, size_t i, int fd, long top)
{
    struct retr_job *r = malloc(sizeof(*r));
    if (r == NULL) {
        close(fd);
        return NULL;
    }
    r->job.produce = retr_produce;
    r->job.release = retr_release;
    r->fd = fd;
    r->index = i;
    r->is_top = top >= 0;
    r->announced = c->session->md->msgs[i].size;
    r->have = r->pos = 0;
    maildir_stream_init(&r->st, r->is_top ? MAILDIR_STREAM_TOP : MAILDIR_STREAM_RETR,
                        r->is_top ? (uint64_t)top : 0);
    int w = c->lp->cfg->pop3_workarounds_set;
    maildir_stream_workarounds(&r->st,
                               ((w & CONFIG_WORKAROUND_OUTLOOK_NO_NULS) ? MAILDIR_STREAM_NO_NULS : 0) |
                               ((w & CONFIG_WORKAROUND_OE_NS_EOH) ? MAILDIR_STREAM_ADD_EOH : 0));
    return &r->job;
}
