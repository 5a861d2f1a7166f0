#include "daemon/runtime/event_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "daemon/runtime/clock.h"

/*
 * Events taken per epoll_wait. More wait in the kernel for the next turn;
 * a bigger batch only delays the timers of this one.
 */
#define EV_BATCH 256
/* The heap's first allocation; it doubles from there. */
#define EV_HEAP_INITIAL 64

struct ev_loop {
    int epfd;
    struct ev_timer **heap;           /* heap[0] has the nearest deadline */
    size_t heap_len, heap_cap;
    struct epoll_event batch[EV_BATCH];
    int batch_len, batch_at;          /* the batch being dispatched */
    ev_hook_fn *before_wait;
    void *before_wait_arg;
    int max_wait_ms;
    int no_wait;
    int stop;
    double now;                       /* of the current timer pass */
    int has_wait_mask;
    sigset_t wait_mask;
};

struct ev_loop *ev_loop_new(void)
{
    struct ev_loop *loop = calloc(1, sizeof(*loop));
    if (loop == NULL)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd == -1) {
        int saved = errno;
        free(loop);
        errno = saved;
        return NULL;
    }
    loop->max_wait_ms = -1;
    return loop;
}

void ev_loop_free(struct ev_loop *loop)
{
    if (loop == NULL)
        return;
    for (size_t i = 0; i < loop->heap_len; i++)
        loop->heap[i]->heap_slot = 0;
    close(loop->epfd);
    free(loop->heap);
    free(loop);
}

int ev_io_start(struct ev_loop *loop, struct ev_io *io, int fd, uint32_t events,
                ev_io_fn *on_event, void *data)
{
    struct epoll_event ev = { .events = events, .data.ptr = io };
    io->on_event = on_event;
    io->data = data;
    io->fd = fd;
    io->active = 0;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
        return -1;
    io->active = 1;
    return 0;
}

int ev_io_modify(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = io };
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev);
}

void ev_io_stop(struct ev_loop *loop, struct ev_io *io)
{
    if (!io->active)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->active = 0;
    /* Its event may still be waiting in this batch: the owner may free io now. */
    for (int i = loop->batch_at; i < loop->batch_len; i++)
        if (loop->batch[i].data.ptr == io)
            loop->batch[i].data.ptr = NULL;
}

/* ---- timers: a binary min-heap; each timer knows its index ---- */

static void heap_place(struct ev_loop *loop, size_t i, struct ev_timer *t)
{
    loop->heap[i] = t;
    t->heap_slot = i + 1;
}

static void sift_up(struct ev_loop *loop, size_t i)
{
    struct ev_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->deadline <= t->deadline)
            break;
        heap_place(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_place(loop, i, t);
}

static void sift_down(struct ev_loop *loop, size_t i)
{
    struct ev_timer *t = loop->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->heap_len)
            break;
        if (child + 1 < loop->heap_len &&
            loop->heap[child + 1]->deadline < loop->heap[child]->deadline)
            child++;
        if (t->deadline <= loop->heap[child]->deadline)
            break;
        heap_place(loop, i, loop->heap[child]);
        i = child;
    }
    heap_place(loop, i, t);
}

void ev_timer_init(struct ev_timer *timer, ev_timer_fn *on_fire, void *data)
{
    timer->deadline = 0;
    timer->heap_slot = 0;
    timer->on_fire = on_fire;
    timer->data = data;
}

int ev_timer_armed(const struct ev_timer *timer)
{
    return timer->heap_slot != 0;
}

size_t ev_loop_timer_count(const struct ev_loop *loop)
{
    return loop->heap_len;
}

int ev_timer_arm(struct ev_loop *loop, struct ev_timer *timer, double deadline)
{
    if (ev_timer_armed(timer)) {
        double before = timer->deadline;
        timer->deadline = deadline;
        if (deadline < before)
            sift_up(loop, timer->heap_slot - 1);
        else
            sift_down(loop, timer->heap_slot - 1);
        return 0;
    }
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : EV_HEAP_INITIAL;
        struct ev_timer **grown = realloc(loop->heap, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        loop->heap = grown;
        loop->heap_cap = cap;
    }
    timer->deadline = deadline;
    heap_place(loop, loop->heap_len++, timer);
    sift_up(loop, timer->heap_slot - 1);
    return 0;
}

