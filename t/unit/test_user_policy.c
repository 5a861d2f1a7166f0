/*
 * The per-user POP3 policy (issue 16 part 4): its parsers, its place in the
 * helper's answers (auth/protocol.c), in the credential cache's records
 * (shm/credcache_record.c, where a record of the format before it must read
 * as a miss, never as a login without the policy), in the passwd-file's
 * extra fields, the LDAP entry and authdaemond's OPTIONS, and its settings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/passdb_authlib.h"
#include "auth/passdb_ldap.h"
#include "auth/passwd.h"
#include "auth/protocol.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/user_policy.h"
#include "shm/credcache.h"
#include "shm/policy_store.h"
#include "worker/expire.h"

static void test_parsers(void **state)
{
    (void)state;
    struct user_policy p;
    int on = -1;

    assert_int_equal(user_policy_parse_bool("TRUE", &on), 0);
    assert_int_equal(on, 1);
    assert_int_equal(user_policy_parse_bool("false", &on), 0);
    assert_int_equal(on, 0);
    assert_int_equal(user_policy_parse_bool("0", &on), 0);
    assert_int_equal(on, 0);
    assert_int_equal(user_policy_parse_bool("maybe", &on), -1);
    assert_int_equal(user_policy_parse_bool("", &on), -1);

    user_policy_init(&p);
    assert_true(user_policy_valid(&p));
    /* All zero is "none of the user's own": never EXPIRE 0, never LOGIN-DELAY 0. */
    assert_int_equal(user_policy_expire(&p, USER_POLICY_EXPIRE_NEVER), USER_POLICY_EXPIRE_NEVER);
    assert_int_equal(user_policy_login_delay(&p, 300), 300);

    assert_int_equal(user_policy_set_login_delay(&p, "900"), 0);
    assert_int_equal(user_policy_login_delay(&p, 300), 900);
    assert_int_equal(user_policy_set_login_delay(&p, "0"), 0);
    assert_int_equal(user_policy_login_delay(&p, 300), 0);   /* the user's own 0 wins */
    assert_int_equal(user_policy_set_login_delay(&p, "86401"), -1);   /* past a day */
    assert_int_equal(user_policy_set_login_delay(&p, "-5"), -1);
    assert_int_equal(user_policy_set_login_delay(&p, "5m"), -1);
    assert_int_equal(user_policy_set_login_delay(&p, " 5"), -1);
    assert_int_equal(user_policy_set_login_delay(&p, "99999999999999999999"), -1);

    user_policy_init(&p);
    assert_int_equal(user_policy_set_expire(&p, "NEVER"), 0);
    assert_int_equal(user_policy_expire(&p, 7), USER_POLICY_EXPIRE_NEVER);
    assert_int_equal(user_policy_set_expire(&p, "0"), 0);
    assert_int_equal(user_policy_expire(&p, 7), 0);
    assert_int_equal(user_policy_set_expire(&p, "3650"), 0);
    assert_int_equal(user_policy_set_expire(&p, "3651"), -1);
    assert_int_equal(user_policy_set_expire(&p, "x"), -1);
    assert_true(user_policy_valid(&p));

    /* A value without its flag, an unknown flag, a value past its bound: not valid. */
    p = (struct user_policy){ 0, 5, 0 };
    assert_false(user_policy_valid(&p));
    p = (struct user_policy){ 8, 0, 0 };
    assert_false(user_policy_valid(&p));
    p = (struct user_policy){ USER_POLICY_HAS_EXPIRE, 0, 4000 };
    assert_false(user_policy_valid(&p));
    p = (struct user_policy){ USER_POLICY_HAS_LOGIN_DELAY, 100000, 0 };
    assert_false(user_policy_valid(&p));
}

