#include "mailbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"
#include "maildir/expunge.h"
#include "maildir/locate.h"
#include "shm/scoreboard.h"
#include "worker/loop.h"

/*
 * One spelling per maildir for the lock: repeated slashes, "/./" and a
 * trailing slash go. Symlinks are not resolved (that would cost a syscall
 * per path component at every login).
 */
static void normalize_path(char *path)
{
    char *out = path;
    for (const char *in = path; *in; in++) {
        if (*in == '/' && (in[1] == '/' || (in[1] == '.' && (in[2] == '/' || in[2] == '\0'))))
            continue;
        *out++ = *in;
    }
    while (out > path + 1 && out[-1] == '/')
        out--;
    *out = '\0';
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
    normalize_path(s->root);
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
    /* A user's first login: the delivery agent may not have created it yet. */
    if (mkdir(s->root, 0700) == -1 && errno != EEXIST) {
        log_error("user=%s: cannot create maildir %s: %s", c->user, s->root, strerror(errno));
        goto failed;
    }
    if (maildir_scan(s->root, time(NULL), &s->md) == -1) {
        log_error("user=%s: cannot read maildir %s: %s", c->user, s->root, strerror(errno));
        goto failed;
    }
    if (maildir_open_cur(s->root, &s->cur_fd) == -1) {
        log_error("user=%s: cannot open %s/cur: %s", c->user, s->root, strerror(errno));
        goto failed;
    }
    s->live_count = s->md->count;
    s->live_size = s->md->total_size;
    c->session = s;
    return MAILBOX_OPEN_OK;
failed:
    mailbox_close(s);
    return MAILBOX_OPEN_FAILED;
}

unsigned mailbox_count(const struct pop3_session *s)
{
    return (unsigned)s->md->count;
}

int mailbox_open_message(struct pop3_session *s, size_t i)
{
    const char *name = maildir_msg_name(s->md, i);
    int fd = openat(s->cur_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    /* Another program changed its flags: same unique part, new name. */
    char found[NAME_MAX + 1];
    if (maildir_locate(s->cur_fd, name, s->md->msgs[i].unique_len, found, sizeof(found)) == -1)
        return -1;
    if (maildir_msg_rename(s->md, i, found) == -1)
        return -1;
    return openat(s->cur_fd, maildir_msg_name(s->md, i), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

int mailbox_mark_seen(struct pop3_session *s, size_t i)
{
    char renamed[NAME_MAX + 1];
    const char *name = maildir_msg_name(s->md, i);
    if (maildir_add_flag(s->cur_fd, name, 'S', renamed, sizeof(renamed)) == -1)
        return -1;
    if (renamed[0] != '\0' && strcmp(renamed, name) != 0)
        return maildir_msg_rename(s->md, i, renamed);
    return 0;
}

void mailbox_update(struct pop3_session *s, unsigned *deleted, unsigned *failed)
{
    *deleted = *failed = 0;
    for (size_t i = 0; i < s->md->count; i++) {
        if (!s->md->msgs[i].deleted)
            continue;
        int removed;
        if (maildir_expunge(s->cur_fd, maildir_msg_name(s->md, i), &removed) == -1) {
            log_error("cannot delete %s/cur/%s: %s", s->root, maildir_msg_name(s->md, i),
                      strerror(errno));
            (*failed)++;
        } else {
            (*deleted)++;
        }
    }
    if (*deleted > 0 && fsync(s->cur_fd) == -1)
        log_warning("fsync %s/cur: %s", s->root, strerror(errno));
}

void mailbox_close(struct pop3_session *s)
{
    if (s == NULL)
        return;
    if (s->cur_fd >= 0)
        close(s->cur_fd);
    if (s->locked)
        scoreboard_mailbox_unlock(s->sb, s->slot);
    maildir_free(s->md);
    free(s);
}