int ev_timer_arm_in(struct ev_loop *loop, struct ev_timer *timer, double seconds)
{
    return ev_timer_arm(loop, timer, clock_mono() + seconds);
}

void ev_timer_cancel(struct ev_loop *loop, struct ev_timer *timer)
{
    if (!ev_timer_armed(timer))
        return;
    size_t i = timer->heap_slot - 1;
    timer->heap_slot = 0;
    struct ev_timer *last = loop->heap[--loop->heap_len];
    if (last == timer)
        return;
    /* The last one fills the hole and finds its place from there. */
    heap_place(loop, i, last);
    if (i > 0 && loop->heap[(i - 1) / 2]->deadline > last->deadline)
        sift_up(loop, i);
    else
        sift_down(loop, i);
}

/*
 * Only as many as were armed when the pass began: a callback arming a
 * timer in the past waits for the next turn instead of holding this one
 * forever.
 */
void ev_loop_fire_timers(struct ev_loop *loop, double now)
{
    loop->now = now;
    for (size_t budget = loop->heap_len; budget > 0 && loop->heap_len > 0; budget--) {
        struct ev_timer *t = loop->heap[0];
        if (t->deadline > now)
            break;
        ev_timer_cancel(loop, t);
        t->on_fire(loop, t);
    }
}

double ev_loop_now(const struct ev_loop *loop)
{
    return loop->now;
}

/* Milliseconds until the nearest timer, rounded up so it is due on waking. */
static int wait_ms(struct ev_loop *loop)
{
    if (loop->no_wait)
        return 0;
    int ms = loop->max_wait_ms;
    if (loop->heap_len > 0) {
        double left = loop->heap[0]->deadline - clock_mono();
        int timer_ms = left <= 0 ? 0 : left > 86400.0 ? 86400000 : (int)(left * 1000.0) + 1;
        if (ms < 0 || timer_ms < ms)
            ms = timer_ms;
    }
    return ms;
}

/* ---- the loop ---- */

void ev_loop_set_before_wait(struct ev_loop *loop, ev_hook_fn *fn, void *arg)
{
    loop->before_wait = fn;
    loop->before_wait_arg = arg;
}

void ev_loop_set_max_wait(struct ev_loop *loop, int ms)
{
    loop->max_wait_ms = ms;
}

void ev_loop_set_wait_mask(struct ev_loop *loop, const sigset_t *mask)
{
    loop->has_wait_mask = mask != NULL;
    if (mask != NULL)
        loop->wait_mask = *mask;
}

void ev_loop_no_wait(struct ev_loop *loop)
{
    loop->no_wait = 1;
}

int ev_loop_once(struct ev_loop *loop)
{
    int timeout = wait_ms(loop);
    loop->no_wait = 0;
    int n = epoll_pwait(loop->epfd, loop->batch, EV_BATCH, timeout,
                        loop->has_wait_mask ? &loop->wait_mask : NULL);
    if (n == -1) {
        if (errno != EINTR)
            return -1;
        n = 0;
    }
    loop->batch_len = n;
    for (loop->batch_at = 0; loop->batch_at < loop->batch_len;) {
        struct epoll_event *ev = &loop->batch[loop->batch_at++];
        struct ev_io *io = ev->data.ptr;
        if (io != NULL)
            io->on_event(loop, io, ev->events);
    }
    loop->batch_len = loop->batch_at = 0;
    ev_loop_fire_timers(loop, clock_mono());
    return n;
}

int ev_loop_run(struct ev_loop *loop)
{
    loop->stop = 0;
    while (!loop->stop) {
        if (loop->before_wait != NULL)
            loop->before_wait(loop, loop->before_wait_arg);
        if (loop->stop)
            break;
        if (ev_loop_once(loop) == -1)
            return -1;
    }
    return 0;
}

void ev_loop_stop(struct ev_loop *loop)
{
    loop->stop = 1;
}

int ev_loop_stopping(const struct ev_loop *loop)
{
    return loop->stop;
}
