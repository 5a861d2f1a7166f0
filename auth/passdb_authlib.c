/*
 * The authlib password database's connections (auth/passdb_authlib.h): a
 * queue of requests, PASSDB_AUTHLIB_CONNECTIONS slots, each a non-blocking
 * connection to authdaemond carrying one request, watched by our own epoll
 * descriptor, which the helper's loop watches in turn.
 */
#include "auth/passdb_authlib.h"

#include "auth/passdb_queue.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/runtime/clock.h"
#include "daemon/runtime/log.h"

#define NONE PASSDB_QUEUE_NONE

struct areq {
    void *ctx;
    double deadline;
    char user[AUTH_USER_MAX];
    char password[AUTH_PASS_MAX];
};

/* One connection: the request on it, what is left to write, what was read. */
struct aconn {
    int fd;                     /* -1: idle */
    int req;
    char out[32 + 16 + AUTH_USER_MAX + AUTH_PASS_MAX];
    size_t out_len, out_done;
    char in[PASSDB_AUTHLIB_ANSWER_MAX + 1];
    size_t in_len;
};

struct passdb_authlib {
    struct passdb_authlib_settings s;
    passdb_authlib_done_fn *done;
    void *arg;
    int epfd;
    struct areq *reqs;
    struct passdb_slots slots;  /* reqs[i] is in use while slot i is */
    struct passdb_fifo queue;   /* waiting for a connection, in arrival order */
    struct aconn conns[PASSDB_AUTHLIB_CONNECTIONS];
};

int passdb_authlib_settings_from(struct passdb_authlib_settings *s, const struct config *cfg,
                                 char *err, size_t errlen)
{
    struct sockaddr_un sa;
    const struct passwd *pw = getpwnam(cfg->user);

    memset(s, 0, sizeof(*s));
    if (pw == NULL) {
        snprintf(err, errlen, "mail user \"%s\" does not exist", cfg->user);
        return -1;
    }
    if (strlen(cfg->authlib_socket) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "authlib_socket is longer than a socket path may be");
        return -1;
    }
    s->mail_uid = pw->pw_uid;
    s->timeout = cfg->authlib_timeout;
    snprintf(s->socket_path, sizeof(s->socket_path), "%s", cfg->authlib_socket);
    snprintf(s->maildir_template, sizeof(s->maildir_template), "%s", cfg->maildir);
    return 0;
}

/* Hand the answer over and free request i (off the queue or a connection already). */
static void answer(struct passdb_authlib *ab, int i, const struct passdb_ldap_answer *ans)
{
    struct areq *r = &ab->reqs[i];
    void *ctx = r->ctx;

    explicit_bzero(r, sizeof(*r));
    passdb_slots_put(&ab->slots, i);
    ab->done(ab->arg, ctx, ans);
}

static void answer_outage(struct passdb_authlib *ab, int i, const char *reason, const char *why)
{
    struct passdb_ldap_answer ans;

    memset(&ans, 0, sizeof(ans));
    ans.status = AUTH_TEMPFAIL;
    ans.outage = 1;
    ans.reason = reason;
    /* The socket's path is in the startup log; the message says what went wrong. */
    snprintf(ans.message, sizeof(ans.message), "authdaemond: %.200s", why);
    answer(ab, i, &ans);
}

/* Close connection c and forget what it carried (its request is answered by the caller). */
static void conn_close(struct aconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->req = NONE;
    explicit_bzero(c->out, sizeof(c->out));
    explicit_bzero(c->in, c->in_len);
    c->out_len = c->out_done = c->in_len = 0;
}

static void conn_fail(struct passdb_authlib *ab, struct aconn *c, const char *reason,
                      const char *why)
{
    int i = c->req;

    conn_close(c);
    if (i != NONE)
        answer_outage(ab, i, reason, why);
}

/* The answer in c->in is complete (EOF): parse it and answer. */
static void conn_finished(struct passdb_authlib *ab, struct aconn *c)
{
    struct passdb_ldap_answer ans;
    int i = c->req;

    c->in[c->in_len] = '\0';
    if (c->in_len == 0) {
        /* authdaemond's way of saying a module could not answer (e.g. its database is down). */
        conn_fail(ab, c, "authlib-down", "closed the connection without an answer");
        return;
    }
    if (passdb_authlib_parse(&ab->s, ab->reqs[i].user, c->in, &ans) == -1) {
        conn_fail(ab, c, "authlib-error", "an answer that is not authlib's protocol");
        return;
    }
    conn_close(c);
    answer(ab, i, &ans);
}

