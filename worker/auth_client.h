/*
 * The worker's client of fastpop-auth: the shared client of the helper's
 * socket (auth/helper_client.h, which the router uses too) tied to the
 * worker's event loop and its statistics. Requests carry a completion
 * (auth_done_fn and a context) and know nothing of POP3; see
 * auth/helper_client.h for the rules a caller keeps (cancel a request whose
 * context goes away; send nothing from inside a completion).
 */
#ifndef FASTPOP_AUTH_CLIENT_H
#define FASTPOP_AUTH_CLIENT_H

#include <stdint.h>

#include "auth/helper_client.h"
#include "worker/loop.h"

struct auth_client;

/* on_view may be NULL: a view that arrives is then closed unread. */
struct auth_client *auth_client_new(struct loop *lp, const char *socket_path,
                                    auth_view_fn *on_view);
/*
 * Be connected to the helper (a no-op when connected; at most one attempt
 * per AUTH_RECONNECT_SECONDS otherwise). Each new connection asks for the
 * helper's penalty view, so a restarted helper's view replaces the old one.
 * 0, or -1 with errno.
 */
int auth_client_connect(struct auth_client *ac);

/* Close the connection and free; pending requests are dropped unanswered. */
void auth_client_free(struct auth_client *ac);

/* The shared client, for the requests (helper_client_check() and the others). */
struct helper_client *auth_client_helper(struct auth_client *ac);

#endif
