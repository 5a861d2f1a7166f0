#include "proxy.h"

#include "daemon/runtime/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
static const char v1_sig[] = "PROXY ";

enum { V2_HEADER = 16, TLV_SSL = 0x20, SSL_CLIENT_SSL = 0x01 };

/* 0..65535 in decimal, no sign, no leading zero (the spec's words). */
static int parse_port(const char *s, uint16_t *port)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0') || strspn(s, "0123456789") != n)
        return -1;
    long v = strtol(s, NULL, 10);
    if (v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static int set_addr(struct sockaddr_storage *ss, int family, const char *ip, uint16_t port)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        return inet_pton(AF_INET, ip, &in4->sin_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    return inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1 ? 0 : -1;
}

static enum proxy_result parse_v1(const unsigned char *data, size_t len,
                                  struct proxy_info *info, size_t *used)
{
    /* The LF must be among the first PROXY_V1_MAX octets. */
    const unsigned char *lf = memchr(data, '\n', len < PROXY_V1_MAX ? len : PROXY_V1_MAX);
    if (lf == NULL)
        return len >= PROXY_V1_MAX ? PROXY_INVALID : PROXY_INCOMPLETE;
    size_t line_len = (size_t)(lf - data);
    if (line_len == 0 || data[line_len - 1] != '\r')
        return PROXY_INVALID;
    char line[PROXY_V1_MAX];
    memcpy(line, data, line_len - 1);
    line[line_len - 1] = '\0';
    if (memchr(line, '\0', line_len - 1) != NULL)
        return PROXY_INVALID;

    /* Exactly single spaces between fields. */
    char *field[7];
    int n = 0;
    char *p = line;
    while (n < 7) {
        field[n++] = p;
        char *sp = strchr(p, ' ');
        if (sp == NULL)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    memset(info, 0, sizeof(*info));
    info->version = 1;
    *used = line_len + 1;
    if (n >= 2 && strcmp(field[1], "UNKNOWN") == 0) {
        info->local = 1;
        return PROXY_COMPLETE;
    }
    if (n != 6)
        return PROXY_INVALID;
    int family;
    if (strcmp(field[1], "TCP4") == 0)
        family = AF_INET;
    else if (strcmp(field[1], "TCP6") == 0)
        family = AF_INET6;
    else
        return PROXY_INVALID;
    uint16_t sport, dport;
    if (parse_port(field[4], &sport) == -1 || parse_port(field[5], &dport) == -1 ||
        set_addr(&info->src, family, field[2], sport) == -1 ||
        set_addr(&info->dst, family, field[3], dport) == -1)
        return PROXY_INVALID;
    return PROXY_COMPLETE;
}

static int parse_tlvs(const unsigned char *p, size_t len, struct proxy_info *info)
{
    while (len > 0) {
        if (len < 3)
            return -1;
        size_t tlv_len = (size_t)p[1] << 8 | p[2];
        if (tlv_len > len - 3)
            return -1;
        /* Only the SSL TLV matters to us; every other type is skipped. */
        if (p[0] == TLV_SSL && tlv_len >= 1 && (p[3] & SSL_CLIENT_SSL))
            info->tls = 1;
        p += 3 + tlv_len;
        len -= 3 + tlv_len;
    }
    return 0;
}

static enum proxy_result parse_v2(const unsigned char *data, size_t len,
                                  struct proxy_info *info, size_t *used)
{
    if (len < V2_HEADER)
        return PROXY_INCOMPLETE;
    size_t body = (size_t)data[14] << 8 | data[15];
    if (V2_HEADER + body > PROXY_V2_MAX)
        return PROXY_INVALID;
    unsigned version = data[12] >> 4, command = data[12] & 0x0f;
    if (version != 2 || command > 1)
        return PROXY_INVALID;
    if (len < V2_HEADER + body)
        return PROXY_INCOMPLETE;

    memset(info, 0, sizeof(*info));
    info->version = 2;
    *used = V2_HEADER + body;
    const unsigned char *a = data + V2_HEADER;
    unsigned family = data[13] >> 4;
    size_t addr_len = family == 1 ? 12 : family == 2 ? 36 : family == 3 ? 216 : 0;
    if (body < addr_len)
        return PROXY_INVALID;
    if (parse_tlvs(a + addr_len, body - addr_len, info) == -1)
        return PROXY_INVALID;
    /* LOCAL (health checks), UNSPEC and UNIX: the socket's own addresses stand. */
    if (command == 0 || family == 0 || family == 3) {
        info->local = 1;
        return PROXY_COMPLETE;
    }
    if (family == 1) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&info->src;
        struct sockaddr_in *d4 = (struct sockaddr_in *)&info->dst;
        s4->sin_family = d4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a, 4);
        memcpy(&d4->sin_addr, a + 4, 4);
        memcpy(&s4->sin_port, a + 8, 2);
        memcpy(&d4->sin_port, a + 10, 2);
    } else if (family == 2) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&info->src;
        struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&info->dst;
        s6->sin6_family = d6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a, 16);
        memcpy(&d6->sin6_addr, a + 16, 16);
        memcpy(&s6->sin6_port, a + 32, 2);
        memcpy(&d6->sin6_port, a + 34, 2);
    } else {
        return PROXY_INVALID;
    }
    return PROXY_COMPLETE;
}

enum proxy_result proxy_parse(const unsigned char *data, size_t len, struct proxy_info *info,
                              size_t *used)
{
    size_t n;
    /* A prefix of either signature may still become a header. */
    enum proxy_result rc = PROXY_INVALID;
    n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    size_t n1 = len < sizeof(v1_sig) - 1 ? len : sizeof(v1_sig) - 1;
    if (memcmp(data, v2_sig, n) == 0)
        rc = len < sizeof(v2_sig) ? PROXY_INCOMPLETE : parse_v2(data, len, info, used);
    else if (memcmp(data, v1_sig, n1) == 0)
        rc = len < sizeof(v1_sig) - 1 ? PROXY_INCOMPLETE : parse_v1(data, len, info, used);
    /* A dual-stack proxy names IPv4 clients as ::ffff:a.b.c.d: they are IPv4 clients. */
    if (rc == PROXY_COMPLETE && !info->local) {
        cidr_unmap_v4(&info->src);
        cidr_unmap_v4(&info->dst);
    }
    return rc;
}
