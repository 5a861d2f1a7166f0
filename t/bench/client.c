/*
 * The client side: one epoll loop, one state machine per connection, one
 * command at a time per connection (as real clients do). Every response is
 * checked: the status line, multi-line terminators and dot-stuffing, the
 * UIDL/LIST counts against STAT, and each RETR's octet count (dot-stuffing
 * removed, CRLF counted, as RFC 1939 defines sizes) against its LIST size.
 *
 * With --tls the same sessions run over TLS (tlsclient.c): the handshake
 * right after connect (implicit) or after STLS's +OK, then USER at once
 * (no second greeting, RFC 2595).
 *
 * Users never collide: connection slot g (of S slots over all processes)
 * only uses users u with u % S == g, so no two sessions in flight ask for
 * the same mailbox lock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "popload.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum cstate {
    CS_FREE, CS_CONNECTING, CS_GREETING, CS_USER, CS_PASS, CS_STAT, CS_UIDL, CS_LIST,
    CS_RETR, CS_DELE, CS_QUIT, CS_HOLD, CS_STLS, CS_HANDSHAKE,
    CS_CLOSE_WAIT,   /* --wait-close: QUIT answered, the server's close ends the session */
};

/* Multi-line body parser states (carried across reads). */
enum mstate { M_LS, M_DOT, M_DOTCR, M_MID, M_CR, M_END };

struct cconn {
    int fd;
    SSL *ssl;               /* NULL until TLS starts */
    SSL_SESSION *resume;    /* --tls-resume: the slot's newest session */
    unsigned generation;    /* counts sessions started on this slot */
    enum cstate st;
    long slot;              /* global slot (users) */
    long user;              /* user of the session in progress */
    int retry;              /* start again at retry_at (after a failure) */
    double retry_at;
    long next_user;         /* next user index this slot takes */
    int slot_done;          /* drain: every user of the slot was used */
    double t_start, t_deadline;
    char line[512];         /* status line being assembled */
    size_t linelen;
    int in_body;            /* reading a multi-line body */
    enum mstate ms;
    uint64_t body_octets;
    char mline[160];        /* current body line (UIDL/LIST) */
    size_t mlen;
    unsigned mlines;
    unsigned nmsgs;
    uint64_t total;
    uint32_t *sizes;        /* from LIST, 1-based message i at sizes[i-1] */
    unsigned cap;
    unsigned msg;           /* current message number in RETR/DELE */
    unsigned commands;
    char out[300];
    size_t outlen, outoff;
};

struct client {
    const struct opts *o;
    int ep;
    struct cconn *conns;
    long nconns;
    long total_slots;
    long sessions_left;     /* -1 = no limit */
    long active;
    long held;              /* idle: connections logged in and held */
    long need_retry;
    int stopping;
    int holding;
    struct sockaddr_in dst;
    SSL_CTX *tls;           /* NULL without --tls */
    struct result *res;
    int reported;
    double t_first, t_last;
};

static unsigned error_prints;

static void note_error(struct client *cl, struct cconn *c, enum err_kind k, const char *what)
{
    cl->res->errors[k]++;
    if (error_prints < 5 && !cl->o->quiet) {
        error_prints++;
        fprintf(stderr, "popload: error (state %d): %s: %.200s\n", (int)c->st, what, c->line);
    }
}

/* polite: the session ended well; a TLS client says close_notify first. */
static void conn_close(struct client *cl, struct cconn *c, int polite)
{
    if (c->ssl) {
        tlsc_close(c->ssl, polite);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        cl->active--;
    }
    if (c->st == CS_HOLD)
        cl->held--;
    c->st = CS_FREE;
}

static int next_user_for(struct client *cl, struct cconn *c, long *user)
{
    long n = cl->o->user ? 1 : (cl->o->user_list ? users_count() : cl->o->users);
    if (cl->o->user) {
        *user = 0;
        return 0;
    }
    if (c->next_user >= n) {
        if (cl->o->scenario == SC_DRAIN)
            return -1;      /* each mailbox is drained once */
        c->next_user = c->slot;
    }
    *user = c->next_user;
    c->next_user += cl->total_slots;
    return 0;
}

