/*
 * UPDATE state (RFC 1939 section 6): entered only by QUIT from TRANSACTION.
 * This is the one place mail is deleted. A session that ends any other way
 * (drop, timeout, kill) never gets here, so it deletes nothing. EXPIRE
 * (worker/expire.h) adds the messages whose time is up to the client's DELEs.
 *
 * The update may run on the worker's loader thread (worker/mailbox_update.h):
 * the session is then POP3_UPDATE, reads no command, and is answered when
 * the deletions are done and durable.
 */
#include "daemon/runtime/log.h"
#include "worker/expire.h"
#include "worker/mailbox.h"
#include "worker/mailbox_update.h"
#include "worker/pop3.h"

/* QUIT's reply from what the update did; the session is closed already. */
static enum pop3_verdict quit_reply(struct conn *c, const struct mailbox_update_result *res,
                                    struct pop3_reply *r)
{
    c->stats.deleted = res->deleted;
    r->close_after = 1;
    if (res->failed > 0) {
        pop3_set_reply(r, "SYS/TEMP", "%u of %u deleted messages could not be removed",
                       res->failed, res->deleted + res->failed);
        return POP3_ERR;
    }
    if (c->expired_at_quit > 0)
        pop3_set_reply(r, NULL, "Logging out, %u messages deleted (%u expired)", res->deleted,
                       c->expired_at_quit);
    else
        pop3_set_reply(r, NULL, "Logging out, %u messages deleted", res->deleted);
    return POP3_OK;
}

/* The update ran on the loader thread: answer QUIT now, from the loop. */
static void quit_updated(struct conn *c, const struct mailbox_update_result *res)
{
    struct pop3_reply r = { 0 };
    enum pop3_verdict v = quit_reply(c, res, &r);
    pop3_write_reply(c, v, &r);
    pop3_end_after_quit(c);
    pop3_command_done(c);
    conn_resume(c);
}

enum pop3_verdict pop3_cmd_quit_update(struct conn *c, char *args, struct pop3_reply *r)
{
    struct mailbox_update_result res;
    (void)args;

    if (!mailbox_still_locked(c->session, c->user)) {
        /* Another host took the mailbox over: its session decides what goes. */
        mailbox_close(c->session);
        c->session = NULL;
        r->close_after = 1;
        pop3_set_reply(r, "IN-USE", "Mailbox lock lost to another server, nothing deleted");
        return POP3_ERR;
    }
    c->expired_at_quit = expire_before_update(c);
    /*
     * The retrieval records of the messages marked deleted go now, before the
     * unlinks (which may run on the loader thread, with the session): one
     * whose unlink then fails only loses its day, so it is kept longer,
     * never removed early.
     */
    expire_after_update(c);
    if (mailbox_update_start(c, quit_updated)) {
        pop3_set_state(c, POP3_UPDATE);
        return POP3_DEFERRED;
    }
    mailbox_update_now(c, &res);
    return quit_reply(c, &res, r);
}
