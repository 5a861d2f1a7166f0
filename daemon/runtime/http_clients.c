#include "daemon/runtime/http_clients.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/clock.h"

struct http_client {
    int fd;                /* -1: free */
    uint32_t gen;          /* bumped at each accept: old tokens stop matching */
    int waiting;           /* the request went to the owner; no answer yet */
    int answering;         /* the answer is queued in out */
    int finishing;         /* out is sent and our side shut: reading to the client's EOF */
    double deadline;       /* monotonic */
    struct buf in, out;
};

struct http_clients {
    int listen_fd;
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

static void accept_client(struct http_clients *hc)
{
    int fd = accept4(hc->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1)
        return;
    for (unsigned i = 0; i < hc->lim.max_clients; i++) {
        struct http_client *cl = &hc->clients[i];
        if (cl->fd == -1) {
            cl->fd = fd;
            cl->gen++;
            cl->waiting = cl->answering = cl->finishing = 0;
            cl->deadline = clock_mono() + hc->lim.client_seconds;
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

struct http_clients *http_clients_new(int listen_fd, const struct http_clients_limits *lim,
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
    hc->listen_fd = listen_fd;
    hc->lim = *lim;
    hc->on_request = on_request;
    hc->on_gone = on_gone;
    hc->ctx = ctx;
    for (unsigned i = 0; i < lim->max_clients; i++)
        hc->clients[i].fd = -1;
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
    return 0;
}

int http_clients_pollfds(const struct http_clients *hc, struct pollfd *pfd, int max)
{
    int n = 0;
    if (hc == NULL || max < 1)
        return 0;
    pfd[n++] = (struct pollfd){ .fd = hc->listen_fd, .events = POLLIN };
    for (unsigned i = 0; i < hc->lim.max_clients && n < max; i++) {
        const struct http_client *cl = &hc->clients[i];
        if (cl->fd == -1)
            continue;
        /* A client waiting for its answer is read too: its EOF means it gave up. */
        short ev = cl->answering && !cl->finishing ? POLLOUT : POLLIN;
        pfd[n++] = (struct pollfd){ .fd = cl->fd, .events = ev };
    }
    return n;
}

void http_clients_handle(struct http_clients *hc, const struct pollfd *pfd, int n)
{
    if (hc == NULL)
        return;
    for (int k = 0; k < n; k++) {
        if (pfd[k].revents == 0)
            continue;
        if (pfd[k].fd == hc->listen_fd) {
            accept_client(hc);
            continue;
        }
        for (unsigned i = 0; i < hc->lim.max_clients; i++) {
            struct http_client *cl = &hc->clients[i];
            if (cl->fd != pfd[k].fd)
                continue;
            if (cl->finishing || cl->waiting)
                read_to_eof(hc, cl);   /* bytes after the request are dropped */
            else if (!cl->answering)
                read_request(hc, cl);
            if (cl->fd != -1 && cl->answering && !cl->finishing)
                write_answer(hc, cl);
            break;
        }
    }
}

double http_clients_next_wake(const struct http_clients *hc, double now)
{
    double first = -1.0;
    for (unsigned i = 0; hc != NULL && i < hc->lim.max_clients; i++) {
        const struct http_client *cl = &hc->clients[i];
        if (cl->fd == -1)
            continue;
        double left = cl->deadline > now ? cl->deadline - now : 0.0;
        if (first < 0 || left < first)
            first = left;
    }
    return first;
}

void http_clients_tick(struct http_clients *hc, double now)
{
    for (unsigned i = 0; hc != NULL && i < hc->lim.max_clients; i++) {
        struct http_client *cl = &hc->clients[i];
        if (cl->fd != -1 && now >= cl->deadline)
            drop(hc, cl);
    }
}
