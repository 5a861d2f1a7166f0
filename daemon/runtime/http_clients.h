/*
 * The connection side of the project's two small HTTP/1.x servers
 * (fastpop-metrics' GET /metrics and fastpop-router's nginx auth_http):
 * accept, read one request's header block, hand it to the owner, write the
 * owner's answer, close. One request per connection; at most max_clients at
 * once (the next is told 503 and closed); each client has client_seconds to
 * send its request and read the answer; a header block longer than
 * request_max gets 431. Parsing the request is the owner's: this knows only
 * where the header block ends (the first empty line).
 *
 * The owner may answer at once, from its callback, or later (the router
 * waits for the auth helper): a client is named by a token that stays
 * valid until its answer is queued or it is dropped (timeout, hangup);
 * answering a stale token does nothing.
 */
#ifndef FASTPOP_HTTP_CLIENTS_H
#define FASTPOP_HTTP_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

struct http_clients;
struct ev_loop;

/*
 * A client's header block is complete: req[0..len) (NUL-terminated, the
 * whole block, request line first). The callback answers with
 * http_clients_answer(token), now or later.
 */
typedef void (*http_request_fn)(void *ctx, uint64_t token, const char *req, size_t len);
/* A client the owner has not answered yet went away (hangup or timeout). */
typedef void (*http_gone_fn)(void *ctx, uint64_t token);

struct http_clients_limits {
    unsigned max_clients;
    double client_seconds;
    size_t request_max;
    size_t answer_max;     /* the largest answer the owner queues */
};

/*
 * Serve on listen_fd (listening, non-blocking; closed by http_clients_free)
 * from loop's turns: each client is an ev_io watch with an ev_timer for its
 * client_seconds. NULL without memory.
 */
struct http_clients *http_clients_new(struct ev_loop *loop, int listen_fd,
                                      const struct http_clients_limits *lim,
                                      http_request_fn on_request, http_gone_fn on_gone,
                                      void *ctx);
void http_clients_free(struct http_clients *hc);

/* Queue the whole answer (status line, headers, body) for token's client; -1 if it is gone. */
int http_clients_answer(struct http_clients *hc, uint64_t token, const char *bytes, size_t len);

#endif
