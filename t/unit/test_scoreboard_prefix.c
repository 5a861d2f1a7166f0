/*
 * The scoreboard's per-address blocks: max_connections_per_ip counts an IPv4
 * address or an IPv6 /64, max_connections_per_ipv6_48 the IPv6 /48 around
 * it; IPv4-mapped IPv6 is IPv4. Also a PROXY header moving a connection
 * between blocks, and the counts surviving a reap (tables rebuilt).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "shm/scoreboard.h"

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') == NULL) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    }
    return ss;
}

static int open_from(struct scoreboard *sb, const char *ip, const struct scoreboard_limits *lim,
                     enum scoreboard_refusal *why)
{
    struct sockaddr_storage a = addr(ip);
    return scoreboard_conn_open_within(sb, 77, (const struct sockaddr *)&a, lim, why);
}

static unsigned count64(struct scoreboard *sb, const char *ip)
{
    struct sockaddr_storage a = addr(ip);
    return scoreboard_count_ip(sb, (const struct sockaddr *)&a);
}

static unsigned count48(struct scoreboard *sb, const char *ip)
{
    struct sockaddr_storage a = addr(ip);
    return scoreboard_count_ipv6_48(sb, (const struct sockaddr *)&a);
}

static void test_ipv6_64_is_one_client(void **state)
{
    (void)state;
    enum scoreboard_refusal why;
    const struct scoreboard_limits lim = { 100, 3, 100 };
    struct scoreboard *sb = scoreboard_create(100);
    assert_true(open_from(sb, "2001:db8:1:2::1", &lim, &why) >= 0);
    assert_true(open_from(sb, "2001:db8:1:2::2", &lim, &why) >= 0);
    assert_true(open_from(sb, "2001:db8:1:2:ffff:ffff:ffff:ffff", &lim, &why) >= 0);
    assert_int_equal(open_from(sb, "2001:db8:1:2:abcd::", &lim, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IP);
    assert_int_equal(count64(sb, "2001:db8:1:2::99"), 3);
    /* The next /64 is another client. */
    assert_true(open_from(sb, "2001:db8:1:3::1", &lim, &why) >= 0);
    assert_int_equal(count64(sb, "2001:db8:1:3::1"), 1);
    assert_int_equal(count48(sb, "2001:db8:1:ffff::1"), 4);
    scoreboard_destroy(sb);
}

