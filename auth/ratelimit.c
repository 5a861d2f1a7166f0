/*
 * Token buckets per client group (see ratelimit.h).
 */
#include "auth/ratelimit.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "daemon/runtime/hash.h"

_Static_assert(sizeof(struct ratelimit_bucket) == 48, "buckets are 48 bytes (documented)");

void ratelimit_config_from(struct ratelimit_config *rc, const struct config *cfg)
{
    memset(rc, 0, sizeof(*rc));
    rc->rate = cfg->auth_rate_limit;
    rc->burst = cfg->auth_rate_burst;
    rc->ipv4_prefix = cfg->auth_penalty_ipv4_prefix;
    rc->ipv6_prefix = cfg->auth_penalty_ipv6_prefix;
    rc->trusted = cfg->auth_penalty_trusted;
}

int ratelimit_init(struct ratelimit *rl, const struct ratelimit_config *rc, uint32_t entries)
{
    memset(rl, 0, sizeof(*rl));
    rl->cfg = *rc;
    rl->sets = 1;
    while ((uint64_t)rl->sets * 2 * RATELIMIT_WAYS <= entries)
        rl->sets *= 2;
    /* A known seed would let a client aim its groups at one set. */
    if (getrandom(&rl->seed, sizeof(rl->seed), 0) != (ssize_t)sizeof(rl->seed))
        rl->seed = (uint64_t)random() << 32 ^ (uint64_t)random();
    rl->b = calloc((size_t)rl->sets * RATELIMIT_WAYS, sizeof(*rl->b));
    if (rl->b == NULL) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

void ratelimit_reconfigure(struct ratelimit *rl, const struct ratelimit_config *rc)
{
    rl->cfg = *rc;
}

void ratelimit_free(struct ratelimit *rl)
{
    free(rl->b);
    rl->b = NULL;
}

static int trusted(const struct ratelimit *rl, const char *ip)
{
    struct sockaddr_in6 sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    if (cidr_client_prefix(ip, 32, 128, sa.sin6_addr.s6_addr) == -1)
        return 0;
    return cidr_list_match(&rl->cfg.trusted, (const struct sockaddr *)&sa);
}

/* The bucket of group, made (pushing out the least recently used of its set) if new. */
static struct ratelimit_bucket *bucket(struct ratelimit *rl, const uint8_t group[16], double now)
{
    struct ratelimit_bucket *set =
        &rl->b[(hash64(group, 16, rl->seed) & (rl->sets - 1)) * RATELIMIT_WAYS];
    struct ratelimit_bucket *victim = &set[0];

    for (int w = 0; w < RATELIMIT_WAYS; w++) {
        if (set[w].used != 0 && memcmp(set[w].group, group, 16) == 0) {
            set[w].used = ++rl->tick;
            return &set[w];
        }
        if (set[w].used < victim->used)
            victim = &set[w];
    }
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->group, group, 16);
    victim->tokens = rl->cfg.burst;
    victim->updated = now;
    victim->used = ++rl->tick;
    return victim;
}

int ratelimit_take(struct ratelimit *rl, const char *ip, double now, int *first_refusal)
{
    uint8_t group[16];

    *first_refusal = 0;
    if (rl->cfg.rate <= 0 || trusted(rl, ip))
        return 1;
    if (cidr_client_prefix(ip, rl->cfg.ipv4_prefix, rl->cfg.ipv6_prefix, group) == -1)
        memset(group, 0xff, sizeof(group));   /* not an address: one shared bucket */
    struct ratelimit_bucket *b = bucket(rl, group, now);
    if (now > b->updated) {
        b->tokens += (now - b->updated) * rl->cfg.rate;
        if (b->tokens > rl->cfg.burst)
            b->tokens = rl->cfg.burst;
    }
    b->updated = now;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        b->refused = 0;
        return 1;
    }
    *first_refusal = b->refused++ == 0;
    return 0;
}
