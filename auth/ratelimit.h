/*
 * The helper's CPU is not free: before any password is hashed or any SCRAM
 * key derived, a request must take a token from its client group's bucket
 * (auth/requests.c). Groups are the penalty's (IPv4 per
 * auth_penalty_ipv4_prefix, default /32; IPv6 per auth_penalty_ipv6_prefix,
 * default /64); each gets auth_rate_limit tokens per second, up to
 * auth_rate_burst. A request without a token is answered tempfail at once,
 * unhashed ([SYS/TEMP] for the client), and the first refusal of a flood is
 * logged once. Networks in auth_penalty_trusted (webmail front ends, which
 * log everybody in from one address) are never limited.
 *
 * Why per group and before hashing: the brute-force penalty only delays
 * answers, while the work of a check is done at arrival, in one thread. A
 * single address could otherwise keep the helper busy and slow every other
 * login; with the limit, one group gets at most its rate of the helper.
 * Logins answered by a worker's credential cache never reach the helper and
 * cost no token.
 *
 * Memory is bounded: RATELIMIT_ENTRIES buckets, 4-way set associative under
 * a secret hash seed, least recently used out first. A group pushed out comes
 * back with a full bucket; doing that on purpose takes more distinct groups
 * within burst/rate seconds than the table holds, a distributed flood that
 * the helper's global bound on pending answers (REQUESTS_MAX_PENDING) meets.
 */
#ifndef FASTPOP_AUTH_RATELIMIT_H
#define FASTPOP_AUTH_RATELIMIT_H

#include <stdint.h>

#include "daemon/runtime/cidr.h"
#include "daemon/runtime/config.h"

/* 16,384 groups x 48 bytes = 768 KiB: far more groups than one helper serves in 4 s. */
#define RATELIMIT_ENTRIES 16384
#define RATELIMIT_WAYS 4

struct ratelimit_config {
    double rate;                /* tokens per second; 0: no limit */
    double burst;               /* bucket size */
    int ipv4_prefix, ipv6_prefix;
    struct cidr_list trusted;
};

struct ratelimit_bucket {
    uint8_t group[16];
    double tokens;
    double updated;
    uint64_t used;              /* tick of the last use; 0 = empty */
    uint32_t refused;           /* refusals since the last token given */
};

struct ratelimit {
    struct ratelimit_config cfg;
    struct ratelimit_bucket *b;
    uint32_t sets;              /* a power of two */
    uint64_t seed;
    uint64_t tick;
};

void ratelimit_config_from(struct ratelimit_config *rc, const struct config *cfg);

/* Set up rl with entries buckets (rounded down to a power of two times the ways). -1: ENOMEM. */
int ratelimit_init(struct ratelimit *rl, const struct ratelimit_config *rc, uint32_t entries);
/* New settings; the buckets are kept. */
void ratelimit_reconfigure(struct ratelimit *rl, const struct ratelimit_config *rc);
void ratelimit_free(struct ratelimit *rl);

/*
 * Take a token for ip at now (seconds): 1 if the request may be worked on,
 * 0 if its group is over budget. *first_refusal is set when this is the
 * first refusal since the group last got a token (the caller logs that one).
 * An unparsable ip shares one bucket with every other unparsable ip.
 */
int ratelimit_take(struct ratelimit *rl, const char *ip, double now, int *first_refusal);

#endif
