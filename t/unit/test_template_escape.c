/*
 * Dovecot's substring and hash modifiers in the maildir template. The
 * expected strings were produced by Dovecot 2.3.19's own expansion: a
 * private dovecot with a static userdb whose home is the template, asked with
 * `doveadm user -f home <name>` (Dovecot lower-cases names first, so the
 * names here are lower-case). '|' separates the escapes in one path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "auth/template.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/template_escape.h"

struct vector {
    const char *user;
    const char *path;
};

static void check_vectors(const char *tmpl, const struct vector *v, size_t n)
{
    char out[1024];
    for (size_t i = 0; i < n; i++) {
        int rc = template_expand(tmpl, v[i].user, "", out, sizeof(out));
        if (rc != 0 || strcmp(out, v[i].path) != 0)
            print_error("%s for %s: rc %d, got %s, want %s\n", tmpl, v[i].user, rc, out, v[i].path);
        assert_int_equal(rc, 0);
        assert_string_equal(out, v[i].path);
    }
}

static void test_substrings_and_hashes_match_dovecot(void **state)
{
    (void)state;
    static const char tmpl[] = "/v/%d/%1n/%2.1n/%n|%0.1n|%-2.2n|%3n|%Lu|%Mn|%4.256Nu|%256Nu|"
                               "%3.1Mn|%.2n|%2Nu|%4.256Hu|%1.2Ln|%1Ld";
    static const struct vector v[] = {
        { "alice@example.org", "/v/example.org/a/i/alice|a|ce|ali|alice@example.org|"
                               "6384e2b2184bcbf58eccf10ca7a6563c|000b|b|4|al|1|0067|li|e" },
        { "bob@example.org", "/v/example.org/b/b/bob|b|ob|bob|bob@example.org|"
                             "9f9d51bc70ef21ca5c14f307980a29d8|001f|1f|d|bo|1|0097|ob|e" },
        { "x@y", "/v/y/x//x|x|x|x|x@y|9dd4e461268c8034f5c8564e155c67a6|0098|98|4|x|0|0079||y" },
        { "jo@d", "/v/d/j//jo|j|jo|jo|jo@d|674f33841e2309ffdd24c85dc3b999de|003e|3e|f|jo|0|0064|o|d" },
        { "z", "/v//z//z|z|z|z|z|fbade9e36a3f36d3d676c1b808451dd7|00d3|d3|d|z|1|007a||" },
    };
    check_vectors(tmpl, v, sizeof(v) / sizeof(v[0]));
}

static void test_padding_case_reverse_match_dovecot(void **state)
{
    (void)state;
    static const char tmpl[] = "/v/%Nu|%Hu|%05n|%3.05n|%00256Hu|%Un|%Rn|%1Rn|%02.1n|%-1n|%10.2n|"
                               "%.1Un|%1Mu|%4Nu";
    static const struct vector v[] = {
        { "alice@example.org", "/v/c1d4280b|249f67|alice|000ce|67|ALICE|ecila|e|i|a||A|f|3" },
        { "bob@example.org", "/v/6a4b6f1f|14cd997|00bob|00000|97|BOB|bob|b|b|b||B|1|3" },
        { "x@y", "/v/8f609c98|7c79|0000x|00000|79|X|x|x||x||X|e|0" },
        { "z", "/v/6a3f36d3|7a|0000z|00000|7a|Z|z|z||z||Z|f|3" },
        { "jo@d", "/v/2e41813e|71364|000jo|00000|64|JO|oj|o||j||J|0|2" },
    };
    check_vectors(tmpl, v, sizeof(v) / sizeof(v[0]));
}

/* The layouts real sites use, computed by hand (MD5 by `md5sum`). */
static void test_site_layouts(void **state)
{
    (void)state;
    char out[256];
    /* Courier-style two-level tree: /var/vmail/example.org/a/al/alice */
    assert_int_equal(template_expand("/var/vmail/%d/%1n/%2n/%n", "alice@example.org", "", out,
                                     sizeof(out)), 0);
    assert_string_equal(out, "/var/vmail/example.org/a/al/alice");
    /* md5("alice") = 6384e2b2...: first two hex digits, then the next two. */
    assert_int_equal(template_expand("/var/vmail/%2Mn/%2.2Mn/%u", "alice", "", out, sizeof(out)), 0);
    assert_string_equal(out, "/var/vmail/63/84/alice");
    /* A name shorter than the substring gives an empty component, as in Dovecot. */
    assert_int_equal(template_expand("/var/vmail/%d/%1n/%2.1n/%n", "jo@d", "", out, sizeof(out)), 0);
    assert_string_equal(out, "/var/vmail/d/j//jo");
}

