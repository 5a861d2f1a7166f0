#include "worker/auth_client.h"

#include <stdlib.h>
#include <sys/epoll.h>

#include "shm/stats.h"

/* Do not hammer a helper that is restarting. */
#define AUTH_RECONNECT_SECONDS 0.5

struct auth_client {
    struct ev_io io;           /* the helper connection, while there is one */
    struct ev_timer expiry;    /* when the oldest request out times out */
    struct loop *lp;
    struct helper_client *hc;
};

static void on_event(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    struct auth_client *ac = io->data;
    (void)ev;
    helper_client_readable(ac->hc, (events & (EPOLLHUP | EPOLLERR)) != 0);
}

static int watch(void *arg, int fd)
{
    struct auth_client *ac = arg;
    return ev_io_start(ac->lp->ev, &ac->io, fd, EPOLLIN, on_event, ac);
}

static void unwatch(void *arg, int fd)
{
    struct auth_client *ac = arg;
    (void)fd;
    ev_io_stop(ac->lp->ev, &ac->io);
}

/*
 * Requests share one timeout and are kept in the order sent, so the oldest
 * one's deadline is the only timer needed. When the oldest is answered
 * first, the timer fires early: on_expiry finds nothing due and moves it.
 */
static void schedule(void *arg, double seconds)
{
    struct auth_client *ac = arg;
    if (seconds < 0)
        ev_timer_cancel(ac->lp->ev, &ac->expiry);
    else if (!ev_timer_armed(&ac->expiry))
        (void)ev_timer_arm_in(ac->lp->ev, &ac->expiry, seconds);
}

static void on_expiry(struct ev_loop *ev, struct ev_timer *timer)
{
    struct auth_client *ac = timer->data;
    double now = ev_loop_now(ev);
    helper_client_expire(ac->hc, now);
    double left = helper_client_next_expiry(ac->hc, now);
    if (left >= 0)
        (void)ev_timer_arm(ev, &ac->expiry, now + left);
}

static void helper_timing(uint64_t microseconds)
{
    stats_timing(STATS_TIME_HELPER, microseconds);
}

struct auth_client *auth_client_new(struct loop *lp, const char *socket_path,
                                    auth_view_fn *on_view)
{
    struct auth_client *ac = calloc(1, sizeof(*ac));
    if (ac == NULL)
        return NULL;
    const struct helper_client_hooks hooks = {
        .watch = watch, .unwatch = unwatch, .schedule = schedule, .arg = ac,
        .on_view = on_view, .timing = helper_timing,
        .reconnect_seconds = AUTH_RECONNECT_SECONDS, .require_maildir = 1,
    };
    ac->lp = lp;
    ev_timer_init(&ac->expiry, on_expiry, ac);
    ac->hc = helper_client_new(socket_path, &hooks);
    if (ac->hc == NULL) {
        free(ac);
        return NULL;
    }
    return ac;
}

int auth_client_connect(struct auth_client *ac)
{
    return helper_client_connect(ac->hc);
}

void auth_client_free(struct auth_client *ac)
{
    if (ac == NULL)
        return;
    ev_timer_cancel(ac->lp->ev, &ac->expiry);
    helper_client_free(ac->hc);
    free(ac);
}

struct helper_client *auth_client_helper(struct auth_client *ac)
{
    return ac->hc;
}
