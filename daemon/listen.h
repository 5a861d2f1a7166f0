/*
 * Listening sockets. The master binds them (as root, before any drop) and
 * every worker inherits them.
 */
#ifndef FASTPOP_LISTEN_H
#define FASTPOP_LISTEN_H

#include "daemon/config.h"

/* Bind and listen, non-blocking, close-on-exec. Returns the fd or -1. */
int listen_open(const struct config_listen *l, int backlog);
/* "ip:port" of a socket address into out ("[v6]:port" for IPv6). */
void listen_format_addr(const struct sockaddr *sa, char *out, size_t outlen);
/* Just the ip of a socket address. */
void listen_format_ip(const struct sockaddr *sa, char *out, size_t outlen);

#endif