static void test_substring_never_escapes(void **state)
{
    (void)state;
    char out[256];
    /* "j.doe": %1.1n is ".", a component that would climb or collapse: refused. */
    errno = 0;
    assert_int_equal(template_expand("/m/%1n/%1.1n/%n", "j.doe", "", out, sizeof(out)), -1);
    assert_int_equal(errno, EPERM);
    /* "a..b": %1.2n is "..". */
    errno = 0;
    assert_int_equal(template_expand("/m/%1.2n/x", "a..b", "", out, sizeof(out)), -1);
    assert_int_equal(errno, EPERM);
    /* A huge zero-padded width stops at the buffer, it does not spin 4e9 times. */
    errno = 0;
    assert_int_equal(template_expand("/m/%04294967295n", "bob", "", out, sizeof(out)), -1);
    assert_int_equal(errno, ENAMETOOLONG);
}

static void test_parse_errors(void **state)
{
    (void)state;
    struct template_escape esc;
    const char *why = NULL;
    static const char *const bad[] = {
        "%Qn",          /* unknown modifier */
        "%LLLLLn",      /* five modifiers: TEMPLATE_MODIFIERS_MAX is 4 */
        "%4294967296n", /* past TEMPLATE_NUMBER_MAX */
        "%1.-2n",       /* negative width */
        "%3",           /* ends inside the escape */
        "%2%",          /* %% with a width */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(template_escape_parse(bad[i], TEMPLATE_MAILDIR_MODIFIERS, &esc, &why), -1);
        assert_non_null(why);
    }
    assert_int_equal(template_escape_parse("%LLLLn/", TEMPLATE_MAILDIR_MODIFIERS, &esc, &why), 6);
    assert_int_equal(template_escape_parse("%4294967295n", TEMPLATE_MAILDIR_MODIFIERS, &esc, &why), 12);
    assert_int_equal(template_escape_parse("%-2.3Mn", TEMPLATE_MAILDIR_MODIFIERS, &esc, &why), 7);
    assert_int_equal(esc.offset, -2);
    assert_int_equal(esc.width, 3);
    assert_string_equal(esc.modifiers, "M");
    assert_int_equal(esc.var, 'n');
    /* X is for UIDL formats, not paths. */
    assert_int_equal(template_escape_parse("%Xn", TEMPLATE_MAILDIR_MODIFIERS, &esc, &why), -1);
    assert_int_equal(template_expand("/m/%Xn", "5", "", (char[64]){ 0 }, 64), -1);
}

static void test_config_check(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(config_check_maildir_template("/var/vmail/%d/%1n/%2.1n/%n", err, sizeof(err)), 0);
    assert_int_equal(config_check_maildir_template("/var/vmail/%4.256Nu/%Ln", err, sizeof(err)), 0);
    assert_int_equal(config_check_maildir_template("/var/vmail/%2Qn", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "modifier"));
    assert_int_equal(config_check_maildir_template("/var/vmail/%2.1x", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "%x"));
}

static void test_uidl_format_check(void **state)
{
    (void)state;
    char err[256];
    static const char *const ok[] = { "%08Xu%08Xv", "%u-%v", "%f", "%g", "%v.%Xu", "100%%%u" };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_int_equal(config_check_uidl_format(ok[i], err, sizeof(err)), 0);
    assert_int_equal(config_check_uidl_format("%m", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "mbox"));
    assert_int_equal(config_check_uidl_format("%08Xq", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "%q"));
    /* No variable: every message would have one UIDL. */
    assert_int_equal(config_check_uidl_format("uidl%%", err, sizeof(err)), -1);
    assert_int_equal(config_check_uidl_format("%08Yu", err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_substrings_and_hashes_match_dovecot),
        cmocka_unit_test(test_padding_case_reverse_match_dovecot),
        cmocka_unit_test(test_site_layouts),
        cmocka_unit_test(test_substring_never_escapes),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_uidl_format_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
