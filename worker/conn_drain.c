#include "worker/conn_drain.h"

#include <stdio.h>

#include "worker/conn_io.h"
#include "worker/conn_timer.h"

const char conn_drain_default_message[] = "Server is going down for maintenance";

static int logged_in(const struct conn *c)
{
    return c->state == CONN_SESSION && c->lp->protocol->logged_in(c);
}

/* The client waits for a command's answer or sends the next: an -ERR reads as one. */
static int between_commands(const struct conn *c)
{
    int talking = c->state == CONN_SESSION && c->lp->protocol->interruptible(c);
    /* Never inside a multi-line reply still going out: the -ERR would read as its text. */
    return talking && c->job == NULL && buf_len(&c->out) == 0;
}

/*
 * Say why, then close now. The client may not be reading at all, so the
 * line gets one try and no wait; a session that cannot take it just sees
 * the close. CLOSING first, so a TLS session also gets its close_notify.
 */
static void tell_and_close(struct conn *c, const char *reason)
{
    if (between_commands(c)) {
        conn_reply(c, "-ERR [SYS/TEMP] %s\r\n", c->lp->drain_message);
        conn_finish(c, reason);
        (void)conn_io_write(c);
    }
    conn_close(c, reason);
}

void conn_drain_update(struct loop *lp, int draining, const char *message)
{
    snprintf(lp->drain_message, sizeof(lp->drain_message), "%s",
             message != NULL && message[0] != '\0' ? message : conn_drain_default_message);
    lp->draining = draining != 0;
    if (!lp->draining)
        return;
    /*
     * Not logged in: nothing of theirs is lost, and a login finishing now
     * would only start a session the drain then has to wait for. A login
     * out at the helper is cancelled by the close (its PASS gets the -ERR).
     */
    struct conn *next;
    for (struct conn *c = lp->conns; c != NULL; c = next) {
        next = c->all_next;
        if (!logged_in(c) && c->state != CONN_CLOSING && c->state != CONN_LINGER)
            tell_and_close(c, "drain");
        else if (c->timer == CONN_TIMER_IDLE)
            conn_timer_refresh(c);   /* drain_idle_timeout counts from its last command */
    }
}

double conn_drain_idle_limit(const struct loop *lp)
{
    int limit = lp->cfg->idle_timeout;
    if (lp->draining && lp->cfg->drain_idle_timeout < limit)
        limit = lp->cfg->drain_idle_timeout;
    return (double)limit;
}

void conn_drain_idle(struct conn *c)
{
    /* A session closing anyway keeps its own reason (conn_close()). */
    tell_and_close(c, logged_in(c) ? "drain-idle" : "drain");
}

void conn_drain_cut(struct conn *c)
{
    /* QUIT was answered (and its deletions done): it ended as a quit. */
    if (c->state == CONN_LINGER) {
        conn_close(c, "quit");
        return;
    }
    tell_and_close(c, "drain-deadline");
}
