/*
 * The LDAP backend's decisions that need no server: settings and the secret
 * file, a found entry into user and maildir, userPassword checks, bind
 * result codes, and the backend refusing empty passwords before any request.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/passdb_ldap.h"
#include "auth/scheme.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/log.h"

/* slappasswd -s secret -h {SSHA} */
#define SSHA_SECRET "{SSHA}4Wbg15sufYygnd4dkiINoct1YgqkLqp+"

static struct config base_config(void)
{
    struct config cfg;
    config_defaults(&cfg);
    snprintf(cfg.ldap_uri, sizeof(cfg.ldap_uri), "ldap://127.0.0.1:1");
    snprintf(cfg.maildir, sizeof(cfg.maildir), "/var/mail/%%d/%%n");
    return cfg;
}

static void test_settings(void **state)
{
    (void)state;
    struct config cfg = base_config();
    struct passdb_ldap_settings s;
    char err[256];
    char dir[] = "/tmp/fastpop-ldap-test.XXXXXX", path[64];

    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), 0);
    assert_int_equal(s.scope, LDAP_SCOPE_SUBTREE);
    assert_int_equal(s.timeout, 5);
    assert_int_equal(s.connect_timeout, 5);
    assert_int_equal(s.bind_connections, 4);
    assert_int_equal(s.mode, CONFIG_LDAP_AUTH_BIND);

    cfg.ldap_uri[0] = '\0';
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ldap_uri"));
    cfg = base_config();
    snprintf(cfg.ldap_user_filter, sizeof(cfg.ldap_user_filter), "uid=%%u");
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), -1);
    cfg = base_config();
    snprintf(cfg.ldap_bind_dn, sizeof(cfg.ldap_bind_dn), "cn=reader");
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ldap_bind_secret_file"));

    /* the secret: first line only, and never from a world-readable file */
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/secret", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("s3cret\nignored\n", f);
    fclose(f);
    chmod(path, 0600);
    snprintf(cfg.ldap_bind_secret_file, sizeof(cfg.ldap_bind_secret_file), "%s", path);
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), 0);
    assert_string_equal(s.secret, "s3cret");
    passdb_ldap_settings_wipe(&s);
    assert_string_equal(s.secret, "");
    chmod(path, 0644);
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "readable by others"));
    unlink(path);
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), -1);
    rmdir(dir);
}

static void test_entry_result(void **state)
{
    (void)state;
    struct config cfg = base_config();
    struct passdb_ldap_settings s;
    struct passdb_ldap_answer a;
    char err[256];
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), 0);

    /* the default filter compares uid with %u: uid names the user */
    assert_string_equal(s.user_attr, "uid");
    struct passdb_ldap_found f = { "uid=bob,dc=x", NULL, 0, NULL, NULL, "bob@example.org", NULL, NULL, NULL, NULL, NULL };
    memset(&a, 0, sizeof(a));
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), 0);
    assert_string_equal(a.user, "bob@example.org");
    assert_string_equal(a.maildir, "/var/mail/example.org/bob");

    f.maildir = "/srv/mail/bob/";
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), 0);
    assert_string_equal(a.maildir, "/srv/mail/bob/");
    f.maildir = "maildir:/srv/mail/bob:LAYOUT=fs";
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), 0);
    assert_string_equal(a.maildir, "/srv/mail/bob");
    f.maildir = "relative/path";
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), -1);
    assert_int_equal(a.status, AUTH_TEMPFAIL);
    assert_string_equal(a.reason, "maildir");

    /* the canonical name from ldap_user_attribute, %h from the home attribute */
    snprintf(s.maildir_template, sizeof(s.maildir_template), "%%h/Maildir");
    f.maildir = NULL;
    f.user = "Bob";
    f.home = "/home/bob";
    memset(&a, 0, sizeof(a));
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), 0);
    assert_string_equal(a.user, "Bob");
    assert_string_equal(a.maildir, "/home/bob/Maildir");
    f.home = NULL;
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), -1);
    assert_string_equal(a.reason, "maildir");

    /* never the login as typed: an entry without the attribute is a tempfail */
    f.home = "/home/bob";
    f.user = NULL;
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), -1);
    assert_string_equal(a.reason, "user-attribute");
    /* nor a value outside the name rule, nor one that would climb out of the mail root */
    f.user = "bob smith";
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), -1);
    assert_string_equal(a.reason, "user-attribute");
    snprintf(s.maildir_template, sizeof(s.maildir_template), "/var/mail/%%d/%%n");
    f.user = "bob@..";
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), -1);
    assert_string_equal(a.reason, "maildir");
}

