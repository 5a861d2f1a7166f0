/*
 * The scoreboard's layout, shared by shm/scoreboard.c (the workers' locked
 * tables) and shm/scoreboard_view.c (everything that never takes the lock).
 * Not for other files: they use shm/scoreboard.h.
 *
 * Two kinds of memory, kept apart on purpose:
 *  - struct scoreboard: private. Made by the master before fork, so each
 *    worker has its own copy. Geometry (capacity, bucket counts) and every
 *    pointer into the region live only here; nothing read from the region is
 *    ever used as a size, an offset or a pointer.
 *  - the region: one MAP_SHARED anonymous mapping, written by every worker
 *    (mail uid). A compromised worker can put any value in any field, so
 *    every shared value is data: indices are checked against the private
 *    capacity before use, probes are bounded by the private bucket count,
 *    strings are cut and terminated when copied out.
 */
#ifndef FASTPOP_SCOREBOARD_REGION_H
#define FASTPOP_SCOREBOARD_REGION_H

#include "shm/scoreboard.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SLOT_FREE 0   /* owner of an unused slot; any owner <= 0 counts as free */

/* The head of the region. The mutex comes first (t/unit/test_scoreboard_untrusted.c relies on it). */
struct sb_shared {
    pthread_mutex_t lock;      /* between workers only: the master never takes it */
    uint32_t active;           /* slots in use, as the last lock holder counted */
    uint32_t free_head;        /* capacity = no free slot */
    uint32_t stale;            /* set without the lock (a reap): the next holder rebuilds */
    uint32_t draining;         /* the global drain flag, written by the master */
    uint32_t changes;          /* bumped on drain, undrain and kicks */
    uint32_t drain_seq;        /* odd while the master rewrites drain_message */
    char drain_message[SCOREBOARD_DRAIN_MESSAGE_MAX + 1];
};

struct sb_conn {
    pid_t    owner;            /* the worker's pid, SLOT_FREE when unused */
    uint32_t next_free;        /* free list link */
    uint8_t  ip[16];           /* the client, IPv4 as v4-mapped IPv6 */
    uint8_t  mailbox[16];      /* hash of the locked maildir's path */
    uint8_t  has_mailbox;
    uint8_t  kick;             /* enum scoreboard_kick, written by the master */
    struct scoreboard_session session;
};

/* A bucket of an open-addressing table keyed by 16 bytes: address blocks, mailboxes. */
struct sb_entry {
    uint8_t  key[16];
    uint32_t count;            /* 0 = empty bucket */
};

struct sb_table {
    uint32_t buckets;          /* power of two, at least 2 * capacity */
    struct sb_entry *e;
};

/* Private: see above. */
struct scoreboard {
    void    *map;
    size_t   map_size;
    uint32_t capacity;
    struct sb_shared *shared;
    struct sb_conn *conns;
    struct sb_table ips;         /* connections per IPv4 address / IPv6 /64 */
    struct sb_table nets48;      /* connections per IPv6 /48 */
    struct sb_table mailboxes;   /* the POP3 exclusive lock: count is 0 or 1 */
    int      master_draining;    /* the master's own copy of the drain flag */
    uint32_t master_drain_seq;   /* the master's own drain_seq counter */
};

/* A slot's owner as stored (atomic: the master reads and clears it without the lock). */
pid_t sb_slot_owner(const struct sb_conn *c);
void sb_slot_set_owner(struct sb_conn *c, pid_t owner);

#endif