/* send(2) or SSL_write: after EAGAIN, the same bytes again (OpenSSL requires it). */
static ssize_t send_some(struct cconn *c)
{
    if (c->ssl)
        return tlsc_write(c->ssl, c->out + c->outoff, c->outlen - c->outoff);
    return send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
}

static void interest(struct client *cl, struct cconn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(cl->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int send_cmd(struct client *cl, struct cconn *c, const char *fmt, const char *arg,
                    unsigned num)
{
    int n;
    if (arg)
        n = snprintf(c->out, sizeof(c->out), fmt, arg);
    else
        n = snprintf(c->out, sizeof(c->out), fmt, num);
    if (n < 0 || (size_t)n >= sizeof(c->out))
        return -1;
    c->outlen = (size_t)n;
    c->outoff = 0;
    c->t_deadline = now_mono() + cl->o->timeout;
    ssize_t w = send_some(c);
    if (w < 0 && errno != EAGAIN)
        return -1;
    if (w > 0)
        c->outoff = (size_t)w;
    if (c->outoff < c->outlen)
        interest(cl, c, EPOLLIN | EPOLLOUT);
    return 0;
}

static void start_session(struct client *cl, struct cconn *c);

static void end_session(struct client *cl, struct cconn *c, int ok)
{
    double t = now_mono();
    if (ok) {
        cl->res->sessions++;
        hist_add(&cl->res->lat, (uint64_t)((t - c->t_start) * 1e6));
        cl->t_last = t;
    }
    conn_close(cl, c, ok);
    if (cl->stopping || cl->o->scenario == SC_IDLE)
        return;
    if (ok) {
        start_session(cl, c);
    } else {
        /* After a failure, start again a little later (no tight loop on a dead server). */
        c->retry = 1;
        c->retry_at = t + 0.01;
        cl->need_retry++;
    }
}

static void fail(struct client *cl, struct cconn *c, enum err_kind k, const char *what)
{
    note_error(cl, c, k, what);
    end_session(cl, c, 0);
}

/* EOF: the end a --wait-close session waits for, an error anywhere else. */
static void closed_by_server(struct client *cl, struct cconn *c)
{
    if (c->st == CS_CLOSE_WAIT)
        end_session(cl, c, 1);
    else
        fail(cl, c, ERR_CLOSED, "connection closed by server");
}

static void start_session(struct client *cl, struct cconn *c)
{
    long user;
    if (cl->sessions_left == 0 || c->slot_done)
        return;
    if (next_user_for(cl, c, &user) == -1) {
        c->slot_done = 1;
        return;
    }
    if (cl->sessions_left > 0)
        cl->sessions_left--;
    c->user = user;
    c->generation++;
    c->linelen = 0;
    c->in_body = 0;
    c->nmsgs = 0;
    c->commands = 0;
    c->t_start = now_mono();
    c->t_deadline = c->t_start + cl->o->timeout;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->st = CS_CONNECTING;
        fail(cl, c, ERR_CONNECT, strerror(errno));
        return;
    }
    cl->active++;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cl->o->sources > 0) {
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(c->slot % cl->o->sources));
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
            fail(cl, c, ERR_CONNECT, strerror(errno));
            return;
        }
    }
    if (connect(c->fd, (struct sockaddr *)&cl->dst, sizeof(cl->dst)) == -1 &&
        errno != EINPROGRESS) {
        c->st = CS_CONNECTING;
        fail(cl, c, ERR_CONNECT, strerror(errno));
        return;
    }
    c->st = CS_CONNECTING;
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
    epoll_ctl(cl->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* "+OK n m" from STAT. */
static int parse_stat(const char *s, unsigned *n, uint64_t *total)
{
    unsigned long long a, b;
    if (sscanf(s, "+OK %llu %llu", &a, &b) != 2 || a > 10000000)
        return -1;
    *n = (unsigned)a;
    *total = b;
    return 0;
}

static void send_quit(struct client *cl, struct cconn *c)
{
    c->st = CS_QUIT;
    if (send_cmd(cl, c, "QUIT\r\n", NULL, 0) == -1)
        fail(cl, c, ERR_CLOSED, "send QUIT");
}

/* One step of the handshake; once it is done the POP3 session goes on. */
static void tls_step(struct client *cl, struct cconn *c)
{
    int want_out;
    int r = tlsc_handshake(c->ssl, &want_out);
    if (r == -1)
        { fail(cl, c, ERR_TLS, "TLS handshake failed"); return; }
    if (r == 0) {
        interest(cl, c, want_out ? EPOLLOUT : EPOLLIN);
        return;
    }
    cl->res->tls_handshakes++;
    if (SSL_session_reused(c->ssl))
        cl->res->tls_resumed++;
    tlsc_describe(c->ssl, cl->res);
    interest(cl, c, EPOLLIN);
    if (cl->o->tls == TLS_IMPLICIT) {
        c->st = CS_GREETING;
        return;
    }
    /* After STLS the client speaks first (RFC 2595: no new greeting). */
    char name[128];
    const char *pw;
    user_name(cl->o, c->user, name, sizeof(name), &pw);
    c->st = CS_USER;
    if (send_cmd(cl, c, "USER %s\r\n", name, 0) == -1)
        fail(cl, c, ERR_CLOSED, "send USER");
}

static void start_tls(struct client *cl, struct cconn *c)
{
    c->ssl = tlsc_new(cl->tls, c->fd, cl->o->tls_resume ? &c->resume : NULL);
    if (c->ssl == NULL)
        { fail(cl, c, ERR_TLS, "SSL_new"); return; }
    c->st = CS_HANDSHAKE;
    c->t_deadline = now_mono() + cl->o->timeout;
    tls_step(cl, c);
}

static void send_retr_or_next(struct client *cl, struct cconn *c)
{
    if (c->msg <= c->nmsgs) {
        c->st = CS_RETR;
        if (send_cmd(cl, c, "RETR %u\r\n", NULL, c->msg) == -1)
            fail(cl, c, ERR_CLOSED, "send RETR");
        return;
    }
    if (cl->o->scenario == SC_DRAIN && c->nmsgs > 0) {
        c->msg = 1;
        c->st = CS_DELE;
        if (send_cmd(cl, c, "DELE %u\r\n", NULL, c->msg) == -1)
            fail(cl, c, ERR_CLOSED, "send DELE");
        return;
    }
    send_quit(cl, c);
}

/* A body line of UIDL or LIST (without CRLF, unstuffed). */
static int body_line(struct cconn *c)
{
    c->mline[c->mlen < sizeof(c->mline) ? c->mlen : sizeof(c->mline) - 1] = '\0';
    unsigned long long num, size;
    char uid[80];
    c->mlines++;
    if (c->st == CS_UIDL) {
        if (sscanf(c->mline, "%llu %79s", &num, uid) != 2 || num != c->mlines ||
            strlen(uid) > 70)
            return -1;
        for (const char *p = uid; *p; p++)
            if (*p < 0x21 || *p > 0x7e)
                return -1;
        return 0;
    }
    if (sscanf(c->mline, "%llu %llu", &num, &size) != 2 || num != c->mlines ||
        num > c->nmsgs || size > UINT32_MAX)
        return -1;
    c->sizes[num - 1] = (uint32_t)size;
    c->body_octets += size;
    return 0;
}

/*
 * Feed body bytes; returns bytes consumed, with c->ms == M_END once the
 * terminating ".\r\n" is seen, or -1 on a malformed body.
 */
static ssize_t feed_body(struct cconn *c, const char *p, size_t n)
{
    int keep = c->st != CS_RETR;    /* UIDL/LIST: collect the line text */
    size_t i;
    for (i = 0; i < n && c->ms != M_END; i++) {
        if (!keep && c->ms == M_MID) {
            /* Inside a RETR line: jump to its LF (this is most of the bytes). */
            const char *lf = memchr(p + i, '\n', n - i);
            if (lf) {
                size_t end = (size_t)(lf - p);
                if (end == i || p[end - 1] != '\r')
                    return -1;              /* bare LF */
                c->body_octets += end - i + 1;
                c->ms = M_LS;
                i = end;
            } else {
                c->body_octets += n - i;
                c->ms = p[n - 1] == '\r' ? M_CR : M_MID;
                i = n - 1;
            }
            continue;
        }
        char ch = p[i];
        switch (c->ms) {
        case M_LS:
            if (ch == '.') {
                c->ms = M_DOT;
                continue;
            }
            /* fallthrough */
        case M_MID:
            if (ch == '\n')
                return -1;              /* bare LF */
            if (c->st == CS_RETR)
                c->body_octets++;
            if (ch == '\r')
                c->ms = M_CR;
            else {
                c->ms = M_MID;
                if (keep && c->mlen < sizeof(c->mline))
                    c->mline[c->mlen++] = ch;
            }
            break;
        case M_DOT:
            if (ch == '\r') {
                c->ms = M_DOTCR;
            } else if (ch == '.') {     /* a stuffed dot: one '.' of content */
                if (c->st == CS_RETR)
                    c->body_octets++;
                if (keep && c->mlen < sizeof(c->mline))
                    c->mline[c->mlen++] = ch;
                c->ms = M_MID;
            } else {
                return -1;              /* a dot line that was not stuffed */
            }
            break;
        case M_DOTCR:
            if (ch != '\n')
                return -1;
            c->ms = M_END;
            break;
        case M_CR:
            if (c->st == CS_RETR)
                c->body_octets++;
            if (ch == '\n') {
                c->ms = M_LS;
                if (keep) {
                    if (body_line(c) == -1)
                        return -1;
                    c->mlen = 0;
                }
            } else if (ch != '\r') {
                c->ms = M_MID;
            }
            break;
        case M_END:
            break;
        }
    }
    return (ssize_t)i;
}

static void begin_body(struct cconn *c)
{
    c->in_body = 1;
    c->ms = M_LS;
    c->body_octets = 0;
    c->mlen = 0;
    c->mlines = 0;
}

/* The multi-line body of the current command is complete. */
static void body_done(struct client *cl, struct cconn *c)
{
    c->in_body = 0;
    if (c->st == CS_UIDL) {
        if (c->mlines != c->nmsgs)
            { fail(cl, c, ERR_VERIFY, "UIDL count differs from STAT"); return; }
        if (cl->o->scenario == SC_BIGBOX)
            { send_quit(cl, c); return; }
        c->st = CS_LIST;
        if (send_cmd(cl, c, "LIST\r\n", NULL, 0) == -1)
            fail(cl, c, ERR_CLOSED, "send LIST");
        return;
    }
    if (c->st == CS_LIST) {
        if (c->mlines != c->nmsgs || c->body_octets != c->total)
            { fail(cl, c, ERR_VERIFY, "LIST differs from STAT"); return; }
        c->msg = 1;
        { send_retr_or_next(cl, c); return; }
    }
    /* RETR */
    if (c->body_octets != c->sizes[c->msg - 1])
        { fail(cl, c, ERR_VERIFY, "RETR octets differ from LIST size"); return; }
    cl->res->retr_octets += c->body_octets;
    c->msg++;
    send_retr_or_next(cl, c);
}

/* A complete status line in c->line. */
static void status_line(struct client *cl, struct cconn *c)
{
    const struct opts *o = cl->o;
    if (strncmp(c->line, "+OK", 3) != 0 || (c->line[3] != '\0' && c->line[3] != ' ')) {
        if (strncmp(c->line, "-ERR", 4) == 0)
            { fail(cl, c, ERR_NEG, "negative reply"); return; }
        { fail(cl, c, ERR_PROTO, "malformed status line"); return; }
    }
    if (c->st != CS_GREETING)
        c->commands++;
    char name[128];
    const char *pw;
    switch (c->st) {
    case CS_GREETING:
        if (o->tls == TLS_STLS && c->ssl == NULL) {
            c->st = CS_STLS;
            if (send_cmd(cl, c, "STLS\r\n", NULL, 0) == -1)
                fail(cl, c, ERR_CLOSED, "send STLS");
            return;
        }
        user_name(o, c->user, name, sizeof(name), &pw);
        c->st = CS_USER;
        if (send_cmd(cl, c, "USER %s\r\n", name, 0) == -1)
            fail(cl, c, ERR_CLOSED, "send USER");
        return;
    case CS_USER:
        user_name(o, c->user, name, sizeof(name), &pw);
        c->st = CS_PASS;
        if (send_cmd(cl, c, "PASS %s\r\n", pw, 0) == -1)
            fail(cl, c, ERR_CLOSED, "send PASS");
        return;
    case CS_PASS:
        if (o->scenario == SC_IDLE) {
            c->st = CS_HOLD;
            cl->held++;
            cl->res->idle_established++;
            return;
        }
        c->st = CS_STAT;
        if (send_cmd(cl, c, "STAT\r\n", NULL, 0) == -1)
            fail(cl, c, ERR_CLOSED, "send STAT");
        return;
    case CS_STAT:
        if (parse_stat(c->line, &c->nmsgs, &c->total) == -1)
            { fail(cl, c, ERR_PROTO, "STAT reply"); return; }
        if (o->scenario == SC_LOGIN || (o->scenario == SC_BIGBOX && o->stat_only))
            { send_quit(cl, c); return; }
        if (c->nmsgs > c->cap) {
            uint32_t *s = realloc(c->sizes, c->nmsgs * sizeof(*s));
            if (!s)
                { fail(cl, c, ERR_VERIFY, "out of memory"); return; }
            c->sizes = s;
            c->cap = c->nmsgs;
        }
        c->st = CS_UIDL;
        if (send_cmd(cl, c, "UIDL\r\n", NULL, 0) == -1)
            fail(cl, c, ERR_CLOSED, "send UIDL");
        return;
    case CS_UIDL:
    case CS_LIST:
        begin_body(c);
        return;
    case CS_RETR: {
        unsigned long long octets;
        if (sscanf(c->line, "+OK %llu", &octets) == 1 && octets != c->sizes[c->msg - 1])
            { fail(cl, c, ERR_VERIFY, "RETR status size differs from LIST"); return; }
        begin_body(c);
        return;
    }
    case CS_DELE:
        c->msg++;
        if (c->msg <= c->nmsgs) {
            if (send_cmd(cl, c, "DELE %u\r\n", NULL, c->msg) == -1)
                fail(cl, c, ERR_CLOSED, "send DELE");
            return;
        }
        { send_quit(cl, c); return; }
    case CS_STLS:
        start_tls(cl, c);
        return;
    case CS_QUIT:
        cl->res->commands += c->commands;
        if (o->wait_close) {
            /* Through a proxy the close is the end of the work: both hops torn down. */
            c->st = CS_CLOSE_WAIT;
            return;
        }
        { end_session(cl, c, 1); return; }
    default:
        { fail(cl, c, ERR_PROTO, "unexpected data"); return; }
    }
}

/* Everything received on a connection. */
static void on_data(struct client *cl, struct cconn *c, const char *p, size_t n)
{
    while (n > 0 && c->st != CS_FREE) {
        if (c->in_body) {
            ssize_t used = feed_body(c, p, n);
            if (used < 0)
                { fail(cl, c, ERR_PROTO, "malformed multi-line body"); return; }
            p += used;
            n -= (size_t)used;
            if (c->ms == M_END)
                body_done(cl, c);
            continue;
        }
        const char *lf = memchr(p, '\n', n);
        size_t take = lf ? (size_t)(lf - p) + 1 : n;
        if (c->linelen + take >= sizeof(c->line))
            { fail(cl, c, ERR_PROTO, "status line too long"); return; }
        memcpy(c->line + c->linelen, p, take);
        c->linelen += take;
        p += take;
        n -= take;
        if (!lf)
            break;
        if (c->linelen < 2 || c->line[c->linelen - 2] != '\r')
            { fail(cl, c, ERR_PROTO, "status line without CRLF"); return; }
        c->line[c->linelen - 2] = '\0';
        c->linelen = 0;
        if (c->st == CS_HOLD)
            { fail(cl, c, ERR_PROTO, "unsolicited data while idle"); return; }
        status_line(cl, c);
        /* RFC 2595: nothing may follow STLS's +OK in the clear. */
        if (c->st == CS_HANDSHAKE && n > 0)
            { fail(cl, c, ERR_PROTO, "data after the STLS reply"); return; }
    }
}

/*
 * Decrypted input, bounded per event as the plain path is. Each SSL_read
 * gets room for a whole record (16 KB), so nothing stays decrypted inside
 * OpenSSL where epoll cannot see it.
 */
static void tls_input(struct client *cl, struct cconn *c, char *buf, size_t size)
{
    size_t got = 0;
    ssize_t r = -1;
    while (size - got >= 16384) {
        r = tlsc_read(c->ssl, buf + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    int err = r < 0 ? errno : 0;
    unsigned generation = c->generation;
    if (got > 0) {
        cl->res->bytes_in += got;
        on_data(cl, c, buf, got);
    }
    if (c->generation != generation || c->st == CS_FREE)
        return;             /* the session ended on that data */
    if (r == 0)
        closed_by_server(cl, c);
    else if (r < 0 && err != EAGAIN)
        fail(cl, c, ERR_CLOSED, strerror(err));
}

static void on_event(struct client *cl, struct cconn *c, uint32_t ev)
{
    static char rbuf[256 * 1024];
    if (c->st == CS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err)
            { fail(cl, c, ERR_CONNECT, strerror(err)); return; }
        if (cl->o->tls == TLS_IMPLICIT)
            { start_tls(cl, c); return; }
        c->st = CS_GREETING;
        interest(cl, c, EPOLLIN);
        return;
    }
    if (c->st == CS_HANDSHAKE)
        { tls_step(cl, c); return; }
    if ((ev & EPOLLOUT) && c->outoff < c->outlen) {
        ssize_t w = send_some(c);
        if (w < 0 && errno != EAGAIN)
            { fail(cl, c, ERR_CLOSED, strerror(errno)); return; }
        if (w > 0)
            c->outoff += (size_t)w;
        if (c->outoff == c->outlen)
            interest(cl, c, EPOLLIN);
    }
    if (c->ssl && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        tls_input(cl, c, rbuf, sizeof(rbuf));
        return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        /* Bounded: one read per event, so a fast stream cannot starve the others. */
        ssize_t r = recv(c->fd, rbuf, sizeof(rbuf), 0);
        if (r == 0)
            { closed_by_server(cl, c); return; }
        if (r < 0) {
            if (errno != EAGAIN)
                fail(cl, c, ERR_CLOSED, strerror(errno));
            return;
        }
        cl->res->bytes_in += (uint64_t)r;
        on_data(cl, c, rbuf, (size_t)r);
    }
}

static void sweep_timeouts(struct client *cl, double t)
{
    for (long i = 0; i < cl->nconns; i++) {
        struct cconn *c = &cl->conns[i];
        if (c->st != CS_FREE && c->st != CS_HOLD && t > c->t_deadline)
            fail(cl, c, ERR_TIMEOUT, "no response in time");
    }
}

static void retry_due(struct client *cl, double t)
{
    for (long i = 0; i < cl->nconns && cl->need_retry > 0; i++) {
        struct cconn *c = &cl->conns[i];
        if (c->retry && t >= c->retry_at) {
            c->retry = 0;
            cl->need_retry--;
            if (!cl->stopping)
                start_session(cl, c);
        }
    }
}

static void run_loop(struct client *cl, double until, int (*done)(struct client *))
{
    struct epoll_event evs[512];
    double last_sweep = now_mono();
    for (;;) {
        double t = now_mono();
        if (t >= until || done(cl))
            return;
        int ms = (int)((until - t) * 1000) + 1;
        if (ms > 200)
            ms = 200;
        int n = epoll_wait(cl->ep, evs, 512, ms);
        for (int i = 0; i < n; i++)
            on_event(cl, evs[i].data.ptr, evs[i].events);
        t = now_mono();
        if (cl->need_retry > 0)
            retry_due(cl, t);
        if (t - last_sweep >= 0.5) {
            sweep_timeouts(cl, t);
            last_sweep = t;
        }
    }
}

static int none_active(struct client *cl) { return cl->active == 0; }
static int never(struct client *cl) { (void)cl; return 0; }

/* idle: keep at most concurrency logins in flight until all nconns are logged in. */
static void idle_ramp(struct client *cl, double until)
{
    long next = 0;
    struct epoll_event evs[512];
    double last_sweep = now_mono(), last_progress = last_sweep;
    uint64_t established = 0;
    while (now_mono() < until) {
        /* A server that stops accepting: give up after --timeout without a new login. */
        if (cl->res->idle_established != established) {
            established = cl->res->idle_established;
            last_progress = now_mono();
        } else if (now_mono() - last_progress > cl->o->timeout) {
            break;
        }
        while (next < cl->nconns && cl->active - cl->held < cl->o->concurrency)
            start_session(cl, &cl->conns[next++]);
        if (next == cl->nconns && cl->active == cl->held)
            return;
        int n = epoll_wait(cl->ep, evs, 512, 100);
        for (int i = 0; i < n; i++)
            on_event(cl, evs[i].data.ptr, evs[i].events);
        double t = now_mono();
        if (t - last_sweep >= 0.5) {
            sweep_timeouts(cl, t);
            last_sweep = t;
        }
    }
}

static void idle_release(struct client *cl)
{
    for (long i = 0; i < cl->nconns; i++) {
        struct cconn *c = &cl->conns[i];
        if (c->st == CS_HOLD) {
            cl->held--;
            c->commands = 2;
            send_quit(cl, c);
        }
    }
    cl->stopping = 1;
    run_loop(cl, now_mono() + cl->o->timeout, none_active);
    cl->res->unfinished += (uint64_t)cl->active;
}

int client_run(const struct opts *o, int proc_index, long sessions, long first_conn,
               long nconns, int ready_fd, int release_fd, struct result *res)
{
    struct client cl = { .o = o, .res = res, .sessions_left = sessions > 0 ? sessions : -1 };
    memset(res, 0, sizeof(*res));
    cl.dst.sin_family = AF_INET;
    cl.dst.sin_port = htons((uint16_t)o->port);
    inet_pton(AF_INET, o->host, &cl.dst.sin_addr);
    cl.ep = epoll_create1(EPOLL_CLOEXEC);
    cl.nconns = o->scenario == SC_IDLE ? nconns : o->concurrency;
    cl.total_slots = o->scenario == SC_IDLE ? 1 : (long)o->procs * o->concurrency;
    cl.conns = calloc((size_t)cl.nconns, sizeof(*cl.conns));
    if (cl.ep < 0 || !cl.conns)
        return -1;
    if (o->tls != TLS_OFF && (cl.tls = tlsc_ctx_new(o)) == NULL)
        return -1;
    for (long i = 0; i < cl.nconns; i++) {
        struct cconn *c = &cl.conns[i];
        c->fd = -1;
        c->slot = o->scenario == SC_IDLE ? first_conn + i : (long)proc_index * o->concurrency + i;
        c->next_user = c->slot;
    }
    double t0 = now_mono();
    cl.t_first = cl.t_last = t0;
    if (o->scenario == SC_IDLE) {
        idle_ramp(&cl, t0 + o->duration);
        res->elapsed = now_mono() - t0;
        char byte = 'R';
        if (write(ready_fd, &byte, 1) != 1)
            return -1;
        /* Hold until the parent has measured, answering nothing (bounded). */
        struct pollfd pf = { .fd = release_fd, .events = POLLIN };
        double limit = now_mono() + o->hold + o->duration + 120;
        while (now_mono() < limit) {
            run_loop(&cl, now_mono() + 0.2, never);
            if (poll(&pf, 1, 0) > 0)
                break;
        }
        idle_release(&cl);
    } else {
        for (long i = 0; i < cl.nconns; i++)
            start_session(&cl, &cl.conns[i]);
        run_loop(&cl, t0 + o->duration, none_active);
        cl.stopping = 1;
        double end_of_load = now_mono();
        run_loop(&cl, end_of_load + o->timeout, none_active);
        res->unfinished += (uint64_t)cl.active;
        res->elapsed = (cl.t_last > cl.t_first ? cl.t_last : end_of_load) - cl.t_first;
    }
    for (long i = 0; i < cl.nconns; i++) {
        conn_close(&cl, &cl.conns[i], 0);
        SSL_SESSION_free(cl.conns[i].resume);
        free(cl.conns[i].sizes);
    }
    free(cl.conns);
    SSL_CTX_free(cl.tls);
    close(cl.ep);
    return 0;
}
