/*
 * Counters and latency histograms for `popctl stats` and /metrics.
 *
 * The master creates one shared region (a memfd, so the exec'd auth helper
 * can map it too) holding a block per child process. Each child writes only
 * its own block, with relaxed atomic adds: a worker never takes a lock or
 * waits to count something, and reading the numbers never stops a worker.
 *
 * Everything the master trusts stays in its own memory: which process owns
 * which block, the totals of processes that have exited (folded in when the
 * master reaps them, so counters never go backwards across a respawn or a
 * reload), and the baseline of `popctl stats --reset`. The region itself is
 * writable by every child (a worker maps all blocks): a compromised one can
 * make the numbers wrong, nothing more. The master reads them only as
 * numbers, and the memfd is sealed against shrinking, so no child can make
 * the master's reads fault.
 *
 * A block is a flat array of STATS_VALUES counters; the enums below name
 * the offsets. A histogram is STATS_BUCKETS bucket counts (not cumulative),
 * then the sum of the observations in microseconds.
 */
#ifndef FASTPOP_STATS_H
#define FASTPOP_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Why a connection was turned away before a session began. */
enum stats_refusal {
    STATS_REFUSED_MAX_CONNECTIONS,
    STATS_REFUSED_PER_IP,
    STATS_REFUSED_DESCRIPTORS,
    STATS_REFUSED_DRAINING,
    STATS_REFUSED_PROXY_UNTRUSTED,
    STATS_REFUSALS,
};

enum stats_mech {
    STATS_MECH_USER,
    STATS_MECH_PLAIN,
    STATS_MECH_LOGIN,
    STATS_MECH_SCRAM_SHA_256,
    STATS_MECHS,
};

enum stats_login {
    STATS_LOGIN_OK,
    STATS_LOGIN_FAILED,
    STATS_LOGIN_TEMPFAIL,
    STATS_LOGIN_IN_USE,    /* the password was right, the mailbox locked */
    STATS_LOGIN_RESULTS,
};

/* Credential cache outcomes: hit and miss in the worker, the rest in the helper. */
enum stats_cache {
    STATS_CACHE_HIT,
    STATS_CACHE_MISS,
    STATS_CACHE_NEGATIVE,  /* a remembered failure answered without the backend */
    STATS_CACHE_STALE,     /* the backend failed; an expired entry answered (stale-if-error) */
    STATS_CACHE_RESULTS,
};

/*
 * The LMDB stores that are only caches: an operation on one that failed
 * (full disk, a map that cannot grow, a corrupt or foreign file). Logins go
 * on without it; see README "When resources run out".
 */
enum stats_store {
    STATS_STORE_INDEX,       /* worker: a login whose mailbox index read or write failed */
    STATS_STORE_AUTH_CACHE,  /* worker or helper: a credential cache open, read or write */
    STATS_STORE_POLICY,      /* worker: the policy store (shm/policy_store.h) */
    STATS_STORES,
};

/* Logins sooner than the user's LOGIN-DELAY (worker/login_policy.h), by pop3_login_delay_action. */
enum stats_login_delay {
    STATS_LOGIN_DELAY_REFUSED,
    STATS_LOGIN_DELAY_LOGGED,
    STATS_LOGIN_DELAYS,
};

/*
 * Directory listings of a maildir by a login's sync (shm/index_sync.h):
 * new/ read, cur/ listed whole. fastpop's own changes cause no cur/ listing.
 */
enum stats_dir {
    STATS_DIR_NEW,
    STATS_DIR_CUR,
    STATS_DIRS,
};

enum stats_tls {
    STATS_TLS_1_2,
    STATS_TLS_1_3,
    STATS_TLS_OTHER,
    STATS_TLS_FAILED,
    STATS_TLS_RESULTS,
};

/* The master's children, as daemon/master names their roles. */
enum stats_role {
    STATS_ROLE_AUTH,
    STATS_ROLE_WORKER,
    STATS_ROLE_METRICS,
    STATS_ROLES,
};

enum stats_command {
    STATS_CMD_USER, STATS_CMD_PASS, STATS_CMD_AUTH, STATS_CMD_CAPA, STATS_CMD_STLS,
    STATS_CMD_STAT, STATS_CMD_LIST, STATS_CMD_UIDL, STATS_CMD_RETR, STATS_CMD_TOP,
    STATS_CMD_DELE, STATS_CMD_RSET, STATS_CMD_NOOP, STATS_CMD_QUIT, STATS_CMD_OTHER,
    STATS_COMMANDS,
};

/* Histograms other than the per-command ones. */
enum stats_timing {
    STATS_TIME_HELPER,          /* worker: auth request to the helper's answer */
    STATS_TIME_LDAP,            /* helper: one LDAP lookup, request to answer (queue, search, bind) */
    STATS_TIME_INDEX_UNCHANGED, /* worker: index sync that read no directory */
    STATS_TIME_INDEX_RESCAN,    /* worker: index sync that scanned the maildir */
    STATS_TIMINGS,
};

/* Session end reasons (stats_end_reasons), "other" last. */
#define STATS_END_REASONS 26

#define STATS_BUCKETS 17        /* 16 bounds below, then +Inf */
#define STATS_HIST_VALUES (STATS_BUCKETS + 1)

