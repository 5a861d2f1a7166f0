/*
 * The router's connection to fastpop-auth (auth.sock): PASS requests with
 * the client's address, answered in any order (auth/protocol.h). The
 * router is one more client of the helper, beside the workers; it runs as
 * the mail user and is the master's child, so the helper's peer check takes
 * it. Its requests carry the mechanism AUTH_MECH_ROUTER_LOOKUP when the
 * router needs the user's host (never answered from the credential cache,
 * which holds no host), else AUTH_MECH_ROUTER.
 *
 * A request the helper has not answered within AUTH_TIMEOUT_SECONDS, and
 * every request in flight when the connection breaks, is answered
 * AUTH_TEMPFAIL here. The connection is made again at the next request,
 * at most once per ROUTER_HELPER_RETRY_SECONDS.
 */
#ifndef FASTPOP_ROUTER_HELPER_H
#define FASTPOP_ROUTER_HELPER_H

#include <poll.h>
#include <stdint.h>

#include "auth/protocol.h"

/* nginx retries a login the router could not check; this spares the helper a reconnect storm. */
#define ROUTER_HELPER_RETRY_SECONDS 1.0

struct router_helper;

/* The answer to the request tagged tag (rep->status AUTH_TEMPFAIL if the helper gave none). */
typedef void (*router_helper_done_fn)(void *ctx, uint64_t tag, const struct auth_reply *rep);

/* max_inflight: requests at once (more are answered tempfail). NULL without memory. */
struct router_helper *router_helper_new(const char *socket_path, unsigned max_inflight,
                                        router_helper_done_fn done, void *ctx);
void router_helper_free(struct router_helper *rh);

/* Ask; the answer comes through done (maybe at once, on failure). The password is not kept. */
/* mechanism: AUTH_MECH_ROUTER or AUTH_MECH_ROUTER_LOOKUP (auth/protocol.h). */
void router_helper_ask(struct router_helper *rh, uint64_t tag, const char *user,
                       const char *password, const char *ip, const char *mechanism,
                       double now);
/* The caller no longer wants tag's answer (its client went away). */
void router_helper_cancel(struct router_helper *rh, uint64_t tag);

int router_helper_pollfds(const struct router_helper *rh, struct pollfd *pfd, int max);
void router_helper_handle(struct router_helper *rh, const struct pollfd *pfd, int n, double now);
double router_helper_next_wake(const struct router_helper *rh, double now);
void router_helper_tick(struct router_helper *rh, double now);

#endif
