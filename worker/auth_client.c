#include "worker/auth_client.h"

#include <stdlib.h>
#include <sys/epoll.h>

#include "shm/stats.h"

/* Do not hammer a helper that is restarting. */
#define AUTH_RECONNECT_SECONDS 0.5

struct auth_client {
    struct loop_handler io;    /* first: the loop hands it back */
    struct loop *lp;
    struct helper_client *hc;
};

static void on_event(struct loop *lp, struct loop_handler *h, uint32_t events)
{
    struct auth_client *ac = (struct auth_client *)h;
    (void)lp;
    helper_client_readable(ac->hc, (events & (EPOLLHUP | EPOLLERR)) != 0);
}

static int watch(void *arg, int fd)
{
    struct auth_client *ac = arg;
    return loop_watch(ac->lp, fd, EPOLLIN, &ac->io);
}

static void unwatch(void *arg, int fd)
{
    struct auth_client *ac = arg;
    loop_unwatch(ac->lp, fd);
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
        .watch = watch, .unwatch = unwatch, .arg = ac, .on_view = on_view,
        .timing = helper_timing, .reconnect_seconds = AUTH_RECONNECT_SECONDS,
        .require_maildir = 1,
    };
    ac->io.on_event = on_event;
    ac->lp = lp;
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
    helper_client_free(ac->hc);
    free(ac);
}

struct helper_client *auth_client_helper(struct auth_client *ac)
{
    return ac->hc;
}

double auth_client_next_expiry(struct auth_client *ac, double now)
{
    return helper_client_next_expiry(ac->hc, now);
}

void auth_client_expire(struct auth_client *ac, double now)
{
    helper_client_expire(ac->hc, now);
}
