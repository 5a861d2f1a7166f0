/* daemon/runtime/control_args: the arguments of popctl's verbs as the master reads them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "daemon/runtime/control_args.h"

static void ip_of(const char *text, uint8_t out[16])
{
    struct in_addr a4;
    memset(out, 0, 16);
    if (inet_pton(AF_INET, text, &a4) == 1) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        return;
    }
    assert_int_equal(inet_pton(AF_INET6, text, out), 1);
}

static void test_options(void **state)
{
    (void)state;
    char *argv[] = { "drain", "deadline=30", "message=be back soon", "deadlinex=1", "x" };
    assert_string_equal(control_option(5, argv, "deadline"), "30");
    assert_string_equal(control_option(5, argv, "message"), "be back soon");
    assert_null(control_option(5, argv, "format"));
    assert_null(control_option(5, argv, "drain"));      /* the verb is not an option */
    assert_null(control_option(1, argv, "deadline"));
}

static void test_seconds(void **state)
{
    (void)state;
    assert_int_equal(control_parse_seconds("0"), 0);
    assert_int_equal(control_parse_seconds("86400"), 86400);
    assert_int_equal(control_parse_seconds("86401"), -1);
    assert_int_equal(control_parse_seconds("-1"), -1);
    assert_int_equal(control_parse_seconds("10s"), -1);
    assert_int_equal(control_parse_seconds(""), -1);
    assert_int_equal(control_parse_seconds("99999999999999999999"), -1);
}

static void test_format_ip(void **state)
{
    (void)state;
    uint8_t ip[16];
    char text[64];
    ip_of("192.0.2.7", ip);
    control_format_ip(ip, text, sizeof(text));
    assert_string_equal(text, "192.0.2.7");
    ip_of("2001:db8::1", ip);
    control_format_ip(ip, text, sizeof(text));
    assert_string_equal(text, "2001:db8::1");
}

static void test_targets(void **state)
{
    (void)state;
    struct control_target t;
    uint8_t v4[16], other[16], v6[16];
    ip_of("10.1.2.3", v4);
    ip_of("10.9.0.1", other);
    ip_of("2001:db8::5", v6);

    assert_int_equal(control_parse_target(NULL, &t), 0);
    assert_true(control_target_match(&t, "", v4));

    assert_int_equal(control_parse_target("alice", &t), 0);
    assert_false(t.by_ip);
    assert_true(control_target_match(&t, "alice", v4));
    assert_false(control_target_match(&t, "alice2", v4));
    assert_false(control_target_match(&t, "", v4));    /* not logged in: no user */

    assert_int_equal(control_parse_target("10.1.2.3", &t), 0);
    assert_true(t.by_ip);
    assert_true(control_target_match(&t, "bob", v4));
    assert_false(control_target_match(&t, "bob", other));

    assert_int_equal(control_parse_target("10.1.0.0/16", &t), 0);
    assert_true(control_target_match(&t, "", v4));
    assert_false(control_target_match(&t, "", other));

    assert_int_equal(control_parse_target("2001:db8::/32", &t), 0);
    assert_true(control_target_match(&t, "", v6));
    assert_false(control_target_match(&t, "", v4));

    /* Lists are not one target: "a,b" is taken as a (strange) user name. */
    assert_int_equal(control_parse_target("10.1.2.3,10.9.0.1", &t), 0);
    assert_false(t.by_ip);
    assert_int_equal(control_parse_target("", &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_format_ip),
        cmocka_unit_test(test_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
