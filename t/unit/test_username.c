/* daemon/runtime/username.c: the one rule for a login name, for every mechanism. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "daemon/runtime/username.h"

static void test_accepted(void **state)
{
    (void)state;
    const char *good[] = { "alice", "ALICE", "alice@example.org", "a.b-c_d+e", "j\xc3\xbcrgen",
                           "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80", "x", "\\", "*)(uid=*" };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(username_check(good[i]), 0);
    char longest[USERNAME_MAX];
    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    assert_int_equal(username_check(longest), 0);
}

static void test_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "a b", "a\tb", "a\x01", "a\x7f", "\x1b[31m",
        "j\xfcrgen",             /* Latin-1, not UTF-8 */
        "\xc3",                  /* cut short */
        "\xc3\x28",              /* bad continuation */
        "\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf",   /* overlong '/' */
        "\xed\xa0\x80",          /* a surrogate */
        "\xf4\x90\x80\x80",      /* above U+10FFFF */
        "\xf5\x80\x80\x80", "\xff", "\x80",
        "a\xc2\x85" "b",         /* C1 control NEL */
        "\xc2\x9b" "31m",        /* C1 CSI */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(username_check(bad[i]), -1);
    char toolong[USERNAME_MAX + 1];
    memset(toolong, 'a', sizeof(toolong) - 1);
    toolong[sizeof(toolong) - 1] = '\0';
    assert_int_equal(username_check(toolong), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
