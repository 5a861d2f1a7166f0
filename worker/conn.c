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

#include "daemon/runtime/listen.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/clock.h"
#include "shm/stats.h"
#include "worker/conn_drain.h"
#include "worker/conn_io.h"
#include "worker/conn_limits.h"
#include "worker/conn_proxy.h"
#include "worker/conn_timer.h"
#include "worker/tls.h"

/*
 * Why these numbers:
 *  - input: CONN_IN_LIMIT (daemon/runtime/limits.h), checked against the line limits there.
 *  - output: a job pauses at the high-water mark, so a session never holds
 *    more than about that much of a message in memory.
 *  - write budget: one event writes at most this much, so one fast reader
 *    cannot starve the other connections of the worker.
 */
#define CONN_READ_CHUNK 4096
#define CONN_OUT_HIGH_WATER (64 * 1024)
#define CONN_OUT_LIMIT (256 * 1024)
#define CONN_WRITE_BUDGET (256 * 1024)

static const char *const state_names[] = {
    [CONN_PROXY] = "proxy",
    [CONN_TLS_HANDSHAKE] = "tls-handshake",
    [CONN_SESSION] = "session",
    [CONN_CLOSING] = "closing",
    [CONN_LINGER] = "linger",
};

/* Cut to fit: a long user name is still recognisable in `popctl who`. */
static void copy_cut(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* popctl who/kick match the whole name: the scoreboard must hold any session's. */
_Static_assert(sizeof(((struct conn *)0)->user) <= SCOREBOARD_USER_MAX,
               "the scoreboard's user field holds every user name");

/* The transport's state, or in a session the protocol's. */
static const char *state_name(const struct conn *c)
{
    return c->state == CONN_SESSION ? c->lp->protocol->state_name(c) : state_names[c->state];
}

static int logged_in(const struct conn *c)
{
    return c->state == CONN_SESSION && c->lp->protocol->logged_in(c);
}

/* The scoreboard's record of this session, for `popctl who` (shm/scoreboard.h). */
static void publish(struct conn *c)
{
    struct scoreboard_session *s = scoreboard_session(c->lp->sb, c->slot);
    if (s == NULL)
        return;
    copy_cut(s->state, sizeof(s->state), state_name(c));
    copy_cut(s->user, sizeof(s->user), logged_in(c) ? c->user : "");
    copy_cut(s->tls, sizeof(s->tls), c->ssl != NULL ? tls_session_version(c->ssl)
                                     : c->proxy_tls ? "proxy" : "");
    s->port = (uint16_t)c->port;
    s->worker = (uint16_t)c->lp->index;
    s->since = (int64_t)c->started_wall;
}

static void publish_traffic(struct conn *c)
{
    struct scoreboard_session *s = scoreboard_session(c->lp->sb, c->slot);
    if (s != NULL) {
        s->bytes = c->stats.bytes_in + c->stats.bytes_out;
        s->active = (int64_t)time(NULL);
    }
}

void conn_set_state(struct conn *c, enum conn_state next)
{
    if (c->state == next)
        return;
    const char *before = state_name(c);
    c->state = next;
    log_debug("conn %s:%u %s -> %s", c->ip, c->port, before, state_name(c));
    publish(c);
    if (next == CONN_LINGER)
        conn_timer_set(c, CONN_TIMER_LINGER);
    else if (next == CONN_TLS_HANDSHAKE)
        conn_timer_set(c, CONN_TIMER_HANDSHAKE);
    else if (next == CONN_SESSION && c->timer != CONN_TIMER_IDLE)
        conn_timer_set(c, CONN_TIMER_IDLE);
}

void conn_session_changed(struct conn *c, const char *before)
{
    if (c->state != CONN_SESSION)
        return;
    log_debug("conn %s:%u %s -> %s", c->ip, c->port, before, state_name(c));
    publish(c);
    if (logged_in(c))
        conn_limits_untrack(c);   /* logged in: login_timeout and eviction are over */
}

static void log_session(const struct conn *c)
{
    double duration = clock_mono() - c->started;
    log_info("session user=%s ip=%s port=%u reason=%s duration=%.3f tls=%s mechanism=%s "
             "commands=%u retr=%u/%llu top=%u/%llu dele=%u deleted=%u in=%llu out=%llu",
             c->session || c->user[0] ? c->user : "-", c->ip, c->port,
             c->close_reason ? c->close_reason : "unknown", duration,
             c->ssl == NULL && c->proxy_tls ? "proxy" : tls_session_version(c->ssl),
             c->auth_mech ? c->auth_mech : "-", c->stats.commands, c->stats.retr,
             (unsigned long long)c->stats.retr_bytes,
             c->stats.top, (unsigned long long)c->stats.top_bytes, c->stats.dele,
             c->stats.deleted, (unsigned long long)c->stats.bytes_in,
             (unsigned long long)c->stats.bytes_out);
}

/*
 * Closing a socket with unread bytes makes the kernel send a reset, which
 * can discard the last reply still on its way (a client that pipelined
 * something after QUIT). Read what is there, a bounded amount, first.
 */
static void discard_unread(int fd)
{
    char sink[4096];
    for (int i = 0; i < 16; i++) {
        if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
            break;
    }
}

static void link_conn(struct conn *c)
{
    struct loop *lp = c->lp;
    c->all_prev = NULL;
    c->all_next = lp->conns;
    if (lp->conns != NULL)
        lp->conns->all_prev = c;
    lp->conns = c;
}

static void unlink_conn(struct conn *c)
{
    if (c->all_prev != NULL)
        c->all_prev->all_next = c->all_next;
    else
        c->lp->conns = c->all_next;
    if (c->all_next != NULL)
        c->all_next->all_prev = c->all_prev;
    c->all_prev = c->all_next = NULL;
}

void conn_close(struct conn *c, const char *reason)
{
    struct loop *lp = c->lp;
    if (c->fd == -1)
        return;
    if (c->close_reason == NULL || c->state != CONN_CLOSING)
        c->close_reason = reason;
    /*
     * Release the mailbox lock and the connection slot before the session is
     * reported ended: whoever reads that line may log in again at once.
     */
    if (c->job) {
        c->job->release(c->job);
        c->job = NULL;
    }
    conn_ready_remove(c);
    conn_limits_untrack(c);
    lp->protocol->release(c);
    scoreboard_conn_close(lp->sb, c->slot);
    stats_session_end(c->close_reason);
    log_session(c);
    conn_timer_clear(c);
    ev_io_stop(lp->ev, &c->io);
    if (c->ssl != NULL) {
        /* Orderly ends get a close_notify, and so does a client that sent one. */
        int peer_said_bye = (SSL_get_shutdown(c->ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
        if ((c->state == CONN_LINGER || c->state == CONN_CLOSING || peer_said_bye) &&
            !c->tls_goodbye_sent)
            conn_io_tls_goodbye(c);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->state == CONN_CLOSING || c->state == CONN_LINGER)
        discard_unread(c->fd);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    lp->conn_count--;
    unlink_conn(c);
    /* A caller up the stack (a sweep, a helper callback) may still hold c: free it later. */
    c->fd = -1;
    c->all_next = lp->closed;
    lp->closed = c;
}

void conn_free_closed(struct loop *lp)
{
    while (lp->closed != NULL) {
        struct conn *c = lp->closed;
        lp->closed = c->all_next;
        free(c);
    }
}

/* Only a client that never reads can make the output overflow; drop it. */
static void reply_failed(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->close_reason = "output-overflow";
    conn_set_state(c, CONN_CLOSING);
    buf_reset(&c->out);
}

void conn_reply(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(&c->out, fmt, ap);
    va_end(ap);
    if (rc == -1)
        reply_failed(c);
}

void conn_reply_bytes(struct conn *c, const void *data, size_t len)
{
    if (buf_append(&c->out, data, len) == -1)
        reply_failed(c);
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

void conn_start_tls(struct conn *c)
{
    buf_reset(&c->in);
    c->user[0] = '\0';
    c->greet_after_handshake = 0;
    conn_set_state(c, CONN_TLS_HANDSHAKE);
}

int conn_accepts_commands(const struct conn *c)
{
    return c->state == CONN_SESSION && c->lp->protocol->reading(c);
}

/* Returns -1 if the connection was closed. */
static int flush_output(struct conn *c, size_t *budget)
{
    while (buf_len(&c->out) > 0 && *budget > 0) {
        ssize_t n = conn_io_write(c);
        if (n > 0) {
            c->stats.bytes_out += (uint64_t)n;
            publish_traffic(c);
            *budget = (size_t)n >= *budget ? 0 : *budget - (size_t)n;
            continue;
        }
        if (n == 0)
            return 0;
        conn_close(c, "write-error");
        return -1;
    }
    return 0;
}

static int wants_input(const struct conn *c)
{
    int has_line = buf_len(&c->in) > 0 && memchr(buf_rptr(&c->in), '\n', buf_len(&c->in));
    return conn_accepts_commands(c) && c->job == NULL && buf_len(&c->out) < CONN_OUT_HIGH_WATER &&
           !has_line && buf_len(&c->in) < CONN_IN_LIMIT;
}

/* -1: the connection was closed. */
static int update_interest(struct conn *c)
{
    uint32_t want = 0;

    if (c->state == CONN_PROXY) {
        want = EPOLLIN;
    } else if (c->state == CONN_TLS_HANDSHAKE && c->ssl != NULL) {
        want = c->handshake_wants_out ? EPOLLOUT : EPOLLIN;
    } else {
        if (buf_len(&c->out) > 0 || c->job != NULL)
            want |= EPOLLOUT;
        /* RDHUP only with IN: a half-closed peer would otherwise wake us forever. */
        if (wants_input(c) || c->state == CONN_LINGER)
            want |= EPOLLIN | EPOLLRDHUP;
        if (c->tls_read_wants_out && wants_input(c))
            want |= EPOLLOUT;
        if (c->tls_write_wants_in && buf_len(&c->out) > 0)
            want |= EPOLLIN;
    }
    if (want != c->events) {
        if (ev_io_modify(c->lp->ev, &c->io, want) == -1) {
            conn_close(c, "epoll-error");
            return -1;
        }
        c->events = want;
    }
    return 0;
}

/* Read once into c->in. -1: the connection was closed. */
static int read_input(struct conn *c)
{
    ssize_t n = conn_io_read(c, CONN_READ_CHUNK);
    if (n == 0) {
        conn_close(c, "disconnected");
        return -1;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        conn_close(c, errno == ENOBUFS ? "input-overflow" : "read-error");
        return -1;
    }
    if (n > 0) {
        c->stats.bytes_in += (uint64_t)n;
        publish_traffic(c);
    }
    return 0;
}

/* TLS handshake steps; 1 when the session may go on, 0 to wait, -1 closed. */
static int advance_handshake(struct conn *c)
{
    char why[160];
    if (c->ssl == NULL) {
        /* After STLS the +OK must leave in the clear first. */
        if (buf_len(&c->out) > 0)
            return 0;
        c->ssl = tls_session_new(c->lp->tls, c->fd, c->listener->legacy_tls);
        if (c->ssl == NULL) {
            log_error("conn %s:%u: cannot start TLS: %s", c->ip, c->port,
                      tls_last_error(why, sizeof(why)));
            conn_close(c, "tls-error");
            return -1;
        }
    }
    int rc = conn_io_handshake(c, why, sizeof(why));
    if (rc == 0)
        return 0;
    if (rc < 0) {
        log_info("conn %s:%u: TLS handshake failed: %s", c->ip, c->port, why);
        stats_tls_handshake(NULL);
        conn_close(c, "tls-handshake-failed");
        return -1;
    }
    stats_tls_handshake(tls_session_version(c->ssl));
    conn_set_state(c, CONN_SESSION);
    if (c->greet_after_handshake)
        c->lp->protocol->greet(c);
    return 1;
}

int conn_run(struct conn *c)
{
    size_t budget = CONN_WRITE_BUDGET;

    for (int round = 0; round < 1000; round++) {
        int progressed = 0;
        if (c->state == CONN_TLS_HANDSHAKE) {
            if (flush_output(c, &budget) == -1)
                return -1;
            int rc = advance_handshake(c);
            if (rc < 0)
                return -1;
            if (rc == 0)
                break;
        }
        while (c->job == NULL && conn_accepts_commands(c) && buf_len(&c->out) < CONN_OUT_HIGH_WATER) {
            char *line;
            size_t len;
            enum buf_line got = buf_getline(&c->in, c->line_limit, &line, &len);
            if (got == BUF_LINE_NONE)
                break;
            progressed = 1;
            c->stats.commands++;
            /* Only a whole line restarts the idle timer: a byte at a time does not. */
            conn_timer_touch(c);
            if (got == BUF_LINE_TOOLONG)
                c->lp->protocol->line_too_long(c);
            else
                c->lp->protocol->line(c, line, len);
            if (c->fd == -1)
                return -1;
        }
        if (c->job != NULL && buf_len(&c->out) < CONN_OUT_HIGH_WATER) {
            int r = c->job->produce(c, c->job, CONN_OUT_HIGH_WATER);
            if (r != 0) {
                c->job->release(c->job);
                c->job = NULL;
                c->lp->protocol->output_done(c);
                if (r < 0) {
                    /* What was produced goes out, never a final dot: then close,
                     * so the client knows the command failed. */
                    conn_finish(c, "job-failed");
                }
            }
            progressed = 1;
        }
        /* Commands, then the job one of them started, then one flush: a status
         * line and the start of its body leave in one write. */
        size_t before = buf_len(&c->out);
        if (flush_output(c, &budget) == -1)
            return -1;
        if (buf_len(&c->out) != before)
            progressed = 1;
        if (c->state == CONN_CLOSING && buf_len(&c->out) == 0) {
            conn_close(c, c->close_reason ? c->close_reason : "closed");
            return -1;
        }
        /* TLS clients wait for close_notify before they close: send it after QUIT's reply. */
        if (c->state == CONN_LINGER && c->ssl != NULL && buf_len(&c->out) == 0 &&
            !c->tls_goodbye_sent) {
            conn_io_tls_goodbye(c);
            c->tls_goodbye_sent = 1;
        }
        /* Bytes OpenSSL already decrypted never wake epoll: take them now. */
        if (wants_input(c) && conn_io_pending(c)) {
            if (read_input(c) == -1)
                return -1;
            progressed = 1;
        }
        if (c->state == CONN_TLS_HANDSHAKE)
            progressed = 1;
        if (!progressed || budget == 0 || buf_len(&c->out) > 0)
            break;
    }
    /* An idle connection keeps no buffer memory: thousands of them are the norm. */
    buf_shrink_if_empty(&c->in);
    if (c->job == NULL)
        buf_shrink_if_empty(&c->out);
    return update_interest(c);
}

static void conn_on_event(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    struct conn *c = io->data;
    (void)ev;

    if (c->fd == -1)
        return;
    /* After QUIT's reply any event is the client going away: its RST included. */
    if (c->state == CONN_LINGER && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        conn_close(c, "quit");
        return;
    }
    if (events & EPOLLERR) {
        conn_close(c, "disconnected");
        return;
    }
    if (c->state == CONN_PROXY) {
        conn_proxy_read(c);
        if (c->fd == -1 || c->state == CONN_PROXY)
            return;
    } else if (c->state != CONN_TLS_HANDSHAKE) {
        int readable = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP);
        if (wants_input(c) && (readable || (c->tls_read_wants_out && (events & EPOLLOUT)))) {
            if (read_input(c) == -1)
                return;
        } else if ((events & EPOLLHUP) && !(events & EPOLLOUT)) {
            conn_close(c, "disconnected");
            return;
        }
    }
    /*
     * A client reading a long reply is not idle. Only the idle timer: the
     * TLS handshake's and the PROXY header's deadlines are absolute.
     */
    if (conn_run(c) == 0 && (events & EPOLLOUT) && c->timer == CONN_TIMER_IDLE)
        conn_timer_touch(c);
}

int conn_new(struct loop *lp, int fd, const struct sockaddr *peer, int slot,
             const struct config_listen *listener)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->lp = lp;
    c->fd = fd;
    c->slot = slot;
    c->cmd_timing = -1;
    c->listener = listener;
    c->line_limit = POP3_LINE_MAX;
    memcpy(&c->peer, peer, peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                       : sizeof(struct sockaddr_in));
    listen_format_ip(peer, c->ip, sizeof(c->ip));
    c->port = peer->sa_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)peer)->sin6_port)
                                          : ntohs(((const struct sockaddr_in *)peer)->sin_port);
    buf_init(&c->in, CONN_IN_LIMIT);
    buf_init(&c->out, CONN_OUT_LIMIT);
    c->started = clock_mono();
    c->started_wall = time(NULL);
    enum conn_timer wait;
    if (listener->proxy_protocol) {
        c->state = CONN_PROXY;
        wait = CONN_TIMER_PROXY;
        c->events = EPOLLIN;
    } else if (listener->tls) {
        c->state = CONN_TLS_HANDSHAKE;
        c->greet_after_handshake = 1;
        wait = CONN_TIMER_HANDSHAKE;
        c->events = EPOLLIN;
    } else {
        c->state = CONN_SESSION;
        wait = CONN_TIMER_IDLE;
        c->events = EPOLLOUT;
    }
    if (ev_io_start(lp->ev, &c->io, fd, c->events, conn_on_event, c) == -1) {
        buf_free(&c->in);
        buf_free(&c->out);
        free(c);
        return -1;
    }
    lp->conn_count++;
    link_conn(c);
    /* From here c owns fd and slot: a failure closes it like any connection. */
    if (conn_limits_track(c) == -1) {
        log_error("conn %s:%u: no memory for its login deadline", c->ip, c->port);
        conn_close(c, "no-memory");
        return 0;
    }
    conn_timer_set(c, wait);
    if (c->fd == -1)
        return 0;   /* no memory for its deadline: closed */
    publish(c);
    publish_traffic(c);
    if (c->state == CONN_SESSION)
        c->lp->protocol->greet(c);
    if (c->state != CONN_PROXY)
        conn_run(c);
    return 0;
}
