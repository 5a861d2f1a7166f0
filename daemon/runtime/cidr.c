#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int cidr_is_v4_mapped(const uint8_t addr[16])
{
    return memcmp(addr, v4_mapped, sizeof(v4_mapped)) == 0;
}

int cidr_unmap_v4(struct sockaddr_storage *ss)
{
    if (ss->ss_family != AF_INET6)
        return 0;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    if (!cidr_is_v4_mapped(in6->sin6_addr.s6_addr))
        return 0;
    struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = in6->sin6_port };
    memcpy(&in4.sin_addr, in6->sin6_addr.s6_addr + 12, 4);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &in4, sizeof(in4));
    return 1;
}

static int parse_one(const char *text, struct cidr *net)
{
    char host[64];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    long bits = -1;

    if (len == 0 || len >= sizeof(host))
        return -1;
    memcpy(host, text, len);
    host[len] = '\0';
    if (slash != NULL) {
        char *end;
        if (slash[1] < '0' || slash[1] > '9')
            return -1;
        bits = strtol(slash + 1, &end, 10);
        if (*end != '\0')
            return -1;
    }
    memset(net, 0, sizeof(*net));
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        if (bits > 32)
            return -1;
        memcpy(net->addr, v4_mapped, 12);
        memcpy(net->addr + 12, &a4, 4);
        net->prefix = (uint8_t)(96 + (bits < 0 ? 32 : bits));
    } else if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (bits > 128)
            return -1;
        memcpy(net->addr, &a6, 16);
        net->prefix = (uint8_t)(bits < 0 ? 128 : bits);
    } else {
        return -1;
    }
    /* Clear host bits so matching is a plain prefix compare. */
    for (int i = 0; i < 16; i++) {
        int keep = net->prefix - i * 8;
        if (keep <= 0)
            net->addr[i] = 0;
        else if (keep < 8)
            net->addr[i] &= (uint8_t)(0xff << (8 - keep));
    }
    return 0;
}

int cidr_client_prefix(const char *ip, int v4_prefix, int v6_prefix, uint8_t out[16])
{
    struct cidr net;

    if (ip == NULL || strchr(ip, '/') != NULL || parse_one(ip, &net) == -1)
        return -1;
    /* A v4-mapped IPv6 address is the IPv4 client it names (dual-stack proxies send them). */
    int v4 = memcmp(net.addr, v4_mapped, sizeof(v4_mapped)) == 0;
    int bits = v4 ? 96 + v4_prefix : v6_prefix;
    for (int i = 0; i < 16; i++) {
        int keep = bits - i * 8;
        if (keep <= 0)
            net.addr[i] = 0;
        else if (keep < 8)
            net.addr[i] &= (uint8_t)(0xff << (8 - keep));
    }
    memcpy(out, net.addr, 16);
    return 0;
}

int cidr_list_parse(const char *text, struct cidr_list *list, char *err, size_t errlen)
{
    char copy[1024];
    list->count = 0;
    if (strlen(text) >= sizeof(copy)) {
        snprintf(err, errlen, "network list too long");
        return -1;
    }
    strcpy(copy, text);
    char *save = NULL;
    for (char *tok = strtok_r(copy, " ,\t", &save); tok; tok = strtok_r(NULL, " ,\t", &save)) {
        if (list->count == CIDR_LIST_MAX) {
            snprintf(err, errlen, "too many networks (at most %d)", CIDR_LIST_MAX);
            return -1;
        }
        if (parse_one(tok, &list->net[list->count]) == -1) {
            snprintf(err, errlen, "\"%s\" is not a network (e.g. 10.0.0.0/8 or 2001:db8::/32)",
                     tok);
            return -1;
        }
        list->count++;
    }
    return 0;
}

int cidr_list_match(const struct cidr_list *list, const struct sockaddr *addr)
{
    uint8_t key[16];
    if (addr->sa_family == AF_INET) {
        memcpy(key, v4_mapped, 12);
        memcpy(key + 12, &((const struct sockaddr_in *)addr)->sin_addr, 4);
    } else if (addr->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
    } else {
        return 0;
    }
    for (int n = 0; n < list->count; n++) {
        const struct cidr *net = &list->net[n];
        int full = net->prefix / 8, rest = net->prefix % 8;
        if (memcmp(key, net->addr, (size_t)full) != 0)
            continue;
        if (rest && ((key[full] ^ net->addr[full]) & (uint8_t)(0xff << (8 - rest))))
            continue;
        return 1;
    }
    return 0;
}

void cidr_list_format(const struct cidr_list *list, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (int n = 0; n < list->count && used < outlen; n++) {
        const struct cidr *net = &list->net[n];
        char host[INET6_ADDRSTRLEN];
        int bits;
        if (cidr_is_v4_mapped(net->addr) && net->prefix >= 96) {
            inet_ntop(AF_INET, net->addr + 12, host, sizeof(host));
            bits = net->prefix - 96;
        } else {
            inet_ntop(AF_INET6, net->addr, host, sizeof(host));
            bits = net->prefix;
        }
        int w = snprintf(out + used, outlen - used, "%s%s/%d", n ? " " : "", host, bits);
        if (w < 0)
            return;
        used += (size_t)w;
    }
}
