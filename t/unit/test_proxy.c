/* PROXY protocol v1/v2 header parsing (worker/proxy.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "worker/proxy.h"

static const unsigned char sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

static enum proxy_result parse_str(const char *s, struct proxy_info *info, size_t *used)
{
    return proxy_parse((const unsigned char *)s, strlen(s), info, used);
}

/* Every proper prefix of a complete header is INCOMPLETE, never INVALID. */
static void assert_prefixes_incomplete(const unsigned char *h, size_t len)
{
    struct proxy_info info;
    size_t used;
    for (size_t n = 1; n < len; n++)
        assert_int_equal(proxy_parse(h, n, &info, &used), PROXY_INCOMPLETE);
}

static void test_v1_tcp4_with_data_after(void **state)
{
    (void)state;
    const char *h = "PROXY TCP4 192.0.2.7 198.51.100.1 51234 110\r\nUSER x\r\n";
    struct proxy_info info;
    size_t used = 0;
    assert_int_equal(parse_str(h, &info, &used), PROXY_COMPLETE);
    assert_int_equal(used, strlen("PROXY TCP4 192.0.2.7 198.51.100.1 51234 110\r\n"));
    assert_int_equal(info.version, 1);
    assert_false(info.local);
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&info.src;
    assert_int_equal(s4->sin_family, AF_INET);
    assert_int_equal(ntohs(s4->sin_port), 51234);
    assert_int_equal(ntohl(s4->sin_addr.s_addr), 0xC0000207);
    assert_prefixes_incomplete((const unsigned char *)h, used);
}

static void test_v1_tcp6_and_unknown(void **state)
{
    (void)state;
    struct proxy_info info;
    size_t used;
    assert_int_equal(parse_str("PROXY TCP6 2001:db8::1 ::1 65535 995\r\n", &info, &used),
                     PROXY_COMPLETE);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&info.src;
    assert_int_equal(s6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(s6->sin6_port), 65535);
    assert_int_equal(s6->sin6_addr.s6_addr[0], 0x20);
    assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &info, &used), PROXY_COMPLETE);
    assert_true(info.local);
    assert_int_equal(used, 15);
    assert_int_equal(parse_str("PROXY UNKNOWN ffff::1 ::1 1 2\r\n", &info, &used),
                     PROXY_COMPLETE);
    assert_true(info.local);
}

static void test_v1_invalid(void **state)
{
    (void)state;
    struct proxy_info info;
    size_t used;
    const char *bad[] = {
        "PROXY TCP4 192.0.2.7 198.51.100.1 51234 110\n",        /* no CR */
        "PROXY TCP4  192.0.2.7 198.51.100.1 51234 110\r\n",     /* two spaces */
        "PROXY TCP4 192.0.2.7 198.51.100.1 051234 110\r\n",     /* leading zero */
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 110\r\n",      /* port too big */
        "PROXY TCP4 192.0.2.300 198.51.100.1 1 110\r\n",        /* bad address */
        "PROXY TCP4 2001:db8::1 198.51.100.1 1 110\r\n",        /* v6 in TCP4 */
        "PROXY TCP5 192.0.2.7 198.51.100.1 1 110\r\n",          /* bad protocol */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",              /* missing port */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n",          /* extra field */
        "proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",            /* lower case */
        "USER alice\r\n",                                       /* no header at all */
        "GET / HTTP/1.0\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum proxy_result r = parse_str(bad[i], &info, &used);
        if (r != PROXY_INVALID)
            fail_msg("accepted: %s", bad[i]);
    }
    /* No line end within 107 octets: invalid, not waiting forever. */
    char longline[200];
    memset(longline, 'A', sizeof(longline));
    memcpy(longline, "PROXY UNKNOWN ", 14);
    assert_int_equal(proxy_parse((unsigned char *)longline, sizeof(longline), &info, &used),
                     PROXY_INVALID);
}

