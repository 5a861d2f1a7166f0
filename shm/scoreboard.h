/*
 * The scoreboard: one MAP_SHARED anonymous region the master creates before
 * forking, shared by every worker. It holds a slot per live connection, a
 * per-IP count, and the mailbox locks, so max_connections,
 * max_connections_per_ip and POP3's exclusive access hold across all
 * workers.
 *
 * Caveats:
 *  - Create it in the master before fork; children inherit the mapping.
 *  - A worker that dies (even kill -9, even inside the lock) leaves slots
 *    behind: the master calls scoreboard_reap_owner() after reaping it. The
 *    lock is a robust process-shared mutex, so a holder's death is detected
 *    and the per-IP table is rebuilt from the slots.
 *  - Capacity is fixed at creation; a reload can lower the limits, not raise
 *    them past that capacity.
 */
#ifndef FASTPOP_SCOREBOARD_H
#define FASTPOP_SCOREBOARD_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct scoreboard;

enum scoreboard_refusal {
    SB_OK = 0,
    SB_LIMIT_TOTAL,    /* max_connections reached */
    SB_LIMIT_PER_IP,   /* max_connections_per_ip reached */
};

struct scoreboard *scoreboard_create(unsigned capacity);
void scoreboard_destroy(struct scoreboard *sb);
unsigned scoreboard_capacity(const struct scoreboard *sb);

/*
 * Claim a slot for a new connection from addr, owned by process owner.
 * Returns the slot index, or -1 with *why saying which limit refused it.
 */
int scoreboard_conn_open(struct scoreboard *sb, pid_t owner, const struct sockaddr *addr,
                         unsigned max_total, unsigned max_per_ip,
                         enum scoreboard_refusal *why);
void scoreboard_conn_close(struct scoreboard *sb, int slot);

/*
 * The connection in slot turns out to come from addr (a PROXY header named
 * the real client): count it there instead. -1 with *why = SB_LIMIT_PER_IP
 * if addr already has max_per_ip connections (the slot is left unchanged).
 */
int scoreboard_conn_move(struct scoreboard *sb, int slot, const struct sockaddr *addr,
                         unsigned max_per_ip, enum scoreboard_refusal *why);

/* Release every slot of a dead process. Returns how many were released. */
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

unsigned scoreboard_active(struct scoreboard *sb);
/* The same without taking the lock: may be a moment out of date (for balancing). */
unsigned scoreboard_active_hint(const struct scoreboard *sb);
unsigned scoreboard_count_ip(struct scoreboard *sb, const struct sockaddr *addr);

#endif
