#include "auth/passdb_file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth/outcome.h"
#include "auth/scheme.h"
#include "auth/template.h"
#include "daemon/runtime/escape.h"
#include "daemon/runtime/log.h"

/* One summary of a fresh load, and the dummy hash that fits it. */
static void after_load(struct passdb *pdb)
{
    const struct passwd_db *db = &pdb->db;
    const struct passwd_stats *st = &db->stats;
    const struct passwd_entry *first = NULL, *bad = NULL;
    int unusable = 0;

    for (size_t i = 0; i < db->count; i++) {
        const struct passwd_entry *e = &db->entries[i];
        if (scheme_check(e->password) != SCHEME_MATCH) {
            if (unusable++ == 0 || e->line < bad->line)
                bad = e;
        } else if (first == NULL || e->line < first->line) {
            first = e;
        }
    }
    pdb->dummy = first ? first->password : pdb->fallback_hash;

    log_info("passwd_file %s: %d users", db->path, st->users);
    if (st->bad_lines)
        log_warning("passwd_file %s: %d lines skipped (no user:password), first at line %d",
                    db->path, st->bad_lines, st->first_bad_line);
    if (st->duplicates)
        log_warning("passwd_file %s: %d duplicate users ignored (the first line wins), "
                    "first at line %d", db->path, st->duplicates, st->first_duplicate_line);
    if (unusable) {
        char name[64];
        scheme_name(bad->password, name, sizeof(name));
        log_warning("passwd_file %s: %d users cannot log in (unknown scheme or malformed "
                    "hash), first at line %d: %s %s", db->path, unusable, bad->line, name,
                    scheme_result_str(scheme_check(bad->password)));
    }
}

static void set_result(struct auth_result *res, enum auth_status status, const char *message)
{
    res->status = status;
    snprintf(res->message, sizeof(res->message), "%s", message);
}

/* The maildir of e into res; -1 with res->message set (and logged) if it cannot be made. */
static int find_maildir(struct passdb *pdb, const struct passwd_entry *e, struct auth_result *res)
{
    char user[TEXT_LOG_ESCAPE_SIZE(AUTH_USER_MAX)];
    const char *tmpl = e->mail[0] ? e->mail : pdb->cfg.maildir;
    const char *origin = e->mail[0] ? "userdb_mail of" : "maildir template for";

    text_log_escape(e->user, user, sizeof(user));
    if (e->mail_unsupported) {
        log_error("passwd_file %s line %d: user %s: userdb_mail is not maildir:PATH", pdb->db.path,
                  e->line, user);
        set_result(res, AUTH_TEMPFAIL, "userdb_mail is not a maildir");
        return -1;
    }
    if (template_expand(tmpl, e->user, e->home, res->maildir, sizeof(res->maildir)) == 0)
        return 0;
    if (errno == ENOENT) {
        log_error("%s %s needs %%h, but passwd_file %s line %d gives no home", origin, user,
                  pdb->db.path, e->line);
        set_result(res, AUTH_TEMPFAIL, "maildir needs a home directory");
    } else if (errno == EPERM) {
        log_error("%s %s: the name cannot be used in a path (a '/', a leading '.', a '%%', a "
                  "control byte, an empty part) or the path has a . or .. component "
                  "(passwd_file line %d)", origin, user, e->line);
        set_result(res, AUTH_TEMPFAIL, "user name unusable in the maildir path");
    } else if (errno == ENAMETOOLONG) {
        log_error("%s %s: the path is longer than %d bytes", origin, user, AUTH_PATH_MAX - 1);
        set_result(res, AUTH_TEMPFAIL, "maildir path too long");
    } else {
        log_error("%s %s: not an absolute path, or a bad %% escape (passwd_file line %d)",
                  origin, user, e->line);
        set_result(res, AUTH_TEMPFAIL, "maildir is not an absolute path");
    }
    res->maildir[0] = '\0';
    return -1;
}

/*
 * The entry's POP3 policy into res, once the password matched (a wrong
 * password is refused before, the same way for every account). -1 with res
 * set: AUTH_REFUSED (disablepop3), or AUTH_TEMPFAIL for a value that cannot
 * be read (logged here with its line; res->message starts with "policy").
 */
