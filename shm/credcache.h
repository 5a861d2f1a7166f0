/*
 * The credential cache: two LMDB environments under state_dir/authcache,
 * both written only by fastpop-auth (and emptied by `popctl auth flush`).
 *
 * The verifier store, authcache/private/verifiers.mdb (private/ is 0700,
 * auth_user's; no worker can open it): one full record per login name (the
 * name as the client typed it, at most CREDCACHE_KEY_MAX bytes):
 *  - positive part: when the backend last accepted a password, a verifier
 *    of that password, a random 64-bit generation, the canonical user and
 *    the maildir;
 *  - negative part: when the backend last refused a password, and a
 *    verifier of that wrong password. Only the same wrong password is
 *    answered from the cache (a client polling with an old password), so an
 *    unknown user and a known one with a wrong password look the same.
 * The helper answers repeat logins, repeated failures and (during an
 * outage only) stale logins from it, without asking the backend.
 *
 * The login list, authcache/logins.mdb (the mail group reads it): per name
 * only when the backend last accepted a password, that generation, the
 * canonical user and the maildir. No salt, no verifier, no negative part:
 * reading it tells who logged in recently and where their mail is, nothing
 * about any password. A worker answers a repeat login only from its own
 * memory of a login the helper accepted (worker/credcache_memo.h), bound to
 * the generation it reads here, and only while verified_at is fresh.
 *
 * The generation is drawn from the random source whenever the accepted
 * password's verifier changes (a new record, a new password); refreshes of
 * the same password keep it. So a flushed and re-created record, or another
 * password, never matches a worker's memory of the old one.
 *
 * The verifier is PBKDF2-HMAC-SHA256(password, salt, iterations) with a
 * random 16-byte salt per record and CREDCACHE_ITERATIONS iterations; never
 * the password and never the backend's hash. Only the helper computes it
 * (rate-limited per client group, auth/ratelimit.h), so its cost no longer
 * stalls a worker's event loop.
 *
 * Files: the master creates authcache/ owned by auth_user, group of the
 * mail user, mode 02750 (setgid, so the helper's files get that group); the
 * helper makes logins.mdb 0640 and logins.mdb-lock 0660, private/ 0700 and
 * verifiers.mdb(-lock) 0600. Unprivileged (one uid for everything) all is
 * 0700/0600. Root never opens, chowns or chmods a file in it: the helper
 * (and popctl, which becomes auth_user first) set the modes of files they
 * own, by descriptor. data.mdb and lock.mdb directly in authcache/ are the
 * previous format (verifiers readable by the mail group): the helper
 * deletes them, nothing reads them.
 *
 * API: int return (0, or -1 with errno, LMDB errors mapped to EIO with the
 * LMDB text in credcache_error()), outputs last. Nothing here logs: the
 * caller, who knows the user and the session, does.
 *
 * Caveats: open a cache in the process that uses it, after fork; times are
 * wall-clock seconds (the cache survives restarts), so an entry dated in the
 * future (clock stepped back) counts as expired.
 */
#ifndef FASTPOP_CREDCACHE_H
#define FASTPOP_CREDCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "daemon/runtime/limits.h"   /* CREDCACHE_KEY_MAX, CREDCACHE_USER_MAX, CREDCACHE_PATH_MAX */
#include "daemon/runtime/user_policy.h"

#define CREDCACHE_DIR "authcache"
/* Both names carry the format: an older cache is never read, only deleted. */
#define CREDCACHE_SHARED_FILE "logins.mdb"
#define CREDCACHE_PRIVATE_FILE "verifiers.mdb"
#define CREDCACHE_PRIVATE_DIR "private"
#define CREDCACHE_SALT_LEN 16
#define CREDCACHE_DK_LEN 32
/*
 * ~0.8 ms per verification on a 2020s core, in the helper only (a worker
 * never computes one): a login the backend answers costs the helper two
 * (check and record), one it answers from this store one, once per worker
 * per user and password, charged to the client group's rate limit. The
 * helper is one thread: at 10,000 iterations 200 cold logins took it 16 s
 * under the sanitizer, past the workers' 15 s wait. More would buy little:
 * only auth_user and root can read the store, and auth_user reads the
 * password file or binds to LDAP anyway. Records keep their own count, so
 * older entries still verify.
 */
