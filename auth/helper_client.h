/*
 * A client of fastpop-auth's socket (auth.sock, auth/protocol.h): one
 * SOCK_SEQPACKET connection, requests with ids, answers in any order, a
 * timeout per request (AUTH_TIMEOUT_SECONDS). The workers (through
 * worker/auth_client.c, which ties it to their loop) and the router
 * (daemon/router/router_main.c) both use it. It knows no event loop: the
 * owner watches helper_client_fd() (hooks say when it changes) and calls
 * helper_client_readable() and helper_client_expire().
 *
 * Caveats:
 *  - A request carries its completion (auth_done_fn and a context); a caller
 *    whose context goes away while the request is out must call
 *    helper_client_cancel() with the request's id: the late answer is dropped.
 *  - If the helper is down or restarting, requests fail at once (id 0) or
 *    get AUTH_TEMPFAIL through their completion (lost connection, timeout).
 *  - An answer is taken off the request list before its callback runs. A
 *    callback must not send a new request from inside the client.
 */
#ifndef FASTPOP_AUTH_HELPER_CLIENT_H
#define FASTPOP_AUTH_HELPER_CLIENT_H

#include <stdint.h>

#include "auth/protocol.h"
#include "daemon/runtime/event_loop.h"

struct helper_client;

/* An answer; the fields its reply type lacks are "". Valid during the callback only. */
struct auth_answer {
    enum auth_status status;   /* AUTH_TEMPFAIL too when the helper is down or late */
    const char *user;          /* the canonical name */
    const char *maildir;
    const char *sasl;          /* server-first or server-final for SCRAM */
    uint64_t generation;       /* PASS replies: the credential cache's, for the memo */
    const char *host;          /* PASS replies: the user's host, for the router */
    const char *message;       /* why, for a temporary failure */
    const struct user_policy *policy; /* PASS replies, SCRAM results: the user's own */
};

/* The completion of a request: ctx as given to the request. */
typedef void auth_done_fn(void *ctx, const struct auth_answer *answer);

/* The helper's penalty view (auth/protocol.h, AUTH_MSG_VIEW): fd is the callee's. */
typedef void auth_view_fn(int fd);

struct helper_client_hooks {
    /*
     * The event loop the connection and the requests' timeout live on: the
     * client watches its descriptor and keeps one timer, for the oldest
     * request (all share AUTH_TIMEOUT_SECONDS and go in order).
     */
    struct ev_loop *loop;
    /* NULL: no view is asked for, and one that arrives is closed unread. */
    auth_view_fn *on_view;
    /* How long each request waited, answered or not; NULL if not measured. */
    void (*timing)(uint64_t microseconds);
    /* A helper that is restarting is not hammered: one connect per this long. */
    double reconnect_seconds;
    /* A login's maildir must be absolute (the worker opens it), else AUTH_TEMPFAIL. */
    int require_maildir;
};

/* NULL with errno (ENAMETOOLONG: the path does not fit a socket address). */
struct helper_client *helper_client_new(const char *socket_path,
                                        const struct helper_client_hooks *hooks);
/* Close the connection and free; pending requests are dropped unanswered. */
void helper_client_free(struct helper_client *hc);
/*
 * Be connected (a no-op when connected; at most one attempt per
 * reconnect_seconds otherwise). With on_view, each new connection asks for
 * the helper's penalty view. 0, or -1 with errno.
 */
int helper_client_connect(struct helper_client *hc);
/* The connection's descriptor, -1 when there is none. */
int helper_client_fd(const struct helper_client *hc);

/*
 * The requests: each returns its id (never 0), or 0 with errno when it could
 * not be sent; done(ctx, answer) then never runs. ip is the client's address,
 * for the helper's penalty.
 */
uint32_t helper_client_check(struct helper_client *hc, const char *user, const char *password,
                             const char *ip, const char *mechanism, auth_done_fn *done,
                             void *ctx);
/* SCRAM-SHA-256, relayed to the helper: the answer's sasl is server-first. */
uint32_t helper_client_scram_start(struct helper_client *hc, const char *client_first,
                                   const char *ip, auth_done_fn *done, void *ctx);
/* The answer's sasl is server-final, with user and maildir. */
uint32_t helper_client_scram_finish(struct helper_client *hc, const char *client_first,
                                    const char *server_first, const char *client_final,
                                    const char *ip, auth_done_fn *done, void *ctx);
/* Drop request id's completion (0 is ignored): its answer will not be delivered. */
void helper_client_cancel(struct helper_client *hc, uint32_t id);

/* Answer the requests out at now or earlier with a temporary failure (the timer does it). */
void helper_client_expire(struct helper_client *hc, double now);

#endif
