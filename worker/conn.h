/*
 * A client connection inside a worker: the socket, its two buffers, the
 * session state, and its place in the idle list. One I/O callback drives it
 * (conn_on_event); every state change goes through conn_set_state().
 */
#ifndef FASTPOP_CONN_H
#define FASTPOP_CONN_H

#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "daemon/buf.h"
#include "worker/loop.h"

enum conn_state {
    CONN_AUTHORIZATION,   /* RFC 1939 AUTHORIZATION: waiting for USER/PASS */
    CONN_AUTH_WAIT,       /* a credential check is out at the helper */
    CONN_TRANSACTION,     /* logged in */
    CONN_CLOSING,         /* flushing the last reply, then close */
    CONN_LINGER,          /* QUIT answered: let the client close first */
};

struct pop3_session;
struct conn;

/*
 * Long output (RETR/TOP, LIST/UIDL of a big mailbox) is produced in pieces:
 * produce() appends until the output buffer reaches high_water and returns
 * 0 (more to come), 1 (done) or -1 (failed: the connection is closed).
 * Input is not read while a job runs.
 */
struct conn_job {
    int  (*produce)(struct conn *c, struct conn_job *job, size_t high_water);
    void (*release)(struct conn_job *job);
};

struct conn_stats {
    unsigned commands;
    unsigned retr, top, dele, deleted;
    uint64_t retr_bytes, top_bytes;
    uint64_t bytes_in, bytes_out;
};

struct conn {
    struct loop_handler io;           /* first: epoll hands us this pointer */
    struct loop *lp;
    int fd;
    int slot;                         /* scoreboard slot */
    uint32_t events;                  /* epoll interest registered now */
    enum conn_state state;
    struct sockaddr_storage peer;
    char ip[48];
    unsigned port;
    struct buf in, out;
    unsigned bad_commands;
    unsigned auth_failures;
    struct conn *idle_prev, *idle_next;  /* in the idle or the linger list */
    double last_active;
    double started;
    time_t started_wall;
    const char *close_reason;
    char user[128];                   /* given with USER, canonical after login */
    uint32_t auth_request;            /* id of the request out at the helper */
    struct pop3_session *session;     /* mailbox state once logged in */
    struct conn_job *job;             /* long output in progress */
    struct conn_stats stats;
};

/*
 * Take over an accepted socket and its scoreboard slot: register, greet.
 * -1 if it could not be set up (the caller still owns fd and slot then).
 */
int conn_new(struct loop *lp, int fd, const struct sockaddr *peer, int slot);

/* Enter a new state (logged at debug level). */
void conn_set_state(struct conn *c, enum conn_state next);

/* Queue text for the client. Failure (output over its limit) closes the connection. */
void conn_reply(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Finish: flush what is queued, then close and log the session with reason. */
void conn_finish(struct conn *c, const char *reason);

/* Close now, without flushing, logging the session line. */
void conn_close(struct conn *c, const char *reason);

/* Call after work finished outside the I/O callback (e.g. an auth answer). */
void conn_resume(struct conn *c);

/* Start producing long output (the status line is already queued). */
void conn_start_job(struct conn *c, struct conn_job *job);

/* Stopping: close every session that is between commands (see conn.c). */
void conn_shutdown_idle(struct loop *lp);

/* Free connections closed during this loop iteration. */
void conn_free_closed(struct loop *lp);

/* Close connections whose idle (or linger) time ran out. */
void conn_expire_idle(struct loop *lp, double now);

/* Seconds until the next connection expires, or -1 if none. */
double conn_next_expiry(struct loop *lp, double now);

#endif
