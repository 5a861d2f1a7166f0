/*
 * The scoreboard: one MAP_SHARED anonymous region the master creates before
 * forking, shared by every worker. It holds a slot per live connection,
 * counts per address block, and the mailbox locks, so max_connections,
 * max_connections_per_ip, max_connections_per_ipv6_48 and POP3's exclusive
 * access hold across all workers.
 *
 * Trust: every worker (mail uid) can write every byte of the region, and
 * the master is root. So the master never takes the workers' lock and never
 * follows anything read from the region: geometry and pointers live in the
 * struct scoreboard, which is private memory (each worker has its own copy
 * from fork), and shared values are only data, checked before use. The
 * functions the master calls are marked [master]: they are lock-free and
 * return at once whatever a worker did to the region.
 *
 * Caveats:
 *  - Create it in the master before fork; children inherit the mapping.
 *  - A worker that dies (even kill -9, even inside the lock) leaves slots
 *    behind: the master calls scoreboard_reap_owner() after reaping it. The
 *    workers' lock is a robust process-shared mutex, so a holder's death is
 *    detected and the tables are rebuilt from the slots.
 *  - Capacity is fixed at creation; a reload can lower the limits, not raise
 *    them past that capacity.
 */
#ifndef FASTPOP_SCOREBOARD_H
#define FASTPOP_SCOREBOARD_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "daemon/runtime/limits.h"   /* SCOREBOARD_USER_MAX */

struct scoreboard;

enum scoreboard_refusal {
    SB_OK = 0,
    SB_LIMIT_TOTAL,        /* max_connections reached */
    SB_LIMIT_PER_IP,       /* max_connections_per_ip reached (IPv4 address or IPv6 /64) */
    SB_LIMIT_PER_IPV6_48,  /* max_connections_per_ipv6_48 reached */
};

/*
 * What a new connection must fit in. per_ip counts an IPv4 address or an
 * IPv6 /64: a /64 is one subnet, handed whole to one host or household, so
 * counting its 2^64 addresses apart would let one client take every slot.
 * per_ipv6_48 counts the /48 around it, one site (RFC 6177), which can
 * hold 65,536 such /64s. IPv4-mapped IPv6 counts as IPv4.
 */
struct scoreboard_limits {
    unsigned total;
    unsigned per_ip;
    unsigned per_ipv6_48;
};

struct scoreboard *scoreboard_create(unsigned capacity);
void scoreboard_destroy(struct scoreboard *sb);
/* [master] From private memory. */
unsigned scoreboard_capacity(const struct scoreboard *sb);

/*
 * Claim a slot for a new connection from addr, owned by process owner.
 * Returns the slot index, or -1 with *why saying which limit refused it.
 */
int scoreboard_conn_open_within(struct scoreboard *sb, pid_t owner, const struct sockaddr *addr,
                                const struct scoreboard_limits *limits,
                                enum scoreboard_refusal *why);
/* The same without a /48 limit. */
int scoreboard_conn_open(struct scoreboard *sb, pid_t owner, const struct sockaddr *addr,
                         unsigned max_total, unsigned max_per_ip,
                         enum scoreboard_refusal *why);
void scoreboard_conn_close(struct scoreboard *sb, int slot);

/*
 * The connection in slot turns out to come from addr (a PROXY header named
 * the real client): count it there instead. -1 with *why = SB_LIMIT_PER_IP
 * or SB_LIMIT_PER_IPV6_48 if addr's blocks are full (the slot is left
 * unchanged); limits->total is not looked at.
 */
int scoreboard_conn_move_within(struct scoreboard *sb, int slot, const struct sockaddr *addr,
                                const struct scoreboard_limits *limits,
                                enum scoreboard_refusal *why);

/*
 * [master] Release every slot of a dead process. Returns how many were
 * released. The workers' tables follow at their next use.
 */
unsigned scoreboard_reap_owner(struct scoreboard *sb, pid_t owner);

