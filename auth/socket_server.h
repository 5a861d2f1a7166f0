/*
 * The helper's socket server: one event loop (daemon/runtime/event_loop.h)
 * over the listening socket
 * (run_dir/auth.sock, SOCK_SEQPACKET, from the master on fd 3) and one
 * connection per worker. Every datagram is one request of auth/protocol.h,
 * answered at once; a peer that sends a malformed message, or whose socket
 * is too full to take an answer, is disconnected with a log line (the worker
 * reconnects and retries). Peers are checked with SO_PEERCRED when accepted:
 * the mail user's uid (or ours), and a child of our parent, the master (or
 * the master itself), AUTH_SERVER_PEERS_PER_PROCESS connections per process.
 *
 * Checks run one at a time in this single process: crypt(3) work is the
 * helper's whole job, and a slow one delays the others in line, never a
 * worker's event loop.
 */
#ifndef FASTPOP_AUTH_SOCKET_SERVER_H
#define FASTPOP_AUTH_SOCKET_SERVER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "auth/passdb.h"
#include "auth/requests.h"
#include "daemon/runtime/event_loop.h"

/*
 * Worker connections held at once: one per worker process (workers are
 * 1-256), and only the master's children get one (auth/socket_server.c), so no
 * other process can use them up.
 */
#define AUTH_SERVER_MAX_PEERS 256
/*
 * Connections one process may hold: a worker uses one, and briefly two while
 * it reconnects; beyond that its oldest is closed, so even a compromised
 * worker holds no more than its share of the slots.
 */
#define AUTH_SERVER_PEERS_PER_PROCESS 2
/* Refused connections are logged at most this often (with a count), so a flood does not flood the log. */
#define AUTH_SERVER_REFUSAL_LOG_SECONDS 10
/* Requests taken from one peer per wakeup, so one busy worker cannot starve the rest. */
#define AUTH_SERVER_BURST 16

struct auth_peer {
    struct ev_io io;        /* first: the loop hands it back */
    int fd;                 /* -1: free slot */
    uid_t uid;
    pid_t pid;
    uint64_t serial;        /* order of acceptance: the oldest goes first */
};

struct auth_server {
    struct passdb *pdb;
    int listen_fd;
    struct ev_loop *ev;
    struct ev_io listen_io;
    struct ev_io passdb_io;   /* the password databases' fd (LDAP's connections) */
    struct ev_timer requests_due;  /* a held answer or a password database's deadline */
    uid_t self_uid;
    uid_t mail_uid;
    int have_mail_uid;
    struct auth_peer peers[AUTH_SERVER_MAX_PEERS];
    /* Password requests as events: LDAP answers and penalty timers (auth/requests.h). */
    struct auth_requests requests;
    int passdb_fd_watched;    /* passdb_fd() as registered in ev, or -1 */
    volatile sig_atomic_t *stop, *reload;  /* auth_server_run()'s */
    uint64_t accepted;      /* connections accepted so far */
    time_t refusal_logged;  /* when a refused peer was last logged */
    unsigned long refusals; /* refused since then */
};

/*
 * Set up srv on listen_fd (made non-blocking here). mail_user is the
 * configured mail user; peers must run as it or as the helper's own uid.
 * Returns 0, or -1 with errno (epoll).
 */
int auth_server_init(struct auth_server *srv, struct passdb *pdb, int listen_fd,
                     const char *mail_user);

/* After passdb_reconfigure(): new penalty settings, the new LDAP backend's fd. */
void auth_server_reconfigure(struct auth_server *srv);

/* Resolve the mail user again, after a config reload. */
void auth_server_set_mail_user(struct auth_server *srv, const char *mail_user);

/*
 * Serve until *stop or *reload is set by a signal handler. The signals that
 * set them must be blocked by the caller; they are let through only while
 * waiting (waitmask, for epoll_pwait), so a signal is never missed between
 * the check and the wait. Returns 0, or -1 if epoll fails.
 */
int auth_server_run(struct auth_server *srv, volatile sig_atomic_t *stop,
                    volatile sig_atomic_t *reload, const sigset_t *waitmask);

/*
 * For a clean exit: stop accepting, answer what the peers have already sent
 * (through auth/requests.h, like any request, LDAP's answers included),
 * and close everything.
 */
void auth_server_shutdown(struct auth_server *srv);

#endif
