/*
 * The per-host state of the users' POP3 policies: when each user last
 * logged in (RFC 2449 LOGIN-DELAY), and the day each message was first
 * retrieved (RFC 2449 EXPIRE). An LMDB environment of its own in
 * state_dir/index/policy, beside the mailbox index and, like it, the mail
 * user's: every worker opens it after fork, so all workers of the host see
 * one another's logins, and it survives a worker's, the master's and the
 * host's restart (a worker restart must not reset every user's delay).
 * Not in the scoreboard (gone with the master) and not in the index's own
 * records (another record format, and the index must stay a cache of the
 * maildirs alone: shm/index.h).
 *
 * Like the index it is a cache of sorts: losing it (deleted, unreadable)
 * forgets the last logins, which lets each user in once without waiting,
 * and the retrieval days, which keeps those messages longer (until they
 * are retrieved again and their days run out); no message is lost and none
 * is removed sooner. So commits do not fsync (MDB_NOSYNC), and
 * a full map is grown.
 *
 * Keys are "L" + the canonical user name, values the login's wall-clock
 * time (int64 seconds, host byte order: the file never leaves the host);
 * and "E" + hash128 of the maildir path + the message's UIDL, values the
 * day it was retrieved (uint32 days since 1970-01-01 UTC). A record kind of
 * its own, apart from the mailbox index's records (shm/index.h), which it
 * never changes.
 *
 * Functions return 0, an LMDB code or an errno value (mdb_strerror()
 * explains both), outputs last; nothing here logs. One store per process,
 * used from its event loop only.
 */
#ifndef FASTPOP_SHM_POLICY_STORE_H
#define FASTPOP_SHM_POLICY_STORE_H

#include <stddef.h>
#include <stdint.h>

/* The environment's directory under state_dir/index (INDEX_SUBDIR). */
#define POLICY_STORE_SUBDIR "policy"
/* 100,000 users take ~10 MB; the map grows past this when full. */
#define POLICY_STORE_MAPSIZE ((size_t)64 << 20)

struct policy_store;

/* Open (creating dir, mode 0700, if needed) after fork. */
int policy_store_open(const char *dir, struct policy_store **out);
void policy_store_close(struct policy_store *ps);

/* When user last logged in: *found 0 if never (or not since the store was new). */
int policy_store_last_login(struct policy_store *ps, const char *user, int64_t *when,
                            int *found);
int policy_store_set_last_login(struct policy_store *ps, const char *user, int64_t when);

/* day: no retrieval recorded. */
#define POLICY_STORE_NOT_RETRIEVED UINT32_MAX

/* One message of a mailbox for policy_store_retrievals(). */
struct policy_store_msg {
    const char *uidl;
    size_t uidl_len;
    int retrieved_now;   /* RETRieved in this session: record today unless a day is known */
    int forget;          /* removed: drop its record */
    uint32_t day;        /* out: the recorded day, or POLICY_STORE_NOT_RETRIEVED */
};

/*
 * One pass over n messages of the maildir at path, in one write txn: each
 * message's day is read (and recorded as today if it was retrieved now and
 * had none), or its record dropped (forget). A UIDL too long for a key is
 * never recorded (never expires).
 */
int policy_store_retrievals(struct policy_store *ps, const char *path,
                            struct policy_store_msg *msgs, size_t n, uint32_t today);

/*
 * Drop every retrieval record of the maildir at path whose UIDL is none of
 * msgs[0..n) (only uidl and uidl_len are read): messages another program
 * removed would otherwise keep their records forever. *dropped: how many.
 * Deletions in a full map need no room, so there is no retry.
 */
int policy_store_prune(struct policy_store *ps, const char *path,
                       const struct policy_store_msg *msgs, size_t n, size_t *dropped);

#endif
