/*
 * The worker's side of the fastpop-auth protocol (auth/protocol.h): one
 * SOCK_SEQPACKET connection per worker, requests with ids, answers in any
 * order, a timeout per request. Nothing here blocks the event loop.
 *
 * Caveats:
 *  - A connection that closes while its request is out must call
 *    auth_client_cancel(); the late answer is then dropped.
 *  - If the helper is down or restarting, requests fail at once or time out,
 *    and the client sees -ERR [SYS/TEMP].
 *  - An answer is taken off the request list before its callback runs, and
 *    the callback only records it: the connection runs after the epoll
 *    batch (conn_resume()), never inside this client.
 */
#ifndef FASTPOP_AUTH_CLIENT_H
#define FASTPOP_AUTH_CLIENT_H

#include "worker/conn.h"
#include "worker/loop.h"

struct auth_client;

struct auth_client *auth_client_new(struct loop *lp, const char *socket_path);
/*
 * Be connected to the helper (a no-op when connected; at most one attempt
 * per AUTH_RECONNECT_SECONDS otherwise). Each new connection asks for the
 * helper's penalty view, so a restarted helper's view replaces the old one.
 * 0, or -1 with errno.
 */
int auth_client_connect(struct auth_client *ac);

/* Close the connection and free; pending requests are dropped unanswered. */
void auth_client_free(struct auth_client *ac);

/* Send a password check for c. The answer arrives through pop3_auth_answer(). */
int auth_client_check(struct auth_client *ac, struct conn *c, const char *user,
                      const char *password, const char *mechanism);

/*
 * SCRAM-SHA-256, relayed to the helper (auth/protocol.h). The answers arrive
 * through pop3_sasl_scram_challenge() and pop3_sasl_scram_result().
 */
int auth_client_scram_start(struct auth_client *ac, struct conn *c, const char *client_first);
int auth_client_scram_finish(struct auth_client *ac, struct conn *c, const char *client_first,
                             const char *server_first, const char *client_final);

void auth_client_cancel(struct auth_client *ac, struct conn *c);

/* Seconds until the oldest request times out, or -1 if none is out. */
double auth_client_next_expiry(struct auth_client *ac, double now);
/* Answer timed-out requests with a temporary failure. */
void auth_client_expire(struct auth_client *ac, double now);

#endif