static void conn_read(struct passdb_authlib *ab, struct aconn *c)
{
    for (;;) {
        if (c->in_len >= PASSDB_AUTHLIB_ANSWER_MAX) {
            conn_fail(ab, c, "authlib-error", "an answer longer than fastpop reads");
            return;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, PASSDB_AUTHLIB_ANSWER_MAX - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n == 0) {
            conn_finished(ab, c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_fail(ab, c, "authlib-down", strerror(errno));
        return;
    }
}

/* Write what is left of the request; once it is all out, wait for the answer. */
static void conn_write(struct passdb_authlib *ab, struct aconn *c)
{
    while (c->out_done < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_done, c->out_len - c->out_done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;   /* EPOLLOUT brings us back */
        if (n < 0) {
            conn_fail(ab, c, "authlib-down", strerror(errno));
            return;
        }
        c->out_done += (size_t)n;
    }
    /* All on the wire: the password is no longer needed here. */
    explicit_bzero(c->out, sizeof(c->out));
    explicit_bzero(ab->reqs[c->req].password, sizeof(ab->reqs[c->req].password));
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)(c - ab->conns) };
    if (epoll_ctl(ab->epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1)
        conn_fail(ab, c, "authlib-error", strerror(errno));
}

/* Put queued request i on idle connection c. */
static void conn_start(struct passdb_authlib *ab, struct aconn *c, int i)
{
    struct areq *r = &ab->reqs[i];
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    /* Everything after the first line counts in <n> (auth/passdb_authlib.h). */
    size_t body = strlen("pop3\nlogin\n") + strlen(r->user) + 1 + strlen(r->password) + 1;

    c->req = i;
    c->out_len = (size_t)snprintf(c->out, sizeof(c->out), "AUTH %zu\npop3\nlogin\n%s\n%s\n", body,
                                  r->user, r->password);
    c->out_done = c->in_len = 0;
    /* Its length was checked against sun_path in passdb_authlib_settings_from(). */
    memcpy(sa.sun_path, ab->s.socket_path, strlen(ab->s.socket_path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd == -1) {
        conn_fail(ab, c, "authlib-error", strerror(errno));
        return;
    }
    /* A Unix socket connects at once or not at all; EAGAIN is a full accept queue. */
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 && errno != EINPROGRESS) {
        char why[128];
        snprintf(why, sizeof(why), "%s", errno == EAGAIN ? "accept queue full" : strerror(errno));
        conn_fail(ab, c, "authlib-down", why);
        return;
    }
    struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)(c - ab->conns) };
    if (epoll_ctl(ab->epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1) {
        conn_fail(ab, c, "authlib-error", strerror(errno));
        return;
    }
    conn_write(ab, c);
}

/* Move queued requests onto idle connections. */
static void pump(struct passdb_authlib *ab)
{
    for (int k = 0; k < PASSDB_AUTHLIB_CONNECTIONS && ab->queue.head != NONE; k++) {
        struct aconn *c = &ab->conns[k];
        if (c->fd >= 0)
            continue;
        conn_start(ab, c, passdb_fifo_pop(&ab->slots, &ab->queue));
    }
}

static void expire(struct passdb_authlib *ab)
{
    double t = clock_mono();

    for (int k = 0; k < PASSDB_AUTHLIB_CONNECTIONS; k++) {
        struct aconn *c = &ab->conns[k];
        if (c->fd >= 0 && ab->reqs[c->req].deadline <= t)
            conn_fail(ab, c, "authlib-timeout", "no answer within authlib_timeout");
    }
    /* The queue is in arrival order, so its deadlines are too. */
    while (ab->queue.head != NONE && ab->reqs[ab->queue.head].deadline <= t)
        answer_outage(ab, passdb_fifo_pop(&ab->slots, &ab->queue), "authlib-timeout",
                      "no free connection within authlib_timeout");
}