static void test_canonical_attribute(void **state)
{
    (void)state;
    struct config cfg = base_config();
    struct passdb_ldap_settings s;
    char attr[64], err[256];

    assert_int_equal(config_ldap_filter_attribute("(&(objectClass=posixAccount)(uid=%u))", attr,
                                                  sizeof(attr)), 0);
    assert_string_equal(attr, "uid");
    assert_int_equal(config_ldap_filter_attribute("(|(mail=%u)(uid=%u))", attr, sizeof(attr)), 0);
    assert_string_equal(attr, "mail");
    assert_int_equal(config_ldap_filter_attribute("(&(uid>=%u)(mail=%u))", attr, sizeof(attr)),
                     0);
    assert_string_equal(attr, "mail");
    /* %u not alone, or only %n/%d: no attribute holds the whole login */
    assert_int_equal(config_ldap_filter_attribute("(mail=x%u)", attr, sizeof(attr)), -1);
    assert_int_equal(config_ldap_filter_attribute("(&(uid=%n)(domain=%d))", attr, sizeof(attr)),
                     -1);
    /* then ldap_user_attribute must say */
    snprintf(cfg.ldap_user_filter, sizeof(cfg.ldap_user_filter), "(&(uid=%%n)(dc=%%d))");
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ldap_user_attribute"));
    snprintf(cfg.ldap_user_attribute, sizeof(cfg.ldap_user_attribute), "mail");
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), 0);
    assert_string_equal(s.user_attr, "mail");

    /* of several values, the one the login spells, else the first */
    const char *vals[] = { "alice", "Alice.Smith", "asmith" };
    assert_string_equal(passdb_ldap_entry_pick_user(vals, 3, "ASMITH"), "asmith");
    assert_string_equal(passdb_ldap_entry_pick_user(vals, 3, "ALICE.SMITH"), "Alice.Smith");
    assert_string_equal(passdb_ldap_entry_pick_user(vals, 3, "other"), "alice");
    assert_null(passdb_ldap_entry_pick_user(vals, 0, "alice"));
}

/* ldap_host_attribute's value rides along for the router; one too long for a backend name is dropped. */
static void test_entry_host(void **state)
{
    (void)state;
    struct config cfg = base_config();
    struct passdb_ldap_settings s;
    struct passdb_ldap_answer ans;
    char err[256];
    char longname[200];

    snprintf(cfg.ldap_host_attribute, sizeof(cfg.ldap_host_attribute), "mailHost");
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), 0);
    assert_string_equal(s.host_attr, "mailHost");
    struct passdb_ldap_found f = { "uid=bob,dc=x", NULL, 0, NULL, NULL, "bob", "pop2", NULL, NULL, NULL, NULL };
    memset(&ans, 0x55, sizeof(ans));
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &ans), 0);
    assert_string_equal(ans.host, "pop2");
    f.host = NULL;
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &ans), 0);
    assert_string_equal(ans.host, "");
    memset(longname, 'h', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    f.host = longname;
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &ans), 0);
    assert_string_equal(ans.host, "");
}

static void test_entry_verify(void **state)
{
    (void)state;
    const char *one[] = { SSHA_SECRET };
    const char *several[] = { "{NOPE}x", "{SSHA}!!", "{PLAIN}other", SSHA_SECRET };
    const char *bad[] = { "{NOPE}x" };
    struct passdb_ldap_found f = { "dn", one, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL };

    assert_int_equal(passdb_ldap_entry_verify(&f, "secret"), SCHEME_MATCH);
    assert_int_equal(passdb_ldap_entry_verify(&f, "Secret"), SCHEME_MISMATCH);
    f.passwords = several;
    f.npasswords = 4;
    assert_int_equal(passdb_ldap_entry_verify(&f, "secret"), SCHEME_MATCH);
    assert_int_equal(passdb_ldap_entry_verify(&f, "other"), SCHEME_MATCH);
    assert_int_equal(passdb_ldap_entry_verify(&f, "nope"), SCHEME_MISMATCH);
    f.passwords = bad;
    f.npasswords = 1;
    assert_int_equal(passdb_ldap_entry_verify(&f, "x"), SCHEME_UNKNOWN);
    f.npasswords = 0;
    assert_int_equal(passdb_ldap_entry_verify(&f, "x"), SCHEME_MISMATCH);
}

