/*
 * The brute-force penalty's arithmetic: growth and cap, decay, per-address
 * and per-user scores, IPv6 prefix grouping, trusted networks, blocking,
 * and the fixed-size table forgetting the least recently used entry.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auth/penalty.h"
#include "daemon/runtime/config.h"

static struct penalty_config defaults(void)
{
    struct config cfg;
    struct penalty_config pc;
    config_defaults(&cfg);
    penalty_config_from(&pc, &cfg);
    return pc;
}

static void test_defaults(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    assert_int_equal(pc.enabled, 1);
    assert_true(pc.delay == 1 && pc.max_delay == 8 && pc.forget == 60);
    assert_int_equal(pc.block_after, 20);
    assert_true(pc.block_time == 600);
    assert_int_equal(pc.ipv4_prefix, 32);
    assert_int_equal(pc.ipv6_prefix, 64);
    assert_int_equal(pc.entries, 65536);
    assert_int_equal(pc.trusted.count, 0);
}

static void test_growth_and_cap(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    struct penalty p;
    int blocked;
    assert_int_equal(penalty_init(&p, &pc), 0);
    double expect[] = { 1, 2, 4, 8, 8, 8 };
    for (int i = 0; i < 6; i++) {
        double d = penalty_failure(&p, "192.0.2.1", "alice", 1000.0, &blocked);
        assert_true(d == expect[i]);
        assert_int_equal(blocked, 0);
    }
    assert_true(penalty_delay_for(&pc, 0) == 0);
    assert_true(penalty_delay_for(&pc, 0.5) == 1);
    assert_true(penalty_delay_for(&pc, 2.5) == 4);
    pc.delay = 0;
    assert_true(penalty_delay_for(&pc, 5) == 0);
    penalty_free(&p);
}

static void test_other_address_and_user_unaffected(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    struct penalty p;
    int blocked;
    assert_int_equal(penalty_init(&p, &pc), 0);
    for (int i = 0; i < 3; i++)
        (void)penalty_failure(&p, "192.0.2.1", "alice", 10.0, &blocked);
    /* a fresh address and a fresh user start at the base */
    assert_true(penalty_failure(&p, "192.0.2.2", "bob", 10.0, &blocked) == 1);
    /* the user's score follows alice to another address */
    assert_true(penalty_failure(&p, "192.0.2.3", "alice", 10.0, &blocked) == 8);
    assert_true(penalty_ip_score(&p, "192.0.2.3", 10.0) == 1);
    /* success: the user is forgotten, the address is not, and its answer waits */
    assert_true(penalty_success(&p, "192.0.2.1", "alice", 10.0) == 4);
    assert_true(penalty_user_score(&p, "alice", 10.0) == 0);
    assert_true(penalty_ip_score(&p, "192.0.2.1", 10.0) == 3);
    assert_true(penalty_success(&p, "198.51.100.7", "carol", 10.0) == 0);
    penalty_free(&p);
}

static void test_decay(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    struct penalty p;
    int blocked;
    assert_int_equal(penalty_init(&p, &pc), 0);
    for (int i = 0; i < 4; i++)
        (void)penalty_failure(&p, "192.0.2.1", "u", 0.0, &blocked);
    assert_true(penalty_ip_score(&p, "192.0.2.1", 0.0) == 4);
    /* one failure forgiven per auth_penalty_forget (60 s) */
    assert_true(penalty_ip_score(&p, "192.0.2.1", 120.0) == 2);
    assert_true(penalty_ip_score(&p, "192.0.2.1", 10000.0) == 0);
    assert_true(penalty_failure(&p, "192.0.2.1", "v", 10000.0, &blocked) == 1);
    penalty_free(&p);
}

