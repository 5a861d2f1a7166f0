/*
 * The optional Prometheus endpoint: with metrics_listen set, the master
 * answers GET /metrics there in the Prometheus text format (version 0.0.4),
 * the same document as `popctl stats --prometheus` but never reset.
 *
 * It is a deliberately small HTTP/1.x server inside the master's poll loop:
 * one request per connection (then close), at most METRICS_MAX_CLIENTS at
 * once, each given METRICS_CLIENT_SECONDS to send its request and read the
 * answer, requests of at most 8 KB. Anything but GET (or HEAD) of /metrics
 * gets 404 or 405, a request line that is not HTTP/1.0 or 1.1 gets 400. Bind it to loopback or a management network: it has no
 * authentication (as node_exporter has none by default).
 */
#ifndef FASTPOP_METRICS_HTTP_H
#define FASTPOP_METRICS_HTTP_H

#include <poll.h>

#include "daemon/config.h"

#define METRICS_MAX_CLIENTS 8
#define METRICS_CLIENT_SECONDS 5.0

struct control;
struct metrics_http;

/* Listen on addr; NULL after logging why (the daemon runs on without it). */
struct metrics_http *metrics_http_open(const struct config_listen *addr, struct control *ctl);
void metrics_http_close(struct metrics_http *mh);
/* In a forked child: close the descriptors only. */
void metrics_http_forget(struct metrics_http *mh);
/* Whether it listens on addr already (a reload that kept metrics_listen). */
int metrics_http_same(const struct metrics_http *mh, const struct config_listen *addr);

int metrics_http_pollfds(const struct metrics_http *mh, struct pollfd *pfd, int max);
void metrics_http_handle(struct metrics_http *mh, const struct pollfd *pfd, int n);
/* Seconds until a client's time runs out, or -1; then metrics_http_tick() drops it. */
double metrics_http_next_wake(const struct metrics_http *mh, double now);
void metrics_http_tick(struct metrics_http *mh, double now);

#endif
