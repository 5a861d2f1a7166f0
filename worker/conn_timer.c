#include "conn_timer.h"

#include "daemon/runtime/clock.h"
#include "daemon/runtime/log.h"
#include "worker/conn_drain.h"
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

static void arm(struct conn *c)
{
    /* Only ENOMEM for a heap of every connection: the connection then cannot be timed. */
    if (ev_timer_arm(c->lp->ev, &c->deadline, c->last_active + timeout_of(c->lp, c->timer)) == -1) {
        log_error("conn %s:%u: no memory for its deadline", c->ip, c->port);
        conn_close(c, "no-memory");
    }
}

static void on_deadline(struct ev_loop *ev, struct ev_timer *timer)
{
    struct conn *c = timer->data;
    double now = ev_loop_now(ev);
    /* A drain that ended gave the idle wait its full length back. */
    if (c->last_active + timeout_of(c->lp, c->timer) > now) {
        arm(c);
        return;
    }
    if (c->timer == CONN_TIMER_IDLE && c->last_active + c->lp->cfg->idle_timeout > now) {
        /* Only a drain's shorter limit has passed. */
        conn_drain_idle(c);
        return;
    }
    const char *bye = farewell(c->timer);
    if (bye != NULL)
        conn_limits_farewell(c, bye);
    conn_close(c, reason(c->timer));
}

void conn_timer_set(struct conn *c, enum conn_timer t)
{
    if (c->deadline.on_fire == NULL)
        ev_timer_init(&c->deadline, on_deadline, c);
    c->timer = t;
    c->last_active = clock_mono();
    arm(c);
}

void conn_timer_touch(struct conn *c)
{
    if (ev_timer_armed(&c->deadline))
        conn_timer_set(c, c->timer);
}

void conn_timer_refresh(struct conn *c)
{
    if (ev_timer_armed(&c->deadline))
        arm(c);
}

void conn_timer_clear(struct conn *c)
{
    ev_timer_cancel(c->lp->ev, &c->deadline);
}