#define CREDCACHE_ITERATIONS 2048
#define CREDCACHE_ITER_MAX 1000000     /* bounds what a damaged record can cost */
/* Clock steps smaller than this do not expire everything. */
#define CREDCACHE_CLOCK_SLACK 60
/* Room for a map that a busy site fills; it is only address space until used. */
#define CREDCACHE_MAPSIZE ((size_t)256 << 20)

struct credcache;

/* Which environment: the mail-group-readable login list or the helper's verifiers. */
enum credcache_kind {
    CREDCACHE_SHARED = 0,
    CREDCACHE_PRIVATE,
};

/* One decoded verifier record (private). has_positive/has_negative say which parts are set. */
struct credcache_record {
    uint32_t iterations;
    unsigned char salt[CREDCACHE_SALT_LEN];
    int has_positive;
    int64_t verified_at;
    uint64_t generation;     /* of the positive part; never 0 when set */
    unsigned char dk[CREDCACHE_DK_LEN];
    char user[CREDCACHE_USER_MAX];
    char maildir[CREDCACHE_PATH_MAX];
    struct user_policy policy;   /* the user's own, as the backend last said (positive part) */
    int has_negative;
    int64_t failed_at;
    unsigned char neg_dk[CREDCACHE_DK_LEN];
};

/* One decoded login-list record (shared): the positive part without its verifier. */
struct credcache_login {
    int64_t verified_at;
    uint64_t generation;
    char user[CREDCACHE_USER_MAX];
    char maildir[CREDCACHE_PATH_MAX];
    struct user_policy policy;   /* enforced on a login the worker answers itself */
};

/* What a lookup found for a (name, password) pair. */
enum credcache_verdict {
    CREDCACHE_MISS = 0,      /* nothing usable: ask the helper */
    CREDCACHE_HIT_OK,        /* fresh positive entry, password matches */
    CREDCACHE_HIT_FAIL,      /* fresh negative entry for this very password */
    CREDCACHE_STALE_OK,      /* expired positive entry that matches, still inside stale_ttl */
};

/* TTLs in seconds; 0 turns that part off. stale >= positive makes sense. */
struct credcache_ttl {
    long positive;
    long negative;
    long stale;
};

/* --- records (pure; exposed for the tests) ------------------------------- */

/* Encode rec into out. Returns the length, or -1 (ENOBUFS, EINVAL). */
long credcache_encode(const struct credcache_record *rec, unsigned char *out, size_t outlen);
/* Strict decode: a short, long or inconsistent value is EINVAL. */
int credcache_decode(const void *data, size_t len, struct credcache_record *rec);

/* The same for login-list records (a verifier record does not decode as one, nor back). */
long credcache_login_encode(const struct credcache_login *login, unsigned char *out,
                            size_t outlen);
int credcache_login_decode(const void *data, size_t len, struct credcache_login *login);

/* The login-list record of rec's positive part: -1 (EINVAL) if it has none. */
int credcache_login_of(const struct credcache_record *rec, struct credcache_login *out);

/* 1 if login's verified_at is younger than ttl seconds at now (0 ttl: never). */
int credcache_login_fresh(const struct credcache_login *login, time_t now, long ttl);

/* PBKDF2 of password with the record's salt and iterations. */
int credcache_derive(const struct credcache_record *rec, const char *password,
                     unsigned char dk[CREDCACHE_DK_LEN]);

/* Classify rec for password at time now under ttl (constant-time compares). */
enum credcache_verdict credcache_judge(const struct credcache_record *rec, const char *password,
                                       time_t now, const struct credcache_ttl *ttl);

/*
 * credcache_judge in three steps (so credcache_judge_even can do the middle
 * one on a stand-in record):
 *  - credcache_live: 1 if any part of rec is fresh or stale-usable at now, so
 *    that a compare can change the verdict (0: the verdict is MISS);
 *  - credcache_match: PBKDF2 of password, compared with both verifiers
 *    (pos_match/neg_match only for parts rec has); -1 if PBKDF2 failed;
 *  - credcache_classify: the verdict from those matches.
 */
int credcache_live(const struct credcache_record *rec, time_t now,
                   const struct credcache_ttl *ttl);
int credcache_match(const struct credcache_record *rec, const char *password, int *pos_match,
                    int *neg_match);
enum credcache_verdict credcache_classify(const struct credcache_record *rec, int pos_match,
                                          int neg_match, time_t now,
                                          const struct credcache_ttl *ttl);