static int apply_policy(struct passdb *pdb, const struct passwd_entry *e, struct auth_result *res)
{
    char user[TEXT_LOG_ESCAPE_SIZE(AUTH_USER_MAX)];

    if (e->policy_bad != NULL) {
        log_error("passwd_file %s line %d: user %s: %s has a value that cannot be read; "
                  "the user's logins fail temporarily", pdb->db.path, e->line,
                  text_log_escape(e->user, user, sizeof(user)), e->policy_bad);
        set_result(res, AUTH_TEMPFAIL, "policy field unreadable");
        res->maildir[0] = '\0';
        return -1;
    }
    if (e->pop3_disabled) {
        /* The canonical name goes with it: the cache forgets the user's logins. */
        snprintf(res->user, sizeof(res->user), "%s", e->user);
        set_result(res, AUTH_REFUSED, "disablepop3 in the password file");
        res->maildir[0] = '\0';
        return -1;
    }
    res->policy = e->policy;
    return 0;
}

int passdb_file_refresh(struct passdb *pdb)
{
    int changed;

    if (!pdb->use_file)
        return 0;   /* passdb = ldap: the file is not ours to read */

    if (passwd_db_refresh(&pdb->db, &changed) == -1) {
        int err = errno;
        pdb->dummy = pdb->fallback_hash;
        if (changed)
            log_error("passwd_file %s: %s; every login fails temporarily until it is readable",
                      pdb->db.path, strerror(err));
        errno = err;
        return -1;
    }
    if (changed)
        after_load(pdb);
    return 0;
}

void passdb_file_check(struct passdb *pdb, const struct auth_request *req, struct auth_result *res)
{
    memset(res, 0, sizeof(*res));
    if (req->user[0] == '\0') {
        set_result(res, AUTH_FAIL, "");
        outcome_log(req, "failed", "empty-user");
        return;
    }
    if (req->password[0] == '\0') {
        set_result(res, AUTH_FAIL, "");
        outcome_log(req, "failed", "empty-password");
        return;
    }

    if (passdb_file_refresh(pdb) == -1) {
        set_result(res, AUTH_TEMPFAIL, "password file unavailable");
        res->outage = 1;   /* the file is the database: stale-if-error may answer */
        outcome_log(req, "tempfail", "passwd-file-unavailable");
        return;
    }

    const struct passwd_entry *e = passwd_db_lookup(&pdb->db, req->user);
    if (e == NULL) {
        /* Spend what a real user costs; the result means nothing. */
        (void)scheme_verify(pdb->dummy, req->password);
        set_result(res, AUTH_FAIL, "");
        outcome_log(req, "failed", "unknown-user");
        return;
    }

    enum scheme_result r = scheme_verify(e->password, req->password);
    if (r != SCHEME_MATCH) {
        set_result(res, AUTH_FAIL, "");
        outcome_log(req, "failed", scheme_result_str(r));
        return;
    }
    if (find_maildir(pdb, e, res) == -1) {
        outcome_log(req, "tempfail", "maildir");
        return;
    }
    if (apply_policy(pdb, e, res) == -1) {
        outcome_log(req, res->status == AUTH_REFUSED ? "refused" : "tempfail",
                    res->status == AUTH_REFUSED ? "pop3-disabled" : "policy-attribute");
        return;
    }
    snprintf(res->user, sizeof(res->user), "%s", e->user);
    res->status = AUTH_OK;
    outcome_log(req, "ok", "");
}

int passdb_file_lookup_stored(struct passdb *pdb, const char *user, const char **stored)
{
    *stored = NULL;
    if (passdb_file_refresh(pdb) == -1)
        return -1;
    const struct passwd_entry *e = passwd_db_lookup(&pdb->db, user);
    if (e != NULL)
        *stored = e->password;
    return 0;
}

int passdb_file_result_ok(struct passdb *pdb, const char *user, struct auth_result *res,
                          const char **reason)
{
    memset(res, 0, sizeof(*res));
    *reason = "user-vanished";
    const struct passwd_entry *e = passwd_db_lookup(&pdb->db, user);
    if (e == NULL) {
        /* Gone between the lookup and now (the file was reloaded): ask again later. */
        set_result(res, AUTH_TEMPFAIL, "user vanished during the exchange");
        return -1;
    }
    *reason = "maildir";
    if (find_maildir(pdb, e, res) == -1)
        return -1;
    if (apply_policy(pdb, e, res) == -1) {
        *reason = res->status == AUTH_REFUSED ? "pop3-disabled" : "policy-attribute";
        return -1;
    }
    snprintf(res->user, sizeof(res->user), "%s", e->user);
    res->status = AUTH_OK;
    return 0;
}
