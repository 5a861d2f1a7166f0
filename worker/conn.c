#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/listen.h"
#include "daemon/log.h"
#include "worker/auth_client.h"
#include "worker/pop3.h"

/*
 * Why these numbers:
 *  - input: RFC 2449 caps a command line at 255 octets; 4 KiB holds a burst
 *    of pipelined commands, and input stops being read when it is full.
 *  - output: a job pauses at the high-water mark, so a session never holds
 *    more than about that much of a message in memory.
 *  - write budget: one event writes at most this much, so one fast reader
 *    cannot starve the other connections of the worker.
 */
#define CONN_IN_LIMIT 4096
#define CONN_READ_CHUNK 4096
#define CONN_OUT_HIGH_WATER (64 * 1024)
#define CONN_OUT_LIMIT (256 * 1024)
#define CONN_WRITE_BUDGET (256 * 1024)

static const char *const state_names[] = {
    [CONN_AUTHORIZATION] = "authorization",
    [CONN_AUTH_WAIT] = "auth-wait",
    [CONN_TRANSACTION] = "transaction",
    [CONN_CLOSING] = "closing",
    [CONN_LINGER] = "linger",
};

static struct loop *conn_loop;

static void list_unlink(struct conn **head, struct conn **tail, struct conn *c)
{
    if (c->idle_prev)
        c->idle_prev->idle_next = c->idle_next;
    else if (*head == c)
        *head = c->idle_next;
    if (c->idle_next)
        c->idle_next->idle_prev = c->idle_prev;
    else if (*tail == c)
        *tail = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
}

static void list_append(struct conn **head, struct conn **tail, struct conn *c)
{
    c->idle_prev = *tail;
    c->idle_next = NULL;
    if (*tail)
        (*tail)->idle_next = c;
    else
        *head = c;
    *tail = c;
}

static void list_remove(struct loop *lp, struct conn *c)
{
    if (c->state == CONN_LINGER)
        list_unlink(&lp->linger_head, &lp->linger_tail, c);
    else
        list_unlink(&lp->idle_head, &lp->idle_tail, c);
}

/* Activity moves a connection to the tail: the list stays sorted by deadline. */
static void touch(struct conn *c)
{
    struct loop *lp = conn_loop;
    c->last_active = loop_now();
    if (c->state == CONN_LINGER)
        return;
    list_unlink(&lp->idle_head, &lp->idle_tail, c);
    list_append(&lp->idle_head, &lp->idle_tail, c);
}

void conn_set_state(struct conn *c, enum conn_state next)
{
    if (c->state == next)
        return;
    log_debug("conn %s:%u %s -> %s", c->ip, c->port, state_names[c->state], state_names[next]);
    if (next == CONN_LINGER) {
        list_unlink(&conn_loop->idle_head, &conn_loop->idle_tail, c);
        c->state = next;
        c->last_active = loop_now();
        list_append(&conn_loop->linger_head, &conn_loop->linger_tail, c);
        return;
    }
    c->state = next;
}

static void log_session(const struct conn *c)
{
    double duration = loop_now() - c->started;
    log_info("session user=%s ip=%s port=%u reason=%s duration=%.3f commands=%u "
             "retr=%u/%llu top=%u/%llu dele=%u deleted=%u in=%llu out=%llu",
             c->session || c->user[0] ? c->user : "-", c->ip, c->port,
             c->close_reason ? c->close_reason : "unknown", duration, c->stats.commands,
             c->stats.retr, (unsigned long long)c->stats.retr_bytes, c->stats.top,
             (unsigned long long)c->stats.top_bytes, c->stats.dele, c->stats.deleted,
             (unsigned long long)c->stats.bytes_in, (unsigned long long)c->stats.bytes_out);
}

void conn_close(struct conn *c, const char *reason)
{
    struct loop *lp = conn_loop;
    if (c->close_reason == NULL || c->state != CONN_CLOSING)
        c->close_reason = reason;
    log_session(c);
    list_remove(lp, c);
    loop_unwatch(lp, c->fd);
    close(c->fd);
    if (c->job) {
        c->job->release(c->job);
        c->job = NULL;
    }
    if (c->auth_request != 0)
        auth_client_cancel(lp->auth, c);
    pop3_release(c);
    scoreboard_conn_close(lp->sb, c->slot);
    buf_free(&c->in);
    buf_free(&c->out);
    lp->conn_count--;
    /* Other events of this epoll batch may still point here: free it later. */
    c->fd = -1;
    c->idle_next = lp->closed;
    lp->closed = c;
}