struct passdb_authlib *passdb_authlib_new(const struct passdb_authlib_settings *s,
                                          passdb_authlib_done_fn *done, void *arg)
{
    struct passdb_authlib *ab = calloc(1, sizeof(*ab));

    if (ab == NULL || (ab->reqs = calloc(PASSDB_AUTHLIB_MAX_REQUESTS, sizeof(*ab->reqs))) == NULL ||
        passdb_slots_init(&ab->slots, PASSDB_AUTHLIB_MAX_REQUESTS) == -1) {
        if (ab != NULL)
            free(ab->reqs);
        free(ab);
        errno = ENOMEM;
        return NULL;
    }
    if ((ab->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
        int saved = errno;
        passdb_slots_fini(&ab->slots);
        free(ab->reqs);
        free(ab);
        errno = saved;
        return NULL;
    }
    ab->s = *s;
    ab->done = done;
    ab->arg = arg;
    passdb_fifo_init(&ab->queue);
    for (int k = 0; k < PASSDB_AUTHLIB_CONNECTIONS; k++) {
        ab->conns[k].fd = -1;
        ab->conns[k].req = NONE;
    }
    return ab;
}

void passdb_authlib_free(struct passdb_authlib *ab)
{
    if (ab == NULL)
        return;
    for (int k = 0; k < PASSDB_AUTHLIB_CONNECTIONS; k++)
        conn_fail(ab, &ab->conns[k], "authlib-down", "backend stopped");
    while (ab->queue.head != NONE)
        answer_outage(ab, passdb_fifo_pop(&ab->slots, &ab->queue), "authlib-down",
                      "backend stopped");
    close(ab->epfd);
    passdb_slots_fini(&ab->slots);
    free(ab->reqs);
    free(ab);
}

int passdb_authlib_submit(struct passdb_authlib *ab, const char *user, const char *password,
                          void *ctx, struct passdb_ldap_answer *ans)
{
    static const struct passdb_admit_rules rules = {
        .refuse_newline = 1,
        .busy_reason = "authlib-busy",   /* authdaemond is not keeping up */
        .busy_waiting = "authlib requests",
    };
    int i = passdb_slots_admit(&ab->slots, &rules, user, password, ans);
    if (i == NONE)
        return -1;
    struct areq *r = &ab->reqs[i];
    memset(r, 0, sizeof(*r));
    r->ctx = ctx;
    r->deadline = clock_mono() + ab->s.timeout;
    snprintf(r->user, sizeof(r->user), "%s", user);
    snprintf(r->password, sizeof(r->password), "%s", password);
    passdb_fifo_push(&ab->slots, &ab->queue, i);
    /* Sent at the next poll: answers must never come from inside submit. */
    return 0;
}

int passdb_authlib_fd(const struct passdb_authlib *ab)
{
    return ab->epfd;
}

int passdb_authlib_timeout_ms(const struct passdb_authlib *ab)
{
    double t = clock_mono(), first = -1;

    for (int k = 0; k < PASSDB_AUTHLIB_CONNECTIONS; k++) {
        const struct aconn *c = &ab->conns[k];
        /* A queued request and an idle connection: it goes out at the next poll. */
        if (c->fd < 0 && ab->queue.head != NONE)
            return 0;
        if (c->fd >= 0 && (first < 0 || ab->reqs[c->req].deadline < first))
            first = ab->reqs[c->req].deadline;
    }
    /* The queue is in arrival order: its head's deadline comes first. */
    if (ab->queue.head != NONE && (first < 0 || ab->reqs[ab->queue.head].deadline < first))
        first = ab->reqs[ab->queue.head].deadline;
    if (first < 0)
        return -1;
    return first <= t ? 0 : (int)((first - t) * 1000) + 1;
}

void passdb_authlib_poll(struct passdb_authlib *ab)
{
    struct epoll_event ev[PASSDB_AUTHLIB_CONNECTIONS];
    int n = epoll_wait(ab->epfd, ev, PASSDB_AUTHLIB_CONNECTIONS, 0);

    for (int k = 0; k < n; k++) {
        uint32_t ci = ev[k].data.u32;
        if (ci >= PASSDB_AUTHLIB_CONNECTIONS || ab->conns[ci].fd < 0)
            continue;
        struct aconn *c = &ab->conns[ci];
        if (c->out_done < c->out_len)
            conn_write(ab, c);
        else
            conn_read(ab, c);
    }
    expire(ab);
    pump(ab);
}
