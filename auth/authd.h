/*
 * The helper's state and its one decision: is this password right for this
 * user, and where is the user's maildir. The socket server and --test both
 * come through authd_check(), so they cannot disagree.
 *
 * An unknown user costs the same work as a wrong password: the password is
 * checked against a dummy hash (see authd_check()). Every failed login is
 * logged at info level as one line for fail2ban:
 *
 *   auth failed user=<u> ip=<ip> mechanism=<m> reason=<reason>
 *
 * reason is one of unknown-user, bad-password, empty-user, empty-password,
 * unknown-scheme, malformed-hash. user, ip and mechanism are escaped with
 * text_log_escape(), so each is one word of printable ASCII. Temporary
 * failures are logged as "auth tempfail ... reason=<reason>" (info; the cause
 * itself is logged once, at error level, where it is found), successes as
 * "auth ok ..." (debug). Passwords and hashes are never logged.
 */
#ifndef FASTPOP_AUTH_AUTHD_H
#define FASTPOP_AUTH_AUTHD_H

#include "auth/passwd.h"
#include "auth/protocol.h"
#include "daemon/config.h"

struct authd {
    struct config cfg;
    struct passwd_db db;
    /*
     * What an unknown user's password is checked against: the stored hash of
     * the first usable entry of the password file, so the work matches the
     * file's own scheme and cost (a yescrypt file costs yescrypt time), or,
     * with no such entry, fallback_hash, a $6$ hash made at startup.
     */
    const char *dummy;
    char fallback_hash[128];
};

struct auth_request {
    const char *user;
    const char *password;
    const char *ip;
    const char *mechanism;
};

struct auth_result {
    enum auth_status status;
    char user[AUTH_USER_MAX];        /* canonical name, on AUTH_OK */
    char maildir[AUTH_PATH_MAX];     /* absolute, on AUTH_OK */
    char message[AUTH_MESSAGE_MAX];  /* for the worker's log; never for the client */
};

/*
 * Set up ad from cfg (copied). The password file is read at the first check.
 * Returns 0, or -1 if no dummy hash could be made (crypt(3) broken): the
 * helper must not serve then, or unknown users would answer faster.
 */
int authd_init(struct authd *ad, const struct config *cfg);

/*
 * Take a new configuration (SIGHUP). The password file is read again at the
 * next check whether or not it changed: a reload means "look again".
 */
void authd_reconfigure(struct authd *ad, const struct config *cfg);

/*
 * Bring the password file up to date now and log what changed (a load
 * summary, or the error once). Used at startup and after a reload, so a
 * broken file shows in the log before the first login. Returns 0 if the
 * file is usable, -1 if not.
 */
int authd_refresh(struct authd *ad);

void authd_free(struct authd *ad);

/*
 * Decide req into res and log the outcome (see above). The password file is
 * checked for changes first. Never fails: problems become AUTH_TEMPFAIL.
 * The caller wipes req->password.
 */
void authd_check(struct authd *ad, const struct auth_request *req, struct auth_result *res);

#endif
