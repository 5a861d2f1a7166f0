/*
 * What a connection may do before it logs in (issue 12 item 8): an
 * absolute login_timeout from connect to login, at most
 * max_preauth_commands command lines, and, when max_connections is
 * reached, the oldest of them makes room for a new client.
 *
 * Each worker keeps its not-yet-logged-in connections on one FIFO in
 * connect order (the head is the oldest), each with a login_timeout timer.
 */
#ifndef FASTPOP_CONN_LIMITS_H
#define FASTPOP_CONN_LIMITS_H

#include "worker/conn.h"

/* c was just accepted: it is not logged in, counted from c->started. -1: no memory. */
int conn_limits_track(struct conn *c);
/* c logged in, or is closing: it leaves the list. */
void conn_limits_untrack(struct conn *c);

/*
 * Call for every command line c sends before it logs in. 1 if it is one too
 * many: the -ERR is queued and c is closing; 0 to run the command.
 */
int conn_limits_preauth_command(struct conn *c);

/*
 * max_connections is reached and a client from ip knocks: close this
 * worker's oldest connection that has not logged in. 1 if one was closed
 * (its scoreboard slot is free now), 0 if this worker has none.
 */
int conn_limits_evict_oldest(struct loop *lp, const char *ip);

/*
 * Tell a client going away why (line ends in CRLF), best effort and only
 * where a POP3 line in the clear is what it expects: not inside TLS, not
 * before the greeting, not after part of a reply. Also the idle timer's.
 */
void conn_limits_farewell(struct conn *c, const char *line);

/*
 * The scoreboard limits a new connection must fit in. Behind a proxy every
 * connection comes from the proxy: only the total applies until the PROXY
 * header names the real client (then the full limits, via conn.c).
 */
struct scoreboard_limits conn_limits(const struct config *cfg, int behind_proxy);

#endif
