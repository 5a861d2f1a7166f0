#include "metrics_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/control_proto.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/clock.h"
#include "daemon/runtime/control_proto.h"

/* Any real scraper's request is a few hundred bytes; more is not a scraper. */
#define REQUEST_MAX 8192

struct metrics_client {
    int fd;                /* -1: free */
    int answering;         /* the request is read; out is being written */
    int finishing;         /* out is sent and our side shut: reading to the client's EOF */
    double deadline;       /* monotonic */
    struct buf in, out;
};

struct metrics_http {
    int listen_fd;
    metrics_render_fn render;
    void *render_ctx;
    struct metrics_client clients[METRICS_MAX_CLIENTS];
};

static void drop(struct metrics_client *cl)
{
    close(cl->fd);
    cl->fd = -1;
    buf_free(&cl->in);
    buf_free(&cl->out);
}

static void respond(struct metrics_client *cl, const char *status, const char *type,
                    const struct buf *body, int head_only, const char *extra)
{
    size_t len = body != NULL ? buf_len(body) : strlen(status) + 1;
    buf_printf(&cl->out, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Connection: close\r\n%s\r\n", status, type, len, extra);
    if (head_only)
        return;
    if (body != NULL)
        buf_append(&cl->out, buf_rptr(body), buf_len(body));
    else
        buf_printf(&cl->out, "%s\n", status);
}

/* The request line decides everything; headers are read and ignored. */
static void answer(struct metrics_http *mh, struct metrics_client *cl)
{
    char method[16], target[256];
    int version_at = -1;
    char *line = buf_rptr(&cl->in);
    line[strcspn(line, "\r\n")] = '\0';
    if (sscanf(line, "%15s %255s %n", method, target, &version_at) != 2 || version_at < 0 ||
        (strcmp(line + version_at, "HTTP/1.0") != 0 &&
         strcmp(line + version_at, "HTTP/1.1") != 0)) {
        respond(cl, "400 Bad Request", "text/plain", NULL, 0, "");
        return;
    }
    int head = strcmp(method, "HEAD") == 0;
    target[strcspn(target, "?")] = '\0';
    if (strcmp(target, "/metrics") != 0) {
        respond(cl, "404 Not Found", "text/plain", NULL, head, "");
        return;
    }
    if (!head && strcmp(method, "GET") != 0) {
        respond(cl, "405 Method Not Allowed", "text/plain", NULL, 0, "Allow: GET, HEAD\r\n");
        return;
    }
    struct buf doc;
    buf_init(&doc, CONTROL_STATS_MAX);
    if (mh->render(mh->render_ctx, &doc) == -1)
        respond(cl, "503 Service Unavailable", "text/plain", NULL, head, "");
    else
        respond(cl, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &doc, head, "");
    buf_free(&doc);
}

static void read_request(struct metrics_http *mh, struct metrics_client *cl)
{
    /* One byte stays free for a NUL: the request is searched as a string. */
    size_t room = REQUEST_MAX - 1 - buf_len(&cl->in);
    ssize_t n = buf_read_fd(&cl->in, cl->fd, room);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || buf_reserve(&cl->in, 1) == -1) {
        drop(cl);
        return;
    }
    buf_wptr(&cl->in)[0] = '\0';
    const char *req = buf_rptr(&cl->in);
    if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL)
        answer(mh, cl);
    else if (buf_len(&cl->in) >= REQUEST_MAX - 1)
        respond(cl, "431 Request Header Fields Too Large", "text/plain", NULL, 0, "");
    else
        return;
    cl->answering = 1;
}

/*
 * Closing with unread request bytes would make the kernel send RST, and the
 * client could lose the answer: shut our side, then read until its EOF.
 */
static void write_answer(struct metrics_client *cl)
{
    ssize_t n = buf_write_fd(&cl->out, cl->fd);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == -1) {
        drop(cl);
        return;
    }
    if (buf_len(&cl->out) > 0)
        return;
    if (shutdown(cl->fd, SHUT_WR) == -1)
        drop(cl);
    else
        cl->finishing = 1;
}

