#include "worker/conn_drain.h"

#include <stdio.h>

#include "shm/scoreboard.h"

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

/*
 * End the sessions that match: one between commands is told text and
 * closed now; one in the middle of a command (RETR streaming, a login at
 * the helper) at its next command boundary, so keep calling while this
 * returns more than 0. SB_KICK_NOW (a drain's deadline) closes at once.
 * Nothing is deleted either way: no UPDATE state.
 */
static unsigned end_sessions(struct loop *lp, int (*match)(struct conn *c), const char *text,
                             const char *reason)
{
    unsigned pending = 0;
    struct conn *next;
    for (struct conn *c = lp->conns; c != NULL; c = next) {
        next = c->all_next;
        int how = match(c);
        if (how == 0 || (how != SB_KICK_NOW &&
                         (c->state == CONN_CLOSING || c->state == CONN_LINGER)))
            continue;
        if (how == SB_KICK_NOW) {
            conn_drain_cut(c);
            continue;
        }
        if (c->state == CONN_PROXY || c->state == CONN_TLS_HANDSHAKE) {
            conn_close(c, reason);
            continue;
        }
        if (!conn_accepts_commands(c) || c->job != NULL || buf_len(&c->out) > 0) {
            pending++;
            continue;
        }
        conn_reply(c, "-ERR [SYS/TEMP] %s\r\n", text);
        conn_finish(c, reason);
        conn_run(c);
    }
    return pending;
}

static int match_all(struct conn *c)
{
    (void)c;
    return SB_KICK_IDLE;
}

static int match_kicked(struct conn *c)
{
    return (int)scoreboard_kicked(c->lp->sb, c->slot);
}

void conn_shutdown_idle(struct loop *lp)
{
    end_sessions(lp, match_all, "Server is shutting down, try again later", "shutdown");
}

unsigned conn_sweep(struct loop *lp, int draining, const char *message)
{
    conn_drain_update(lp, draining, message);
    return end_sessions(lp, match_kicked, "Disconnected by the administrator", "kicked");
}