static size_t v2_header(unsigned char *out, unsigned char ver_cmd, unsigned char fam,
                        const unsigned char *body, size_t body_len)
{
    memcpy(out, sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (unsigned char)(body_len >> 8);
    out[15] = (unsigned char)body_len;
    memcpy(out + 16, body, body_len);
    return 16 + body_len;
}

static void test_v2_tcp4_with_tlvs(void **state)
{
    (void)state;
    unsigned char body[64], h[128];
    unsigned char *b = body;
    memcpy(b, "\xc0\x00\x02\x07", 4);                 /* src 192.0.2.7 */
    memcpy(b + 4, "\xc6\x33\x64\x01", 4);             /* dst 198.51.100.1 */
    memcpy(b + 8, "\xc8\x22", 2);                     /* sport 51234 */
    memcpy(b + 10, "\x00\x6e", 2);                    /* dport 110 */
    b += 12;
    memcpy(b, "\x04\x00\x02zz", 5);                   /* NOOP TLV, skipped */
    b += 5;
    memcpy(b, "\x20\x00\x05\x01\x00\x00\x00\x00", 8); /* SSL TLV: client used TLS */
    b += 8;
    size_t len = v2_header(h, 0x21, 0x11, body, (size_t)(b - body));
    memcpy(h + len, "trailing", 8);
    struct proxy_info info;
    size_t used;
    assert_int_equal(proxy_parse(h, len + 8, &info, &used), PROXY_COMPLETE);
    assert_int_equal(used, len);
    assert_int_equal(info.version, 2);
    assert_true(info.tls);
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&info.src;
    assert_int_equal(ntohl(s4->sin_addr.s_addr), 0xC0000207);
    assert_int_equal(ntohs(s4->sin_port), 51234);
    assert_prefixes_incomplete(h, len);
}

static void test_v2_tcp6_local_unix(void **state)
{
    (void)state;
    unsigned char body[220] = { 0 }, h[260];
    struct proxy_info info;
    size_t used;
    body[0] = 0x20;
    body[1] = 0x01;
    body[15] = 0x07;
    body[33] = 0x2a;                                   /* sport 42 */
    size_t len = v2_header(h, 0x21, 0x21, body, 36);
    assert_int_equal(proxy_parse(h, len, &info, &used), PROXY_COMPLETE);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&info.src;
    assert_int_equal(s6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(s6->sin6_port), 42);
    assert_int_equal(s6->sin6_addr.s6_addr[15], 7);
    /* LOCAL: a health check from the proxy itself. */
    len = v2_header(h, 0x20, 0x00, body, 0);
    assert_int_equal(proxy_parse(h, len, &info, &used), PROXY_COMPLETE);
    assert_true(info.local);
    /* UNIX sockets behind the proxy: keep the real peer. */
    len = v2_header(h, 0x21, 0x31, body, 216);
    assert_int_equal(proxy_parse(h, len, &info, &used), PROXY_COMPLETE);
    assert_true(info.local);
}

/* Dual-stack proxies name IPv4 clients as ::ffff:a.b.c.d: they come out as AF_INET. */
static void test_v4_mapped_sources_are_ipv4(void **state)
{
    (void)state;
    struct proxy_info info;
    size_t used;
    assert_int_equal(parse_str("PROXY TCP6 ::ffff:192.0.2.1 ::ffff:203.0.113.1 40001 110\r\n",
                               &info, &used),
                     PROXY_COMPLETE);
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&info.src;
    const struct sockaddr_in *d4 = (const struct sockaddr_in *)&info.dst;
    assert_int_equal(s4->sin_family, AF_INET);
    assert_int_equal(ntohs(s4->sin_port), 40001);
    assert_int_equal(ntohl(s4->sin_addr.s_addr), 0xC0000201);
    assert_int_equal(d4->sin_family, AF_INET);
    assert_int_equal(ntohl(d4->sin_addr.s_addr), 0xCB007101);

    unsigned char body[36] = { 0 }, h[64];
    body[10] = body[11] = 0xff;
    body[12] = 192, body[13] = 0, body[14] = 2, body[15] = 9;     /* src ::ffff:192.0.2.9 */
    body[16] = 0x20, body[17] = 0x01, body[31] = 1;                /* dst 2001::1 */
    body[32] = 0x9c, body[33] = 0x41;                              /* sport 40001 */
    size_t len = v2_header(h, 0x21, 0x21, body, 36);
    assert_int_equal(proxy_parse(h, len, &info, &used), PROXY_COMPLETE);
    assert_int_equal(s4->sin_family, AF_INET);
    assert_int_equal(ntohl(s4->sin_addr.s_addr), 0xC0000209);
    assert_int_equal(ntohs(s4->sin_port), 40001);
    assert_int_equal(info.dst.ss_family, AF_INET6);              /* a real IPv6 address stays */
}

static void test_v2_invalid(void **state)
{
    (void)state;
    unsigned char body[64] = { 0 }, h[2048];
    struct proxy_info info;
    size_t used;
    size_t len = v2_header(h, 0x11, 0x11, body, 12);   /* version 1 */
    assert_int_equal(proxy_parse(h, len, &info, &used), PROXY_INVALID);
    len = v2_header(h, 0x22, 0x11, body, 12);          /* command 2 */
    assert_int_equal(proxy_parse(h, len, &info, &used), PROXY_INVALID);
    len = v2_header(h, 0x21, 0x11, body, 8);           /* address block cut short */
    assert_int_equal(proxy_parse(h, len, &info, &used), PROXY_INVALID);
    body[12] = 0x04;                                   /* TLV longer than what is left */
    body[13] = 0x00;
    body[14] = 0x09;
    len = v2_header(h, 0x21, 0x11, body, 16);
    assert_int_equal(proxy_parse(h, len, &info, &used), PROXY_INVALID);
    /* Oversized: refused as soon as the length is known, before reading it all. */
    memcpy(h, sig, 12);
    h[12] = 0x21;
    h[13] = 0x11;
    h[14] = 0x10;
    h[15] = 0x00;
    assert_int_equal(proxy_parse(h, 16, &info, &used), PROXY_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4_with_data_after),
        cmocka_unit_test(test_v1_tcp6_and_unknown),
        cmocka_unit_test(test_v4_mapped_sources_are_ipv4),
        cmocka_unit_test(test_v1_invalid),
        cmocka_unit_test(test_v2_tcp4_with_tlvs),
        cmocka_unit_test(test_v2_tcp6_local_unix),
        cmocka_unit_test(test_v2_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