void conn_free_closed(struct loop *lp)
{
    while (lp->closed != NULL) {
        struct conn *c = lp->closed;
        lp->closed = c->idle_next;
        free(c);
    }
}

void conn_reply(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(&c->out, fmt, ap);
    va_end(ap);
    if (rc == -1 && c->state != CONN_CLOSING) {
        /* Only a client that never reads can get here; drop it. */
        c->close_reason = "output-overflow";
        conn_set_state(c, CONN_CLOSING);
        buf_reset(&c->out);
    }
}

void conn_finish(struct conn *c, const char *reason)
{
    c->close_reason = reason;
    conn_set_state(c, CONN_CLOSING);
}

void conn_start_job(struct conn *c, struct conn_job *job)
{
    c->job = job;
}

static int accepts_commands(const struct conn *c)
{
    return c->state == CONN_AUTHORIZATION || c->state == CONN_TRANSACTION;
}

/* Returns -1 if the connection was closed. */
static int flush_output(struct conn *c, size_t *budget)
{
    while (buf_len(&c->out) > 0 && *budget > 0) {
        ssize_t n = send(c->fd, buf_rptr(&c->out), buf_len(&c->out), MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            c->stats.bytes_out += (uint64_t)n;
            *budget = (size_t)n >= *budget ? 0 : *budget - (size_t)n;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            return 0;
        conn_close(c, "write-error");
        return -1;
    }
    return 0;
}

/* -1: the connection was closed. */
static int update_interest(struct conn *c)
{
    uint32_t want = 0;
    int has_line = buf_len(&c->in) > 0 && memchr(buf_rptr(&c->in), '\n', buf_len(&c->in)) != NULL;

    if (buf_len(&c->out) > 0 || c->job != NULL)
        want |= EPOLLOUT;
    /* Backpressure: no reading while a reply is pending or input is unprocessed. */
    /* RDHUP only with IN: a half-closed peer would otherwise wake us forever. */
    if ((accepts_commands(c) && c->job == NULL && buf_len(&c->out) < CONN_OUT_HIGH_WATER &&
         !has_line && buf_len(&c->in) < CONN_IN_LIMIT) ||
        c->state == CONN_LINGER)
        want |= EPOLLIN | EPOLLRDHUP;
    if (want != c->events) {
        if (loop_modify(conn_loop, c->fd, want, &c->io) == -1) {
            conn_close(c, "epoll-error");
            return -1;
        }
        c->events = want;
    }
    return 0;
}

/* Run commands and jobs until output blocks or input runs dry. -1: closed. */
static int conn_run(struct conn *c)
{
    size_t budget = CONN_WRITE_BUDGET;

    for (int round = 0; round < 1000; round++) {
        int progressed = 0;
        if (c->job != NULL && buf_len(&c->out) < CONN_OUT_HIGH_WATER) {
            int r = c->job->produce(c, c->job, CONN_OUT_HIGH_WATER);
            if (r != 0) {
                c->job->release(c->job);
                c->job = NULL;
                if (r < 0) {
                    conn_close(c, "job-failed");
                    return -1;
                }
            }
            progressed = 1;
        }
        while (c->job == NULL && accepts_commands(c) && buf_len(&c->out) < CONN_OUT_HIGH_WATER) {
            char *line;
            size_t len;
            enum buf_line got = buf_getline(&c->in, POP3_LINE_MAX, &line, &len);
            if (got == BUF_LINE_NONE)
                break;
            progressed = 1;
            c->stats.commands++;
            if (got == BUF_LINE_TOOLONG)
                pop3_line_too_long(c);
            else
                pop3_dispatch(c, line, len);
            if (c->fd == -1)
                return -1;
        }
        size_t before = buf_len(&c->out);
        if (flush_output(c, &budget) == -1)
            return -1;
        if (buf_len(&c->out) != before)
            progressed = 1;
        if (c->state == CONN_CLOSING && buf_len(&c->out) == 0) {
            conn_close(c, c->close_reason ? c->close_reason : "closed");
            return -1;
        }
        if (!progressed || budget == 0 || buf_len(&c->out) > 0)
            break;
    }
    /* An idle connection keeps no buffer memory: thousands of them are the norm. */
    buf_shrink_if_empty(&c->in);
    if (c->job == NULL)
        buf_shrink_if_empty(&c->out);
    return update_interest(c);
}

void conn_resume(struct conn *c)
{
    if (c->fd != -1)
        conn_run(c);
}

static void conn_on_event(struct loop *lp, struct loop_handler *h, uint32_t events)
{
    struct conn *c = (struct conn *)h;
    (void)lp;

    if (c->fd == -1)
        return;
    if (events & EPOLLERR) {
        conn_close(c, "disconnected");
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        if (c->state == CONN_LINGER) {
            /* The client closed first after QUIT: TIME_WAIT stays on its side. */
            conn_close(c, "quit");
            return;
        }
        if (c->events & EPOLLIN) {
            ssize_t n = buf_read_fd(&c->in, c->fd, CONN_READ_CHUNK);
            if (n == 0) {
                conn_close(c, "disconnected");
                return;
            }
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                conn_close(c, errno == ENOBUFS ? "input-overflow" : "read-error");
                return;
            }
            if (n > 0) {
                c->stats.bytes_in += (uint64_t)n;
                touch(c);
            }
        } else if ((events & EPOLLHUP) && !(events & EPOLLOUT)) {
            conn_close(c, "disconnected");
            return;
        }
    }
    if (conn_run(c) == 0 && (events & EPOLLOUT))
        touch(c);
}

