/*
 * The LDAP filter escaper (RFC 4515) and template expansion: injection
 * attempts stay literal, every special byte is escaped, buffers are bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "auth/passdb_ldap_filter.h"

static const char *esc(const char *s, size_t n)
{
    static char out[256];
    assert_true(passdb_ldap_filter_escape(s, n, out, sizeof(out)) >= 0);
    return out;
}

static void test_plain_names_unchanged(void **state)
{
    (void)state;
    assert_string_equal(esc("alice", 5), "alice");
    assert_string_equal(esc("bob@example.org", 15), "bob@example.org");
    assert_string_equal(esc("", 0), "");
}

static void test_rfc4515_specials(void **state)
{
    (void)state;
    assert_string_equal(esc("*", 1), "\\2A");
    assert_string_equal(esc("(", 1), "\\28");
    assert_string_equal(esc(")", 1), "\\29");
    assert_string_equal(esc("\\", 1), "\\5C");
    assert_string_equal(esc("a\0b", 3), "a\\00b");
}

static void test_control_and_high_bytes(void **state)
{
    (void)state;
    assert_string_equal(esc("\n\x7f", 2), "\\0A\\7F");
    /* UTF-8 "é": escaped byte by byte, which the server unescapes back */
    assert_string_equal(esc("\xc3\xa9", 2), "\\C3\\A9");
}

static void test_injection_attempts_stay_literal(void **state)
{
    char out[512];
    (void)state;
    const char *tmpl = "(&(objectClass=posixAccount)(uid=%u))";

    assert_int_equal(passdb_ldap_filter_expand(tmpl, "*", out, sizeof(out)), 0);
    assert_string_equal(out, "(&(objectClass=posixAccount)(uid=\\2A))");
    assert_int_equal(passdb_ldap_filter_expand(tmpl, ")(uid=*", out, sizeof(out)), 0);
    assert_string_equal(out, "(&(objectClass=posixAccount)(uid=\\29\\28uid=\\2A))");
    assert_int_equal(passdb_ldap_filter_expand(tmpl, "x)(|(uid=*))", out, sizeof(out)), 0);
    assert_string_equal(out, "(&(objectClass=posixAccount)(uid=x\\29\\28|\\28uid=\\2A\\29\\29))");
    assert_int_equal(passdb_ldap_filter_expand(tmpl, "a\\2a", out, sizeof(out)), 0);
    assert_string_equal(out, "(&(objectClass=posixAccount)(uid=a\\5C2a))");
    /* whatever the name, the result has the template's parentheses only */
    const char *names[] = { "*", ")(uid=*", "\\", "((((", "))))", "*)(|(objectClass=*" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_int_equal(passdb_ldap_filter_expand(tmpl, names[i], out, sizeof(out)), 0);
        int open = 0, close = 0, star = 0;
        for (const char *p = out; *p; p++) {
            open += *p == '(';
            close += *p == ')';
            star += *p == '*';
        }
        assert_int_equal(open, 3);
        assert_int_equal(close, 3);
        assert_int_equal(star, 0);
    }
}

static void test_expand_parts(void **state)
{
    char out[256];
    (void)state;
    assert_int_equal(passdb_ldap_filter_expand("(&(uid=%n)(dc=%d)(mail=%u)(p=100%%))", "jo*e@ex.org",
                                        out, sizeof(out)), 0);
    assert_string_equal(out, "(&(uid=jo\\2Ae)(dc=ex.org)(mail=jo\\2Ae@ex.org)(p=100%))");
    assert_int_equal(passdb_ldap_filter_expand("(uid=%n)(d=%d)", "nodomain", out, sizeof(out)), 0);
    assert_string_equal(out, "(uid=nodomain)(d=)");
}

static void test_expand_errors(void **state)
{
    char out[32];
    (void)state;
    errno = 0;
    assert_int_equal(passdb_ldap_filter_expand("(uid=%x)", "a", out, sizeof(out)), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(passdb_ldap_filter_expand("(uid=%", "a", out, sizeof(out)), -1);
    assert_int_equal(errno, EINVAL);
    /* 20 stars need 60 bytes: never cut into a half escape */
    assert_int_equal(passdb_ldap_filter_expand("(uid=%u)", "********************", out, sizeof(out)),
                     -1);
    assert_int_equal(errno, ENOBUFS);
    assert_string_equal(out, "");
    char tiny[4];
    assert_int_equal(passdb_ldap_filter_escape("*", 1, tiny, 3), -1);
    assert_int_equal(passdb_ldap_filter_escape("*", 1, tiny, 4), 3);
    assert_string_equal(tiny, "\\2A");
}

static void test_check_template(void **state)
{
    (void)state;
    assert_int_equal(passdb_ldap_filter_check("(&(objectClass=posixAccount)(uid=%u))"), 0);
    assert_int_equal(passdb_ldap_filter_check("(mail=%n@%d)"), 0);
    assert_int_equal(passdb_ldap_filter_check("(cn=a\\2ab)"), 0);
    assert_int_equal(passdb_ldap_filter_check("uid=%u"), -1);
    assert_int_equal(passdb_ldap_filter_check("(uid=%u"), -1);
    assert_int_equal(passdb_ldap_filter_check("(uid=%u))"), -1);
    assert_int_equal(passdb_ldap_filter_check("(uid=%u)(cn=x)"), -1);
    assert_int_equal(passdb_ldap_filter_check("(uid=%q)"), -1);
    assert_int_equal(passdb_ldap_filter_check(""), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_names_unchanged),
        cmocka_unit_test(test_rfc4515_specials),
        cmocka_unit_test(test_control_and_high_bytes),
        cmocka_unit_test(test_injection_attempts_stay_literal),
        cmocka_unit_test(test_expand_parts),
        cmocka_unit_test(test_expand_errors),
        cmocka_unit_test(test_check_template),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