static void test_ipv6_prefix_grouping(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    struct penalty p;
    int blocked;
    assert_int_equal(penalty_init(&p, &pc), 0);
    (void)penalty_failure(&p, "2001:db8:1:2::1", "a", 0, &blocked);
    (void)penalty_failure(&p, "2001:db8:1:2:ffff::9", "b", 0, &blocked);
    /* one /64: one score */
    assert_true(penalty_ip_score(&p, "2001:db8:1:2:aaaa::", 0) == 2);
    assert_true(penalty_ip_score(&p, "2001:db8:1:3::1", 0) == 0);
    penalty_free(&p);

    pc.ipv6_prefix = 128;
    assert_int_equal(penalty_init(&p, &pc), 0);
    (void)penalty_failure(&p, "2001:db8:1:2::1", "a", 0, &blocked);
    assert_true(penalty_ip_score(&p, "2001:db8:1:2::2", 0) == 0);
    penalty_free(&p);

    pc.ipv4_prefix = 24;
    assert_int_equal(penalty_init(&p, &pc), 0);
    (void)penalty_failure(&p, "192.0.2.1", "a", 0, &blocked);
    assert_true(penalty_ip_score(&p, "192.0.2.200", 0) == 1);
    assert_true(penalty_ip_score(&p, "192.0.3.1", 0) == 0);
    penalty_free(&p);
}

/*
 * A worker behind a dual-stack proxy may name an IPv4 client ::ffff:a.b.c.d:
 * it is that IPv4 address, not one /64 shared by every IPv4 client.
 */
static void test_v4_mapped_is_ipv4(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    struct penalty p;
    int blocked;
    assert_int_equal(penalty_init(&p, &pc), 0);
    (void)penalty_failure(&p, "::ffff:192.0.2.1", "a", 0, &blocked);
    (void)penalty_failure(&p, "::ffff:192.0.2.1", "b", 0, &blocked);
    assert_true(penalty_ip_score(&p, "192.0.2.1", 0) == 2);
    assert_true(penalty_ip_score(&p, "::ffff:192.0.2.2", 0) == 0);
    assert_true(penalty_ip_score(&p, "192.0.2.2", 0) == 0);
    penalty_free(&p);
}

static void test_trusted_networks(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    struct penalty p;
    char err[128];
    int blocked;
    assert_int_equal(cidr_list_parse("10.0.0.0/8 2001:db8::/32", &pc.trusted, err, sizeof(err)),
                     0);
    pc.block_after = 2;
    assert_int_equal(penalty_init(&p, &pc), 0);
    double left;
    for (int i = 0; i < 5; i++)
        assert_true(penalty_failure(&p, "10.1.2.3", "x", 0, &blocked) == 0);
    assert_int_equal(penalty_blocked(&p, "10.1.2.3", 0, &left), 0);
    assert_true(penalty_failure(&p, "2001:db8::5", "y", 0, &blocked) == 0);
    assert_int_equal(penalty_trusted(&p, "10.255.0.1"), 1);
    assert_int_equal(penalty_trusted(&p, "11.0.0.1"), 0);
    assert_int_equal(penalty_trusted(&p, "not-an-ip"), 0);
    /* the user's failures still count where it is not trusted */
    assert_true(penalty_user_score(&p, "x", 0) == 5);
    assert_true(penalty_failure(&p, "192.0.2.1", "x", 0, &blocked) == 8);
    penalty_free(&p);
}

static void test_block_and_unblock(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    struct penalty p;
    int blocked = 0;
    double left;
    pc.block_after = 3;
    pc.block_time = 100;
    assert_int_equal(penalty_init(&p, &pc), 0);
    (void)penalty_failure(&p, "192.0.2.9", "a", 0, &blocked);
    (void)penalty_failure(&p, "192.0.2.9", "b", 0, &blocked);
    assert_int_equal(blocked, 0);
    assert_int_equal(penalty_blocked(&p, "192.0.2.9", 0, &left), 0);
    (void)penalty_failure(&p, "192.0.2.9", "c", 0, &blocked);
    assert_int_equal(blocked, 1);
    assert_int_equal(penalty_blocked(&p, "192.0.2.9", 50, &left), 1);
    assert_true(left == 50);
    assert_int_equal(penalty_blocked(&p, "192.0.2.10", 50, &left), 0);
    assert_int_equal(penalty_blocked(&p, "192.0.2.9", 100.5, &left), 0);
    penalty_free(&p);

    pc.block_after = 0;   /* never */
    assert_int_equal(penalty_init(&p, &pc), 0);
    for (int i = 0; i < 50; i++)
        (void)penalty_failure(&p, "192.0.2.9", "a", 0, &blocked);
    assert_int_equal(penalty_blocked(&p, "192.0.2.9", 0, &left), 0);
    penalty_free(&p);
}

