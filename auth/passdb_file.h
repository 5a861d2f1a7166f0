/*
 * The password file (passdb = passwd-file): a passwd-like file of users and
 * hashes (auth/passwd.h), read again when it changes, checked with
 * auth/scheme.h, the maildir from the user's line or the maildir template.
 */
#ifndef FASTPOP_AUTH_PASSDB_FILE_H
#define FASTPOP_AUTH_PASSDB_FILE_H

#include "auth/outcome.h"
#include "auth/passdb.h"

/*
 * Bring the password file up to date now and log what changed (a load
 * summary, or the error once). Used at startup and after a reload, so a
 * broken file shows in the log before the first login. Returns 0 if the
 * file is usable, -1 if not.
 */
int passdb_file_refresh(struct passdb *pdb);

/* passdb_check() for the password file alone; logged as auth/outcome.h says. */
void passdb_file_check(struct passdb *pdb, const struct auth_request *req, struct auth_result *res);

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
 * canonical name, maildir and POP3 policy into res. Returns 0, or -1 with
 * res set to AUTH_TEMPFAIL (the maildir cannot be made, a policy field
 * cannot be read; logged) or AUTH_REFUSED (disablepop3), and *reason the
 * word for the outcome's log line.
 */
int passdb_file_result_ok(struct passdb *pdb, const char *user, struct auth_result *res,
                          const char **reason);

#endif
