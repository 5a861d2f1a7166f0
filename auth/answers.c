#include "auth/answers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/runtime/ipc.h"
#include "daemon/runtime/log.h"

struct held_answer {
    struct answers *owner;
    struct ev_timer due;       /* fires at the answer's time */
    int index;                 /* its place in owner->held */
    int slot;
    uint32_t gen;
    size_t len;
    unsigned char msg[];
};

int answers_init(struct answers *a, int max_held, struct ev_loop *ev,
                 answers_released_fn *released, void *arg)
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
    a->ev = ev;
    a->released = released;
    a->released_arg = arg;
    return 0;
}

void answers_free(struct answers *a)
{
    (void)answers_flush_all(a);
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

/* Send h if its connection is still the one it was for, and forget it. */
static void release(struct held_answer *h)
{
    struct answers *a = h->owner;

    ev_timer_cancel(a->ev, &h->due);
    if (h->gen == a->gen[h->slot])
        answers_send(a, h->slot, h->msg, h->len);
    a->held[h->index] = a->held[--a->nheld];
    a->held[h->index]->index = h->index;
    free(h);
}

/* A held answer's time has come. */
static void on_due(struct ev_loop *ev, struct ev_timer *timer)
{
    struct held_answer *h = timer->data;
    struct answers *a = h->owner;

    (void)ev;
    release(h);
    if (a->released != NULL)
        a->released(a->released_arg);
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
    h->owner = a;
    h->slot = slot;
    h->gen = gen;
    h->len = len;
    memcpy(h->msg, msg, len);
    ev_timer_init(&h->due, on_due, h);
    if (ev_timer_arm(a->ev, &h->due, at) == -1) {
        log_error("auth penalty: cannot hold an answer (no memory for its timer); dropped, "
                  "the worker times out");
        free(h);
        return -1;
    }
    h->index = a->nheld;
    a->held[a->nheld++] = h;
    return 0;
}

int answers_flush_all(struct answers *a)
{
    int left = a->nheld;

    while (a->nheld > 0)
        release(a->held[a->nheld - 1]);
    return left;
}
