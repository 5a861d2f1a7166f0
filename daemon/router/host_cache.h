/*
 * The router's memory of each login's host (router_cache_ttl). A login
 * whose host is remembered and fresh is checked with the helper's credential
 * cache allowed (AUTH_MECH_ROUTER: cheap, but such an answer names no
 * host) and routed by the remembered host; otherwise the helper asks the
 * directory (AUTH_MECH_ROUTER_LOOKUP) and the answer's host is remembered.
 * So a mailHost change counts within router_cache_ttl, and a login costs the
 * directory one search per user and TTL, not one per session.
 *
 * Direct-mapped by a hash of the login: a collision forgets the older
 * entry (a miss, never a wrong host). Logins, not canonical names, are the
 * key: they are what the router has before the helper answers.
 */
#ifndef FASTPOP_ROUTER_HOST_CACHE_H
#define FASTPOP_ROUTER_HOST_CACHE_H

#include "daemon/runtime/limits.h"
#include "daemon/runtime/username.h"

/* 4096 entries, about 1.3 MB: a farm's active users within a TTL mostly fit; a miss costs one lookup. */
#define HOST_CACHE_ENTRIES 4096

struct host_cache;

/* ttl in seconds; 0: remember nothing. NULL without memory. */
struct host_cache *host_cache_new(double ttl);
void host_cache_free(struct host_cache *hc);
/* 1 with the remembered host (maybe "") in host[AUTH_HOST_MAX] if login's entry is fresh, else 0. */
int host_cache_get(const struct host_cache *hc, const char *login, double now, char *host);
void host_cache_put(struct host_cache *hc, const char *login, const char *host, double now);

#endif
