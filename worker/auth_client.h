/*
 * The worker's side of the fastpop-auth protocol (auth/protocol.h): one
 * SOCK_SEQPACKET connection per worker, requests with ids, answers in any
 * order, a timeout per request. Nothing here blocks the event loop.
 *
 * Caveats:
 *  - A request carries its completion (auth_done_fn and a context); a caller
 *    whose context goes away while the request is out must call
 *    auth_client_cancel() with the request's id: the late answer is dropped.
 *    The client knows nothing of the protocol spoken to the mail client.
 *  - If the helper is down or restarting, requests fail at once or time out,
 *    and the client sees -ERR [SYS/TEMP].
 *  - An answer is taken off the request list before its callback runs. A
 *    callback must not send a new request from inside the client: it records
 *    the answer and lets its connection run after the epoll batch.
 */
#ifndef FASTPOP_AUTH_CLIENT_H
#define FASTPOP_AUTH_CLIENT_H

#include <stdint.h>

#include "auth/protocol.h"
#include "worker/loop.h"

struct auth_client;

/* An answer; the fields its reply type lacks are "". Valid during the callback only. */
struct auth_answer {
    enum auth_status status;   /* AUTH_TEMPFAIL too when the helper is down or late */
    const char *user;          /* the canonical name */
    const char *maildir;
    const char *sasl;          /* server-first or server-final for SCRAM */
    uint64_t generation;       /* PASS replies: the credential cache's, for the memo */
    const struct user_policy *policy; /* PASS replies, SCRAM results: the user's own */
};

/* The completion of a request: ctx as given to the request. */
typedef void auth_done_fn(void *ctx, const struct auth_answer *answer);

/* The helper's penalty view (auth/protocol.h, AUTH_MSG_VIEW): fd is the callee's. */
typedef void auth_view_fn(int fd);

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

/*
 * The requests: each returns its id (never 0), or 0 with errno when it could
 * not be sent; done(ctx, answer) then never runs. ip is the client's address,
 * for the helper's penalty.
 */
/* A password check by mechanism (USER, PLAIN, LOGIN). */
uint32_t auth_client_check(struct auth_client *ac, const char *user, const char *password,
                           const char *ip, const char *mechanism, auth_done_fn *done, void *ctx);
/* SCRAM-SHA-256, relayed to the helper: the answer's sasl is server-first. */
uint32_t auth_client_scram_start(struct auth_client *ac, const char *client_first,
                                 const char *ip, auth_done_fn *done, void *ctx);
/* The answer's sasl is server-final, with user and maildir. */
uint32_t auth_client_scram_finish(struct auth_client *ac, const char *client_first,
                                  const char *server_first, const char *client_final,
                                  const char *ip, auth_done_fn *done, void *ctx);

/* Drop request id's completion (0 is ignored): its answer will not be delivered. */
void auth_client_cancel(struct auth_client *ac, uint32_t id);

/* Seconds until the oldest request times out, or -1 if none is out. */
double auth_client_next_expiry(struct auth_client *ac, double now);
/* Answer timed-out requests with a temporary failure. */
void auth_client_expire(struct auth_client *ac, double now);

#endif
