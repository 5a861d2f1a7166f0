/*
 * The request table both asynchronous password databases keep (LDAP:
 * auth/passdb_ldap.c, authlib: auth/passdb_authlib.c): a fixed number of
 * request slots, the free ones on a list, the waiting ones in arrival-order
 * queues (LDAP has two: searches and binds). Only indexes live here; each
 * database keeps its own request data in an array of the same size.
 * Arrival order matters: the head of a queue is its first deadline.
 */
#ifndef FASTPOP_AUTH_PASSDB_QUEUE_H
#define FASTPOP_AUTH_PASSDB_QUEUE_H

#include "auth/passdb_ldap.h"   /* struct passdb_ldap_answer */

#define PASSDB_QUEUE_NONE (-1)

struct passdb_slots {
    int count;
    int *next, *prev;           /* the free list (next only), or the queue a slot is in */
    int free_head;
    int in_use;
};

struct passdb_fifo {
    int head, tail;             /* PASSDB_QUEUE_NONE when empty */
};

/* count slots, all free. -1 (errno ENOMEM) if there is no memory for them. */
int passdb_slots_init(struct passdb_slots *s, int count);
void passdb_slots_fini(struct passdb_slots *s);
/* A free slot, now in use and in no queue; PASSDB_QUEUE_NONE if all are in use. */
int passdb_slots_take(struct passdb_slots *s);
/* Slot i is free again (take it off its queue first). */
void passdb_slots_put(struct passdb_slots *s, int i);

void passdb_fifo_init(struct passdb_fifo *q);
void passdb_fifo_push(struct passdb_slots *s, struct passdb_fifo *q, int i);
void passdb_fifo_remove(struct passdb_slots *s, struct passdb_fifo *q, int i);
/* The head, taken off the queue; PASSDB_QUEUE_NONE if it is empty. */
int passdb_fifo_pop(struct passdb_slots *s, struct passdb_fifo *q);
/* The slot after i in its queue, or PASSDB_QUEUE_NONE. */
int passdb_fifo_next(const struct passdb_slots *s, int i);

/* What a database says when a request cannot be sent, and when its table is full. */
struct passdb_admit_rules {
    int refuse_newline;          /* the protocol ends a field at a newline */
    const char *busy_reason;     /* "ldap-busy" */
    const char *busy_waiting;    /* "LDAP lookups": "<count> LDAP lookups already waiting" */
};

/*
 * The checks before a request takes a slot: ans is cleared; an empty, too
 * long (or, with refuse_newline, multi-line) user or password is a failure
 * and a full table a temporary one (both described in ans). Returns a taken
 * slot, or PASSDB_QUEUE_NONE.
 */
int passdb_slots_admit(struct passdb_slots *s, const struct passdb_admit_rules *rules,
                       const char *user, const char *password, struct passdb_ldap_answer *ans);

#endif
