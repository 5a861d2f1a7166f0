/*
 * A session's own changes to cur/ (RETR's Seen renames, QUIT's unlinks),
 * recorded in the index so the next login need not list cur/ again: the
 * "ours" stamps of shm/index_sync.h.
 *
 * The session's list is the record its login answered from. Each change
 * is bracketed by index_own_before()/index_own_after() (an fstat of cur/
 * each): cur/ must still look as the session last knew it, or another
 * program changed it and nothing is taken on trust any more. Any sign of
 * another program (a message renamed or gone: index_own_foreign) has the
 * same effect. At the session's end, under the mailbox lock,
 * index_own_record() stores the list as it now is with cur/'s last stamp,
 * or, after a sign of another program, stores it stale (the next login
 * lists cur/, with the sizes it knows).
 *
 * A change that would change what clients see if the index missed it (an
 * unlink), made less than a second after the stamp the record holds, may
 * leave cur/'s mtime as it is: the record is first stored stale, so a
 * session that dies before index_own_record() leaves no record that
 * matches cur/ and still lists the message. That stale record is a marker
 * without messages (a stale record's list only spares a listing the sizes
 * of its files, and a marker costs a few hundred bytes where the list of a
 * 100,000-message mailbox is 8 MB to encode and write); the list follows
 * at the session's end, stale too if trust was lost meanwhile.
 */
#ifndef FASTPOP_SHM_INDEX_OWN_H
#define FASTPOP_SHM_INDEX_OWN_H

#include <stdint.h>

#include "maildir/scan.h"
#include "shm/index.h"

struct index_own {
    int started;
    int trusted;                  /* the record vouched for the list and nothing foreign seen */
    int foreign;                  /* another program's change was seen */
    unsigned changes;             /* our renames and unlinks that moved cur/'s mtime */
    int marker;                   /* the stale record stored first holds no messages */
    uint64_t serial;              /* the record the list belongs to; 0: none */
    struct index_dirstamp stored; /* cur/'s stamp in that record */
    struct index_dirstamp cur;    /* cur/ as the session knows it (after our last change) */
};

/* From the login's head (shm/index_sync.h); a session calls it before its first change. */
void index_own_start(struct index_own *o, const struct index_head *head);

/*
 * Just before a change to cur/ (curfd). visible: the change is one a
 * record that missed it would hide from clients (an unlink); a stale
 * marker is stored first when the record's stamp is that recent (see
 * above). Failures only end the trust.
 */
void index_own_before(struct index_own *o, struct mbindex *ix, const char *root, int curfd,
                      int visible);

/* Just after it: cur/'s new stamp is ours. */
void index_own_after(struct index_own *o, struct mbindex *ix, int curfd);

/* A message was not where the list said: renamed or removed by another program. */
void index_own_foreign(struct index_own *o);

/*
 * At the session's end, under the mailbox lock: store md (without the
 * messages marked deleted when skip_deleted: after UPDATE) if the session
 * changed cur/ or saw another program's change. 0 (also when there was
 * nothing to store, or the record was replaced meanwhile), or an LMDB or
 * errno code.
 */
int index_own_record(struct index_own *o, struct mbindex *ix, const char *root,
                     const struct maildir *md, int skip_deleted);

#endif
