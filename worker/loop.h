/*
 * The worker's state around its event loop (daemon/runtime/event_loop.h):
 * every event source (listeners, connections, the auth client, signals, the
 * loader thread's eventfd) and every deadline is a watch or a timer there.
 */
#ifndef FASTPOP_LOOP_H
#define FASTPOP_LOOP_H

#include <stdint.h>
#include <sys/types.h>

#include "daemon/runtime/config.h"
#include "daemon/runtime/event_loop.h"
#include "shm/scoreboard.h"

struct loop;
struct conn;
struct conn_protocol;
struct auth_client;
struct mbindex;
struct offload;
struct tls_context;

/*
 * What a connection's one deadline (c->deadline, worker/conn_timer.c) waits
 * for; each kind has its own timeout setting.
 */
enum conn_timer {
    CONN_TIMER_IDLE,       /* idle_timeout; draining: drain_idle_timeout if shorter */
    CONN_TIMER_LINGER,     /* quit_linger: QUIT answered, waiting for the client's close */
    CONN_TIMER_PROXY,      /* proxy_timeout: waiting for the PROXY header */
    CONN_TIMER_HANDSHAKE,  /* tls_handshake_timeout */
    CONN_TIMERS,
};

struct loop {
    const struct config *cfg;
    int index;
    pid_t pid;
    struct ev_loop *ev;
    struct scoreboard *sb;
    struct conn *conns;                  /* every open connection (c->all_next) */
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

#endif
