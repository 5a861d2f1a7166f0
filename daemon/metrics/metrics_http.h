/*
 * The optional Prometheus endpoint: with metrics_listen set, the metrics
 * process (daemon/metrics/metrics_main.c, never root) answers GET /metrics there in
 * the Prometheus text format (version 0.0.4), the same document as `popctl
 * stats --prometheus` but never reset. The master binds the socket and
 * hands it over; it never reads a byte of HTTP.
 *
 * It is a deliberately small HTTP/1.x server on the process's event loop: one request
 * per connection (then close), at most METRICS_MAX_CLIENTS at once (the
 * next is told 503), each given METRICS_CLIENT_SECONDS to send its request
 * and read the answer, requests of at most 8 KB (431). Anything but GET (or
 * HEAD) of /metrics gets 404 or 405, a request line that is not HTTP/1.0 or
 * 1.1 gets 400. Bind it to loopback or a management network: it has no
 * authentication (as node_exporter has none by default).
 */
#ifndef FASTPOP_METRICS_HTTP_H
#define FASTPOP_METRICS_HTTP_H

#include "daemon/runtime/buf.h"

#define METRICS_MAX_CLIENTS 8
#define METRICS_CLIENT_SECONDS 5.0

struct metrics_http;
struct ev_loop;

/* Append the document to doc: 0, or -1 for a 503. */
typedef int (*metrics_render_fn)(void *ctx, struct buf *doc);

/* Serve on listen_fd (listening, non-blocking) from loop's turns; NULL without memory. */
struct metrics_http *metrics_http_new(struct ev_loop *loop, int listen_fd, metrics_render_fn render,
                                      void *ctx);

#endif
