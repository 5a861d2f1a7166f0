/*
 * A connection's one transport deadline (enum conn_timer in loop.h): an
 * event loop timer at the last activity plus the timeout of its kind of
 * wait. Activity moves it (O(log n), daemon/runtime/event_loop.h).
 */
#ifndef FASTPOP_CONN_TIMER_H
#define FASTPOP_CONN_TIMER_H

#include "worker/conn.h"

/* Wait for t now, deadline counted from now. */
void conn_timer_set(struct conn *c, enum conn_timer t);
/* Activity: restart c's deadline for its current wait. */
void conn_timer_touch(struct conn *c);
/* The timeout of c's wait changed (a drain began): move its deadline, keep its last activity. */
void conn_timer_refresh(struct conn *c);
/* No more deadline (it is closing). */
void conn_timer_clear(struct conn *c);

#endif
