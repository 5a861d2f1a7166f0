/*
 * The router's view of its backends: every `interval` seconds each backend
 * is asked, in parallel and without blocking, what a client would get: a
 * TCP connection (with "PROXY UNKNOWN" first when its listener wants a
 * PROXY header), then the greeting. "+OK" is up, "-ERR" is draining (a
 * fastpop answers new clients so during `popctl drain`), anything else, a
 * refused connection or no greeting within `timeout` is down. The check
 * ends with QUIT. One failed check marks a backend down: a backend killed
 * with SIGKILL stops getting users within one interval plus the timeout.
 */
#ifndef FASTPOP_ROUTER_HEALTH_H
#define FASTPOP_ROUTER_HEALTH_H

#include <poll.h>
#include <stddef.h>

#include "daemon/router/route_pick.h"

struct health;

/*
 * Watch b[0..n) (their up/draining fields are written here; they start
 * down until their first check). proxy_protocol: send a PROXY header first.
 * NULL without memory.
 */
struct health *health_new(struct route_backend *b, size_t n, double interval, double timeout,
                          int proxy_protocol);
void health_free(struct health *h);

/* Descriptors of the checks in flight; returns how many were written (at most max). */
int health_pollfds(const struct health *h, struct pollfd *pfd, int max);
/* Serve what poll reported on those descriptors. */
void health_handle(struct health *h, const struct pollfd *pfd, int n, double now);
/* Seconds until health_tick() has work (a round to start, a check to time out). */
double health_next_wake(const struct health *h, double now);
/* Start a round when one is due; end checks that ran out of time. */
void health_tick(struct health *h, double now);

#endif
