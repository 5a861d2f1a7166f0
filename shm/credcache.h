/*
 * The shared credential cache: an LMDB environment in state_dir/authcache,
 * written by fastpop-auth (and by `popctl auth flush`), read by every worker.
 * A worker that finds a fresh entry whose verifier matches the password
 * logs the user in without asking the helper; everything else (a miss, an
 * expired entry, a password that does not match) goes to the helper, which
 * asks the backend and writes the answer back here.
 *
 * One record per login name (the name as the client typed it, at most
 * CREDCACHE_KEY_MAX bytes), holding:
 *  - positive part: when the backend last accepted a password, a verifier
 *    of that password, the canonical user and the maildir;
 *  - negative part: when the backend last refused a password, and a
 *    verifier of that wrong password. Only the same wrong password is
 *    answered from the cache (a client polling with an old password), so an
 *    unknown user and a known one with a wrong password look the same.
 *
 * The verifier is PBKDF2-HMAC-SHA256(password, salt, iterations) with a
 * random 16-byte salt per record and CREDCACHE_ITERATIONS iterations; never
 * the password and never the backend's hash. What someone who reads the
 * file (a compromised worker, a leaked backup) gets: the user names that
 * logged in recently, their maildirs, and one salted verifier per name to
 * attack offline at about 2,500 guesses per second per core (the count is
 * modest because a worker verifies in its event loop, ~0.4 ms). A worker
 * pays that once per record and password, not per login: it remembers the
 * match in its own memory under a key that never leaves the process
 * (shm/credcache_memo.h), and still reads the record at every login.
 * A weak password falls to that; a strong one does not, and the backend's
 * own hash (which may be weaker, e.g. {SHA}) is never exposed. A compromised
 * worker already sees the plaintext of every login it serves, so the cache
 * adds little for it; what it could also do is damage the lock file (it must
 * be writable for LMDB readers) to stall the helper's writes: a denial of
 * service, not a login.
 *
 * Files: the master creates the directory owned by auth_user, group of the
 * mail user, mode 02750 (setgid, so the helper's files get that group); the
 * helper makes data.mdb 0640 and lock.mdb 0660. Nothing is readable by others.
 * Unprivileged (one uid for everything) it is 0700/0600. Root never opens,
 * chowns or chmods a file in it: the helper (and popctl, which becomes
 * auth_user first) set the modes of files they own, by descriptor.
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

#define CREDCACHE_DIR "authcache"
#define CREDCACHE_KEY_MAX 256          /* login names; LMDB keys may be 511 */
#define CREDCACHE_SALT_LEN 16
#define CREDCACHE_DK_LEN 32
/* ~0.4 ms per verification on a 2020s core: see above for why not more. */
#define CREDCACHE_ITERATIONS 1024
#define CREDCACHE_ITER_MAX 1000000     /* bounds what a damaged record can cost */
#define CREDCACHE_USER_MAX 256
#define CREDCACHE_PATH_MAX 1024
/* Clock steps smaller than this do not expire everything. */
#define CREDCACHE_CLOCK_SLACK 60
/* Room for a map that a busy site fills; it is only address space until used. */
#define CREDCACHE_MAPSIZE ((size_t)256 << 20)

struct credcache;

/* One decoded record. has_positive/has_negative say which parts are set. */
struct credcache_record {
    uint32_t iterations;
    unsigned char salt[CREDCACHE_SALT_LEN];
    int has_positive;
    int64_t verified_at;
    unsigned char dk[CREDCACHE_DK_LEN];
    char user[CREDCACHE_USER_MAX];
    char maildir[CREDCACHE_PATH_MAX];
    int has_negative;
    int64_t failed_at;
    unsigned char neg_dk[CREDCACHE_DK_LEN];
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

/* PBKDF2 of password with the record's salt and iterations. */
int credcache_derive(const struct credcache_record *rec, const char *password,
                     unsigned char dk[CREDCACHE_DK_LEN]);

/* Classify rec for password at time now under ttl (constant-time compares). */
enum credcache_verdict credcache_judge(const struct credcache_record *rec, const char *password,
                                       time_t now, const struct credcache_ttl *ttl);

/*
 * credcache_judge in three steps, for a caller that may know the answer of
 * the middle one already (shm/credcache_memo.h):
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
 * credcache_judge for a worker: the same verdicts, but one PBKDF2 is computed
 * whether rec is NULL (no entry), expired or live, so a wrong password takes
 * the same time for a name with an entry and one without (no timing list of
 * recently active accounts). The work on a missing entry goes to
 * credcache_dummy_record(), a fixed record with the default iterations.
 */
enum credcache_verdict credcache_judge_even(const struct credcache_record *rec,
                                            const char *password, time_t now,
                                            const struct credcache_ttl *ttl);
const struct credcache_record *credcache_dummy_record(void);

/* A new record for a name never seen: random salt, default iterations. */
int credcache_record_init(struct credcache_record *rec);

/* Record a backend answer in rec (the salt stays). A success drops a
 * negative part for the same password; a failure keeps the positive part. */
int credcache_record_ok(struct credcache_record *rec, const char *password, const char *user,
                        const char *maildir, time_t now);
int credcache_record_fail(struct credcache_record *rec, const char *password, time_t now);

/* --- the environment ------------------------------------------------------ */

/*
 * Master, before forking: make state_dir/authcache owned by owner:group with
 * mode 02750 (or 0700 when owner is our own uid and not root). Idempotent.
 * Touches the directory only (O_NOFOLLOW), never a file in it; state_dir
 * must be one no one else may write (daemon/trusted_dir.h).
 */
int credcache_prepare_dir(const char *state_dir, uid_t owner, gid_t group);

/*
 * Open the cache in state_dir. writable: the helper (creates the env, fixes
 * the modes of its files, refusing symlinks and files it does not own).
 * Otherwise read-only: ENOENT until the helper created it.
 */
int credcache_open(const char *state_dir, int writable, struct credcache **out);
void credcache_close(struct credcache *cc);

/* Look name up. 0 with *found = 0/1; rec is filled when found. */
int credcache_get(struct credcache *cc, const char *name, struct credcache_record *rec,
                  int *found);

/* Write rec under name (writable cache only). */
int credcache_put(struct credcache *cc, const char *name, const struct credcache_record *rec);

/* Remove name, or everything when name is NULL. *removed gets the count. */
int credcache_flush(struct credcache *cc, const char *name, size_t *removed);

/*
 * Delete records with nothing left worth keeping at now: positive part older
 * than ttl->stale (or ttl->positive if larger) and negative part expired.
 * *removed gets the count. Also clears reader slots of dead processes.
 */
int credcache_sweep(struct credcache *cc, time_t now, const struct credcache_ttl *ttl,
                    size_t *removed);

/*
 * Forget every positive part whose canonical user is user, under whatever
 * login name it is stored ("alice", "ALICE", ...): the backend refused that
 * account, so no cached password may vouch for it any more. A record left
 * with nothing is deleted. *forgotten gets the number of positive parts
 * dropped. Reads every record (one write txn): for the rare refusal, not
 * for every login.
 */
int credcache_forget_user(struct credcache *cc, const char *user, size_t *forgotten);

/* The text of the last LMDB failure of cc ("" if none), for the caller's log line. */
const char *credcache_error(const struct credcache *cc);

#endif
