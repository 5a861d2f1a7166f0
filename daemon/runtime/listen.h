/*
 * Listening sockets. The master binds them (as root, before any drop) and
 * every worker inherits them.
 */
#ifndef FASTPOP_LISTEN_H
#define FASTPOP_LISTEN_H

#include <stddef.h>

#include "daemon/runtime/config.h"

/* Bind and listen, non-blocking, close-on-exec. Returns the fd or -1. */
int listen_open(const struct config_listen *l, int backlog);

/* The master's listening sockets, one per listen line of the config. */
struct listen_set {
    int fd[CONFIG_MAX_LISTEN];
    char spec[CONFIG_MAX_LISTEN][sizeof(((struct config_listen *)0)->spec)];
    int count;
};

/* Open every listener of cfg (all or none). -1: logged, nothing left open. */
int listen_set_open(struct listen_set *set, const struct config *cfg, int backlog);
/*
 * Move to next's listeners: a listener in both keeps its socket (no refused
 * connection during a reload), new ones are bound, dropped ones closed.
 * -1 (logged) if a new one cannot be bound; set is then unchanged.
 */
int listen_set_swap(struct listen_set *set, const struct config *next, int backlog);
void listen_set_close(struct listen_set *set);
/* Just the ip of a socket address. */
void listen_format_ip(const struct sockaddr *sa, char *out, size_t outlen);

#endif
