/*
 * The helper's state and its one decision: is this password right for this
 * user, and where is the user's maildir. The socket server and --test both
 * come through passdb_check(), so they cannot disagree.
 *
 * An unknown user costs the same work as a wrong password: the password is
 * checked against a dummy hash (see passdb_check()). Every failed login is
 * logged at info level as one line for fail2ban:
 *
 *   auth failed user=<u> ip=<ip> mechanism=<m> reason=<reason>
 *
 * reason is one of unknown-user, bad-password, empty-user, empty-password,
 * unknown-scheme, malformed-hash; from LDAP also no-password (an entry without
 * userPassword), ambiguous-user (the filter matched several entries),
 * account-refused (a bind refused as locked/disabled, auth/passdb_ldap.h);
 * bad-user-name (outside the rule of daemon/username.h); from
 * the server ip-blocked (auth/requests.h) and cached-failure (auth/cache_policy.h). user, ip and mechanism are escaped with
 * text_log_escape(), so each is one word of printable ASCII. Temporary
 * failures are logged as "auth tempfail ... reason=<reason>" (info; the cause
 * itself is logged once, at error level, where it is found), successes as
 * "auth ok ..." (debug). Passwords and hashes are never logged.
 */
#ifndef FASTPOP_AUTH_PASSDB_H
#define FASTPOP_AUTH_PASSDB_H

#include <stdint.h>

#include "auth/passwd.h"
#include "auth/protocol.h"
#include "daemon/config.h"

struct passdb;
struct auth_request;
struct auth_result;
struct passdb_ldap;

/*
 * An answer that came later (LDAP): tag is what passdb_start() was given; req
 * is the request (password wiped by then), res may be changed (by the
 * credential cache) before it is sent.
 */
typedef void passdb_done_fn(void *arg, uint64_t tag, const struct auth_request *req,
                           struct auth_result *res);

struct passdb {
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

    /* passdb: which databases, asked in this order (auth/passdb.c). */
    int use_file, use_ldap;
    struct passdb_ldap *ldap;     /* NULL: not configured, or its setup failed */
    passdb_done_fn *done;           /* where asynchronous answers go */
    void *done_arg;
};

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
    char message[AUTH_MESSAGE_MAX];  /* for the worker's log; never for the client */
    /* AUTH_OK answered from or recorded in the credential cache: the generation
     * of this password's entry, for the worker's memo (shm/credcache_memo.h);
     * 0 otherwise (nothing to remember, e.g. a stale-if-error answer). */
    uint64_t generation;
};

/*
 * Set up pdb from cfg (copied). The password file is read at the first check.
 * Returns 0, or -1 if no dummy hash could be made (crypt(3) broken): the
 * helper must not serve then, or unknown users would answer faster.
 */
int passdb_init(struct passdb *pdb, const struct config *cfg);

/*
 * Take a new configuration (SIGHUP). The password file is read again at the
 * next check whether or not it changed: a reload means "look again".
 */
void passdb_reconfigure(struct passdb *pdb, const struct config *cfg);

/*
 * Bring the password file up to date now and log what changed (a load
 * summary, or the error once). Used at startup and after a reload, so a
 * broken file shows in the log before the first login. Returns 0 if the
 * file is usable, -1 if not.
 */
int passdb_file_refresh(struct passdb *pdb);

void passdb_free(struct passdb *pdb);

/*
 * Decide req into res and log the outcome (see above). The password file is
 * checked for changes first. Never fails: problems become AUTH_TEMPFAIL.
 * The caller wipes req->password.
 */
void passdb_check(struct passdb *pdb, const struct auth_request *req, struct auth_result *res);

/* passdb_check() for the password file alone (what passdb_check() does for passdb = passwd-file). */
void passdb_file_check(struct passdb *pdb, const struct auth_request *req, struct auth_result *res);

/* The log line of an outcome: what is "ok", "failed" or "tempfail" (format above). */
void passdb_log_outcome(const struct auth_request *req, const char *what, const char *reason);

/*
 * The event-loop way in (auth/passdb.c). Start checking req: returns 1
 * with the answer in res (password file, or refused before asking), or 0
 * when it goes to LDAP: the answer then comes through pdb->done with tag.
 * Either way it is logged as passdb_check() logs it. The caller wipes
 * req->password (a copy is kept while LDAP needs it).
 */
int passdb_start(struct passdb *pdb, const struct auth_request *req, uint64_t tag,
                struct auth_result *res);
void passdb_set_done(struct passdb *pdb, passdb_done_fn *done, void *arg);
/* An fd for epoll (-1 if none), the next deadline in ms (-1 if none), and the work. */
int passdb_fd(const struct passdb *pdb);
int passdb_timeout_ms(const struct passdb *pdb);
void passdb_poll(struct passdb *pdb);

/* Set up / stop the LDAP side from pdb->cfg (called by init, reconfigure, free). */
void passdb_setup(struct passdb *pdb);
void passdb_teardown(struct passdb *pdb);

/*
 * For mechanisms that prove knowledge of the password without sending it
 * (SCRAM, see auth/scram_server.h): the stored password of user, as written
 * in the backend ("{SCHEME}..."), valid until the next call into pdb.
 * Returns 0 with *stored set, or NULL for an unknown user; -1 when the
 * backend cannot answer now (logged where it is found).
 */
int passdb_file_lookup_stored(struct passdb *pdb, const char *user, const char **stored);

/*
 * The AUTH_OK result for user, whose proof the caller has checked: the
 * canonical name and maildir into res. Returns 0, or -1 with res set to
 * AUTH_TEMPFAIL (the maildir cannot be made; logged).
 */
int passdb_file_result_ok(struct passdb *pdb, const char *user, struct auth_result *res);

#endif
