#include "daemon/router/router_helper.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/limits.h"
#include "daemon/runtime/log.h"

struct pending {
    int used;
    uint32_t id;
    uint64_t tag;
    double deadline;
};

struct router_helper {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int fd;
    double last_connect;
    uint32_t next_id;
    unsigned max;
    struct pending *p;
    router_helper_done_fn done;
    void *ctx;
};

static void answer_tempfail(struct router_helper *rh, struct pending *p, const char *why)
{
    struct auth_reply rep;
    memset(&rep, 0, sizeof(rep));
    rep.type = AUTH_MSG_PASS_REPLY;
    rep.status = AUTH_TEMPFAIL;
    snprintf(rep.message, sizeof(rep.message), "%s", why);
    p->used = 0;
    rh->done(rh->ctx, p->tag, &rep);
}

static void disconnect(struct router_helper *rh, const char *why)
{
    log_warning("auth helper connection lost (%s); logins in flight get a temporary failure",
                why);
    close(rh->fd);
    rh->fd = -1;
    for (unsigned i = 0; i < rh->max; i++) {
        if (rh->p[i].used)
            answer_tempfail(rh, &rh->p[i], "auth helper connection lost");
    }
}

static int connect_helper(struct router_helper *rh, double now)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (now - rh->last_connect < ROUTER_HELPER_RETRY_SECONDS && rh->last_connect > 0)
        return -1;
    rh->last_connect = now;
    memcpy(sa.sun_path, rh->path, sizeof(sa.sun_path));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        log_warning("auth helper %s: %s", rh->path, strerror(errno));
        close(fd);
        return -1;
    }
    rh->fd = fd;
    return 0;
}

struct router_helper *router_helper_new(const char *socket_path, unsigned max_inflight,
                                        router_helper_done_fn done, void *ctx)
{
    struct router_helper *rh = calloc(1, sizeof(*rh));
    if (rh == NULL)
        return NULL;
    rh->p = calloc(max_inflight, sizeof(*rh->p));
    if (rh->p == NULL || strlen(socket_path) >= sizeof(rh->path)) {
        free(rh->p);
        free(rh);
        return NULL;
    }
    memcpy(rh->path, socket_path, strlen(socket_path) + 1);
    rh->fd = -1;
    rh->max = max_inflight;
    rh->next_id = 1;
    rh->done = done;
    rh->ctx = ctx;
    return rh;
}

void router_helper_free(struct router_helper *rh)
{
    if (rh == NULL)
        return;
    if (rh->fd >= 0)
        close(rh->fd);
    free(rh->p);
    free(rh);
}

void router_helper_ask(struct router_helper *rh, uint64_t tag, const char *user,
                       const char *password, const char *ip, const char *mechanism,
                       double now)
{
    struct pending *slot = NULL;
    for (unsigned i = 0; i < rh->max && slot == NULL; i++) {
        if (!rh->p[i].used)
            slot = &rh->p[i];
    }
    struct pending over = { .tag = tag };
    if (slot == NULL) {
        answer_tempfail(rh, &over, "too many logins in flight");
        return;
    }
    *slot = (struct pending){ .used = 1, .id = rh->next_id++, .tag = tag,
                              .deadline = now + AUTH_TIMEOUT_SECONDS };
    if (rh->fd < 0 && connect_helper(rh, now) == -1) {
        answer_tempfail(rh, slot, "no auth helper");
        return;
    }
    struct buf b;
    buf_init(&b, IPC_MAX_MESSAGE);
    int rc = protocol_encode_pass_request(&b, slot->id, user, password, ip, mechanism);
    if (rc == 0)
        rc = ipc_send(rh->fd, &b);
    int saved = errno;
    if (buf_len(&b) > 0)
        explicit_bzero(buf_rptr(&b), buf_len(&b));
    buf_free(&b);
    if (rc == -1) {
        answer_tempfail(rh, slot, "request not sent");
        /* A full socket buffer is the helper being slow, not gone. */
        if (saved != EAGAIN && saved != ENOBUFS && saved != EMSGSIZE)
            disconnect(rh, strerror(saved));
    }
}

void router_helper_cancel(struct router_helper *rh, uint64_t tag)
{
    for (unsigned i = 0; i < rh->max; i++) {
        if (rh->p[i].used && rh->p[i].tag == tag)
            rh->p[i].used = 0;   /* its answer, when it comes, is dropped */
    }
}

int router_helper_pollfds(const struct router_helper *rh, struct pollfd *pfd, int max)
{
    if (rh->fd < 0 || max < 1)
        return 0;
    pfd[0] = (struct pollfd){ .fd = rh->fd, .events = POLLIN };
    return 1;
}

void router_helper_handle(struct router_helper *rh, const struct pollfd *pfd, int n, double now)
{
    (void)now;
    if (n < 1 || rh->fd < 0 || pfd[0].fd != rh->fd || pfd[0].revents == 0)
        return;
    unsigned char msg[IPC_MAX_MESSAGE];
    /* Bounded: a helper answering faster than this loop cannot hold it here. */
    for (unsigned k = 0; k < rh->max + 1; k++) {
        ssize_t len = ipc_recv(rh->fd, msg, sizeof(msg));
        if (len == -1 && (errno == EAGAIN || errno == EINTR))
            return;
        if (len <= 0) {
            disconnect(rh, len == 0 ? "helper closed the connection" : strerror(errno));
            return;
        }
        struct auth_reply rep;
        if (protocol_decode_reply(msg, (size_t)len, &rep) == -1 ||
            rep.type != AUTH_MSG_PASS_REPLY) {
            disconnect(rh, "malformed reply");
            return;
        }
        for (unsigned i = 0; i < rh->max; i++) {
            struct pending *p = &rh->p[i];
            if (p->used && p->id == rep.id) {
                p->used = 0;
                rh->done(rh->ctx, p->tag, &rep);
                break;
            }
        }
    }
}

double router_helper_next_wake(const struct router_helper *rh, double now)
{
    double first = -1.0;
    for (unsigned i = 0; i < rh->max; i++) {
        if (!rh->p[i].used)
            continue;
        double left = rh->p[i].deadline > now ? rh->p[i].deadline - now : 0.0;
        if (first < 0 || left < first)
            first = left;
    }
    return first;
}

void router_helper_tick(struct router_helper *rh, double now)
{
    for (unsigned i = 0; i < rh->max; i++) {
        if (rh->p[i].used && now >= rh->p[i].deadline)
            answer_tempfail(rh, &rh->p[i], "auth helper did not answer in time");
    }
}
