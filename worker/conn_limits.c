#include "worker/conn_limits.h"

#include <string.h>
#include <sys/socket.h>

#include "daemon/runtime/log.h"
#include "daemon/runtime/clock.h"
#include "worker/loop.h"

static void on_login_deadline(struct ev_loop *ev, struct ev_timer *timer)
{
    struct conn *c = timer->data;
    (void)ev;
    conn_limits_farewell(c, "-ERR [SYS/TEMP] Login took too long, closing connection\r\n");
    /* conn_close() takes c off the list. */
    conn_close(c, "login-timeout");
}

int conn_limits_track(struct conn *c)
{
    struct loop *lp = c->lp;
    if (c->preauth_listed)
        return 0;
    ev_timer_init(&c->login_deadline, on_login_deadline, c);
    if (ev_timer_arm(lp->ev, &c->login_deadline, c->started + lp->cfg->login_timeout) == -1)
        return -1;
    c->preauth_prev = lp->preauth_tail;
    c->preauth_next = NULL;
    if (lp->preauth_tail)
        lp->preauth_tail->preauth_next = c;
    else
        lp->preauth_head = c;
    lp->preauth_tail = c;
    c->preauth_listed = 1;
    return 0;
}

void conn_limits_untrack(struct conn *c)
{
    struct loop *lp = c->lp;
    if (!c->preauth_listed)
        return;
    ev_timer_cancel(lp->ev, &c->login_deadline);
    if (c->preauth_prev)
        c->preauth_prev->preauth_next = c->preauth_next;
    else
        lp->preauth_head = c->preauth_next;
    if (c->preauth_next)
        c->preauth_next->preauth_prev = c->preauth_prev;
    else
        lp->preauth_tail = c->preauth_prev;
    c->preauth_prev = c->preauth_next = NULL;
    c->preauth_listed = 0;
}

void conn_limits_farewell(struct conn *c, const char *line)
{
    /* Not between the lines of a reply still queued either. */
    if (c->ssl != NULL || buf_len(&c->out) > 0 ||
        c->state != CONN_SESSION)
        return;
    /* The client may not be reading at all: one try, never wait. */
    ssize_t ignored = send(c->fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
}

int conn_limits_preauth_command(struct conn *c)
{
    if (++c->preauth_commands <= (unsigned)c->lp->cfg->max_preauth_commands)
        return 0;
    conn_reply(c, "-ERR Too many commands before login, closing connection\r\n");
    conn_finish(c, "too-many-commands");
    return 1;
}

int conn_limits_evict_oldest(struct loop *lp, const char *ip)
{
    struct conn *c = lp->preauth_head;
    if (c == NULL)
        return 0;
    log_info("max_connections reached: closing the oldest connection not logged in "
             "(ip=%s port=%u, %.1fs old) to make room for ip=%s", c->ip, c->port,
             clock_mono() - c->started, ip);
    conn_limits_farewell(c, "-ERR [SYS/TEMP] Server busy, closing connections not logged in\r\n");
    conn_close(c, "evicted");
    return 1;
}

struct scoreboard_limits conn_limits(const struct config *cfg, int behind_proxy)
{
    unsigned total = (unsigned)cfg->max_connections;
    struct scoreboard_limits limits = { total, (unsigned)cfg->max_connections_per_ip,
                                        (unsigned)cfg->max_connections_per_ipv6_48 };
    if (behind_proxy)
        limits.per_ip = limits.per_ipv6_48 = total;
    return limits;
}
