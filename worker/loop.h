/*
 * The worker's event loop state and the epoll plumbing every event source
 * (listeners, connections, the auth client, signals) shares. Sources embed a
 * struct loop_handler first; epoll hands it back with the events.
 */
#ifndef FASTPOP_LOOP_H
#define FASTPOP_LOOP_H

#include <stdint.h>
#include <sys/types.h>

#include "daemon/runtime/config.h"
#include "shm/scoreboard.h"

struct loop;
struct conn;
struct conn_protocol;
struct auth_client;
struct mbindex;
struct offload;
struct tls_context;

/*
 * Each connection waits on exactly one deadline list. Within a list every
 * connection has the same timeout, so appending on activity keeps the list
 * sorted by deadline and the head is always the next to expire.
 */
enum conn_timer {
    CONN_TIMER_IDLE,       /* idle_timeout; draining: drain_idle_timeout if shorter */
    CONN_TIMER_LINGER,     /* quit_linger: QUIT answered, waiting for the client's close */
    CONN_TIMER_PROXY,      /* proxy_timeout: waiting for the PROXY header */
    CONN_TIMER_HANDSHAKE,  /* tls_handshake_timeout */
    CONN_TIMERS,
};

struct loop_handler {
    void (*on_event)(struct loop *lp, struct loop_handler *h, uint32_t events);
};

struct loop {
    const struct config *cfg;
    int index;
    pid_t pid;
    int epfd;
    struct scoreboard *sb;
    struct conn *timer_head[CONN_TIMERS]; /* next to expire first */
    struct conn *timer_tail[CONN_TIMERS];
    struct conn *closed;                 /* closed this iteration, freed after it */
    struct conn *ready_head, *ready_tail; /* to run after this batch (worker/conn_ready.c) */
    struct conn *preauth_head, *preauth_tail; /* not logged in, oldest first (conn_limits.c) */
    struct tls_context *tls;             /* NULL when no certificate is configured */
    unsigned conn_count;
    int retiring;                        /* no new connections (reload or stop) */
    int stopping;                        /* shutdown: also close idle sessions */
    uint32_t sb_changes;                 /* scoreboard_changes() last acted on */
    int sweep_pending;                   /* kicked or drained sessions still busy */
    int draining;                        /* popctl drain, as last read (worker/conn_drain.c) */
    char drain_message[SCOREBOARD_DRAIN_MESSAGE_MAX + 1];  /* what drained sessions are told */
    const struct conn_protocol *protocol; /* what connections carry (worker/conn.h) */
    struct auth_client *auth;
    struct mbindex *mbindex;             /* NULL: index = no, or it failed to open */
    struct offload *offload;             /* the loader thread; NULL: logins sync inline */
};

int loop_watch(struct loop *lp, int fd, uint32_t events, struct loop_handler *h);
int loop_modify(struct loop *lp, int fd, uint32_t events, struct loop_handler *h);
void loop_unwatch(struct loop *lp, int fd);

#endif
