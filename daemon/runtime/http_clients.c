#include "daemon/runtime/http_clients.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/event_loop.h"

struct http_client {
    struct http_clients *hc;
    int fd;                /* -1: free */
    uint32_t gen;          /* bumped at each accept: old tokens stop matching */
    int waiting;           /* the request went to the owner; no answer yet */
    int answering;         /* the answer is queued in out */
    int finishing;         /* out is sent and our side shut: reading to the client's EOF */
    uint32_t events;       /* what io waits for now */
    struct ev_io io;
    struct ev_timer timeout;   /* client_seconds after the accept: the client is dropped */
    struct buf in, out;
};

struct http_clients {
    struct ev_loop *loop;
    int listen_fd;
    struct ev_io listen_io;
    struct http_clients_limits lim;
    http_request_fn on_request;
    http_gone_fn on_gone;
    void *ctx;
    struct http_client *clients;
};

static uint64_t token_of(const struct http_clients *hc, const struct http_client *cl)
{
    return (uint64_t)cl->gen << 32 | (uint64_t)(cl - hc->clients);
}

static void drop(struct http_clients *hc, struct http_client *cl)
{
    int tell = cl->waiting;
    uint64_t token = token_of(hc, cl);
    ev_io_stop(hc->loop, &cl->io);
    ev_timer_cancel(hc->loop, &cl->timeout);
    close(cl->fd);
    cl->fd = -1;
    cl->waiting = 0;
    buf_free(&cl->in);
    buf_free(&cl->out);
    if (tell && hc->on_gone != NULL)
        hc->on_gone(hc->ctx, token);
}

static void queue(struct http_client *cl, const char *bytes, size_t len)
{
    cl->waiting = 0;
    cl->answering = 1;
    buf_reset(&cl->out);
    if (buf_append(&cl->out, bytes, len) == -1)
        buf_reset(&cl->out);   /* no memory: the client sees the connection close */
}

static void read_request(struct http_clients *hc, struct http_client *cl)
{
    /* One byte stays free for a NUL: the request is searched as a string. */
    size_t room = hc->lim.request_max - 1 - buf_len(&cl->in);
    ssize_t n = buf_read_fd(&cl->in, cl->fd, room);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || buf_reserve(&cl->in, 1) == -1) {
        drop(hc, cl);
        return;
    }
    buf_wptr(&cl->in)[0] = '\0';
    const char *req = buf_rptr(&cl->in);
    if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL) {
        cl->waiting = 1;
        hc->on_request(hc->ctx, token_of(hc, cl), req, buf_len(&cl->in));
    } else if (buf_len(&cl->in) >= hc->lim.request_max - 1) {
        static const char too_long[] = "HTTP/1.0 431 Request Header Fields Too Large\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
        queue(cl, too_long, sizeof(too_long) - 1);
    }
}

/*
 * Closing with unread request bytes would make the kernel send RST, and the
 * client could lose the answer: shut our side, then read until its EOF.
 */
static void write_answer(struct http_clients *hc, struct http_client *cl)
{
    ssize_t n = buf_write_fd(&cl->out, cl->fd);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == -1) {
        drop(hc, cl);
        return;
    }
    if (buf_len(&cl->out) > 0)
        return;
    if (shutdown(cl->fd, SHUT_WR) == -1)
        drop(hc, cl);
    else
        cl->finishing = 1;
}

static void read_to_eof(struct http_clients *hc, struct http_client *cl)
{
    char sink[4096];
    ssize_t n = recv(cl->fd, sink, sizeof(sink), MSG_DONTWAIT);
    if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
        drop(hc, cl);
}

/* A client waiting for its answer is read too: its EOF means it gave up. */
static void watch_for_next(struct http_clients *hc, struct http_client *cl)
{
    uint32_t want = cl->answering && !cl->finishing ? EPOLLOUT : EPOLLIN;
    if (cl->fd == -1 || want == cl->events)
        return;
    if (ev_io_modify(hc->loop, &cl->io, want) == -1)
        drop(hc, cl);
    else
        cl->events = want;
}