static void test_codec(void **state)
{
    (void)state;
    struct buf b;
    struct auth_reply rep;
    struct user_policy p = { USER_POLICY_NO_PLAINTEXT | USER_POLICY_HAS_LOGIN_DELAY |
                             USER_POLICY_HAS_EXPIRE, 600, 30 };

    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(protocol_encode_pass_reply(&b, 3, AUTH_OK, "amy", "/m/amy", "", 9, "",
                                                &p), 0);
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), 0);
    assert_int_equal(rep.policy.flags, p.flags);
    assert_int_equal(rep.policy.login_delay, 600);
    assert_int_equal(rep.policy.expire_days, 30);
    assert_string_equal(rep.maildir, "/m/amy");

    /* NULL: nothing of the user's own. */
    assert_int_equal(protocol_encode_pass_reply(&b, 3, AUTH_OK, "amy", "/m/amy", "", 9, "",
                                                NULL), 0);
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), 0);
    assert_int_equal(rep.policy.flags, 0);

    assert_int_equal(protocol_encode_scram_result(&b, 4, AUTH_OK, "amy", "/m/amy", "v=x", "",
                                                  &p), 0);
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), 0);
    assert_int_equal(rep.type, AUTH_MSG_SCRAM_RESULT);
    assert_int_equal(rep.policy.flags, p.flags);
    assert_int_equal(rep.policy.expire_days, 30);

    /* A reply as a helper before the policy wrote it: decodes, with no policy. */
    assert_int_equal(ipc_begin(&b, AUTH_MSG_PASS_REPLY, 5), 0);
    assert_int_equal(ipc_put_u32(&b, AUTH_OK), 0);
    assert_int_equal(ipc_put_str(&b, "amy"), 0);
    assert_int_equal(ipc_put_str(&b, "/m/amy"), 0);
    assert_int_equal(ipc_put_str(&b, ""), 0);
    assert_int_equal(ipc_put_u64(&b, 9), 0);
    assert_int_equal(ipc_put_str(&b, "pop1"), 0);
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), 0);
    assert_string_equal(rep.host, "pop1");
    assert_int_equal(rep.policy.flags, 0);
    /* Half a policy, or a policy no helper writes: malformed. */
    assert_int_equal(ipc_put_u32(&b, USER_POLICY_NO_PLAINTEXT), 0);
    errno = 0;
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), -1);
    assert_int_equal(errno, EPROTO);
    assert_int_equal(ipc_put_u32(&b, 5), 0);   /* a login delay without its flag */
    assert_int_equal(ipc_put_u32(&b, 0), 0);
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), -1);
    buf_free(&b);
}

