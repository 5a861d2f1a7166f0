/* Maildir file name parsing and flag editing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "maildir/filename.h"

static void test_parse_full(void **state)
{
    struct maildir_name pn;
    const char *name = "1700000000.M12P34.host,S=1234,W=1260:2,RS";

    (void)state;
    maildir_name_parse(name, &pn);
    assert_int_equal(pn.unique_len, strlen("1700000000.M12P34.host,S=1234,W=1260"));
    assert_int_equal(pn.timestamp, 1700000000);
    assert_true(pn.has_size_s);
    assert_int_equal(pn.size_s, 1234);
    assert_true(pn.has_size_w);
    assert_int_equal(pn.size_w, 1260);
    assert_non_null(pn.flags);
    assert_int_equal(pn.flags_len, 2);
    assert_memory_equal(pn.flags, "RS", 2);
    assert_int_equal(maildir_unique_len(name), pn.unique_len);
}

static void test_parse_no_info(void **state)
{
    struct maildir_name pn;

    (void)state;
    maildir_name_parse("1700000001.P1.host", &pn);
    assert_int_equal(pn.unique_len, strlen("1700000001.P1.host"));
    assert_null(pn.flags);
    assert_false(pn.has_size_s);
    assert_false(pn.has_size_w);

    maildir_name_parse("x:1,experimental", &pn);
    assert_int_equal(pn.unique_len, 1);
    assert_null(pn.flags);

    maildir_name_parse("x:2,", &pn);
    assert_non_null(pn.flags);
    assert_int_equal(pn.flags_len, 0);

    /* Dovecot keeps extra fields after a comma in the info. */
    maildir_name_parse("x:2,FS,extra", &pn);
    assert_int_equal(pn.flags_len, 2);
}

static void test_parse_sizes(void **state)
{
    struct maildir_name pn;

    (void)state;
    maildir_name_parse("1.a,W=5,S=4:2,", &pn);
    assert_int_equal(pn.size_s, 4);
    assert_int_equal(pn.size_w, 5);

    maildir_name_parse("1.a,W=77", &pn);
    assert_false(pn.has_size_s);
    assert_true(pn.has_size_w);
    assert_int_equal(pn.size_w, 77);

    static const char *const garbage[] = {
        "1.a,S=,W=", "1.a,S=12k,W=-3", "1.a,S=99999999999999999999999,W=1 ",
        "1.a,s=5,w=6", "1.a,XS=5,W5", "S=5.host", "1.a:2,S=5,W=6", "1.a,S=18446744073709551616",
    };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        maildir_name_parse(garbage[i], &pn);
        assert_false(pn.has_size_s);
        assert_false(pn.has_size_w);
    }
    maildir_name_parse("1.a,S=18446744073709551615", &pn);
    assert_true(pn.has_size_s);
    assert_int_equal(pn.size_s, UINT64_MAX);

    /* The first valid field wins. */
    maildir_name_parse("1.a,S=x,S=3,S=4", &pn);
    assert_int_equal(pn.size_s, 3);
    maildir_name_parse("1.a,S=0", &pn);
    assert_true(pn.has_size_s);
    assert_int_equal(pn.size_s, 0);
}

static void test_parse_timestamp(void **state)
{
    struct maildir_name pn;

    (void)state;
    maildir_name_parse("host.without.time", &pn);
    assert_int_equal(pn.timestamp, 0);
    maildir_name_parse("123abc.x", &pn);
    assert_int_equal(pn.timestamp, 123);
    maildir_name_parse("42", &pn);
    assert_int_equal(pn.timestamp, 42);
    maildir_name_parse("99999999999999999999999.x", &pn);
    assert_int_equal(pn.timestamp, UINT64_MAX);
    maildir_name_parse("", &pn);
    assert_int_equal(pn.timestamp, 0);
    assert_int_equal(pn.unique_len, 0);
    maildir_name_parse(":2,S", &pn);
    assert_int_equal(pn.unique_len, 0);
}

static void expect_flag(const char *name, char flag, const char *want)
{
    char out[256];

    assert_int_equal(maildir_name_with_flag(name, flag, out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

static void test_with_flag(void **state)
{
    char out[8];

    (void)state;
    expect_flag("1.a", 'S', "1.a:2,S");
    expect_flag("1.a:2,", 'S', "1.a:2,S");
    expect_flag("1.a:2,RS", 'S', "1.a:2,RS");
    expect_flag("1.a:2,FR", 'S', "1.a:2,FRS");
    expect_flag("1.a:2,DT", 'S', "1.a:2,DST");
    expect_flag("1.a:2,T", 'D', "1.a:2,DT");
    expect_flag("1.a:2,Sa", 'F', "1.a:2,FSa");
    expect_flag("1.a:2,FT,x=1", 'S', "1.a:2,FST,x=1");
    expect_flag("1.a:2,,x=1", 'S', "1.a:2,S,x=1");
    expect_flag("1.a:1,whatever", 'S', "1.a:1,whatever");
    expect_flag("1.a,S=5:2,R", 'S', "1.a,S=5:2,RS");

    assert_int_equal(maildir_name_with_flag("1.a", ',', out, sizeof(out)), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(maildir_name_with_flag("1.a", '1', out, sizeof(out)), -1);
    assert_int_equal(maildir_name_with_flag("1.ab", 'S', out, sizeof(out)), -1);
    assert_int_equal(errno, ERANGE);
    assert_int_equal(maildir_name_with_flag("1.a", 'S', out, sizeof(out)), 0);
    assert_string_equal(out, "1.a:2,S");
}

static void test_for_cur(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(maildir_name_for_cur("1.a", out, sizeof(out)), 0);
    assert_string_equal(out, "1.a:2,");
    assert_int_equal(maildir_name_for_cur("1.a:2,S", out, sizeof(out)), 0);
    assert_string_equal(out, "1.a:2,S");
    assert_int_equal(maildir_name_for_cur("1.a:1,x", out, sizeof(out)), 0);
    assert_string_equal(out, "1.a:1,x");
    assert_int_equal(maildir_name_for_cur("123456789.abc", out, sizeof(out)), -1);
    assert_int_equal(errno, ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_no_info),
        cmocka_unit_test(test_parse_sizes),
        cmocka_unit_test(test_parse_timestamp),
        cmocka_unit_test(test_with_flag),
        cmocka_unit_test(test_for_cur),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