static void on_client_event(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct http_client *cl = io->data;
    struct http_clients *hc = cl->hc;
    (void)loop;
    (void)events;
    if (cl->finishing || cl->waiting)
        read_to_eof(hc, cl);   /* bytes after the request are dropped */
    else if (!cl->answering)
        read_request(hc, cl);
    if (cl->fd != -1 && cl->answering && !cl->finishing)
        write_answer(hc, cl);
    watch_for_next(hc, cl);
}

static void on_client_timeout(struct ev_loop *loop, struct ev_timer *timer)
{
    struct http_client *cl = timer->data;
    (void)loop;
    drop(cl->hc, cl);
}

static void accept_client(struct http_clients *hc)
{
    int fd = accept4(hc->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1)
        return;
    for (unsigned i = 0; i < hc->lim.max_clients; i++) {
        struct http_client *cl = &hc->clients[i];
        if (cl->fd == -1) {
            if (ev_io_start(hc->loop, &cl->io, fd, EPOLLIN, on_client_event, cl) == -1 ||
                ev_timer_arm_in(hc->loop, &cl->timeout, hc->lim.client_seconds) == -1) {
                ev_io_stop(hc->loop, &cl->io);
                close(fd);   /* the client sees a close and retries */
                return;
            }
            cl->fd = fd;
            cl->gen++;
            cl->events = EPOLLIN;
            cl->waiting = cl->answering = cl->finishing = 0;
            buf_init(&cl->in, hc->lim.request_max);
            buf_init(&cl->out, hc->lim.answer_max);
            return;
        }
    }
    /* Clients retry; a crowd gets no more of this process than max_clients do. */
    static const char busy[] = "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
    ssize_t ignored = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    close(fd);
}

static void on_listen_event(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    accept_client(io->data);
}

struct http_clients *http_clients_new(struct ev_loop *loop, int listen_fd,
                                      const struct http_clients_limits *lim,
                                      http_request_fn on_request, http_gone_fn on_gone,
                                      void *ctx)
{
    struct http_clients *hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return NULL;
    hc->clients = calloc(lim->max_clients, sizeof(*hc->clients));
    if (hc->clients == NULL) {
        free(hc);
        return NULL;
    }
    hc->loop = loop;
    hc->listen_fd = listen_fd;
    hc->lim = *lim;
    hc->on_request = on_request;
    hc->on_gone = on_gone;
    hc->ctx = ctx;
    for (unsigned i = 0; i < lim->max_clients; i++) {
        struct http_client *cl = &hc->clients[i];
        cl->hc = hc;
        cl->fd = -1;
        ev_timer_init(&cl->timeout, on_client_timeout, cl);
    }
    if (ev_io_start(loop, &hc->listen_io, listen_fd, EPOLLIN, on_listen_event, hc) == -1) {
        free(hc->clients);
        free(hc);
        return NULL;
    }
    return hc;
}

void http_clients_free(struct http_clients *hc)
{
    if (hc == NULL)
        return;
    hc->on_gone = NULL;   /* the owner is going too */
    for (unsigned i = 0; i < hc->lim.max_clients; i++) {
        if (hc->clients[i].fd != -1)
            drop(hc, &hc->clients[i]);
    }
    ev_io_stop(hc->loop, &hc->listen_io);
    close(hc->listen_fd);
    free(hc->clients);
    free(hc);
}

int http_clients_answer(struct http_clients *hc, uint64_t token, const char *bytes, size_t len)
{
    uint32_t slot = (uint32_t)token, gen = (uint32_t)(token >> 32);
    if (slot >= hc->lim.max_clients)
        return -1;
    struct http_client *cl = &hc->clients[slot];
    if (cl->fd == -1 || cl->gen != gen || !cl->waiting)
        return -1;
    queue(cl, bytes, len);
    /* Usually the whole answer fits the socket buffer at once. */
    write_answer(hc, cl);
    watch_for_next(hc, cl);
    return 0;
}
