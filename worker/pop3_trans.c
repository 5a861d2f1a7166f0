/*
 * TRANSACTION state (RFC 1939 section 5): STAT, LIST, UIDL, RETR, TOP,
 * DELE, RSET, NOOP. Everything answers from the list fixed at login; only
 * RETR/TOP touch message files. QUIT lives in pop3_update.c. STAT needs
 * only the count and size; the first command about messages loads the
 * list (worker/mailbox.h: mailbox_load).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/runtime/log.h"
#include "worker/loop.h"
#include "worker/mailbox.h"
#include "worker/pop3.h"
#include "worker/retr.h"

/* Parse a decimal argument strictly: digits only, no sign, no overflow. */
static int parse_number(const char *s, const char **end, unsigned long *out)
{
    unsigned long n = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (ULONG_MAX - 9) / 10)
            return -1;
        n = n * 10 + (unsigned long)(*p - '0');
    }
    *end = p;
    *out = n;
    return 0;
}

/* The session's messages, loaded at the first command that needs them. */
static const struct maildir *messages(struct conn *c, struct pop3_reply *r)
{
    if (mailbox_load(c->session, c->user) == -1) {
        pop3_set_reply(r, "SYS/TEMP", "Cannot read the mailbox, try again later");
        return NULL;
    }
    return c->session->md;
}

/* A message number naming a message that is not marked deleted. */
static int message_arg(struct conn *c, const char *arg, const char **rest, size_t *index,
                       struct pop3_reply *r)
{
    unsigned long n;
    const char *end;
    if (parse_number(arg, &end, &n) == -1 || (*end != '\0' && *end != ' ')) {
        pop3_set_reply(r, NULL, "Invalid message number");
        return -1;
    }
    if (n == 0 || n > c->session->count) {
        pop3_set_reply(r, NULL, "No such message");
        return -1;
    }
    const struct maildir *md = messages(c, r);
    if (md == NULL)
        return -1;
    if (md->msgs[n - 1].deleted) {
        pop3_set_reply(r, NULL, "Message %lu is deleted", n);
        return -1;
    }
    while (*end == ' ')
        end++;
    *rest = end;
    *index = n - 1;
    return 0;
}

/* A message number and nothing after it (RETR, DELE, LIST n, UIDL n). */
static int only_message_arg(struct conn *c, const char *args, size_t *index,
                            struct pop3_reply *r)
{
    const char *rest;
    if (message_arg(c, args, &rest, index, r) == -1)
        return -1;
    if (*rest) {
        pop3_set_reply(r, NULL, "Too many arguments");
        return -1;
    }
    return 0;
}

static enum pop3_verdict cmd_stat(struct conn *c, char *args, struct pop3_reply *r)
{
    if (*args) {
        pop3_set_reply(r, NULL, "STAT takes no arguments");
        return POP3_BAD;
    }
    pop3_set_reply(r, NULL, "%zu %llu", c->session->live_count,
                   (unsigned long long)c->session->live_size);
    return POP3_OK;
}

/* LIST and UIDL of the whole mailbox: a job, since 100,000 lines are megabytes. */
struct listing_job {
    struct conn_job job;
    size_t next;
    int uidl;
};

/* v in decimal, written backwards to end the buffer that end points past; its start. */
static char *decimal_before(char *end, unsigned long long v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

/*
 * One line of a LIST or UIDL listing, "N TEXT\r\n", without printf: a
 * 100,000-message UIDL is little else, and vfprintf was a third of the
 * CPU of such a poll.
 */
static void listing_line(struct conn *c, size_t n, const char *text, size_t len)
{
    char num[24];
    char *end = num + sizeof(num) - 1;
    *end = ' ';
    char *p = decimal_before(end, n);
    conn_reply_bytes(c, p, (size_t)(num + sizeof(num) - p));
    conn_reply_bytes(c, text, len);
    conn_reply_bytes(c, "\r\n", 2);
}

static int listing_produce(struct conn *c, struct conn_job *job, size_t high_water)
{
    struct listing_job *l = (struct listing_job *)job;
    const struct maildir *md = c->session->md;

    while (l->next < md->count) {
        if (buf_len(&c->out) >= high_water)
            return 0;
        size_t i = l->next++;
        if (md->msgs[i].deleted)
            continue;
        if (l->uidl) {
            size_t len;
            const char *uidl = maildir_msg_uidl(md, i, &len);
            listing_line(c, i + 1, uidl, len);
        } else {
            char size[24];
            char *p = decimal_before(size + sizeof(size), md->msgs[i].size);
            listing_line(c, i + 1, p, (size_t)(size + sizeof(size) - p));
        }
    }
    conn_reply(c, ".\r\n");
    return 1;
}

static void listing_release(struct conn_job *job)
{
    free(job);
}

static enum pop3_verdict listing(struct conn *c, char *args, struct pop3_reply *r, int uidl)
{
    if (*args) {
        size_t i;
        if (only_message_arg(c, args, &i, r) == -1)
            return POP3_ERR;
        if (uidl) {
            size_t len;
            const char *u = maildir_msg_uidl(c->session->md, i, &len);
            pop3_set_reply(r, NULL, "%zu %.*s", i + 1, (int)len, u);
        } else {
            pop3_set_reply(r, NULL, "%zu %llu", i + 1,
                           (unsigned long long)c->session->md->msgs[i].size);
        }
        return POP3_OK;
    }
    if (messages(c, r) == NULL)
        return POP3_ERR;
    struct listing_job *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        pop3_set_reply(r, "SYS/TEMP", "Out of memory");
        return POP3_ERR;
    }
    l->job.produce = listing_produce;
    l->job.release = listing_release;
    l->uidl = uidl;
    if (uidl)
        pop3_set_reply(r, NULL, "Unique-ID listing follows");
    else
        pop3_set_reply(r, NULL, "%zu messages (%llu octets)", c->session->live_count,
                       (unsigned long long)c->session->live_size);
    r->job = &l->job;
    return POP3_OK;
}

