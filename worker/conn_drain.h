/*
 * Sessions ended from outside the connection: popctl kick, a stop, and
 * popctl drain inside a worker (issue 15). New clients are refused at
 * accept (worker.c). Of the open sessions, those not logged in are told
 * -ERR [SYS/TEMP] and closed at once; logged-in ones are served until they
 * QUIT (their DELEs applied), stay silent for drain_idle_timeout, or the
 * master cuts them at the drain's deadline. Undrain ends the shorter limit.
 */
#ifndef FASTPOP_CONN_DRAIN_H
#define FASTPOP_CONN_DRAIN_H

#include "worker/conn.h"

/* What clients are told when popctl drain gave no --message. */
extern const char conn_drain_default_message[];

/*
 * The drain flag and message as the worker just read them from the
 * scoreboard: remembered in lp and, while draining, every session not
 * logged in is closed.
 */
void conn_drain_update(struct loop *lp, int draining, const char *message);

/* The idle limit of a session between commands now: the drain's when shorter. */
double conn_drain_idle_limit(const struct loop *lp);

/*
 * c has been silent for drain_idle_timeout (but not idle_timeout) while
 * draining: told why if it is between commands, and closed.
 */
void conn_drain_idle(struct conn *c);

/* The drain's deadline passed (SB_KICK_NOW): told why if between commands, closed now. */
void conn_drain_cut(struct conn *c);

/* Stopping: close every session that is between commands. */
void conn_shutdown_idle(struct loop *lp);

/*
 * End the sessions the master marked in the scoreboard (kick, or a drain
 * deadline: scoreboard_kick()): the ones between commands are told and
 * closed now, busy ones at their next command boundary. When draining,
 * sessions not logged in are closed too (conn_drain_update). Returns how
 * many are still to end, so the worker knows to call again.
 */
unsigned conn_sweep(struct loop *lp, int draining, const char *message);

#endif
