/*
 * PROXY protocol v1 (text) and v2 (binary) headers, as HAProxy's
 * doc/proxy-protocol.txt defines them (see ../shared/reference/interop.md
 * section 5). Pure parsing, no I/O: the connection code peeks at what has
 * arrived, asks here, and consumes exactly the header (the client's TLS
 * ClientHello may follow in the same segment).
 *
 * Limits: a v1 header is at most 107 octets, CRLF included; a v2 header is
 * accepted up to PROXY_V2_MAX octets in all (the protocol allows 64 KiB of
 * TLVs; no load balancer we know sends more than a few hundred).
 */
#ifndef FASTPOP_PROXY_H
#define FASTPOP_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107   /* the whole line, CRLF included */
#define PROXY_V2_MAX 1024

struct proxy_info {
    int local;                      /* LOCAL/UNKNOWN/UNIX: keep the socket's own addresses */
    struct sockaddr_storage src;    /* the client, when !local (v4-mapped IPv6 comes as AF_INET) */
    struct sockaddr_storage dst;
    int version;                    /* 1 or 2 */
    int tls;                        /* v2 SSL TLV: the client spoke TLS to the proxy */
};

enum proxy_result {
    PROXY_INVALID = -1,
    PROXY_INCOMPLETE = 0,
    PROXY_COMPLETE = 1,
};

/*
 * Look at the first len octets received. PROXY_COMPLETE: *info is filled
 * and the header is *used octets long. PROXY_INCOMPLETE: every octet so far
 * belongs to the header; wait for more. PROXY_INVALID: not a valid header.
 */
enum proxy_result proxy_parse(const unsigned char *data, size_t len, struct proxy_info *info,
                              size_t *used);

#endif
