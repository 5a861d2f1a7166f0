#include "daemon/router/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A greeting line is short; a longer one is not a POP3 server's. */
#define GREETING_MAX 512

enum probe_state { PROBE_IDLE, PROBE_CONNECTING, PROBE_READING };

struct probe {
    int fd;
    enum probe_state state;
    double deadline;
    char line[GREETING_MAX];
    size_t have;
};

struct health {
    struct route_backend *b;
    size_t n;
    struct probe *p;
    double interval, timeout, next_round;
    int proxy_protocol;
};

struct health *health_new(struct route_backend *b, size_t n, double interval, double timeout,
                          int proxy_protocol)
{
    struct health *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->p = calloc(n ? n : 1, sizeof(*h->p));
    if (h->p == NULL) {
        free(h);
        return NULL;
    }
    h->b = b;
    h->n = n;
    h->interval = interval;
    h->timeout = timeout;
    h->proxy_protocol = proxy_protocol;
    for (size_t i = 0; i < n; i++) {
        h->p[i].fd = -1;
        b[i].up = b[i].draining = 0;
    }
    return h;
}

static void finish(struct health *h, size_t i, int up, int draining)
{
    struct probe *p = &h->p[i];
    if (p->fd >= 0) {
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
    for (size_t i = 0; i < h->n; i++) {
        if (h->p[i].fd >= 0)
            close(h->p[i].fd);
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
    if (p->fd >= 0)
        return;   /* the last one is still running: its own deadline ends it */
    if (backend_address(&h->b[i], &ss, &len) == -1) {
        finish(h, i, 0, 0);
        return;
    }
    p->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd == -1) {
        finish(h, i, 0, 0);
        return;
    }
    p->deadline = now + h->timeout;
    p->have = 0;
    if (connect(p->fd, (struct sockaddr *)&ss, len) == 0 || errno == EINPROGRESS)
        p->state = PROBE_CONNECTING;
    else
        finish(h, i, 0, 0);
}

int health_pollfds(const struct health *h, struct pollfd *pfd, int max)
{
    int k = 0;
    for (size_t i = 0; i < h->n && k < max; i++) {
        const struct probe *p = &h->p[i];
        if (p->fd < 0)
            continue;
        pfd[k].fd = p->fd;
        pfd[k].events = p->state == PROBE_CONNECTING ? POLLOUT : POLLIN;
        pfd[k].revents = 0;
        k++;
    }
    return k;
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

void health_handle(struct health *h, const struct pollfd *pfd, int n, double now)
{
    (void)now;
    for (int k = 0; k < n; k++) {
        if (pfd[k].revents == 0)
            continue;
        for (size_t i = 0; i < h->n; i++) {
            if (h->p[i].fd != pfd[k].fd)
                continue;
            if (h->p[i].state == PROBE_CONNECTING)
                connected(h, i);
            else
                read_greeting(h, i);
            break;
        }
    }
}

double health_next_wake(const struct health *h, double now)
{
    double next = h->next_round - now;
    for (size_t i = 0; i < h->n; i++) {
        if (h->p[i].fd >= 0 && h->p[i].deadline - now < next)
            next = h->p[i].deadline - now;
    }
    return next < 0 ? 0 : next;
}

void health_tick(struct health *h, double now)
{
    for (size_t i = 0; i < h->n; i++) {
        if (h->p[i].fd >= 0 && now >= h->p[i].deadline)
            finish(h, i, 0, 0);
    }
    if (now < h->next_round)
        return;
    h->next_round = now + h->interval;
    for (size_t i = 0; i < h->n; i++)
        start(h, i, now);
}