/* Offsets into a block. */
enum stats_value {
    SV_ACCEPTED = 0,
    SV_REFUSED = SV_ACCEPTED + 1,
    SV_LOGIN = SV_REFUSED + STATS_REFUSALS,             /* + mech * RESULTS + result */
    SV_CACHE = SV_LOGIN + STATS_MECHS * STATS_LOGIN_RESULTS,
    SV_ENDED = SV_CACHE + STATS_CACHE_RESULTS,          /* + enum in stats_end_reasons */
    SV_TLS = SV_ENDED + STATS_END_REASONS,
    SV_RETR_BYTES = SV_TLS + STATS_TLS_RESULTS,
    SV_TOP_BYTES,
    SV_DELETED,
    SV_EXPIRED,                                         /* of SV_DELETED: by EXPIRE */
    SV_LDAP_ERRORS,
    SV_LOGIN_DELAY,                                     /* + enum stats_login_delay */
    SV_STORE_ERRORS = SV_LOGIN_DELAY + STATS_LOGIN_DELAYS, /* + enum stats_store */
    SV_RESPAWNS = SV_STORE_ERRORS + STATS_STORES,       /* + enum stats_role; master only */
    SV_DIR_READS = SV_RESPAWNS + STATS_ROLES,           /* + enum stats_dir */
    SV_COMMAND_HIST = SV_DIR_READS + STATS_DIRS,        /* + command * HIST_VALUES */
    SV_TIMING_HIST = SV_COMMAND_HIST + STATS_COMMANDS * STATS_HIST_VALUES,
    STATS_VALUES = SV_TIMING_HIST + STATS_TIMINGS * STATS_HIST_VALUES,
};

/* Upper bounds of the finite buckets, in microseconds. */
extern const uint64_t stats_bucket_us[STATS_BUCKETS - 1];

/* Label values, indexed by the enums above. */
extern const char *const stats_refusal_names[STATS_REFUSALS];
extern const char *const stats_mech_names[STATS_MECHS];
extern const char *const stats_login_names[STATS_LOGIN_RESULTS];
extern const char *const stats_cache_names[STATS_CACHE_RESULTS];
extern const char *const stats_tls_names[STATS_TLS_RESULTS];
extern const char *const stats_store_names[STATS_STORES];
extern const char *const stats_login_delay_names[STATS_LOGIN_DELAYS];
extern const char *const stats_role_names[STATS_ROLES];
extern const char *const stats_dir_names[STATS_DIRS];
extern const char *const stats_command_names[STATS_COMMANDS];
/* The session log's reason= values; the last one, "other", takes the rest. */
extern const char *const stats_end_reasons[STATS_END_REASONS];

/* ---- In a child: count into its own block (no-ops until attached). ---- */

struct stats_region;

/* Use block slot of region from now on; -1 if slot is out of range. */
int stats_attach(struct stats_region *region, int slot);
/* After exec (the auth helper): map the region from fd and use slot. */
int stats_attach_fd(int fd, int slot);

void stats_add(enum stats_value v, uint64_t n);
void stats_refused(enum stats_refusal why);
/* mech as the session log names it ("USER", "PLAIN", ...). */
void stats_login(const char *mech, enum stats_login result);
void stats_cache(enum stats_cache what);
void stats_store_error(enum stats_store which);
/* reason as the session log gives it; unknown ones count as "other". */
void stats_session_end(const char *reason);
/* version as SSL_get_version() names it; NULL for a failed handshake. */
void stats_tls_handshake(const char *version);
/* The command's name as the client sent it (any case). */
enum stats_command stats_command_id(const char *name);
void stats_command_time(enum stats_command cmd, uint64_t usec);
void stats_timing(enum stats_timing which, uint64_t usec);

/* ---- In the master ---- */

/* What the master reports: every value summed over live and exited processes. */
struct stats_snapshot {
    uint64_t v[STATS_VALUES];
    time_t since;          /* start, or the last reset */
};

/* A region with room for blocks processes; NULL with errno. */
struct stats_region *stats_region_create(unsigned blocks);
void stats_region_destroy(struct stats_region *region);
/* The memfd a child that execs must inherit (stats_attach_fd()). */
int stats_region_fd(const struct stats_region *region);
/* A zeroed block for a child about to be forked; -1 if all are taken. */
int stats_region_claim(struct stats_region *region);
/* Its process has exited (or was never forked): fold the block into the totals, free it. */
void stats_region_release(struct stats_region *region, int slot);
/*
 * A child of role ("auth", "worker", "metrics") exited unexpectedly and is
 * respawned: counted in the master's own totals, where no child can reach.
 */
void stats_region_count_respawn(struct stats_region *region, const char *role);
enum stats_read {
    STATS_SINCE_START,     /* /metrics: counters only ever grow */
    STATS_SINCE_RESET,     /* popctl stats */
};
void stats_region_read(struct stats_region *region, struct stats_snapshot *out,
                       enum stats_read how);
/*
 * popctl stats --reset, once shown was delivered: count anew from the
 * moment shown (a STATS_SINCE_RESET read) was taken.
 */
void stats_region_reset(struct stats_region *region, const struct stats_snapshot *shown);

/* The total of one histogram's buckets; the sum is v[base + STATS_BUCKETS]. */
uint64_t stats_hist_count(const uint64_t *hist);

#endif
