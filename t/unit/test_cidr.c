/*
 * daemon/runtime/cidr: IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) become the IPv4
 * address they are, and network lists match either spelling of an IPv4
 * client.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "daemon/runtime/cidr.h"
#include "daemon/runtime/listen.h"

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0xee, sizeof(ss)); /* garbage past the address must not leak into the result */
    memset(in6, 0, sizeof(*in6));
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    return ss;
}

static void test_unmap_v4_mapped(void **state)
{
    (void)state;
    struct sockaddr_storage ss = v6("::ffff:192.0.2.1", 40001);
    assert_int_equal(cidr_unmap_v4(&ss), 1);
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;
    assert_int_equal(in4->sin_family, AF_INET);
    assert_int_equal(ntohs(in4->sin_port), 40001);
    assert_int_equal(ntohl(in4->sin_addr.s_addr), 0xC0000201);
    /* Idempotent: an AF_INET address is left alone. */
    struct sockaddr_storage copy = ss;
    assert_int_equal(cidr_unmap_v4(&ss), 0);
    assert_memory_equal(&ss, &copy, sizeof(ss));
}

static void test_unmap_leaves_real_ipv6_alone(void **state)
{
    (void)state;
    /* Only ::ffff:0:0/96 is IPv4: not the deprecated v4-compatible ::a.b.c.d, not NAT64. */
    const char *keep[] = { "2001:db8::1", "::1", "::192.0.2.1", "64:ff9b::192.0.2.1",
                           "::fffe:192.0.2.1", "0:0:0:0:1:ffff:c000:201" };
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        struct sockaddr_storage ss = v6(keep[i], 110), before = ss;
        assert_int_equal(cidr_unmap_v4(&ss), 0);
        assert_memory_equal(&ss, &before, sizeof(ss));
    }
    uint8_t mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1 };
    assert_true(cidr_is_v4_mapped(mapped));
    mapped[9] = 1;
    assert_false(cidr_is_v4_mapped(mapped));
}

static void test_format_logs_ipv4(void **state)
{
    (void)state;
    char out[64];
    struct sockaddr_storage ss = v6("::ffff:198.51.100.7", 995);
    listen_format_ip((const struct sockaddr *)&ss, out, sizeof(out));
    assert_string_equal(out, "198.51.100.7");
    ss = v6("2001:db8::7", 110);
    listen_format_ip((const struct sockaddr *)&ss, out, sizeof(out));
    assert_string_equal(out, "2001:db8::7");
}

static void test_ipv4_networks_match_both_spellings(void **state)
{
    (void)state;
    struct cidr_list list;
    char err[128];
    assert_int_equal(cidr_list_parse("192.0.2.0/24 2001:db8::/32", &list, err, sizeof(err)), 0);
    struct sockaddr_storage mapped = v6("::ffff:192.0.2.1", 1);
    struct sockaddr_storage outside = v6("::ffff:198.51.100.1", 1);
    struct sockaddr_storage real6 = v6("2001:db8::1", 1);
    assert_true(cidr_list_match(&list, (const struct sockaddr *)&mapped));
    assert_false(cidr_list_match(&list, (const struct sockaddr *)&outside));
    assert_true(cidr_list_match(&list, (const struct sockaddr *)&real6));
    assert_int_equal(cidr_unmap_v4(&mapped), 1);
    assert_true(cidr_list_match(&list, (const struct sockaddr *)&mapped));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unmap_v4_mapped),
        cmocka_unit_test(test_unmap_leaves_real_ipv6_alone),
        cmocka_unit_test(test_format_logs_ipv4),
        cmocka_unit_test(test_ipv4_networks_match_both_spellings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
