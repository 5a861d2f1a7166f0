/*
 * A worker's memory of the logins the helper accepted, so that a client
 * polling every minute is answered by the worker itself, without a
 * verifier: no worker holds or computes one (shm/credcache.h).
 *
 * What it remembers, per login name: "a password whose tag is T was accepted
 * while the login list said generation G", T = HMAC-SHA256(K, P, G) where
 * P = HMAC-SHA256(K, name, password) (the pre-tag) and K is 32 random bytes
 * drawn when the memo is made (in the worker, after fork) and never written
 * anywhere: not to disk, not to shared memory, not to a log. Nothing outside
 * this process is a password or a verifier of one: a tag without K is
 * worthless, and K dies with the process. Inside it, a tag is as good as a
 * verifier only to someone who can already read the worker's memory, and
 * so every password it serves in the clear.
 *
 * How a worker uses it (worker/login.c): a login computes P; if the
 * login list has a fresh record for the name and the memo holds
 * HMAC(K, P, its generation), the login is accepted; otherwise it goes to
 * the helper, P is kept with the connection, and on the helper's AUTH_OK
 * the worker reads the record again and remembers HMAC(K, P, generation).
 * A new password (new generation), a flush or a refusal (no record) or an
 * expired record all make the memory useless at once. Every login computes
 * the same two HMACs whatever the memo holds, so a wrong password costs the
 * same for a name with an entry and one without.
 *
 * Size: a fixed table of entries chosen at creation (48 bytes each), 4-way
 * set associative by a keyed hash of the name, least recently used out
 * first; it never grows and never allocates after creation.
 *
 * API: int return (0, or -1 with errno), outputs last; nothing here logs.
 * One memo per process; not thread-safe (a worker is one thread).
 */
#ifndef FASTPOP_CREDCACHE_MEMO_H
#define FASTPOP_CREDCACHE_MEMO_H

#include <stddef.h>
#include <stdint.h>

/* Logins remembered per worker by default: 4096 x 48 bytes = 192 KiB. */
#define CREDMEMO_DEFAULT_ENTRIES 4096
#define CREDMEMO_WAYS 4
#define CREDMEMO_PRETAG_LEN 32

struct credmemo;

struct credmemo_stats {
    uint64_t hits;      /* logins vouched for */
    uint64_t misses;    /* asked and not vouched for */
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

/* P = HMAC(K, name, password) into pretag. -1 (EINVAL, EIO) if it cannot be made. */
int credmemo_pretag(struct credmemo *m, const char *name, const char *password,
                    unsigned char pretag[CREDMEMO_PRETAG_LEN]);

/*
 * 1 if the memo vouches for pretag under generation for name (a login the
 * helper accepted while the login list held that generation), else 0.
 * generation 0 (no record) never matches but costs the same.
 */
int credmemo_check(struct credmemo *m, const char *name,
                   const unsigned char pretag[CREDMEMO_PRETAG_LEN], uint64_t generation);

/* Remember that the helper accepted pretag while name's generation was generation. */
int credmemo_remember(struct credmemo *m, const char *name,
                      const unsigned char pretag[CREDMEMO_PRETAG_LEN], uint64_t generation);

void credmemo_get_stats(const struct credmemo *m, struct credmemo_stats *out);

#endif