int conn_new(struct loop *lp, int fd, const struct sockaddr *peer, int slot)
{
    conn_loop = lp;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->io.on_event = conn_on_event;
    c->lp = lp;
    c->fd = fd;
    c->slot = slot;
    c->state = CONN_AUTHORIZATION;
    memcpy(&c->peer, peer, peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                       : sizeof(struct sockaddr_in));
    listen_format_ip(peer, c->ip, sizeof(c->ip));
    c->port = peer->sa_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)peer)->sin6_port)
                                          : ntohs(((const struct sockaddr_in *)peer)->sin_port);
    buf_init(&c->in, CONN_IN_LIMIT);
    buf_init(&c->out, CONN_OUT_LIMIT);
    c->started = c->last_active = loop_now();
    c->started_wall = time(NULL);
    list_append(&lp->idle_head, &lp->idle_tail, c);
    lp->conn_count++;
    c->events = EPOLLOUT;
    if (loop_watch(lp, fd, c->events, &c->io) == -1) {
        list_remove(lp, c);
        lp->conn_count--;
        free(c);
        return -1;
    }
    pop3_greet(c);
    conn_run(c);
    return 0;
}

/*
 * Shutdown: a session between commands is told and closed now; one in the
 * middle of a command (RETR streaming, a login at the helper) is closed at
 * its next command boundary. Nothing is deleted either way: no UPDATE.
 */
void conn_shutdown_idle(struct loop *lp)
{
    struct conn *next;
    for (struct conn *c = lp->idle_head; c != NULL; c = next) {
        next = c->idle_next;
        if (!accepts_commands(c) || c->job != NULL || buf_len(&c->out) > 0)
            continue;
        conn_reply(c, "-ERR [SYS/TEMP] Server is shutting down, try again later\r\n");
        conn_finish(c, "shutdown");
        conn_run(c);
    }
}

static void expire_list(struct conn **head, double now, double timeout, const char *reason,
                        const char *farewell)
{
    for (int n = 0; *head != NULL && n < 10000; n++) {
        struct conn *c = *head;
        if (c->last_active + timeout > now)
            break;
        if (farewell != NULL) {
            /* Best effort: the client may not be reading at all. */
            ssize_t ignored = send(c->fd, farewell, strlen(farewell), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)ignored;
        }
        conn_close(c, reason);
    }
}

void conn_expire_idle(struct loop *lp, double now)
{
    expire_list(&lp->idle_head, now, lp->cfg->idle_timeout, "idle-timeout",
                "-ERR Disconnected for inactivity\r\n");
    expire_list(&lp->linger_head, now, lp->cfg->quit_linger, "quit", NULL);
}

double conn_next_expiry(struct loop *lp, double now)
{
    double next = -1;
    if (lp->idle_head != NULL)
        next = lp->idle_head->last_active + lp->cfg->idle_timeout - now;
    if (lp->linger_head != NULL) {
        double l = lp->linger_head->last_active + lp->cfg->quit_linger - now;
        if (next < 0 || l < next)
            next = l;
    }
    if (next != -1 && next < 0)
        next = 0;
    return next;
}
