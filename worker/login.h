/*
 * Logging in: the one entrance for passwords in the worker, and the one
 * exit every mechanism ends in. USER/PASS (worker/pop3_auth.c), AUTH PLAIN
 * and AUTH LOGIN (worker/pop3_sasl.c) hand a name and password to
 * login_password(): this worker's memo of logins the helper accepted
 * (worker/credcache_memo.h, under the shared credential cache), else
 * fastpop-auth. SCRAM-SHA-256 is relayed to the helper by pop3_sasl.c (the
 * helper alone holds the keys). Every outcome, of every mechanism, goes
 * through login_finish(): the reply, the counters, the log line, the memo,
 * and on success the mailbox.
 */
#ifndef FASTPOP_LOGIN_H
#define FASTPOP_LOGIN_H

#include "auth/protocol.h"
#include "worker/conn.h"
#include "worker/pop3.h"

/*
 * Log in user with password by mechanism mech: a fresh memo entry answers
 * at once (through login_finish(), no IPC); otherwise the helper is asked and
 * its answer goes to login_finish() later. Returns POP3_DEFERRED (the reply
 * is written now or later), or POP3_ERR with r set when the helper cannot be
 * reached. password is wiped.
 */
enum pop3_verdict login_password(struct conn *c, const char *user, char *password,
                                 const char *mech, struct pop3_reply *r);

/*
 * The end of every login attempt (c->auth_mech names the mechanism): write
 * the reply, count and log it, settle the memo; on AUTH_OK check the user's
 * policy (policy NULL: none of the user's own; worker/login_policy.h) and open the mailbox
 * of the canonical user at maildir (POP3_MAILBOX_LOAD while a loader thread
 * reads it). The caller has ended any SASL exchange. Does not resume c: a
 * caller outside c's own event calls conn_resume().
 */
void login_finish(struct conn *c, enum auth_status status, const char *user,
                  const char *maildir, const struct user_policy *policy);

/* The session ends: a request out at the helper is cancelled, the memo pre-tag wiped. */
void login_abandon(struct conn *c);

/*
 * The helper's penalty view (shm/penalty_view.h), received by the auth
 * client: fd is taken (mapped, then closed) and replaces the view in use.
 * Until a worker has one, no login is answered from the credential cache.
 */
void login_adopt_view(int fd);

#endif
