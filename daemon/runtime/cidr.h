/*
 * Lists of networks ("127.0.0.0/8 10.0.0.0/8 ::1/128"), as config values
 * for trusted proxies, trusted plaintext clients and penalty exemptions.
 * IPv4 addresses match IPv4 networks whether they arrive as AF_INET or as
 * v4-mapped IPv6 (::ffff:a.b.c.d).
 */
#ifndef FASTPOP_CIDR_H
#define FASTPOP_CIDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CIDR_LIST_MAX 32

struct cidr {
    uint8_t addr[16];   /* IPv4 as v4-mapped IPv6 */
    uint8_t prefix;     /* over the 128 bits (IPv4 /n is stored as 96 + n) */
};

struct cidr_list {
    struct cidr net[CIDR_LIST_MAX];
    int count;
};

/*
 * Parse networks separated by spaces or commas; a bare address is a host
 * (/32 or /128). "" gives an empty list. -1 with a message in err.
 */
int cidr_list_parse(const char *text, struct cidr_list *list, char *err, size_t errlen);
/* 1 if addr (AF_INET or AF_INET6) is in one of the networks, else 0. */
int cidr_list_match(const struct cidr_list *list, const struct sockaddr *addr);
/*
 * The client group an address string belongs to: IPv4 (also written as
 * v4-mapped IPv6) masked to v4_prefix bits (as v4-mapped IPv6 in out), IPv6
 * masked to v6_prefix bits. -1 if ip is not a plain address.
 */
int cidr_client_prefix(const char *ip, int v4_prefix, int v6_prefix, uint8_t out[16]);
/* The list in the syntax cidr_list_parse() reads. */
void cidr_list_format(const struct cidr_list *list, char *out, size_t outlen);

/*
 * IPv4-mapped IPv6 (::ffff:a.b.c.d, RFC 4291 section 2.5.5.2) is an IPv4
 * client seen through an IPv6 socket or a dual-stack proxy. Everything that
 * keys, limits or logs by address must see it as the IPv4 address it is,
 * else all IPv4 clients behind such a proxy fall into one IPv6 /64.
 */
int cidr_is_v4_mapped(const uint8_t addr[16]);
/* Turn a v4-mapped AF_INET6 address into AF_INET in place (port kept); 1 if it was one. */
int cidr_unmap_v4(struct sockaddr_storage *ss);

#endif
