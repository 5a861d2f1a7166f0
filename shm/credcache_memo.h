/*
 * A worker's memory of the credential-cache checks it already did, so that a
 * client polling every minute costs one PBKDF2 per worker and record instead
 * of one per login (shm/credcache.h: ~0.4 ms, most of a cached login's CPU).
 *
 * What it remembers, per login name: "the record with this salt, iteration
 * count and positive verifier was matched by a password whose tag is T",
 * where T = HMAC-SHA256(K, name, salt, iterations, verifier, password) and K
 * is 32 random bytes drawn when the memo is made (in the worker, after fork)
 * and never written anywhere: not to disk, not to shared memory, not to a
 * log. Nothing is a password or a verifier of one outside this process: a
 * tag without K is worthless, and K dies with the process.
 *
 * What it does not change: the worker still reads the LMDB record on every
 * login, and the memo only answers "does this password match the record's
 * positive verifier" (the PBKDF2 step of credcache_judge). The TTLs, the
 * negative part, a password change (new verifier, so another tag), a flush
 * (no record: a miss before the memo is asked) and the helper's refreshes
 * (verified_at changes, the verifier does not) all behave exactly as
 * without it. A wrong password never matches a tag and always pays the
 * PBKDF2, so online guessing is not made cheaper. A correct password
 * answered faster only tells someone who already holds it.
 *
 * Size: a fixed table of entries chosen at creation (48 bytes each), 4-way
 * set associative by a hash of the name, least recently used out first;
 * it never grows and never allocates after creation.
 *
 * API: int return (0, or -1 with errno), outputs last; nothing here logs.
 * One memo per process; not thread-safe (a worker is one thread).
 */
#ifndef FASTPOP_CREDCACHE_MEMO_H
#define FASTPOP_CREDCACHE_MEMO_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "shm/credcache.h"

/* Logins remembered per worker by default: 4096 x 48 bytes = 192 KiB. */
#define CREDMEMO_DEFAULT_ENTRIES 4096
#define CREDMEMO_WAYS 4

struct credmemo;

struct credmemo_stats {
    uint64_t hits;      /* PBKDF2 spared */
    uint64_t misses;    /* PBKDF2 computed (no entry, another record or password) */
    uint64_t evictions; /* a remembered login pushed out by another name */
    size_t   entries;   /* in use now */
    size_t   capacity;
};

/*
 * A memo of at least CREDMEMO_WAYS and at most entries logins (rounded down
 * to a power of two times CREDMEMO_WAYS), with a fresh random key.
 * -1 with ENOMEM, EINVAL (entries < CREDMEMO_WAYS) or EIO (no randomness).
 */
int credmemo_new(size_t entries, struct credmemo **out);

/* Wipe the table and the key, and free. NULL is fine. */
void credmemo_free(struct credmemo *m);

/*
 * credcache_judge(rec, password, now, ttl) for the record read under name,
 * computing the PBKDF2 only when the memo cannot vouch for the match; a
 * positive match found the slow way is remembered. Same verdicts, always.
 * rec may be NULL (no entry): like credcache_judge_even(), a password the
 * memo does not vouch for costs one tag and one PBKDF2 whether the entry is
 * missing, expired or live, so timing does not tell which (counted in misses).
 */
enum credcache_verdict credmemo_judge(struct credmemo *m, const char *name,
                                      const struct credcache_record *rec, const char *password,
                                      time_t now, const struct credcache_ttl *ttl);

void credmemo_get_stats(const struct credmemo *m, struct credmemo_stats *out);

#endif
