/*
 * The password databases and the helper's one decision: is this password
 * right for this user, and where is the user's maildir. The request path
 * (auth/requests.c) and --test both come through here, so they cannot
 * disagree; each outcome is logged as auth/outcome.h says.
 *
 *   passdb = passwd-file        the password file alone (the default;
 *                               auth/passdb_file.h)
 *   passdb = ldap               LDAP alone (auth/passdb_ldap.h)
 *   passdb = passwd-file ldap   the file first; a user it does not know is
 *                               looked up in LDAP (local service accounts
 *                               next to a directory)
 *   passdb = authlib            a running courier-authdaemond
 *                               (auth/passdb_authlib.h)
 *   passdb = passwd-file authlib  the file first, then authdaemond
 *
 * An unknown user costs the same work as a wrong password: the password is
 * checked against a dummy hash (see struct passdb).
 */
#ifndef FASTPOP_AUTH_PASSDB_H
#define FASTPOP_AUTH_PASSDB_H

#include <stdint.h>

#include "auth/outcome.h"
#include "auth/passwd.h"
#include "daemon/runtime/config.h"

struct passdb_ldap;
struct passdb_authlib;

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

    /* Which databases, asked in this order (see above). use_ldap: an
     * asynchronous backend after the file, LDAP or authlib. */
    int use_file, use_ldap;
    struct passdb_ldap *ldap;      /* NULL: not configured, or its setup failed */
    struct passdb_authlib *authlib; /* the same, for passdb = authlib */
    passdb_done_fn *done;          /* where asynchronous answers go */
    void *done_arg;
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

void passdb_free(struct passdb *pdb);

/*
 * Decide req into res and log the outcome (see above). The password file is
 * checked for changes first. Never fails: problems become AUTH_TEMPFAIL.
 * The caller wipes req->password.
 */
void passdb_check(struct passdb *pdb, const struct auth_request *req, struct auth_result *res);

/*
 * The event-loop way in (auth/passdb.c). Start checking req: returns 1
 * with the answer in res (password file, or refused before asking), or 0
 * when it goes to LDAP or authdaemond: the answer then comes through
 * pdb->done with tag.
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

#endif
