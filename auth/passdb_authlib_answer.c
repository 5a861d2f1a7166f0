/*
 * authdaemond's answer to a login, read into a passdb answer
 * (auth/passdb_authlib.h says what each field means to fastpop).
 */
#include "auth/passdb_authlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/template.h"
#include "daemon/runtime/username.h"

/* The fields fastpop uses, each pointing into a copy of the answer. */
struct fields {
    const char *uid, *home, *maildir, *address, *options;
};

static void set_error(struct passdb_ldap_answer *ans, enum auth_status status, const char *reason,
                      const char *message)
{
    ans->status = status;
    ans->reason = reason;
    ans->maildir[0] = '\0';
    snprintf(ans->message, sizeof(ans->message), "%s", message);
}

/* 1 if OPTIONS (name=value,name=value) holds want ("disablepop3=1"), as Courier's pop3d reads it. */
static int has_option(const char *options, const char *want)
{
    const char *p = options;

    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, ",");
        if (len == strlen(want) && strncmp(p, want, len) == 0)
            return 1;
        p = p[len] == ',' ? p + len + 1 : NULL;
    }
    return 0;
}

/* Split text into lines and pick the fields; -1 if it does not end with a "." line. */
static int read_fields(char *text, struct fields *f)
{
    char *save = NULL;
    int ended = 0;

    memset(f, 0, sizeof(*f));
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strcmp(line, ".") == 0) {
            ended = 1;
            break;
        }
        if (strncmp(line, "UID=", 4) == 0)
            f->uid = line + 4;
        else if (strncmp(line, "HOME=", 5) == 0)
            f->home = line + 5;
        else if (strncmp(line, "MAILDIR=", 8) == 0)
            f->maildir = line + 8;
        else if (strncmp(line, "ADDRESS=", 8) == 0)
            f->address = line + 8;
        else if (strncmp(line, "OPTIONS=", 8) == 0)
            f->options = line + 8;
    }
    return ended ? 0 : -1;
}

/* 1 if path has a "." or ".." component (the rule of auth/template.h for every maildir). */
static int has_dot_component(const char *path)
{
    for (const char *p = path; *p != '\0';) {
        size_t len = strcspn(p, "/");
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 1;
        p += len;
        p += *p == '/';
    }
    return 0;
}

/* The maildir: absolute MAILDIR, HOME/MAILDIR, or the template with %h. -1 with ans set. */
static int find_maildir(const struct passdb_authlib_settings *s, const struct fields *f,
                        struct passdb_ldap_answer *ans)
{
    const char *home = f->home ? f->home : "";
    int n;

    if (f->maildir != NULL && f->maildir[0] != '\0') {
        const char *rel = f->maildir;
        /* Courier's usual relative form is "./Maildir". */
        while (strncmp(rel, "./", 2) == 0)
            rel += 2;
        if (f->maildir[0] == '/')
            n = snprintf(ans->maildir, sizeof(ans->maildir), "%s", f->maildir);
        else if (home[0] == '/')
            n = snprintf(ans->maildir, sizeof(ans->maildir), "%s/%s", home, rel);
        else
            n = -1;
        if (n < 0 || (size_t)n >= sizeof(ans->maildir) || has_dot_component(ans->maildir)) {
            set_error(ans, AUTH_TEMPFAIL, "maildir",
                      "authdaemond gave a MAILDIR that is not usable (too long, relative "
                      "without an absolute HOME, or with a . or .. component)");
            return -1;
        }
        return 0;
    }
    if (template_expand(s->maildir_template, ans->user, home, ans->maildir,
                        sizeof(ans->maildir)) == 0)
        return 0;
    set_error(ans, AUTH_TEMPFAIL, "maildir",
              errno == ENOENT  ? "maildir template needs %h but authdaemond gave no HOME"
              : errno == EPERM ? "the user name cannot be used in the maildir path"
                               : "maildir template gives no absolute path");
    return -1;
}

int passdb_authlib_parse(const struct passdb_authlib_settings *s, const char *login,
                         const char *text, struct passdb_ldap_answer *ans)
{
    struct fields f;
    char *copy;
    int rc = -1;

    memset(ans, 0, sizeof(*ans));
    if (strcmp(text, "FAIL\n") == 0) {
        set_error(ans, AUTH_FAIL, "bad-login", "");
        return 0;
    }
    /* The answer may hold the password's hash (PASSWD=) and the password (PASSWD2=). */
    if ((copy = strdup(text)) == NULL)
        return -1;
    if (read_fields(copy, &f) == -1)
        goto out;
    rc = 0;
    const char *name = f.address && username_check(f.address) == 0 ? f.address : login;
    snprintf(ans->user, sizeof(ans->user), "%s", name);
    char *end = NULL;
    long uid = f.uid ? strtol(f.uid, &end, 10) : -1;
    if (f.uid == NULL || end == f.uid || *end != '\0' || uid != (long)s->mail_uid) {
        char why[AUTH_MESSAGE_MAX];
        snprintf(why, sizeof(why), "authdaemond gives the account UID %.20s; fastpop serves "
                 "only the mail user's UID %ld", f.uid ? f.uid : "(none)", (long)s->mail_uid);
        set_error(ans, AUTH_REFUSED, "foreign-uid", why);
        goto out;
    }
    if (f.options != NULL && has_option(f.options, "disablepop3=1")) {
        set_error(ans, AUTH_REFUSED, "pop3-disabled", "OPTIONS has disablepop3=1");
        goto out;
    }
    if (f.options != NULL && has_option(f.options, "disableinsecurepop3=1"))
        ans->policy.flags |= USER_POLICY_NO_PLAINTEXT;
    if (find_maildir(s, &f, ans) == 0) {
        ans->status = AUTH_OK;
        ans->reason = "";
    }
out:
    explicit_bzero(copy, strlen(text));
    free(copy);
    return rc;
}