static void test_cache_records(void **state)
{
    (void)state;
    struct credcache_record rec, got;
    struct credcache_login login, lgot;
    unsigned char out[4096];
    struct user_policy p = { USER_POLICY_NO_PLAINTEXT | USER_POLICY_HAS_EXPIRE, 0,
                             USER_POLICY_EXPIRE_NEVER };

    assert_int_equal(credcache_record_init(&rec), 0);
    rec.iterations = 1;
    assert_int_equal(credcache_record_ok(&rec, "pw", "amy", "/m/amy", &p, 1000), 0);
    long n = credcache_encode(&rec, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal(credcache_decode(out, (size_t)n, &got), 0);
    assert_int_equal(got.policy.flags, p.flags);
    assert_int_equal(got.policy.expire_days, USER_POLICY_EXPIRE_NEVER);
    /* An old-format record (version 2: the same without the policy) is a miss. */
    out[0] = 2;
    assert_int_equal(credcache_decode(out, (size_t)n - 12, &got), -1);
    assert_int_equal(errno, EINVAL);

    assert_int_equal(credcache_login_of(&rec, &login), 0);
    assert_int_equal(login.policy.flags, p.flags);
    n = credcache_login_encode(&login, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal(credcache_login_decode(out, (size_t)n, &lgot), 0);
    assert_int_equal(lgot.policy.flags, p.flags);
    assert_int_equal(lgot.policy.expire_days, USER_POLICY_EXPIRE_NEVER);
    /* The login list before the policy (version 3): never read as a login without it. */
    out[0] = 3;
    assert_int_equal(credcache_login_decode(out, (size_t)n - 12, &lgot), -1);
    assert_int_equal(credcache_login_decode(out, (size_t)n, &lgot), -1);
    /* A damaged policy makes the record unusable, not a login with a made-up policy. */
    out[0] = 5;
    out[n - 12] = 0x40;   /* flags: a bit no version knows */
    assert_int_equal(credcache_login_decode(out, (size_t)n, &lgot), -1);
    /* And no bad policy is ever written. */
    struct user_policy bad = { USER_POLICY_HAS_LOGIN_DELAY, 100000, 0 };
    assert_int_equal(credcache_record_ok(&rec, "pw", "amy", "/m/amy", &bad, 1001), -1);
}

static void test_passwd_file_fields(void **state)
{
    (void)state;
    struct passwd_db db;
    const struct passwd_entry *e;
    static const char text[] =
        "amy:{PLAIN}a::::::disablepop3=1\n"
        "bob:{PLAIN}b::::::disableinsecurepop3=yes pop3_login_delay=300 pop3_expire=never\n"
        "cat:{PLAIN}c::::::userdb_mail=maildir:/srv/cat pop3_expire=14 disablepop3=0\n"
        "dan:{PLAIN}d::::::pop3_login_delay=soon\n"
        "eve:{PLAIN}e\n";

    passwd_db_init(&db, "/nonexistent");
    db.text = strdup(text);
    assert_non_null(db.text);
    db.text_len = strlen(text);
    assert_int_equal(passwd_db_parse(&db), 0);
    e = passwd_db_lookup(&db, "amy");
    assert_non_null(e);
    assert_int_equal(e->pop3_disabled, 1);
    assert_null(e->policy_bad);
    e = passwd_db_lookup(&db, "bob");
    assert_int_equal(e->pop3_disabled, 0);
    assert_int_equal(e->policy.flags, USER_POLICY_NO_PLAINTEXT | USER_POLICY_HAS_LOGIN_DELAY |
                                          USER_POLICY_HAS_EXPIRE);
    assert_int_equal(e->policy.login_delay, 300);
    assert_int_equal(e->policy.expire_days, USER_POLICY_EXPIRE_NEVER);
    e = passwd_db_lookup(&db, "cat");
    assert_string_equal(e->mail, "/srv/cat");
    assert_int_equal(e->pop3_disabled, 0);
    assert_int_equal(e->policy.flags, USER_POLICY_HAS_EXPIRE);
    assert_int_equal(e->policy.expire_days, 14);
    e = passwd_db_lookup(&db, "dan");
    assert_non_null(e->policy_bad);
    assert_string_equal(e->policy_bad, "pop3_login_delay");
    e = passwd_db_lookup(&db, "eve");
    assert_int_equal(e->pop3_disabled, 0);
    assert_int_equal(e->policy.flags, 0);
    passwd_db_free(&db);
}

static void test_ldap_entry(void **state)
{
    (void)state;
    struct config cfg;
    struct passdb_ldap_settings s;
    struct passdb_ldap_answer a;
    char err[256];

    config_defaults(&cfg);
    snprintf(cfg.ldap_uri, sizeof(cfg.ldap_uri), "ldap://127.0.0.1:1");
    snprintf(cfg.maildir, sizeof(cfg.maildir), "/var/mail/%%n");
    snprintf(cfg.ldap_pop3_enabled_attribute, sizeof(cfg.ldap_pop3_enabled_attribute), "pop3On");
    snprintf(cfg.ldap_pop3_plaintext_attribute, sizeof(cfg.ldap_pop3_plaintext_attribute),
             "pop3Clear");
    snprintf(cfg.ldap_login_delay_attribute, sizeof(cfg.ldap_login_delay_attribute), "delay");
    snprintf(cfg.ldap_expire_attribute, sizeof(cfg.ldap_expire_attribute), "expire");
    assert_int_equal(passdb_ldap_settings_from(&s, &cfg, err, sizeof(err)), 0);
    assert_string_equal(s.pop3_enabled_attr, "pop3On");

    struct passdb_ldap_found f = { "uid=bob", NULL, 0, NULL, NULL, "bob", NULL,
                                   NULL, NULL, NULL, NULL };
    memset(&a, 0x55, sizeof(a));
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), 0);
    assert_int_equal(a.pop3_disabled, 0);
    assert_null(a.policy_bad);
    assert_int_equal(a.policy.flags, 0);   /* absent attributes: the global settings */

    f.pop3_enabled = "FALSE";
    f.pop3_plaintext = "FALSE";
    f.login_delay = "120";
    f.expire = "0";
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), 0);
    assert_int_equal(a.pop3_disabled, 1);
    assert_int_equal(a.policy.flags, USER_POLICY_NO_PLAINTEXT | USER_POLICY_HAS_LOGIN_DELAY |
                                         USER_POLICY_HAS_EXPIRE);
    assert_int_equal(a.policy.login_delay, 120);
    assert_int_equal(a.policy.expire_days, 0);

    f.pop3_enabled = "TRUE";
    f.pop3_plaintext = "TRUE";
    f.expire = "forever";
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), 0);
    assert_int_equal(a.pop3_disabled, 0);
    assert_int_equal(a.policy.flags & USER_POLICY_NO_PLAINTEXT, 0);
    assert_non_null(a.policy_bad);
    assert_string_equal(a.policy_bad, "expire");
    f.expire = NULL;
    f.pop3_enabled = "disabled";   /* not a boolean: fail closed, named */
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), 0);
    assert_string_equal(a.policy_bad, "pop3On");

    /* What the answer becomes once the password matched. */
    const char *reason = "", *message = "";
    char why[AUTH_MESSAGE_MAX];
    assert_int_equal(passdb_ldap_entry_policy_status(&a, &reason, &message, why, sizeof(why)),
                     AUTH_TEMPFAIL);
    assert_string_equal(reason, "policy-attribute");
    assert_non_null(strstr(message, "pop3On"));
    f.pop3_enabled = "FALSE";
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), 0);
    assert_int_equal(passdb_ldap_entry_policy_status(&a, &reason, &message, why, sizeof(why)),
                     AUTH_REFUSED);
    assert_string_equal(reason, "pop3-disabled");
    f.pop3_enabled = "TRUE";
    reason = "";
    assert_int_equal(passdb_ldap_entry_result(&s, &f, &a), 0);
    assert_int_equal(passdb_ldap_entry_policy_status(&a, &reason, &message, why, sizeof(why)),
                     AUTH_OK);
    assert_string_equal(reason, "");
}

