#include "mailbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"
#include "maildir/expunge.h"
#include "maildir/locate.h"

static int take_lock(const char *root)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", root, MAILBOX_LOCK_NAME) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd == -1)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
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
    s->lock_fd = s->cur_fd = -1;

    /* A user's first login: the delivery agent may not have created it yet. */
    if (mkdir(maildir, 0700) == -1 && errno != EEXIST) {
        log_error("user=%s: cannot create maildir %s: %s", c->user, maildir, strerror(errno));
        goto failed;
    }
    s->lock_fd = take_lock(maildir);
    if (s->lock_fd == -1) {
        if (errno == EWOULDBLOCK) {
            free(s);
            return MAILBOX_OPEN_IN_USE;
        }
        log_error("user=%s: cannot lock %s: %s", c->user, maildir, strerror(errno));
        goto failed;
    }
    if (maildir_scan(maildir, time(NULL), &s->md) == -1) {
        log_error("user=%s: cannot read maildir %s: %s", c->user, maildir, strerror(errno));
        goto failed;
    }
    if (maildir_open_cur(maildir, &s->cur_fd) == -1) {
        log_error("user=%s: cannot open %s/cur: %s", c->user, maildir, strerror(errno));
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
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    maildir_free(s->md);
    free(s);
}