static void read_to_eof(struct metrics_client *cl)
{
    char sink[4096];
    ssize_t n = recv(cl->fd, sink, sizeof(sink), MSG_DONTWAIT);
    if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
        drop(cl);
}

static void accept_client(struct metrics_http *mh)
{
    int fd = accept4(mh->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1)
        return;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
        struct metrics_client *cl = &mh->clients[i];
        if (cl->fd == -1) {
            cl->fd = fd;
            cl->answering = 0;
            cl->finishing = 0;
            cl->deadline = clock_mono() + METRICS_CLIENT_SECONDS;
            buf_init(&cl->in, REQUEST_MAX);
            buf_init(&cl->out, CONTROL_STATS_MAX + 1024);
            return;
        }
    }
    /* Scrapers retry; a crowd gets no more of this process than eight clients do. */
    static const char busy[] = "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
    ssize_t ignored = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    close(fd);
}

struct metrics_http *metrics_http_new(int listen_fd, metrics_render_fn render, void *ctx)
{
    struct metrics_http *mh = calloc(1, sizeof(*mh));
    if (mh == NULL)
        return NULL;
    mh->listen_fd = listen_fd;
    mh->render = render;
    mh->render_ctx = ctx;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
        mh->clients[i].fd = -1;
    return mh;
}

void metrics_http_close(struct metrics_http *mh)
{
    if (mh == NULL)
        return;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
        if (mh->clients[i].fd != -1)
            drop(&mh->clients[i]);
    }
    close(mh->listen_fd);
    free(mh);
}

int metrics_http_pollfds(const struct metrics_http *mh, struct pollfd *pfd, int max)
{
    int n = 0;
    if (mh == NULL || max < 1)
        return 0;
    pfd[n++] = (struct pollfd){ .fd = mh->listen_fd, .events = POLLIN };
    for (int i = 0; i < METRICS_MAX_CLIENTS && n < max; i++) {
        const struct metrics_client *cl = &mh->clients[i];
        if (cl->fd != -1)
            pfd[n++] = (struct pollfd){ .fd = cl->fd,
                                        .events = cl->answering && !cl->finishing ? POLLOUT
                                                                                  : POLLIN };
    }
    return n;
}

void metrics_http_handle(struct metrics_http *mh, const struct pollfd *pfd, int n)
{
    if (mh == NULL)
        return;
    for (int k = 0; k < n; k++) {
        if (pfd[k].revents == 0)
            continue;
        if (pfd[k].fd == mh->listen_fd) {
            accept_client(mh);
            continue;
        }
        for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
            struct metrics_client *cl = &mh->clients[i];
            if (cl->fd != pfd[k].fd)
                continue;
            if (cl->finishing) {
                read_to_eof(cl);
                break;
            }
            if (!cl->answering)
                read_request(mh, cl);
            /* Usually the whole answer fits the socket buffer at once. */
            if (cl->fd != -1 && cl->answering)
                write_answer(cl);
            break;
        }
    }
}

double metrics_http_next_wake(const struct metrics_http *mh, double now)
{
    double first = -1.0;
    for (int i = 0; mh != NULL && i < METRICS_MAX_CLIENTS; i++) {
        const struct metrics_client *cl = &mh->clients[i];
        if (cl->fd == -1)
            continue;
        double left = cl->deadline > now ? cl->deadline - now : 0.0;
        if (first < 0 || left < first)
            first = left;
    }
    return first;
}

void metrics_http_tick(struct metrics_http *mh, double now)
{
    for (int i = 0; mh != NULL && i < METRICS_MAX_CLIENTS; i++) {
        struct metrics_client *cl = &mh->clients[i];
        if (cl->fd != -1 && now >= cl->deadline)
            drop(cl);
    }
}
