#include "daemon/router/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/event_loop.h"

/* A greeting line is short; a longer one is not a POP3 server's. */
#define GREETING_MAX 512

enum probe_state { PROBE_IDLE, PROBE_CONNECTING, PROBE_READING };

struct probe {
    struct health *h;
    size_t i;                  /* its backend */
    int fd;
    enum probe_state state;
    struct ev_io io;
    struct ev_timer timeout;   /* no greeting by then: down */
    char line[GREETING_MAX];
    size_t have;
};

struct health {
    struct ev_loop *loop;
    struct route_backend *b;
    size_t n;
    struct probe *p;
    double interval, timeout;
    struct ev_timer round;     /* the next round of checks */
    int proxy_protocol;
};

static void on_round(struct ev_loop *loop, struct ev_timer *timer);
static void on_probe_event(struct ev_loop *loop, struct ev_io *io, uint32_t events);
static void on_probe_timeout(struct ev_loop *loop, struct ev_timer *timer);

struct health *health_new(struct ev_loop *loop, struct route_backend *b, size_t n,
                          double interval, double timeout, int proxy_protocol)
{
    struct health *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->p = calloc(n ? n : 1, sizeof(*h->p));
    if (h->p == NULL) {
        free(h);
        return NULL;
    }
    h->loop = loop;
    h->b = b;
    h->n = n;
    h->interval = interval;
    h->timeout = timeout;
    h->proxy_protocol = proxy_protocol;
    for (size_t i = 0; i < n; i++) {
        h->p[i].h = h;
        h->p[i].i = i;
        h->p[i].fd = -1;
        ev_timer_init(&h->p[i].timeout, on_probe_timeout, &h->p[i]);
        b[i].up = b[i].draining = 0;
    }
    /* The first round starts at the loop's first turn. */
    ev_timer_init(&h->round, on_round, h);
    if (ev_timer_arm_in(loop, &h->round, 0.0) == -1) {
        free(h->p);
        free(h);
        return NULL;
    }
    return h;
}

static void finish(struct health *h, size_t i, int up, int draining)
{
    struct probe *p = &h->p[i];
    ev_timer_cancel(h->loop, &p->timeout);
    if (p->fd >= 0) {
        ev_io_stop(h->loop, &p->io);
        if (up) {
            static const char quit[] = "QUIT\r\n";
            (void)send(p->fd, quit, sizeof(quit) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        close(p->fd);
    }
    p->fd = -1;
    p->state = PROBE_IDLE;
    p->have = 0;
    h->b[i].up = up;
    h->b[i].draining = draining;
}

void health_free(struct health *h)
{
    if (h == NULL)
        return;
    ev_timer_cancel(h->loop, &h->round);
    for (size_t i = 0; i < h->n; i++) {
        ev_timer_cancel(h->loop, &h->p[i].timeout);
        if (h->p[i].fd >= 0) {
            ev_io_stop(h->loop, &h->p[i].io);
            close(h->p[i].fd);
        }
    }
    free(h->p);
    free(h);
}

static int backend_address(const struct route_backend *b, struct sockaddr_storage *ss,
                           socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, b->ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)b->port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, b->ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)b->port);
        *len = sizeof(*v6);
        return 0;
    }
    return -1;
}

static void start(struct health *h, size_t i, double now)
{
    struct probe *p = &h->p[i];
    struct sockaddr_storage ss;
    socklen_t len;
    /*
     * A check whose time ran out with this round (interval == timeout) is
     * ended first, whichever of the two timers the loop ran first, so the
     * backend is checked again now.
     */
    if (p->fd >= 0 && p->timeout.deadline <= now)
        finish(h, i, 0, 0);
    if (p->fd >= 0)
        return;   /* the last one is still running: its own timer ends it */
    if (backend_address(&h->b[i], &ss, &len) == -1) {
        finish(h, i, 0, 0);
        return;
    }
    p->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd == -1) {
        finish(h, i, 0, 0);
        return;
    }
    p->have = 0;
    if ((connect(p->fd, (struct sockaddr *)&ss, len) == 0 || errno == EINPROGRESS) &&
        ev_io_start(h->loop, &p->io, p->fd, EPOLLOUT, on_probe_event, p) == 0 &&
        ev_timer_arm(h->loop, &p->timeout, now + h->timeout) == 0)
        p->state = PROBE_CONNECTING;
    else
        finish(h, i, 0, 0);
}

static void connected(struct health *h, size_t i)
{
    struct probe *p = &h->p[i];
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0) {
        finish(h, i, 0, 0);
        return;
    }
    if (h->proxy_protocol) {
        static const char hdr[] = "PROXY UNKNOWN\r\n";
        if (send(p->fd, hdr, sizeof(hdr) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(hdr) - 1)) {
            finish(h, i, 0, 0);
            return;
        }
    }
    if (ev_io_modify(h->loop, &p->io, EPOLLIN) == -1)
        finish(h, i, 0, 0);
    else
        p->state = PROBE_READING;
}

static void read_greeting(struct health *h, size_t i)
{
    struct probe *p = &h->p[i];
    ssize_t got = recv(p->fd, p->line + p->have, sizeof(p->line) - 1 - p->have, 0);
    if (got == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (got <= 0) {
        finish(h, i, 0, 0);
        return;
    }
    p->have += (size_t)got;
    p->line[p->have] = '\0';
    if (strchr(p->line, '\n') == NULL) {
        if (p->have == sizeof(p->line) - 1)
            finish(h, i, 0, 0);
        return;
    }
    if (strncmp(p->line, "+OK", 3) == 0)
        finish(h, i, 1, 0);
    else if (strncmp(p->line, "-ERR", 4) == 0)
        finish(h, i, 1, 1);
    else
        finish(h, i, 0, 0);
}

static void on_probe_event(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct probe *p = io->data;
    (void)loop;
    (void)events;
    if (p->state == PROBE_CONNECTING)
        connected(p->h, p->i);
    else
        read_greeting(p->h, p->i);
}

static void on_probe_timeout(struct ev_loop *loop, struct ev_timer *timer)
{
    struct probe *p = timer->data;
    (void)loop;
    finish(p->h, p->i, 0, 0);
}

static void on_round(struct ev_loop *loop, struct ev_timer *timer)
{
    struct health *h = timer->data;
    double now = ev_loop_now(loop);
    /* Cannot fail: the heap slot this timer just left is free. */
    (void)ev_timer_arm(loop, &h->round, now + h->interval);
    for (size_t i = 0; i < h->n; i++)
        start(h, i, now);
}
