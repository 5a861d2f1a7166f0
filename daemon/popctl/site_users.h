/*
 * Every user of the site's password databases, with the maildir a login
 * would use, for `popctl index uidl-diff --site` (daemon/popctl/uidl_site.h).
 * passwd-file: every entry, its maildir by the same rule as the helper
 * (userdb_mail, else the maildir template). LDAP: daemon/popctl/site_users_ldap.c;
 * courier-authdaemond's ENUMERATE: daemon/popctl/site_users_authlib.c.
 *
 * Read as whoever runs popctl (root: the password file is root's), before
 * popctl becomes the mail user to read the maildirs. Password hashes are
 * not kept: each entry is copied without them and the file's text is wiped.
 */
#ifndef FASTPOP_POPCTL_SITE_USERS_H
#define FASTPOP_POPCTL_SITE_USERS_H

#include <stddef.h>
#include <stdio.h>

#include "daemon/runtime/config.h"

struct site_user {
    char *name;
    char *maildir;  /* NULL when it cannot be made: see error */
    char *error;    /* why there is no maildir, or NULL */
    size_t seq;     /* order of adding: of two entries for one name, the first wins */
};

struct site_users {
    struct site_user *v;
    size_t count, cap;
};

/*
 * Load the users of every database cfg->passdb names (passwd-file, ldap,
 * authlib). Sorted by name; a name twice keeps the
 * first database's. Returns 0, or -1 after printing why to err.
 */
int site_users_load(const struct config *cfg, struct site_users *out, FILE *err);
void site_users_free(struct site_users *u);

/* For the sources: add a user with a maildir or an error (one of them NULL). -1: ENOMEM. */
int site_users_add(struct site_users *u, const char *name, const char *maildir,
                   const char *error);
/* The maildir of a user by the template rules into out; NULL, or why it cannot be made. */
const char *site_users_maildir(const char *tmpl, const char *user, const char *home, char *out,
                               size_t outlen);

/* LDAP: every entry the user filter matches, with %u %n %d as "*" (site_users_ldap.c). */
int site_users_ldap(const struct config *cfg, struct site_users *out, FILE *err);

/* courier-authdaemond: every user ENUMERATE lists (site_users_authlib.c). */
int site_users_authlib(const struct config *cfg, struct site_users *out, FILE *err);

#endif