static void test_authlib_options(void **state)
{
    (void)state;
    struct passdb_authlib_settings s;
    struct passdb_ldap_answer a;

    memset(&s, 0, sizeof(s));
    snprintf(s.maildir_template, sizeof(s.maildir_template), "%%h/Maildir");
    s.mail_uid = 999;
    assert_int_equal(passdb_authlib_parse(&s, "amy", "UID=999\nHOME=/home/amy\n"
                                          "OPTIONS=wbnodsn=1,disableinsecurepop3=1\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_OK);
    assert_int_equal(a.policy.flags, USER_POLICY_NO_PLAINTEXT);
    assert_int_equal(passdb_authlib_parse(&s, "amy", "UID=999\nHOME=/home/amy\n"
                                          "OPTIONS=disableinsecurepop3=0\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_OK);
    assert_int_equal(a.policy.flags, 0);
    assert_int_equal(passdb_authlib_parse(&s, "amy", "UID=999\nHOME=/home/amy\n"
                                          "OPTIONS=disableinsecurepop3=1,disablepop3=1\n.\n",
                                          &a), 0);
    assert_int_equal(a.status, AUTH_REFUSED);
}

static void test_settings(void **state)
{
    (void)state;
    char path[] = "/tmp/fastpop-policy-conf.XXXXXX";
    char err[512];
    struct config cfg;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("listen = 127.0.0.1:110\npop3_login_delay = 5m\npop3_login_delay_action = log\n"
          "ldap_pop3_enabled_attribute = mailEnabled\n", f);
    fclose(f);
    assert_int_equal(config_load(path, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.pop3_login_delay, 300);
    assert_int_equal(cfg.pop3_login_delay_action, CONFIG_LOGIN_DELAY_LOG);
    assert_string_equal(cfg.ldap_pop3_enabled_attribute, "mailEnabled");

    config_defaults(&cfg);
    assert_int_equal(cfg.pop3_login_delay, 0);
    assert_int_equal(cfg.pop3_login_delay_action, CONFIG_LOGIN_DELAY_REFUSE);
    assert_string_equal(cfg.ldap_pop3_plaintext_attribute, "");

    f = fopen(path, "w");
    fputs("listen = 127.0.0.1:110\npop3_login_delay = 2d\n", f);
    fclose(f);
    assert_int_equal(config_load(path, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":2:"));
    f = fopen(path, "w");
    fputs("listen = 127.0.0.1:110\npop3_login_delay = 86401\n", f);
    fclose(f);
    assert_int_equal(config_load(path, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "out of range"));
    unlink(path);
}

static void test_store(void **state)
{
    (void)state;
    char dir[] = "/tmp/fastpop-policy-store.XXXXXX";
    char path[128];
    struct policy_store *ps;
    int64_t when = 0;
    int found = -1;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/policy", dir);
    assert_int_equal(policy_store_open(path, &ps), 0);
    assert_int_equal(policy_store_last_login(ps, "amy", &when, &found), 0);
    assert_int_equal(found, 0);
    assert_int_equal(policy_store_set_last_login(ps, "amy", 1700000000), 0);
    assert_int_equal(policy_store_set_last_login(ps, "bob", 5), 0);
    assert_int_equal(policy_store_last_login(ps, "amy", &when, &found), 0);
    assert_int_equal(found, 1);
    assert_int_equal(when, 1700000000);
    assert_int_not_equal(policy_store_set_last_login(ps, "", 5), 0);

    /* Retrieval days: recorded once (the first retrieval's day stays), per maildir. */
    struct policy_store_msg m[3] = {
        { "u1", 2, 1, 0, 0 }, { "u2", 2, 0, 0, 0 }, { "u3", 2, 1, 0, 0 } };
    assert_int_equal(policy_store_retrievals(ps, "/m/amy", m, 3, 100), 0);
    assert_int_equal(m[0].day, 100);
    assert_int_equal(m[1].day, POLICY_STORE_NOT_RETRIEVED);
    assert_int_equal(m[2].day, 100);
    m[1].retrieved_now = 1;
    assert_int_equal(policy_store_retrievals(ps, "/m/amy", m, 3, 107), 0);
    assert_int_equal(m[0].day, 100);
    assert_int_equal(m[1].day, 107);
    /* Another maildir with the same UIDLs is another mailbox. */
    struct policy_store_msg other = { "u1", 2, 0, 0, 0 };
    assert_int_equal(policy_store_retrievals(ps, "/m/bob", &other, 1, 107), 0);
    assert_int_equal(other.day, POLICY_STORE_NOT_RETRIEVED);
    /* Forgotten: gone. */
    m[0].forget = 1;
    assert_int_equal(policy_store_retrievals(ps, "/m/amy", m, 1, 108), 0);
    m[0].forget = 0;
    m[0].retrieved_now = 0;
    assert_int_equal(policy_store_retrievals(ps, "/m/amy", m, 1, 108), 0);
    assert_int_equal(m[0].day, POLICY_STORE_NOT_RETRIEVED);
    /* Prune: u2 and u3 are no longer in /m/amy; /m/bob and the logins are not touched. */
    other.retrieved_now = 1;
    assert_int_equal(policy_store_retrievals(ps, "/m/bob", &other, 1, 107), 0);
    struct policy_store_msg still[1] = { { "u1", 2, 0, 0, 0 } };
    size_t dropped = 99;
    assert_int_equal(policy_store_prune(ps, "/m/amy", still, 1, &dropped), 0);
    assert_int_equal(dropped, 2);
    m[1].retrieved_now = 0;
    m[2].retrieved_now = 0;
    assert_int_equal(policy_store_retrievals(ps, "/m/amy", m, 3, 109), 0);
    assert_int_equal(m[1].day, POLICY_STORE_NOT_RETRIEVED);
    assert_int_equal(m[2].day, POLICY_STORE_NOT_RETRIEVED);
    other.retrieved_now = 0;
    assert_int_equal(policy_store_retrievals(ps, "/m/bob", &other, 1, 109), 0);
    assert_int_equal(other.day, 107);
    assert_int_equal(policy_store_prune(ps, "/m/amy", still, 1, &dropped), 0);
    assert_int_equal(dropped, 0);
    /* The login records are still there: two kinds of keys, apart. */
    assert_int_equal(policy_store_last_login(ps, "bob", &when, &found), 0);
    assert_int_equal(when, 5);
    policy_store_close(ps);

    /* Reopened (a worker restart): the same state. */
    assert_int_equal(policy_store_open(path, &ps), 0);
    assert_int_equal(policy_store_last_login(ps, "amy", &when, &found), 0);
    assert_int_equal(when, 1700000000);
    policy_store_close(ps);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_expire_due(void **state)
{
    (void)state;
    /* EXPIRE 0: whatever was retrieved, today included. */
    assert_true(expire_due(100, 100, 0));
    assert_false(expire_due(POLICY_STORE_NOT_RETRIEVED, 100, 0));
    /* EXPIRE 2: kept at least two whole days: due on the third day after. */
    assert_false(expire_due(100, 100, 2));
    assert_false(expire_due(100, 102, 2));
    assert_true(expire_due(100, 103, 2));
    /* A retrieval "in the future" (the clock stepped back): kept. */
    assert_false(expire_due(105, 100, 0));
    assert_false(expire_due(POLICY_STORE_NOT_RETRIEVED, 100000, 1));
}

static void test_expire_setting(void **state)
{
    (void)state;
    char path[] = "/tmp/fastpop-policy-conf2.XXXXXX";
    char err[512];
    struct config cfg;
    int fd = mkstemp(path);
    assert_true(fd >= 0);

    config_defaults(&cfg);
    assert_int_equal(cfg.pop3_expire, -1);   /* NEVER */
    const char *ok[] = { "never", "NEVER", "0", "30", "3650" };
    const int want[] = { -1, -1, 0, 30, 3650 };
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ftruncate(fd, 0), 0);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        dprintf(fd, "listen = 127.0.0.1:110\npop3_expire = %s\n", ok[i]);
        assert_int_equal(config_load(path, &cfg, err, sizeof(err)), 0);
        assert_int_equal(cfg.pop3_expire, want[i]);
    }
    const char *bad[] = { "3651", "-1", "soon", "7d" };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ftruncate(fd, 0), 0);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        dprintf(fd, "listen = 127.0.0.1:110\npop3_expire = %s\n", bad[i]);
        assert_int_equal(config_load(path, &cfg, err, sizeof(err)), -1);
        assert_non_null(strstr(err, ":2: pop3_expire"));
    }
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_cache_records),
        cmocka_unit_test(test_passwd_file_fields),
        cmocka_unit_test(test_ldap_entry),
        cmocka_unit_test(test_authlib_options),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_expire_due),
        cmocka_unit_test(test_expire_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
