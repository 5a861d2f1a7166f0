/*
 * Which backend a user goes to. The directory names a user's host (LDAP
 * mailHost); when that host is down or draining, or the user names none,
 * rendezvous hashing picks among the healthy ones: each backend scores
 * hash(user, backend name) and the highest wins. The choice depends only
 * on the user and the set of healthy backends, so every router agrees, and
 * losing one backend moves only the users that were on it.
 */
#ifndef FASTPOP_ROUTER_ROUTE_PICK_H
#define FASTPOP_ROUTER_ROUTE_PICK_H

#include <stddef.h>

struct route_backend {
    char name[65];        /* as the directory's attribute names it */
    char ip[48];          /* IP literal: nginx takes no host names */
    unsigned port;
    int up;               /* answered its last health check */
    int draining;         /* up, but takes no new users */
};

/*
 * The index of the backend for user: the one named preferred (may be NULL
 * or "") if it is up and not draining, else the rendezvous choice among
 * those that are. -1 when none is.
 */
int route_pick(const char *user, const char *preferred, const struct route_backend *b, size_t n);

#endif