/*
 * The POP3 exclusive mailbox lock (RFC 1939 section 8), held by a slot:
 * 0, or -1 with errno EBUSY when another connection of any worker holds
 * path. Released by scoreboard_mailbox_unlock(), by closing the slot, and
 * by scoreboard_reap_owner() when the holder's process dies, so a crashed
 * session never leaves a mailbox locked. Paths are compared by a 128-bit
 * hash; give the same spelling for the same maildir.
 */
int scoreboard_mailbox_lock(struct scoreboard *sb, int slot, const char *path);
void scoreboard_mailbox_unlock(struct scoreboard *sb, int slot);

/* [master] Connections now, counted from the slots. */
unsigned scoreboard_active(struct scoreboard *sb);
/* The workers' running count: may be a moment out of date (for balancing). */
unsigned scoreboard_active_hint(const struct scoreboard *sb);
/* Connections in addr's per_ip block (its IPv4 address or IPv6 /64), and in its IPv6 /48. */
unsigned scoreboard_count_ip(struct scoreboard *sb, const struct sockaddr *addr);
unsigned scoreboard_count_ipv6_48(struct scoreboard *sb, const struct sockaddr *addr);

/*
 * What `popctl who` shows of a connection. Written only by the worker that
 * owns the slot, without the lock (the master reads it as a snapshot that
 * may be a moment old or, for a slot just reused, a mix of two sessions:
 * it is for display only). Claiming a slot clears it.
 */
/*
 * SCOREBOARD_USER_MAX (daemon/runtime/limits.h): room for every name a session can
 * have (worker/conn.h's user, checked there), so who and kick compare whole
 * names, never a cut prefix.
 */
struct scoreboard_session {
    char     user[SCOREBOARD_USER_MAX];  /* "" until logged in */
    char     state[16];                  /* conn.c's state name */
    char     tls[16];                    /* "" plain, else the TLS version */
    int64_t  since;                      /* wall clock, seconds */
    int64_t  active;                     /* last command, wall clock */
    uint64_t bytes;                      /* in + out */
    uint16_t port;
    uint16_t worker;
};

/* How the master asks a worker to end a session (scoreboard_kick()). */
enum scoreboard_kick {
    SB_KICK_NONE = 0,
    SB_KICK_IDLE,     /* at its next command boundary, told -ERR [SYS/TEMP] */
    SB_KICK_NOW,      /* at once (a drain deadline passed); nothing is deleted */
};

/* The owner's record of slot (NULL for a bad slot). */
struct scoreboard_session *scoreboard_session(struct scoreboard *sb, int slot);

/*
 * [master] Copy slot's record and its client address (v4-mapped for IPv4)
 * into the caller's space: 1 if the slot is in use, 0 if free, -1 past the
 * end. The strings come out terminated; the rest is whatever the owner
 * wrote (numbers, for display only).
 */
int scoreboard_peek(struct scoreboard *sb, unsigned slot, struct scoreboard_session *out,
                    uint8_t ip[16], pid_t *owner);

/* [master] Mark slot for ending; its worker reads the mark. */
void scoreboard_kick(struct scoreboard *sb, unsigned slot, enum scoreboard_kick how);
enum scoreboard_kick scoreboard_kicked(const struct scoreboard *sb, int slot);

/*
 * The global drain flag and its message, set by the master; workers read
 * them on every accept and when woken (SIGUSR1). *changes counts every
 * drain, undrain and kick, so a woken worker knows whether to look again.
 * The message is cut to 200 bytes and must be one line.
 */
#define SCOREBOARD_DRAIN_MESSAGE_MAX 200
/* [master] */
void scoreboard_set_drain(struct scoreboard *sb, int on, const char *message);
/* [master] The flag as the master last set it, from its own memory. */
int scoreboard_master_draining(const struct scoreboard *sb);
/* The workers' view, read from the region. */
int scoreboard_draining(struct scoreboard *sb, char *message, size_t len);
uint32_t scoreboard_changes(const struct scoreboard *sb);

#endif