static void test_ipv4_is_per_address(void **state)
{
    (void)state;
    enum scoreboard_refusal why;
    const struct scoreboard_limits lim = { 100, 1, 1 };
    struct scoreboard *sb = scoreboard_create(100);
    /* IPv4 neighbours are separate clients, and no /48 limit applies to IPv4. */
    assert_true(open_from(sb, "192.0.2.1", &lim, &why) >= 0);
    assert_true(open_from(sb, "192.0.2.2", &lim, &why) >= 0);
    assert_true(open_from(sb, "::ffff:192.0.2.3", &lim, &why) >= 0);
    assert_int_equal(open_from(sb, "::ffff:192.0.2.1", &lim, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IP);
    assert_int_equal(count64(sb, "192.0.2.3"), 1);
    assert_int_equal(count48(sb, "192.0.2.3"), 0);
    assert_int_equal(count48(sb, "::ffff:192.0.2.3"), 0);
    /* ::/64 (where ::1 lives) is not where IPv4-mapped addresses are counted. */
    assert_true(open_from(sb, "::1", &lim, &why) >= 0);
    assert_int_equal(count64(sb, "::1"), 1);
    assert_int_equal(count64(sb, "192.0.2.1"), 1);
    scoreboard_destroy(sb);
}

static void test_ipv6_48_aggregate(void **state)
{
    (void)state;
    enum scoreboard_refusal why;
    char ip[64];
    int slots[5];
    const struct scoreboard_limits lim = { 100, 2, 5 };
    struct scoreboard *sb = scoreboard_create(100);
    for (int n = 0; n < 5; n++) {
        snprintf(ip, sizeof(ip), "2001:db8:aa:%x::1", n);
        slots[n] = open_from(sb, ip, &lim, &why);
        assert_true(slots[n] >= 0);
    }
    assert_int_equal(open_from(sb, "2001:db8:aa:ff::1", &lim, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IPV6_48);
    /* Refused by the /48: nothing counted anywhere. */
    assert_int_equal(count64(sb, "2001:db8:aa:ff::1"), 0);
    assert_int_equal(count48(sb, "2001:db8:aa::"), 5);
    /* A /64 with room left still cannot grow past its /48. */
    assert_int_equal(open_from(sb, "2001:db8:aa:0::2", &lim, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IPV6_48);
    /* Another /48 and IPv4 are not affected. */
    assert_true(open_from(sb, "2001:db8:ab::1", &lim, &why) >= 0);
    assert_true(open_from(sb, "198.51.100.1", &lim, &why) >= 0);
    /* One leaves: room for one more in the /48. */
    scoreboard_conn_close(sb, slots[2]);
    assert_int_equal(count48(sb, "2001:db8:aa::"), 4);
    assert_true(open_from(sb, "2001:db8:aa:ff::1", &lim, &why) >= 0);
    /* Reaped without the lock, rebuilt from the slots: the counts stay exact. */
    assert_int_equal(scoreboard_reap_owner(sb, 77), 7);
    assert_int_equal(count48(sb, "2001:db8:aa::"), 0);
    assert_int_equal(count64(sb, "2001:db8:aa:ff::1"), 0);
    assert_int_equal(count48(sb, "2001:db8:ab::1"), 0);
    assert_int_equal(scoreboard_active(sb), 0);
    scoreboard_destroy(sb);
}

/* What a PROXY header does: the slot moves from the proxy's address to the client's. */
static void test_move_between_blocks(void **state)
{
    (void)state;
    enum scoreboard_refusal why;
    const struct scoreboard_limits open_lim = { 100, 100, 100 };
    const struct scoreboard_limits lim = { 100, 1, 2 };
    struct scoreboard *sb = scoreboard_create(100);
    int a = open_from(sb, "127.0.0.1", &open_lim, &why);
    int b = open_from(sb, "127.0.0.1", &open_lim, &why);
    int c = open_from(sb, "127.0.0.1", &open_lim, &why);
    assert_true(a >= 0 && b >= 0 && c >= 0);
    struct sockaddr_storage x = addr("2001:db8:1:1::1"), x2 = addr("2001:db8:1:1::2"),
                            y = addr("2001:db8:1:2::1"), z = addr("2001:db8:1:3::1"),
                            x5 = addr("2001:db8:1:1::5");
    assert_int_equal(scoreboard_conn_move_within(sb, a, (struct sockaddr *)&x, &lim, &why), 0);
    assert_int_equal(count64(sb, "127.0.0.1"), 2);
    /* Same /64 as a: over per_ip; the slot stays where it was. */
    assert_int_equal(scoreboard_conn_move_within(sb, b, (struct sockaddr *)&x2, &lim, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IP);
    assert_int_equal(count64(sb, "127.0.0.1"), 2);
    assert_int_equal(scoreboard_conn_move_within(sb, b, (struct sockaddr *)&y, &lim, &why), 0);
    /* A third /64 in the /48: over per_ipv6_48. */
    assert_int_equal(scoreboard_conn_move_within(sb, c, (struct sockaddr *)&z, &lim, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IPV6_48);
    assert_int_equal(count64(sb, "2001:db8:1:3::1"), 0);
    /* Within its own full /64 and /48 a connection can always move. */
    assert_int_equal(scoreboard_conn_move_within(sb, a, (struct sockaddr *)&x5, &lim, &why), 0);
    assert_int_equal(count64(sb, "2001:db8:1:1::"), 1);
    assert_int_equal(count48(sb, "2001:db8:1::"), 2);
    assert_int_equal(count64(sb, "127.0.0.1"), 1);
    scoreboard_conn_close(sb, a);
    scoreboard_conn_close(sb, b);
    scoreboard_conn_close(sb, c);
    assert_int_equal(count48(sb, "2001:db8:1::"), 0);
    assert_int_equal(count64(sb, "127.0.0.1"), 0);
    assert_int_equal(scoreboard_active(sb), 0);
    scoreboard_destroy(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv6_64_is_one_client),
        cmocka_unit_test(test_ipv4_is_per_address),
        cmocka_unit_test(test_ipv6_48_aggregate),
        cmocka_unit_test(test_move_between_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
