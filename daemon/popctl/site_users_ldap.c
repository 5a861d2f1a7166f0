/*
 * The users of an LDAP directory, for the site-wide UIDL report: one
 * search of ldap_base with ldap_user_filter in which %u, %n and %d match
 * anything ("*"), paged (RFC 2696) so a server's size limit (slapd's is
 * 500 entries) does not cut the list. Each entry becomes a user exactly as
 * the helper would make it (auth/passdb_ldap_entry.c): the user attribute's
 * value, the maildir attribute, or the template with the home attribute.
 * Blocking, bounded by ldap_timeout per page.
 */
#include "daemon/popctl/site_users.h"

#include <errno.h>
#include <lber.h>
#include <ldap.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passdb_ldap.h"
#include "auth/passdb_ldap_conn.h"

/* Entries asked per page: well under any server's size limit, few round trips. */
enum { SITE_LDAP_PAGE = 200 };

/* ldap_user_filter for every user: each %u %n %d becomes "*", %% stays "%". */
static int any_user_filter(const char *filter, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = filter; *p; p++) {
        char c = *p;
        if (c == '%' && (p[1] == 'u' || p[1] == 'n' || p[1] == 'd')) {
            c = '*';
            p++;
        } else if (c == '%' && p[1] == '%') {
            p++;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* The first value of attr as a string (NUL-terminated by libldap), or NULL. */
static struct berval **values_of(LDAP *ld, LDAPMessage *e, const char *attr)
{
    return attr[0] ? ldap_get_values_len(ld, e, attr) : NULL;
}

static int add_entry(LDAP *ld, LDAPMessage *e, const struct passdb_ldap_settings *s,
                     struct site_users *out)
{
    struct berval **user = values_of(ld, e, s->user_attr);
    struct berval **maildir = values_of(ld, e, s->maildir_attr);
    struct berval **home = values_of(ld, e, s->home_attr);
    struct passdb_ldap_found f = { 0 };
    struct passdb_ldap_answer ans;
    int rc = 0;

    memset(&ans, 0, sizeof(ans));
    f.user = user && user[0] ? user[0]->bv_val : NULL;
    f.maildir = maildir && maildir[0] ? maildir[0]->bv_val : NULL;
    f.home = home && home[0] ? home[0]->bv_val : NULL;
    if (f.user != NULL) {
        int ok = passdb_ldap_entry_result(s, &f, &ans) == 0;
        rc = site_users_add(out, ans.user[0] ? ans.user : f.user, ok ? ans.maildir : NULL,
                            ok ? NULL : ans.message);
    }
    /* An entry without the user attribute names no user: no login could reach it. */
    ldap_value_free_len(user);
    ldap_value_free_len(maildir);
    ldap_value_free_len(home);
    return rc;
}

static int search_all(LDAP *ld, const struct passdb_ldap_settings *s, const char *filter,
                      struct site_users *out, FILE *err)
{
    char *attrs[4] = { NULL };
    int na = 0;
    struct berval *cookie = NULL;
    struct timeval tv = { s->timeout, 0 };
    int rc = 0;

    attrs[na++] = (char *)s->user_attr;
    if (s->maildir_attr[0])
        attrs[na++] = (char *)s->maildir_attr;
    if (s->home_attr[0])
        attrs[na++] = (char *)s->home_attr;
    do {
        LDAPControl *page = NULL, *ctrls[2] = { NULL, NULL };
        LDAPMessage *res = NULL;
        int lrc = ldap_create_page_control(ld, SITE_LDAP_PAGE, cookie, 0, &page);
        if (lrc != LDAP_SUCCESS) {
            fprintf(err, "popctl: LDAP paged search: %s\n", ldap_err2string(lrc));
            rc = -1;
            break;
        }
        ctrls[0] = page;
        lrc = ldap_search_ext_s(ld, s->base, s->scope, filter, attrs, 0, ctrls, NULL, &tv, 0,
                                &res);
        ldap_control_free(page);
        if (lrc != LDAP_SUCCESS) {
            fprintf(err, "popctl: LDAP search of %s for %s: %s%s\n", s->base, filter,
                    ldap_err2string(lrc),
                    lrc == LDAP_SIZELIMIT_EXCEEDED
                        ? " (the server caps even paged searches: let ldap_bind_dn read "
                          "every user, e.g. slapd's limits dn.exact=... size=unlimited)"
                        : "");
            ldap_msgfree(res);
            rc = -1;
            break;
        }
        for (LDAPMessage *e = ldap_first_entry(ld, res); e && rc == 0; e = ldap_next_entry(ld, e))
            rc = add_entry(ld, e, s, out);
        LDAPControl **returned = NULL;
        int code = 0;
        ber_bvfree(cookie);
        cookie = NULL;
        if (ldap_parse_result(ld, res, &code, NULL, NULL, NULL, &returned, 0) == LDAP_SUCCESS &&
            returned != NULL) {
            LDAPControl *pc = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, returned, NULL);
            ber_int_t estimate;
            struct berval next = { 0, NULL };
            if (pc != NULL &&
                ldap_parse_pageresponse_control(ld, pc, &estimate, &next) == LDAP_SUCCESS &&
                next.bv_len > 0)
                cookie = ber_bvdup(&next);
            ber_memfree(next.bv_val);
            ldap_controls_free(returned);
        }
        ldap_msgfree(res);
        if (rc == -1)
            fprintf(err, "popctl: %s\n", strerror(errno));
    } while (rc == 0 && cookie != NULL);
    ber_bvfree(cookie);
    return rc;
}

int site_users_ldap(const struct config *cfg, struct site_users *out, FILE *err)
{
    struct passdb_ldap_settings *s = calloc(1, sizeof(*s));
    char why[512], filter[sizeof(s->filter)];
    LDAP *ld = NULL;
    int rc = -1;

    if (s == NULL) {
        fprintf(err, "popctl: %s\n", strerror(errno));
        return -1;
    }
    if (passdb_ldap_settings_from(s, cfg, why, sizeof(why)) == -1) {
        fprintf(err, "popctl: %s\n", why);
        goto done;
    }
    if (any_user_filter(s->filter, filter, sizeof(filter)) == -1) {
        fprintf(err, "popctl: ldap_user_filter is too long\n");
        goto done;
    }
    ld = passdb_ldap_conn_open(s, why, sizeof(why));
    if (ld == NULL) {
        fprintf(err, "popctl: LDAP: %s\n", why);
        goto done;
    }
    rc = search_all(ld, s, filter, out, err);
done:
    if (ld != NULL)
        ldap_unbind_ext(ld, NULL, NULL);
    passdb_ldap_settings_wipe(s);
    free(s);
    return rc;
}
