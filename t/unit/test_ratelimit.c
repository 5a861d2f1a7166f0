/*
 * auth/ratelimit: a group's burst, then refusals until the bucket refills at
 * the rate; groups by prefix (IPv4 /32, IPv6 /64); trusted networks and
 * rate 0 unlimited; one shared bucket for what is not an address; the table
 * stays bounded and a group pushed out comes back with a full bucket.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auth/ratelimit.h"
#include "daemon/runtime/config.h"

static struct ratelimit_config config(double rate, double burst)
{
    struct config cfg;
    struct ratelimit_config rc;
    config_defaults(&cfg);
    ratelimit_config_from(&rc, &cfg);
    rc.rate = rate;
    rc.burst = burst;
    return rc;
}

/* How many of n requests from ip at now are let through. */
static int taken(struct ratelimit *rl, const char *ip, double now, int n)
{
    int ok = 0, first;
    for (int i = 0; i < n; i++)
        ok += ratelimit_take(rl, ip, now, &first);
    return ok;
}

static void test_defaults(void **state)
{
    struct config cfg;
    struct ratelimit_config rc;
    (void)state;
    config_defaults(&cfg);
    ratelimit_config_from(&rc, &cfg);
    assert_true(rc.rate == 5 && rc.burst == 20);
    assert_int_equal(rc.ipv4_prefix, 32);
    assert_int_equal(rc.ipv6_prefix, 64);
}

static void test_burst_then_rate(void **state)
{
    struct ratelimit rl;
    struct ratelimit_config rc = config(5, 20);
    int first;
    (void)state;

    assert_int_equal(ratelimit_init(&rl, &rc, 64), 0);
    assert_int_equal(taken(&rl, "192.0.2.1", 100.0, 20), 20);
    /* the 21st is refused, and only that first refusal is flagged for the log */
    assert_int_equal(ratelimit_take(&rl, "192.0.2.1", 100.0, &first), 0);
    assert_int_equal(first, 1);
    assert_int_equal(ratelimit_take(&rl, "192.0.2.1", 100.0, &first), 0);
    assert_int_equal(first, 0);
    /* one second later: five more */
    assert_int_equal(taken(&rl, "192.0.2.1", 101.0, 10), 5);
    /* never more than the burst, however long the pause */
    assert_int_equal(taken(&rl, "192.0.2.1", 10000.0, 30), 20);
    /* another address has its own bucket meanwhile */
    assert_int_equal(taken(&rl, "192.0.2.2", 10000.0, 20), 20);
    ratelimit_free(&rl);
}

static void test_groups_trusted_and_off(void **state)
{
    struct ratelimit rl;
    struct ratelimit_config rc = config(1, 3);
    (void)state;

    assert_int_equal(cidr_list_parse("203.0.113.0/24", &rc.trusted, NULL, 0), 0);
    assert_int_equal(ratelimit_init(&rl, &rc, 64), 0);
    /* one /64: three in all from two addresses of it; another /64 is apart */
    assert_int_equal(taken(&rl, "2001:db8:1:2::1", 5.0, 2), 2);
    assert_int_equal(taken(&rl, "2001:db8:1:2:ffff::9", 5.0, 2), 1);
    assert_int_equal(taken(&rl, "2001:db8:1:3::1", 5.0, 3), 3);
    /* IPv4 and its v4-mapped form are one client */
    assert_int_equal(taken(&rl, "198.51.100.7", 5.0, 2), 2);
    assert_int_equal(taken(&rl, "::ffff:198.51.100.7", 5.0, 2), 1);
    /* trusted: unlimited */
    assert_int_equal(taken(&rl, "203.0.113.9", 5.0, 100), 100);
    /* not an address: one shared bucket */
    assert_int_equal(taken(&rl, "", 5.0, 2), 2);
    assert_int_equal(taken(&rl, "junk", 5.0, 2), 1);
    /* rate 0 turns the limit off */
    rc.rate = 0;
    ratelimit_reconfigure(&rl, &rc);
    assert_int_equal(taken(&rl, "2001:db8:1:2::1", 5.0, 100), 100);
    ratelimit_free(&rl);
}

static void test_bounded_table(void **state)
{
    struct ratelimit rl;
    struct ratelimit_config rc = config(1, 2);
    char ip[32];
    (void)state;

    assert_int_equal(ratelimit_init(&rl, &rc, 16), 0);
    assert_int_equal(rl.sets * RATELIMIT_WAYS, 16);
    assert_int_equal(taken(&rl, "192.0.2.1", 1.0, 3), 2);
    /* far more groups than buckets: 192.0.2.1 is pushed out, and comes back full */
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 250, i % 250);
        assert_int_equal(taken(&rl, ip, 1.0, 1), 1);
    }
    assert_int_equal(taken(&rl, "192.0.2.1", 1.0, 3), 2);
    ratelimit_free(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_groups_trusted_and_off),
        cmocka_unit_test(test_bounded_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
