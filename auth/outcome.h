/*
 * A login attempt as every layer of the helper sees it (the request path,
 * the credential cache's policy, the password databases, SCRAM), and the
 * one log line of its outcome. Every failed login is logged at info level
 * as one line for fail2ban:
 *
 *   auth failed user=<u> ip=<ip> mechanism=<m> reason=<reason>
 *
 * reason is one of unknown-user, bad-password, empty-user, empty-password,
 * unknown-scheme, malformed-hash; from LDAP also no-password (an entry without
 * userPassword), ambiguous-user (the filter matched several entries),
 * account-refused (a bind refused as locked/disabled, auth/passdb_ldap.h);
 * bad-user-name (outside the rule of daemon/runtime/username.h); from the request
 * path ip-blocked (auth/requests.h) and cached-failure (auth/cache_policy.h).
 * user, ip and mechanism are escaped with text_log_escape(), so each is one
 * word of printable ASCII. Temporary failures are logged as "auth tempfail
 * ... reason=<reason>" (info; the cause itself is logged once, at error
 * level, where it is found), successes as "auth ok ..." (debug). Passwords
 * and hashes are never logged. A right password for an account that may not
 * use POP3 (AUTH_REFUSED) is logged "auth refused ... reason=<reason>" (info;
 * pop3-disabled (authlib's disablepop3, the passwd-file's disablepop3=1,
 * ldap_pop3_enabled_attribute FALSE), foreign-uid from auth/passdb_authlib.h):
 * not a failure for fail2ban. A refusal comes only after the password
 * matched: a wrong password is a failure like any other, so a guesser
 * learns nothing about the account's state. A policy value the directory
 * holds but that cannot be read is a tempfail, reason=policy-attribute.
 */
#ifndef FASTPOP_AUTH_OUTCOME_H
#define FASTPOP_AUTH_OUTCOME_H

#include <stdint.h>

#include "auth/protocol.h"

struct auth_request {
    const char *user;
    const char *password;
    const char *ip;
    const char *mechanism;
};

struct auth_result {
    enum auth_status status;
    /* AUTH_TEMPFAIL: the database could not be read or did not answer in time.
     * Only then may stale-if-error answer (auth/cache_policy.h). */
    int outage;
    /* AUTH_FAIL: the database refused the account itself (locked, disabled):
     * every cached login of user is forgotten (auth/cache_policy.h). */
    int account_refused;
    /* The canonical name: on AUTH_OK, and on a failure when the database
     * found the account (the penalty and the cache go by it). A worker gets
     * it only with AUTH_OK. */
    char user[AUTH_USER_MAX];
    char maildir[AUTH_PATH_MAX];     /* absolute, on AUTH_OK */
    char host[AUTH_HOST_MAX];        /* ldap_host_attribute's value, on AUTH_OK; may be "" */
    char message[AUTH_MESSAGE_MAX];  /* for the worker's log; never for the client */
    struct user_policy policy;       /* the user's own POP3 policy, on AUTH_OK (all zero: none) */
    /* AUTH_OK answered from or recorded in the credential cache: the generation
     * of this password's entry, for the worker's memo (worker/credcache_memo.h);
     * 0 otherwise (nothing to remember, e.g. a stale-if-error answer). */
    uint64_t generation;
};

/* The log line of an outcome: what is "ok", "failed" or "tempfail" (format above). */
void outcome_log(const struct auth_request *req, const char *what, const char *reason);

#endif
