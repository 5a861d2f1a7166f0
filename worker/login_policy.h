/*
 * The user's own POP3 policy at login (daemon/runtime/user_policy.h), once
 * the password is known to be right: the last step before the mailbox
 * opens, for every mechanism and for logins answered from the cache alike
 * (the policy travels in the helper's answer and in the login list).
 *
 * disableinsecurepop3 (authlib OPTIONS, the passwd-file extra field, the
 * LDAP plaintext attribute FALSE): a login over a connection without TLS is
 * refused with -ERR [AUTH]. RFC 3206 section 5 gives [AUTH] for a failure
 * that the user's credentials or "an attempt to authenticate in violation
 * of policy" cause, which retrying the same way will not cure; [SYS/PERM]
 * would tell the client the account is unusable, which it is not (over
 * TLS it works). The text says so, and naming the reason gives a guesser
 * nothing: over TLS the same password would simply be accepted. Only TLS
 * counts, the worker's own or a trusted proxy's (PROXY v2 SSL TLV);
 * plaintext_auth and plaintext_trusted, which open plaintext logins for
 * everyone, do not exempt a user who asked for TLS.
 *
 * LOGIN-DELAY (RFC 2449 section 6.6): the user's own value (passwd-file
 * pop3_login_delay, ldap_login_delay_attribute) or pop3_login_delay. A
 * login sooner than that after the user's last one (on any worker of this
 * host: shm/policy_store.h) is refused with -ERR [LOGIN-DELAY], or with
 * pop3_login_delay_action = log let in and logged ("login early"); both are
 * counted (fastpop_login_delay_early_total). A refused or failed login is
 * no login: only a +OK moves the time. The check comes after the password,
 * so a guesser cannot tell from it when the user last logged in. Without
 * the store (index = no, or it cannot be opened) nothing is held up.
 */
#ifndef FASTPOP_LOGIN_POLICY_H
#define FASTPOP_LOGIN_POLICY_H

#include "daemon/runtime/user_policy.h"
#include "worker/conn.h"
#include "worker/pop3.h"

/*
 * 1 if policy (NULL: none of the user's own) refuses user's login on c,
 * with the reply in r and one log line; 0 if the login goes on, with the
 * policy kept in c->policy for the session.
 */
int login_policy_refuses(struct conn *c, const char *user, const struct user_policy *policy,
                         struct pop3_reply *r);

/* The login is in (+OK sent): its time is the user's last login, when a LOGIN-DELAY applies. */
void login_policy_logged_in(struct conn *c);

/* The policy's CAPA lines for c's state (LOGIN-DELAY). */
void login_policy_capa(struct conn *c);

struct policy_store;
/* This worker's policy store (shm/policy_store.h), opened on first use; NULL when it cannot be. */
struct policy_store *login_policy_store(const struct config *cfg);
/* A read or write of the store failed (rc, what for the log): counted, logged once, reopened later. */
void login_policy_store_failed(const char *what, int rc);

#endif
