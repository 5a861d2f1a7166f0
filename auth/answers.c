#include "auth/answers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/runtime/ipc.h"
#include "daemon/runtime/log.h"

struct held_answer {
    int slot;
    uint32_t gen;
    double send_at;
    size_t len;
    unsigned char msg[];
};

int answers_init(struct answers *a, int max_held)
{
    memset(a, 0, sizeof(*a));
    for (int i = 0; i < ANSWERS_MAX_PEERS; i++)
        a->fd[i] = -1;
    a->held = calloc((size_t)max_held, sizeof(*a->held));
    if (a->held == NULL) {
        errno = ENOMEM;
        return -1;
    }
    a->max_held = max_held;
    return 0;
}

void answers_free(struct answers *a)
{
    (void)answers_flush(a, 0, 1);
    free(a->held);
    a->held = NULL;
}

void answers_peer_open(struct answers *a, int slot, int fd)
{
    a->fd[slot] = fd;
    a->cut[slot] = 0;
}

void answers_peer_closed(struct answers *a, int slot)
{
    a->fd[slot] = -1;
    a->gen[slot]++;
}

/*
 * Never wait for a worker that does not read its answers: shut its
 * connection down, and read no more of its requests (no work for a peer that
 * is gone). The loop then sees the end and closes it.
 */
static void cut(struct answers *a, int slot)
{
    shutdown(a->fd[slot], SHUT_RDWR);
    a->cut[slot] = 1;
}

void answers_send(struct answers *a, int slot, const void *msg, size_t len)
{
    int fd = a->fd[slot];

    if (fd < 0)
        return;
    if (send(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len) {
        log_warning("worker connection %d: cannot answer (%s); closing it", slot,
                    errno == EAGAIN ? "socket full" : strerror(errno));
        cut(a, slot);
    }
}

void answers_send_fd(struct answers *a, int slot, const struct buf *msg, int passfd)
{
    if (a->fd[slot] >= 0 && ipc_send_fd(a->fd[slot], msg, passfd) == -1) {
        log_warning("worker connection %d: cannot pass the penalty view (%s); closing it", slot,
                    strerror(errno));
        cut(a, slot);
    }
}

int answers_send_at(struct answers *a, int slot, uint32_t gen, double at, double now,
                    const void *msg, size_t len)
{
    struct held_answer *h = NULL;

    if (gen != a->gen[slot])
        return 1;
    if (at <= now) {
        answers_send(a, slot, msg, len);
        return 1;
    }
    if (a->nheld >= a->max_held || (h = malloc(sizeof(*h) + len)) == NULL) {
        log_error("auth penalty: cannot hold an answer (%s); dropped, the worker times out",
                  a->nheld >= a->max_held ? "table full" : "no memory");
        return -1;
    }
    h->slot = slot;
    h->gen = gen;
    h->send_at = at;
    h->len = len;
    memcpy(h->msg, msg, len);
    a->held[a->nheld++] = h;
    return 0;
}

int answers_flush(struct answers *a, double now, int all)
{
    int left = 0;

    for (int i = 0; i < a->nheld;) {
        struct held_answer *h = a->held[i];
        if (!all && h->send_at > now) {
            i++;
            continue;
        }
        if (h->gen == a->gen[h->slot])
            answers_send(a, h->slot, h->msg, h->len);
        free(h);
        a->held[i] = a->held[--a->nheld];
        left++;
    }
    return left;
}

int answers_timeout_ms(const struct answers *a, double now)
{
    double first = -1;

    for (int i = 0; i < a->nheld; i++) {
        if (first < 0 || a->held[i]->send_at < first)
            first = a->held[i]->send_at;
    }
    if (first < 0)
        return -1;
    return first <= now ? 0 : (int)((first - now) * 1000) + 1;
}
