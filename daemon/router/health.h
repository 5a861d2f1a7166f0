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

#include <stddef.h>

#include "daemon/router/route_pick.h"

struct health;
struct ev_loop;

/*
 * Watch b[0..n) (their up/draining fields are written here; they start
 * down until their first check) from loop's turns: the first round starts
 * at the next turn, each check is an ev_io watch with a timer for
 * `timeout`, each round a timer. proxy_protocol: send a PROXY header
 * first. NULL without memory.
 */
struct health *health_new(struct ev_loop *loop, struct route_backend *b, size_t n,
                          double interval, double timeout, int proxy_protocol);
void health_free(struct health *h);

#endif
