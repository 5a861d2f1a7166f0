#include "daemon/router/host_cache.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/runtime/hash.h"

struct host_entry {
    double expires;        /* monotonic; 0: empty */
    char login[USERNAME_MAX];
    char host[AUTH_HOST_MAX];
};

struct host_cache {
    double ttl;
    struct host_entry e[HOST_CACHE_ENTRIES];
};

static size_t slot_of(const char *login)
{
    return (size_t)(hash64(login, strlen(login), HASH_SEED_A) % HOST_CACHE_ENTRIES);
}

struct host_cache *host_cache_new(double ttl)
{
    struct host_cache *hc = calloc(1, sizeof(*hc));
    if (hc != NULL)
        hc->ttl = ttl;
    return hc;
}

void host_cache_free(struct host_cache *hc)
{
    free(hc);
}

int host_cache_get(const struct host_cache *hc, const char *login, double now, char *host)
{
    const struct host_entry *e = &hc->e[slot_of(login)];
    if (e->expires <= now || strcmp(e->login, login) != 0)
        return 0;
    memcpy(host, e->host, AUTH_HOST_MAX);
    return 1;
}

void host_cache_put(struct host_cache *hc, const char *login, const char *host, double now)
{
    if (hc->ttl <= 0 || strlen(login) >= USERNAME_MAX || strlen(host) >= AUTH_HOST_MAX)
        return;
    struct host_entry *e = &hc->e[slot_of(login)];
    memcpy(e->login, login, strlen(login) + 1);
    memcpy(e->host, host, strlen(host) + 1);
    e->expires = now + hc->ttl;
}