/*
 * credcache_judge, but one PBKDF2 is computed whether rec is NULL (no
 * entry), expired or live, so a wrong password takes the same time for a
 * name with an entry and one without (the helper's answers must not list
 * recently active accounts either). The work on a missing entry goes to
 * credcache_dummy_record(), a fixed record with the default iterations.
 */
enum credcache_verdict credcache_judge_even(const struct credcache_record *rec,
                                            const char *password, time_t now,
                                            const struct credcache_ttl *ttl);
const struct credcache_record *credcache_dummy_record(void);

/* A new record for a name never seen: random salt, default iterations. */
int credcache_record_init(struct credcache_record *rec);

/* Record a backend answer in rec (the salt stays). A success (with the
 * user's policy; NULL: none of the user's own) drops a
 * negative part for the same password, and draws a new generation unless
 * the positive part already held this password; a failure keeps the
 * positive part (unless it was this very password). */
int credcache_record_ok(struct credcache_record *rec, const char *password, const char *user,
                        const char *maildir, const struct user_policy *policy, time_t now);
int credcache_record_fail(struct credcache_record *rec, const char *password, time_t now);

/* --- the environment ------------------------------------------------------ */

/*
 * Master, before forking: make state_dir/authcache owned by owner:group with
 * mode 02750 (or 0700 when owner is our own uid and not root). Idempotent.
 * Touches the directory only (O_NOFOLLOW), never a file in it; state_dir
 * must be one no one else may write (daemon/runtime/trusted_dir.h).
 */
int credcache_prepare_dir(const char *state_dir, uid_t owner, gid_t group);

/*
 * Open one environment of the cache in state_dir. writable: the helper
 * (creates the env, fixes the modes of its files, refusing symlinks and
 * files it does not own; for CREDCACHE_PRIVATE the directory
 * authcache/private must exist, be ours and 0700) and popctl. Otherwise
 * read-only: ENOENT until the helper created it. Workers open only
 * CREDCACHE_SHARED read-only (they cannot open the other at all).
 */
int credcache_open(const char *state_dir, enum credcache_kind kind, int writable,
                   struct credcache **out);
void credcache_close(struct credcache *cc);

/* 1 if kind's file exists in state_dir, 0 if not, -1 (errno) if that cannot be told. */
int credcache_exists(const char *state_dir, enum credcache_kind kind);

/*
 * Helper, at open: delete the previous format's files (data.mdb, lock.mdb
 * directly in authcache/, where the mail group could read verifiers).
 * *removed gets how many there were. Unlinks names only, follows nothing.
 */
int credcache_remove_old_format(const char *state_dir, int *removed);

/* Look name up in a private env. 0 with *found = 0/1; rec is filled when found. */
int credcache_get(struct credcache *cc, const char *name, struct credcache_record *rec,
                  int *found);

/* Write rec under name (writable private env only). */
int credcache_put(struct credcache *cc, const char *name, const struct credcache_record *rec);

/* The same for the shared login list. */
int credcache_get_login(struct credcache *cc, const char *name, struct credcache_login *login,
                        int *found);
int credcache_put_login(struct credcache *cc, const char *name,
                        const struct credcache_login *login);

/* Remove name, or everything when name is NULL. *removed gets the count. */
int credcache_flush(struct credcache *cc, const char *name, size_t *removed);

/*
 * Delete records with nothing left worth keeping at now: in a private env,
 * positive part older than ttl->stale (or ttl->positive if larger) and
 * negative part expired; in the login list, verified_at older than
 * ttl->positive (workers use nothing older). Records that do not decode
 * go too. *removed gets the count. Also clears reader slots of dead
 * processes.
 */
int credcache_sweep(struct credcache *cc, time_t now, const struct credcache_ttl *ttl,
                    size_t *removed);

/*
 * Forget every positive part whose canonical user is user, under whatever
 * login name it is stored ("alice", "ALICE", ...): the backend refused that
 * account, so no cached password may vouch for it any more. A record left
 * with nothing is deleted (a login-list record always is). *forgotten gets
 * the number of positive parts dropped. Reads every record (one write txn):
 * for the rare refusal, not for every login.
 */
int credcache_forget_user(struct credcache *cc, const char *user, size_t *forgotten);

/* The text of the last LMDB failure of cc ("" if none), for the caller's log line. */
const char *credcache_error(const struct credcache *cc);

#endif
