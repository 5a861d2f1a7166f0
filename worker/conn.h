/*
 * A client connection inside a worker: the socket (plain or TLS), its two
 * buffers, the transport state, and its deadlines (event loop timers). One I/O
 * callback drives it (conn.c), every state change goes through
 * conn_set_state(), and bytes move only through conn_io.c. The protocol it
 * carries is reached only through struct conn_protocol (below); the session
 * fields further down are the protocol's (worker/pop3.h, worker/login.h).
 */
#ifndef FASTPOP_CONN_H
#define FASTPOP_CONN_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/user_policy.h"
#include "shm/scoreboard.h"
#include "worker/loop.h"

/*
 * Where the transport is. In CONN_SESSION the protocol has the connection
 * and keeps its own state in c->session_state (POP3: enum pop3_state,
 * worker/pop3.h; 0 is the state a session starts in).
 */
enum conn_state {
    CONN_PROXY,           /* waiting for the PROXY header (proxy_protocol listeners) */
    CONN_TLS_HANDSHAKE,   /* implicit TLS, or after STLS */
    CONN_SESSION,         /* the protocol runs (c->session_state) */
    CONN_CLOSING,         /* flushing the last reply, then close */
    CONN_LINGER,          /* QUIT answered: let the client close first */
};

struct pop3_session;
struct mailbox_job;
struct mailbox_update_job;
struct sasl_exchange;
struct conn;

/*
 * The protocol a connection carries (POP3: pop3_protocol, worker/pop3.h), as
 * the transport sees it: conn.c calls these and nothing else of it. The
 * worker names it in struct loop (lp->protocol).
 */
struct conn_protocol {
    void (*greet)(struct conn *c);                          /* the session begins */
    void (*line)(struct conn *c, char *line, size_t len);   /* one input line, CRLF cut */
    void (*line_too_long)(struct conn *c);                  /* over c->line_limit */
    void (*output_done)(struct conn *c);                    /* a long output is complete */
    void (*release)(struct conn *c);                        /* the connection closes */
    /* What the transport asks of a CONN_SESSION connection: */
    const char *(*state_name)(const struct conn *c);        /* for the log and `popctl who` */
    int (*reading)(const struct conn *c);                   /* it takes input lines now */
    int (*logged_in)(const struct conn *c);                 /* a user's session runs */
    int (*interruptible)(const struct conn *c);             /* an -ERR now reads as an answer */
};

/*
 * Long output (RETR/TOP, LIST/UIDL of a big mailbox) is produced in pieces:
 * produce() appends until the output buffer reaches high_water and returns
 * 0 (more to come), 1 (done) or -1 (failed: what is queued is flushed, then
 * the connection is closed; a job must not queue its terminating dot then).
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
    struct ev_io io;                  /* its socket in the worker's event loop */
    struct loop *lp;
    int fd;
    int slot;                         /* scoreboard slot */
    uint32_t events;                  /* epoll interest registered now */
    enum conn_state state;
    unsigned session_state;           /* the protocol's own, in CONN_SESSION (see above) */
    const struct config_listen *listener;
    struct sockaddr_storage peer;     /* the client (from the PROXY header if any) */
    char ip[48];
    unsigned port;
    struct buf in, out;
    size_t line_limit;                /* longest command line accepted now */

    SSL *ssl;                         /* NULL for plain connections */
    int tls_read_wants_out;           /* SSL_read needs the socket writable */
    int tls_write_wants_in;           /* SSL_write needs the socket readable */
    int handshake_wants_out;
    size_t tls_write_len;             /* an SSL_write to repeat with this length */
    int greet_after_handshake;        /* implicit TLS: the greeting comes after */
    int tls_goodbye_sent;             /* close_notify is out */
    int proxy_tls;                    /* a trusted proxy says the client used TLS to it */

    unsigned bad_commands;
    unsigned auth_failures;
    enum conn_timer timer;            /* what c->deadline waits for */
    struct ev_timer deadline;         /* idle/linger/PROXY/handshake (worker/conn_timer.c) */
    struct ev_timer login_deadline;   /* login_timeout (worker/conn_limits.c) */
    struct conn *all_prev, *all_next; /* lp->conns; all_next: lp->closed once closed */
    int ready_listed;                 /* queued to run after this batch */
    struct conn *ready_prev, *ready_next;
    int preauth_listed;               /* not logged in yet (worker/conn_limits.c) */
    struct conn *preauth_prev, *preauth_next;
    unsigned preauth_commands;        /* command lines before login */
    double last_active;
    double started;
    time_t started_wall;
    const char *close_reason;
    char user[128];                   /* given with USER, canonical after login */
    uint32_t auth_request;            /* id of the request out at the helper */
    const char *auth_mech;            /* USER, PLAIN, LOGIN, SCRAM-SHA-256: for the log */
    int auth_cached;                  /* the login was answered by the credential cache */
    /* A password login out at the helper: HMAC(K, name, password) under the
     * worker's memo key (worker/credcache_memo.h), to remember it if accepted. */
    unsigned char memo_pretag[32];
    int memo_pending;
    uint64_t auth_generation;         /* the helper's answer: the cache generation, or 0 */
    /* The user's own POP3 policy from the helper or the cache (daemon/runtime/user_policy.h). */
    struct user_policy policy;
    unsigned char *expire_retrieved;  /* per message: RETRieved, when EXPIRE applies (worker/expire.h) */
    unsigned expired_at_quit;         /* of the messages QUIT removes, those EXPIRE chose */
    struct sasl_exchange *sasl;       /* an AUTH exchange in progress (worker/pop3_sasl.c) */
    struct pop3_session *session;     /* mailbox state once logged in */
    struct mailbox_job *mailbox_job;  /* its maildir being read (worker/mailbox.c) */
    struct mailbox_update_job *update_job; /* its QUIT's update running (worker/mailbox_update.c) */
    struct conn_job *job;             /* long output in progress */
    int cmd_timing;                   /* enum stats_command being timed, or -1 */
    uint64_t cmd_started;             /* clock_mono_us() at its command line */
    struct conn_stats stats;
};