static enum pop3_verdict cmd_list(struct conn *c, char *args, struct pop3_reply *r)
{
    return listing(c, args, r, 0);
}

static enum pop3_verdict cmd_uidl(struct conn *c, char *args, struct pop3_reply *r)
{
    return listing(c, args, r, 1);
}

static enum pop3_verdict send_message(struct conn *c, size_t i, long top, struct pop3_reply *r)
{
    int fd = mailbox_open_message(c->session, i);
    if (fd == -1) {
        if (errno == ENOENT) {
            pop3_set_reply(r, NULL, "Message %zu is no longer available", i + 1);
            return POP3_ERR;
        }
        if (errno == ENOTSUP) {
            /* Retrying will not help: someone put something else in its place. */
            log_error("user=%s: message %zu (cur/%s) is not a regular file; not served",
                      c->user, i + 1, maildir_msg_name(c->session->md, i));
            pop3_set_reply(r, "SYS/PERM", "Message %zu cannot be read (not a regular file)",
                           i + 1);
            return POP3_ERR;
        }
        log_error("user=%s: cannot open message %zu: %m", c->user, i + 1);
        pop3_set_reply(r, "SYS/TEMP", "Cannot read the message, try again later");
        return POP3_ERR;
    }
    r->job = retr_job_new(c, i, fd, top);
    if (r->job == NULL) {
        pop3_set_reply(r, "SYS/TEMP", "Out of memory");
        return POP3_ERR;
    }
    if (top < 0)
        pop3_set_reply(r, NULL, "%llu octets",
                       (unsigned long long)c->session->md->msgs[i].size);
    else
        pop3_set_reply(r, NULL, "Top of message follows");
    return POP3_OK;
}

static enum pop3_verdict cmd_retr(struct conn *c, char *args, struct pop3_reply *r)
{
    size_t i;
    if (only_message_arg(c, args, &i, r) == -1)
        return POP3_ERR;
    return send_message(c, i, -1, r);
}

static enum pop3_verdict cmd_top(struct conn *c, char *args, struct pop3_reply *r)
{
    size_t i;
    const char *rest, *end;
    unsigned long lines;
    if (message_arg(c, args, &rest, &i, r) == -1)
        return POP3_ERR;
    if (*rest < '0' || *rest > '9' || rest[strspn(rest, "0123456789")] != '\0') {
        pop3_set_reply(r, NULL, "Usage: TOP message lines");
        return POP3_ERR;
    }
    /* More lines than a long holds is simply "the whole message". */
    if (parse_number(rest, &end, &lines) == -1 || lines > LONG_MAX)
        lines = LONG_MAX;
    return send_message(c, i, (long)lines, r);
}

static enum pop3_verdict cmd_dele(struct conn *c, char *args, struct pop3_reply *r)
{
    size_t i;
    if (only_message_arg(c, args, &i, r) == -1)
        return POP3_ERR;
    struct pop3_session *s = c->session;
    s->md->msgs[i].deleted = 1;
    s->live_count--;
    s->live_size -= s->md->msgs[i].size;
    c->stats.dele++;
    pop3_set_reply(r, NULL, "Message %zu deleted", i + 1);
    return POP3_OK;
}

static enum pop3_verdict cmd_rset(struct conn *c, char *args, struct pop3_reply *r)
{
    struct pop3_session *s = c->session;
    if (*args) {
        pop3_set_reply(r, NULL, "RSET takes no arguments");
        return POP3_BAD;
    }
    /* Not loaded yet: nothing can be marked. */
    for (size_t i = 0; s->md != NULL && i < s->md->count; i++)
        s->md->msgs[i].deleted = 0;
    s->live_count = s->count;
    s->live_size = s->total_size;
    pop3_set_reply(r, NULL, "%zu messages (%llu octets)", s->live_count,
                   (unsigned long long)s->live_size);
    return POP3_OK;
}

const struct pop3_command pop3_trans_commands[] = {
    { "STAT", POP3_IN(POP3_TRANSACTION), cmd_stat, 0 },
    { "LIST", POP3_IN(POP3_TRANSACTION), cmd_list, 0 },
    { "UIDL", POP3_IN(POP3_TRANSACTION), cmd_uidl, 0 },
    { "RETR", POP3_IN(POP3_TRANSACTION), cmd_retr, 0 },
    { "TOP", POP3_IN(POP3_TRANSACTION), cmd_top, 0 },
    { "DELE", POP3_IN(POP3_TRANSACTION), cmd_dele, 0 },
    { "RSET", POP3_IN(POP3_TRANSACTION), cmd_rset, 0 },
    { "QUIT", POP3_IN(POP3_TRANSACTION), pop3_cmd_quit_update, 0 },
    { NULL, 0, NULL, 0 },
};
