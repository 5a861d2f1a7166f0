/*
 * The brute-force penalty: failed logins make the next answers slower, per
 * client address and per user name, without blocking anything (the server
 * holds the answer on a timer; see auth/socket_server.c).
 *
 * Each address (IPv4 per auth_penalty_ipv4_prefix, default /32; IPv6 per
 * auth_penalty_ipv6_prefix, default /64, since one host usually owns a whole
 * /64) and each user name has a score: +1 per failed login, minus one per
 * auth_penalty_forget seconds (linear decay, so a user who mistyped twice
 * this morning starts clean this afternoon). The answer to a failed login
 * waits
 *
 *     delay = auth_penalty_delay * 2^(ceil(score) - 1), at most auth_penalty_max_delay
 *
 * for the larger of the address's and the user's score, counted with this
 * failure: 1 s, 2 s, 4 s, 8 s, 8 s... by default. A successful login clears
 * the user's score but not the address's, and its answer waits the
 * address's delay too: an attacker must not learn "right password" sooner
 * than "wrong password" by timing, nor reset its address by logging into an
 * account of its own.
 *
 * When an address's score reaches auth_penalty_block_after (rounded up), it is blocked
 * for auth_penalty_block_time: every login from it fails at once, without
 * asking the password file or LDAP (so a blocked attacker costs nothing and
 * learns nothing, even with the right password). Addresses in
 * auth_penalty_trusted (a CIDR list) are never delayed or blocked; the user
 * score still counts their failures.
 *
 * Memory is bounded: a fixed table of auth_penalty_entries scores (addresses
 * and users together, ~64 bytes each), allocated once; when it is full the
 * least recently used entry is forgotten. Keys are keyed SHA-256 hashes, so
 * client-chosen names cannot crowd one hash chain, and no user name is kept.
 */
#ifndef FASTPOP_AUTH_PENALTY_H
#define FASTPOP_AUTH_PENALTY_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/runtime/config.h"
#include "shm/penalty_view.h"

struct penalty_config {
    int enabled;
    double delay;               /* seconds, for the first failure; 0: no delay */
    double max_delay;
    double forget;              /* seconds per failure forgiven */
    int block_after;            /* address score that blocks; 0: never */
    double block_time;
    int ipv4_prefix, ipv6_prefix;
    struct cidr_list trusted;
    uint32_t entries;
};

struct penalty_entry {
    unsigned char key[16];
    uint64_t view_tag;          /* its key in the workers' view (shm/penalty_view.h) */
    double score;
    double updated;             /* when score was last brought up to date */
    double blocked_until;
    uint32_t prev, next;        /* LRU list, most recent first */
    uint32_t hnext;             /* hash chain, or free list */
    int used;
};

struct penalty {
    struct penalty_config cfg;
    struct penalty_entry *e;
    uint32_t *bucket;
    uint32_t nbuckets;          /* a power of two */
    uint32_t used, fresh;       /* entries in use; entries never used yet start at fresh */
    uint32_t free_list;
    uint32_t head, tail;
    unsigned char seed[16];
    struct penalty_view *view;  /* published to the workers; NULL: none */
};

/* Fill pc from the configuration. */
void penalty_config_from(struct penalty_config *pc, const struct config *cfg);

/* Set up p (allocates the table). Returns 0, or -1 (errno ENOMEM). */
int penalty_init(struct penalty *p, const struct penalty_config *pc);
/* Take new settings; the scores are kept unless the table size changed. -1: ENOMEM. */
int penalty_reconfigure(struct penalty *p, const struct penalty_config *pc);
void penalty_free(struct penalty *p);

/*
 * Publish every score from now on in view (not owned; NULL stops), which is
 * rewritten now from the table: an address or name is listed there for as
 * long as its score is above zero or it is blocked. Workers consult it before
 * answering a login from the credential cache (worker/login.c).
 */
void penalty_set_view(struct penalty *p, struct penalty_view *view, double now);

/* 1 if ip is in a trusted network (an unparsable ip is not). */
int penalty_trusted(const struct penalty *p, const char *ip);

/*
 * Before checking a login: 1 if ip is blocked at time now (seconds, any
 * monotonic clock), with the seconds left in *left; else 0.
 */
int penalty_blocked(struct penalty *p, const char *ip, double now, double *left);

/*
 * After a failed login: count it for ip and user, and return how long the
 * answer must wait (seconds). Sets *blocked when this failure blocked ip.
 */
double penalty_failure(struct penalty *p, const char *ip, const char *user, double now,
                       int *blocked);

/* After a successful login: forget user's failures; returns ip's delay. */
double penalty_success(struct penalty *p, const char *ip, const char *user, double now);

/* The current score of an address or a user (after decay), for tests and logs. */
double penalty_ip_score(struct penalty *p, const char *ip, double now);
double penalty_user_score(struct penalty *p, const char *user, double now);

/* The delay for a score, per the formula above. */
double penalty_delay_for(const struct penalty_config *pc, double score);

#endif
