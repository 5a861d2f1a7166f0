#include "daemon/popctl/site_users.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"
#include "auth/template.h"

int site_users_add(struct site_users *u, const char *name, const char *maildir,
                   const char *error)
{
    if (u->count == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 64;
        struct site_user *v = realloc(u->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        u->v = v;
        u->cap = cap;
    }
    struct site_user *e = &u->v[u->count];
    e->name = strdup(name);
    e->maildir = maildir ? strdup(maildir) : NULL;
    e->error = error ? strdup(error) : NULL;
    e->seq = u->count;
    if (e->name == NULL || (maildir && e->maildir == NULL) || (error && e->error == NULL)) {
        free(e->name);
        free(e->maildir);
        free(e->error);
        errno = ENOMEM;
        return -1;
    }
    u->count++;
    return 0;
}

void site_users_free(struct site_users *u)
{
    for (size_t i = 0; i < u->count; i++) {
        free(u->v[i].name);
        free(u->v[i].maildir);
        free(u->v[i].error);
    }
    free(u->v);
    memset(u, 0, sizeof(*u));
}

const char *site_users_maildir(const char *tmpl, const char *user, const char *home, char *out,
                               size_t outlen)
{
    if (template_expand(tmpl, user, home, out, outlen) == 0)
        return NULL;
    switch (errno) {
    case ENOENT:
        return "the maildir needs %h and the user has no home";
    case EPERM:
        return "the name cannot be used in a path";
    case ENAMETOOLONG:
        return "the maildir path is too long";
    default:
        return "the maildir template does not expand";
    }
}

/* The helper's rule (auth/passdb_file.c): userdb_mail=maildir:PATH, else the template. */
static int load_passwd_file(const struct config *cfg, struct site_users *out, FILE *err)
{
    struct passwd_db db;
    int changed;
    char maildir[4096];

    passwd_db_init(&db, cfg->passwd_file);
    if (passwd_db_refresh(&db, &changed) == -1) {
        fprintf(err, "popctl: passwd_file %s: %s\n", cfg->passwd_file, strerror(errno));
        passwd_db_free(&db);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < db.count && rc == 0; i++) {
        const struct passwd_entry *e = &db.entries[i];
        const char *why = e->mail_unsupported ? "userdb_mail is not maildir:PATH"
                          : site_users_maildir(e->mail[0] ? e->mail : cfg->maildir, e->user,
                                               e->home, maildir, sizeof(maildir));
        rc = site_users_add(out, e->user, why ? NULL : maildir, why);
    }
    if (rc == -1)
        fprintf(err, "popctl: %s\n", strerror(errno));
    passwd_db_free(&db);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    const struct site_user *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    /* For one name, the first database's entry sorts first. */
    return c != 0 ? c : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

/* Sort and keep the first of each name. */
static void dedupe(struct site_users *u)
{
    qsort(u->v, u->count, sizeof(*u->v), by_name);
    size_t w = 0;
    for (size_t r = 0; r < u->count; r++) {
        if (w > 0 && strcmp(u->v[w - 1].name, u->v[r].name) == 0) {
            free(u->v[r].name);
            free(u->v[r].maildir);
            free(u->v[r].error);
            continue;
        }
        u->v[w++] = u->v[r];
    }
    u->count = w;
}

int site_users_load(const struct config *cfg, struct site_users *out, FILE *err)
{
    char words[sizeof(cfg->passdb)];
    char *save = NULL;
    int any = 0;

    memset(out, 0, sizeof(*out));
    snprintf(words, sizeof(words), "%s", cfg->passdb);
    for (char *w = strtok_r(words, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
        int rc;
        if (strcmp(w, "passwd-file") == 0) {
            rc = load_passwd_file(cfg, out, err);
        } else if (strcmp(w, "ldap") == 0) {
            rc = site_users_ldap(cfg, out, err);
        } else if (strcmp(w, "authlib") == 0) {
            rc = site_users_authlib(cfg, out, err);
        } else {
            fprintf(err, "popctl: passdb %s cannot list its users\n", w);
            rc = -1;
        }
        if (rc == -1) {
            site_users_free(out);
            return -1;
        }
        any = 1;
    }
    if (!any) {
        fprintf(err, "popctl: passdb names no password database\n");
        return -1;
    }
    dedupe(out);
    return 0;
}
