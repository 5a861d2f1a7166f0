#include "conn_timer.h"

#include "worker/conn_drain.h"
#include "daemon/runtime/clock.h"
#include "worker/conn_limits.h"
#include "worker/loop.h"

static double timeout_of(const struct loop *lp, enum conn_timer t)
{
    switch (t) {
    case CONN_TIMER_IDLE: return conn_drain_idle_limit(lp);
    case CONN_TIMER_LINGER: return lp->cfg->quit_linger;
    case CONN_TIMER_PROXY: return lp->cfg->proxy_timeout;
    case CONN_TIMER_HANDSHAKE: return lp->cfg->tls_handshake_timeout;
    case CONN_TIMERS: break;
    }
    return 0;
}

static void unlink_conn(struct conn *c)
{
    struct loop *lp = c->lp;
    if (!c->timer_listed)
        return;
    if (c->timer_prev)
        c->timer_prev->timer_next = c->timer_next;
    else
        lp->timer_head[c->timer] = c->timer_next;
    if (c->timer_next)
        c->timer_next->timer_prev = c->timer_prev;
    else
        lp->timer_tail[c->timer] = c->timer_prev;
    c->timer_prev = c->timer_next = NULL;
    c->timer_listed = 0;
}

void conn_timer_set(struct conn *c, enum conn_timer t)
{
    struct loop *lp = c->lp;
    unlink_conn(c);
    c->timer = t;
    c->last_active = clock_mono();
    c->timer_prev = lp->timer_tail[t];
    c->timer_next = NULL;
    if (lp->timer_tail[t])
        lp->timer_tail[t]->timer_next = c;
    else
        lp->timer_head[t] = c;
    lp->timer_tail[t] = c;
    c->timer_listed = 1;
}

void conn_timer_touch(struct conn *c)
{
    if (c->timer_listed)
        conn_timer_set(c, c->timer);
}

void conn_timer_clear(struct conn *c)
{
    unlink_conn(c);
}

/* What a client is told when a wait runs out; NULL: just close. */
static const char *farewell(enum conn_timer t)
{
    return t == CONN_TIMER_IDLE ? "-ERR Disconnected for inactivity\r\n" : NULL;
}

static const char *reason(enum conn_timer t)
{
    switch (t) {
    case CONN_TIMER_IDLE: return "idle-timeout";
    case CONN_TIMER_LINGER: return "quit";
    case CONN_TIMER_PROXY: return "proxy-timeout";
    case CONN_TIMER_HANDSHAKE: return "tls-timeout";
    case CONN_TIMERS: break;
    }
    return "timeout";
}

void conn_timer_expire(struct loop *lp, double now)
{
    for (int t = 0; t < CONN_TIMERS; t++) {
        double timeout = timeout_of(lp, (enum conn_timer)t);
        for (int n = 0; lp->timer_head[t] != NULL && n < 10000; n++) {
            struct conn *c = lp->timer_head[t];
            if (c->last_active + timeout > now)
                break;
            if (t == CONN_TIMER_IDLE && c->last_active + lp->cfg->idle_timeout > now) {
                /* Only a drain's shorter limit has passed. */
                conn_drain_idle(c);
                continue;
            }
            const char *bye = farewell((enum conn_timer)t);
            if (bye != NULL)
                conn_limits_farewell(c, bye);
            conn_close(c, reason((enum conn_timer)t));
        }
    }
}

double conn_timer_next(struct loop *lp, double now)
{
    double next = -1;
    for (int t = 0; t < CONN_TIMERS; t++) {
        if (lp->timer_head[t] == NULL)
            continue;
        double left = lp->timer_head[t]->last_active + timeout_of(lp, (enum conn_timer)t) - now;
        if (next < 0 || left < next)
            next = left < 0 ? 0 : left;
    }
    return next;
}