static void test_bind_outcome(void **state)
{
    (void)state;
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_SUCCESS), PASSDB_LDAP_OUTCOME_OK);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_INVALID_CREDENTIALS), PASSDB_LDAP_OUTCOME_BAD_LOGIN);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_INAPPROPRIATE_AUTH), PASSDB_LDAP_OUTCOME_BAD_LOGIN);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_NO_SUCH_OBJECT), PASSDB_LDAP_OUTCOME_BAD_LOGIN);
    /* the directory's word about the account: a failure, never stale-if-error */
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_UNWILLING_TO_PERFORM), PASSDB_LDAP_OUTCOME_REFUSED);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_CONSTRAINT_VIOLATION), PASSDB_LDAP_OUTCOME_REFUSED);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_INSUFFICIENT_ACCESS), PASSDB_LDAP_OUTCOME_REFUSED);
    /* no answer from the directory: the only case for stale-if-error */
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_BUSY), PASSDB_LDAP_OUTCOME_OUTAGE);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_UNAVAILABLE), PASSDB_LDAP_OUTCOME_OUTAGE);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_SERVER_DOWN), PASSDB_LDAP_OUTCOME_OUTAGE);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_TIMEOUT), PASSDB_LDAP_OUTCOME_OUTAGE);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_CONNECT_ERROR), PASSDB_LDAP_OUTCOME_OUTAGE);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_TIMELIMIT_EXCEEDED), PASSDB_LDAP_OUTCOME_OUTAGE);
    /* anything else: a temporary failure the cache does not paper over */
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_OTHER), PASSDB_LDAP_OUTCOME_ERROR);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_CONFIDENTIALITY_REQUIRED), PASSDB_LDAP_OUTCOME_ERROR);
    assert_int_equal(passdb_ldap_bind_outcome(LDAP_PROTOCOL_ERROR), PASSDB_LDAP_OUTCOME_ERROR);
    /* a search refused is about the service account, not the user */
    assert_int_equal(passdb_ldap_search_outcome(LDAP_INSUFFICIENT_ACCESS), PASSDB_LDAP_OUTCOME_ERROR);
    assert_int_equal(passdb_ldap_search_outcome(LDAP_INVALID_CREDENTIALS), PASSDB_LDAP_OUTCOME_ERROR);
    assert_int_equal(passdb_ldap_search_outcome(LDAP_BUSY), PASSDB_LDAP_OUTCOME_OUTAGE);
    assert_int_equal(passdb_ldap_outcome_status(PASSDB_LDAP_OUTCOME_OK), AUTH_OK);
    assert_int_equal(passdb_ldap_outcome_status(PASSDB_LDAP_OUTCOME_BAD_LOGIN), AUTH_FAIL);
    assert_int_equal(passdb_ldap_outcome_status(PASSDB_LDAP_OUTCOME_REFUSED), AUTH_FAIL);
    assert_int_equal(passdb_ldap_outcome_status(PASSDB_LDAP_OUTCOME_OUTAGE), AUTH_TEMPFAIL);
    assert_int_equal(passdb_ldap_outcome_status(PASSDB_LDAP_OUTCOME_ERROR), AUTH_TEMPFAIL);
}

static int answers;
static void count_done(void *arg, void *ctx, const struct passdb_ldap_answer *ans)
{
    (void)arg;
    (void)ctx;
    assert_int_equal(ans->status, AUTH_TEMPFAIL);
    /* nobody listens: an outage, which stale-if-error may answer */
    assert_int_equal(ans->outage, 1);
    answers++;
}

static void test_backend_without_server(void **state)
{
    (void)state;
    struct config cfg = base_config();
    struct passdb_ldap_settings s;
    struct passdb_ldap_answer a;
    char err[256];

    /* port 1 on loopback: refused at once */
    cfg.ldap_timeout = 2;
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), 0);
    struct passdb_ldap *lb = passdb_ldap_new(&s, count_done, NULL);
    assert_non_null(lb);
    /* refused before anything is sent */
    assert_int_equal(passdb_ldap_submit(lb, "bob", "", NULL, &a), -1);
    assert_int_equal(a.status, AUTH_FAIL);
    assert_string_equal(a.reason, "empty-password");
    assert_int_equal(passdb_ldap_submit(lb, "", "pw", NULL, &a), -1);
    assert_string_equal(a.reason, "empty-user");
    assert_int_equal(passdb_ldap_pending(lb), 0);
    /* a real request ends as a tempfail (server down), within ldap_timeout */
    assert_int_equal(passdb_ldap_submit(lb, "bob", "pw", NULL, &a), 0);
    assert_int_equal(passdb_ldap_pending(lb), 1);
    for (int i = 0; i < 300 && passdb_ldap_pending(lb) > 0; i++) {
        passdb_ldap_poll(lb);
        usleep(10000);
    }
    assert_int_equal(answers, 1);
    assert_int_equal(passdb_ldap_pending(lb), 0);
    /* held requests are answered when the backend stops */
    assert_int_equal(passdb_ldap_submit(lb, "carol", "pw", NULL, &a), 0);
    passdb_ldap_free(lb);
    assert_int_equal(answers, 2);
}

int main(void)
{
    log_open(LOG_TO_STDERR, LOG_LVL_ERROR, "auth", -1);
    setenv("LDAPNOINIT", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_entry_result),
        cmocka_unit_test(test_entry_host),
        cmocka_unit_test(test_entry_verify),
        cmocka_unit_test(test_canonical_attribute),
        cmocka_unit_test(test_bind_outcome),
        cmocka_unit_test(test_backend_without_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
