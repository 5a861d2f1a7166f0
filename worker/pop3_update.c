/*
 * UPDATE state (RFC 1939 section 6): entered only by QUIT from TRANSACTION.
 * This is the one place mail is deleted. A session that ends any other way
 * (drop, timeout, kill) never gets here, so it deletes nothing. EXPIRE
 * (worker/expire.h) adds the messages whose time is up to the client's DELEs.
 */
#include "daemon/runtime/log.h"
#include "shm/stats.h"
#include "worker/expire.h"
#include "worker/mailbox.h"
#include "worker/pop3.h"

enum pop3_verdict pop3_cmd_quit_update(struct conn *c, char *args, struct pop3_reply *r)
{
    unsigned deleted, failed;
    (void)args;

    if (!mailbox_still_locked(c->session, c->user)) {
        /* Another host took the mailbox over: its session decides what goes. */
        mailbox_close(c->session);
        c->session = NULL;
        r->close_after = 1;
        pop3_set_reply(r, "IN-USE", "Mailbox lock lost to another server, nothing deleted");
        return POP3_ERR;
    }
    unsigned expired = expire_before_update(c);
    mailbox_update(c->session, &deleted, &failed);
    expire_after_update(c);
    c->stats.deleted = deleted;
    stats_add(SV_DELETED, deleted);
    /* Unlock now: the client may log in again before it reads our reply. */
    mailbox_close(c->session);
    c->session = NULL;
    r->close_after = 1;
    if (failed > 0) {
        pop3_set_reply(r, "SYS/TEMP", "%u of %u deleted messages could not be removed", failed,
                       deleted + failed);
        return POP3_ERR;
    }
    if (expired > 0)
        pop3_set_reply(r, NULL, "Logging out, %u messages deleted (%u expired)", deleted,
                       expired);
    else
        pop3_set_reply(r, NULL, "Logging out, %u messages deleted", deleted);
    return POP3_OK;
}