static void test_disabled(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    struct penalty p;
    int blocked;
    double left;
    pc.enabled = 0;
    pc.block_after = 1;
    assert_int_equal(penalty_init(&p, &pc), 0);
    for (int i = 0; i < 5; i++)
        assert_true(penalty_failure(&p, "192.0.2.1", "a", 0, &blocked) == 0);
    assert_int_equal(penalty_blocked(&p, "192.0.2.1", 0, &left), 0);
    penalty_free(&p);
}

static void test_table_is_bounded_lru(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    struct penalty p;
    int blocked;
    char ip[32];
    pc.entries = 16;
    assert_int_equal(penalty_init(&p, &pc), 0);
    (void)penalty_failure(&p, "192.0.2.1", NULL, 0, &blocked);
    for (int i = 0; i < 15; i++) {
        snprintf(ip, sizeof(ip), "198.51.100.%d", i);
        (void)penalty_failure(&p, ip, NULL, 0, &blocked);
    }
    assert_int_equal(p.used, 16);
    /* touch the first so it is the most recent, then add one more */
    assert_true(penalty_ip_score(&p, "192.0.2.1", 0) == 1);
    (void)penalty_failure(&p, "203.0.113.1", NULL, 0, &blocked);
    assert_int_equal(p.used, 16);
    assert_true(penalty_ip_score(&p, "192.0.2.1", 0) == 1);
    /* the least recently used one is gone */
    assert_true(penalty_ip_score(&p, "198.51.100.0", 0) == 0);
    assert_true(penalty_ip_score(&p, "198.51.100.1", 0) == 1);
    /* many more: still 16 */
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
        (void)penalty_failure(&p, ip, "u", 0, &blocked);
    }
    assert_int_equal(p.used, 16);
    /* and success frees entries for reuse */
    (void)penalty_success(&p, "10.3.231.1", "u", 0);
    assert_int_equal(p.used, 15);
    penalty_free(&p);
}

static void test_reconfigure_keeps_scores(void **state)
{
    (void)state;
    struct penalty_config pc = defaults();
    struct penalty p;
    int blocked;
    assert_int_equal(penalty_init(&p, &pc), 0);
    (void)penalty_failure(&p, "192.0.2.1", "a", 0, &blocked);
    pc.max_delay = 2;
    assert_int_equal(penalty_reconfigure(&p, &pc), 0);
    assert_true(penalty_ip_score(&p, "192.0.2.1", 0) == 1);
    for (int i = 0; i < 4; i++)
        (void)penalty_failure(&p, "192.0.2.1", "a", 0, &blocked);
    assert_true(penalty_failure(&p, "192.0.2.1", "a", 0, &blocked) == 2);
    pc.entries = 32;
    assert_int_equal(penalty_reconfigure(&p, &pc), 0);
    assert_true(penalty_ip_score(&p, "192.0.2.1", 0) == 0);
    penalty_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_growth_and_cap),
        cmocka_unit_test(test_other_address_and_user_unaffected),
        cmocka_unit_test(test_decay),
        cmocka_unit_test(test_ipv6_prefix_grouping),
        cmocka_unit_test(test_v4_mapped_is_ipv4),
        cmocka_unit_test(test_trusted_networks),
        cmocka_unit_test(test_block_and_unblock),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_table_is_bounded_lru),
        cmocka_unit_test(test_reconfigure_keeps_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