/*
 * Take over an accepted socket from listener, with its scoreboard slot:
 * register, then greet (or wait for a PROXY header / TLS handshake).
 * -1 if it could not be set up (the caller still owns fd and slot then).
 */
int conn_new(struct loop *lp, int fd, const struct sockaddr *peer, int slot,
             const struct config_listen *listener);

/* Enter a new state (logged at debug level). */
void conn_set_state(struct conn *c, enum conn_state next);
/*
 * The protocol changed c->session_state from the state called before (its
 * name): logged at debug level and published; a session that logged in
 * leaves the pre-login limits.
 */
void conn_session_changed(struct conn *c, const char *before);

/* Queue text for the client. Failure (output over its limit) closes the connection. */
void conn_reply(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* conn_reply of bytes as they are (no formatting: the hot lines of a listing). */
void conn_reply_bytes(struct conn *c, const void *data, size_t len);

/* Finish: flush what is queued, then close and log the session with reason. */
void conn_finish(struct conn *c, const char *reason);

/* Close now, without flushing, logging the session line. */
void conn_close(struct conn *c, const char *reason);

/*
 * Work for c finished outside its I/O callback (an answer of the auth
 * helper was recorded): queue c to run once this epoll batch is done. It
 * never runs c's next command here, inside the caller: a helper callback
 * must not re-enter the helper client through the client's pipelined PASS.
 * Queued at most once; a connection closed meanwhile is taken off the queue.
 */
void conn_resume(struct conn *c);
/* Take c off the run queue (it is closing). */
void conn_ready_remove(struct conn *c);
/* Run the queued connections; the worker calls this after each epoll batch. */
void conn_run_ready(struct loop *lp);
/*
 * Run c's commands and jobs until output blocks or input runs dry; -1 if
 * it was closed. Only from c's own event or conn_run_ready().
 */
int conn_run(struct conn *c);

/* Start producing long output (the status line is already queued). */
void conn_start_job(struct conn *c, struct conn_job *job);

/*
 * STLS was answered: once that reply is flushed in the clear, discard any
 * input that came with it (RFC 2595 / CVE-2011-0411: nothing sent before
 * the handshake may be executed after it) and start TLS.
 */
void conn_start_tls(struct conn *c);

/* The protocol reads command lines now (a session between or in commands, not in a job). */
int conn_accepts_commands(const struct conn *c);

/* Free connections closed during this loop iteration. */
void conn_free_closed(struct loop *lp);

#endif
