/*
 * Deadline lists of a worker's connections (enum conn_timer in loop.h):
 * one list per kind of wait, each with one timeout, so each list is a FIFO
 * sorted by deadline and expiry costs O(expired).
 */
#ifndef FASTPOP_CONN_TIMER_H
#define FASTPOP_CONN_TIMER_H

#include "worker/conn.h"

/* Put c on list t, deadline counted from now (removing it from its old list). */
void conn_timer_set(struct conn *c, enum conn_timer t);
/* Activity: restart c's deadline on its current list. */
void conn_timer_touch(struct conn *c);
/* Take c off its list (it is closing). */
void conn_timer_clear(struct conn *c);
/* Close every connection whose deadline has passed. */
void conn_timer_expire(struct loop *lp, double now);
/* Seconds until the next deadline, or -1 if no connection waits. */
double conn_timer_next(struct loop *lp, double now);

#endif
