/*
 * The LDAP backend's decisions that need no server: settings and the secret
 * file, a found entry into an answer, password checks, bind result codes.
 * Kept apart from auth/passdb_ldap.c so the unit tests can drive them directly.
 */
#include "auth/passdb_ldap.h"

#include <errno.h>
#include <fcntl.h>
#include <ldap.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/passdb_ldap_filter.h"
#include "auth/scheme.h"
#include "auth/template.h"
#include "daemon/runtime/username.h"

static int read_secret(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd == -1) {
        snprintf(err, errlen, "ldap_bind_secret_file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "ldap_bind_secret_file %s: not a regular file", path);
        close(fd);
        return -1;
    }
    /* The secret is the helper's alone: a file others can read is refused, not used. */
    if (st.st_mode & S_IROTH) {
        snprintf(err, errlen, "ldap_bind_secret_file %s is readable by others: chmod o-r it",
                 path);
        close(fd);
        return -1;
    }
    ssize_t n = read(fd, out, outlen);
    int saved = errno;
    close(fd);
    if (n < 0 || (size_t)n >= outlen) {
        explicit_bzero(out, outlen);
        snprintf(err, errlen, "ldap_bind_secret_file %s: %s", path,
                 n < 0 ? strerror(saved) : "longer than 511 bytes");
        return -1;
    }
    /* One line; the newline editors add is not part of the secret. */
    out[n] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

int passdb_ldap_settings_from(struct passdb_ldap_settings *s, const struct config *cfg, char *err,
                       size_t errlen)
{
    static const int scopes[] = { LDAP_SCOPE_SUBTREE, LDAP_SCOPE_ONELEVEL, LDAP_SCOPE_BASE };

    memset(s, 0, sizeof(*s));
    if (cfg->ldap_uri[0] == '\0') {
        snprintf(err, errlen, "passdb ldap needs ldap_uri");
        return -1;
    }
    if (passdb_ldap_filter_check(cfg->ldap_user_filter) == -1) {
        snprintf(err, errlen, "ldap_user_filter \"%s\" is not one filter in parentheses with "
                 "%%u %%n %%d %%%% escapes", cfg->ldap_user_filter);
        return -1;
    }
    if (cfg->ldap_bind_dn[0] && cfg->ldap_bind_secret_file[0] == '\0') {
        snprintf(err, errlen, "ldap_bind_dn needs ldap_bind_secret_file");
        return -1;
    }
    snprintf(s->uri, sizeof(s->uri), "%s", cfg->ldap_uri);
    s->starttls = cfg->ldap_starttls;
    snprintf(s->ca_file, sizeof(s->ca_file), "%s", cfg->ldap_tls_ca_file);
    snprintf(s->bind_dn, sizeof(s->bind_dn), "%s", cfg->ldap_bind_dn);
    snprintf(s->base, sizeof(s->base), "%s", cfg->ldap_base);
    s->scope = scopes[cfg->ldap_scope];
    snprintf(s->filter, sizeof(s->filter), "%s", cfg->ldap_user_filter);
    s->mode = cfg->ldap_auth;
    snprintf(s->maildir_attr, sizeof(s->maildir_attr), "%s", cfg->ldap_maildir_attribute);
    snprintf(s->home_attr, sizeof(s->home_attr), "%s", cfg->ldap_home_attribute);
    snprintf(s->host_attr, sizeof(s->host_attr), "%s", cfg->ldap_host_attribute);
    snprintf(s->pop3_enabled_attr, sizeof(s->pop3_enabled_attr), "%s",
             cfg->ldap_pop3_enabled_attribute);
    snprintf(s->pop3_plaintext_attr, sizeof(s->pop3_plaintext_attr), "%s",
             cfg->ldap_pop3_plaintext_attribute);
    snprintf(s->login_delay_attr, sizeof(s->login_delay_attr), "%s",
             cfg->ldap_login_delay_attribute);
    snprintf(s->expire_attr, sizeof(s->expire_attr), "%s", cfg->ldap_expire_attribute);
    if (config_ldap_user_attribute(cfg, s->user_attr, sizeof(s->user_attr)) == -1) {
        snprintf(err, errlen, "ldap_user_filter compares no attribute with %%u alone: set "
                 "ldap_user_attribute");
        return -1;
    }
    snprintf(s->maildir_template, sizeof(s->maildir_template), "%s", cfg->maildir);
    s->connect_timeout = cfg->ldap_connect_timeout;
    s->timeout = cfg->ldap_timeout;
    s->bind_connections = cfg->ldap_bind_connections;
    if (cfg->ldap_bind_dn[0] &&
        read_secret(cfg->ldap_bind_secret_file, s->secret, sizeof(s->secret), err, errlen) == -1)
        return -1;
    return 0;
}

void passdb_ldap_settings_wipe(struct passdb_ldap_settings *s)
{
    explicit_bzero(s->secret, sizeof(s->secret));
}

int passdb_ldap_entry_verify(const struct passdb_ldap_found *f, const char *password)
{
    /* Order of preference for what to report when nothing matches. */
    static const int rank[] = { [SCHEME_MATCH] = 4, [SCHEME_MISMATCH] = 3,
                                [SCHEME_MALFORMED] = 2, [SCHEME_UNKNOWN] = 1 };
    int best = SCHEME_MISMATCH;

    if (f->npasswords == 0)
        return SCHEME_MISMATCH;
    best = SCHEME_UNKNOWN;
    for (int i = 0; i < f->npasswords; i++) {
        enum scheme_result r = scheme_verify(f->passwords[i], password);
        if (r == SCHEME_MATCH)
            return SCHEME_MATCH;
        if (rank[r] > rank[best])
            best = (int)r;
    }
    return best;
}

const char *passdb_ldap_entry_pick_user(const char *const *values, int n, const char *login)
{
    for (int i = 0; i < n; i++) {
        if (strcasecmp(values[i], login) == 0)
            return values[i];
    }
    return n > 0 ? values[0] : NULL;
}

/* The policy attributes of f into ans; the first unreadable one is named in ans->policy_bad. */
static void read_policy(const struct passdb_ldap_settings *s, const struct passdb_ldap_found *f,
                        struct passdb_ldap_answer *ans)
{
    int on;

    user_policy_init(&ans->policy);
    ans->pop3_disabled = 0;
    ans->policy_bad = NULL;
    if (f->pop3_enabled != NULL) {
        if (user_policy_parse_bool(f->pop3_enabled, &on) == -1)
            ans->policy_bad = s->pop3_enabled_attr;
        else
            ans->pop3_disabled = !on;
    }
    if (f->pop3_plaintext != NULL) {
        if (user_policy_parse_bool(f->pop3_plaintext, &on) == -1)
            ans->policy_bad = ans->policy_bad ? ans->policy_bad : s->pop3_plaintext_attr;
        else if (!on)
            ans->policy.flags |= USER_POLICY_NO_PLAINTEXT;
    }
    if (f->login_delay != NULL && user_policy_set_login_delay(&ans->policy, f->login_delay) == -1)
        ans->policy_bad = ans->policy_bad ? ans->policy_bad : s->login_delay_attr;
    if (f->expire != NULL && user_policy_set_expire(&ans->policy, f->expire) == -1)
        ans->policy_bad = ans->policy_bad ? ans->policy_bad : s->expire_attr;
}

int passdb_ldap_entry_result(const struct passdb_ldap_settings *s, const struct passdb_ldap_found *f,
                      struct passdb_ldap_answer *ans)
{
    const char *user = f->user;

    read_policy(s, f, ans);

    /* Never the login as typed: the directory matches names without regard to
     * case, and "alice" and "ALICE" must be one user (penalty, cache, lock, kick). */
    if (user == NULL || username_check(user) == -1) {
        ans->status = AUTH_TEMPFAIL;
        ans->reason = "user-attribute";
        snprintf(ans->message, sizeof(ans->message), "the entry's %s %s", s->user_attr,
                 user == NULL ? "is missing" : "is not a usable user name");
        return -1;
    }
    snprintf(ans->user, sizeof(ans->user), "%s", user);
    /* A name longer than any backend's matches none: the router then hashes (route_pick.h). */
    ans->host[0] = '\0';
    if (f->host != NULL && strlen(f->host) < sizeof(ans->host))
        memcpy(ans->host, f->host, strlen(f->host) + 1);
    if (f->maildir && f->maildir[0]) {
        /* mailMessageStore holds a path; Dovecot-style "maildir:PATH[:opts]" is taken too. */
        const char *path = f->maildir;
        size_t len;
        if (strncmp(path, "maildir:", 8) == 0)
            path += 8;
        len = strcspn(path, ":");
        if (path[0] == '/' && len < sizeof(ans->maildir)) {
            memcpy(ans->maildir, path, len);
            ans->maildir[len] = '\0';
            return 0;
        }
        ans->status = AUTH_TEMPFAIL;
        ans->reason = "maildir";
        snprintf(ans->message, sizeof(ans->message), "%s is not an absolute maildir path",
                 s->maildir_attr);
        return -1;
    }
    if (template_expand(s->maildir_template, user, f->home ? f->home : "", ans->maildir,
                        sizeof(ans->maildir)) == 0)
        return 0;
    ans->maildir[0] = '\0';
    ans->status = AUTH_TEMPFAIL;
    ans->reason = "maildir";
    snprintf(ans->message, sizeof(ans->message), "%s",
             errno == ENOENT  ? "maildir template needs %h but the entry has no home"
             : errno == EPERM ? "the user name cannot be used in the maildir path"
                              : "maildir template gives no absolute path");
    return -1;
}

enum auth_status passdb_ldap_entry_policy_status(const struct passdb_ldap_answer *ans,
                                                 const char **reason, const char **message,
                                                 char *why, size_t whylen)
{
    if (ans->policy_bad != NULL) {
        *reason = "policy-attribute";
        snprintf(why, whylen, "the entry's %s has a value that cannot be read", ans->policy_bad);
        *message = why;
        return AUTH_TEMPFAIL;
    }
    if (ans->pop3_disabled) {
        *reason = "pop3-disabled";
        *message = "ldap_pop3_enabled_attribute is FALSE";
        return AUTH_REFUSED;
    }
    return AUTH_OK;
}

enum passdb_ldap_outcome passdb_ldap_bind_outcome(int rc)
{
    switch (rc) {
    case LDAP_SUCCESS:
        return PASSDB_LDAP_OUTCOME_OK;
    case LDAP_INVALID_CREDENTIALS:  /* also slapo-ppolicy's answer for a locked account */
    case LDAP_INAPPROPRIATE_AUTH:   /* the entry has no password to bind with */
    case LDAP_INVALID_DN_SYNTAX:
    case LDAP_NO_SUCH_OBJECT:       /* deleted between the search and the bind */
        return PASSDB_LDAP_OUTCOME_BAD_LOGIN;
    case LDAP_UNWILLING_TO_PERFORM: /* account inactivated (389-ds), disabled, locked */
    case LDAP_CONSTRAINT_VIOLATION: /* retry limit exceeded (389-ds lockout) */
    case LDAP_INSUFFICIENT_ACCESS:  /* the account may not authenticate */
        return PASSDB_LDAP_OUTCOME_REFUSED;
    case LDAP_SERVER_DOWN:
    case LDAP_CONNECT_ERROR:
    case LDAP_TIMEOUT:
    case LDAP_TIMELIMIT_EXCEEDED:
    case LDAP_BUSY:
    case LDAP_UNAVAILABLE:
        return PASSDB_LDAP_OUTCOME_OUTAGE;
    default:
        return PASSDB_LDAP_OUTCOME_ERROR;
    }
}

enum passdb_ldap_outcome passdb_ldap_search_outcome(int rc)
{
    enum passdb_ldap_outcome o = passdb_ldap_bind_outcome(rc);
    /* A refused or failed search is about our service account: a setup error. */
    return o == PASSDB_LDAP_OUTCOME_OUTAGE || o == PASSDB_LDAP_OUTCOME_OK ? o : PASSDB_LDAP_OUTCOME_ERROR;
}

enum auth_status passdb_ldap_outcome_status(enum passdb_ldap_outcome out)
{
    switch (out) {
    case PASSDB_LDAP_OUTCOME_OK:
        return AUTH_OK;
    case PASSDB_LDAP_OUTCOME_BAD_LOGIN:
    case PASSDB_LDAP_OUTCOME_REFUSED:
        return AUTH_FAIL;
    default:
        return AUTH_TEMPFAIL;
    }
}
