/*
 * The helper's password requests as events: each AUTH_MSG_PASS_REQUEST is
 * started (passdb_start), answered at once or when LDAP answers, and its
 * answer is held back by the brute-force penalty (auth/penalty.h) on a
 * timer of the event loop, never a sleep: other workers' requests, and the
 * same worker's, keep flowing meanwhile.
 *
 *  - A request from a blocked address is answered AUTH_FAIL without asking
 *    any password database, logged "auth failed ... reason=ip-blocked",
 *    counted against the user and the address like any failure, and held
 *    for auth_penalty_max_delay: a blocked address never guesses faster.
 *  - Otherwise the answer leaves at arrival + delay (the check's own time
 *    counts towards the delay), so with ldap_timeout and auth_penalty_max_delay
 *    both at most 12 s an answer always beats the worker's 15 s timeout.
 *  - Before any work, a request takes a token of its client group
 *    (auth/ratelimit.h); without one it is answered tempfail at once,
 *    unhashed, logged "auth tempfail ... reason=rate-limited" (the first of
 *    a flood at warning level, the rest at debug).
 *  - At most REQUESTS_MAX_INFLIGHT requests are in progress and
 *    REQUESTS_MAX_PENDING between arrival and answer (in progress or held);
 *    beyond that a request is answered tempfail at arrival, before any
 *    work. A request admitted always has room to be held, so no answer ever
 *    leaves before its delay because of load.
 *  - Every score is published to the workers' penalty view
 *    (shm/penalty_view.h), which a worker asks for (AUTH_MSG_VIEW) and
 *    consults before answering a login from its credential cache.
 *
 * SCRAM steps (auth/scram_server.h) are answered on the spot but under the
 * same penalty: a blocked address is refused at START and FINISH, and the
 * answer that ends an exchange (FINISH, or a START that fails) counts for
 * the address and the n= user and waits the same delay as a password's.
 * Answers leave through auth/answers.h, which drops an answer for a worker
 * that has reconnected meanwhile.
 */
#ifndef FASTPOP_AUTH_REQUESTS_H
#define FASTPOP_AUTH_REQUESTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth/answers.h"
#include "auth/passdb.h"
#include "auth/penalty.h"
#include "auth/protocol.h"
#include "auth/ratelimit.h"
#include "daemon/runtime/buf.h"
#include "daemon/runtime/config.h"
#include "shm/penalty_view.h"

#define REQUESTS_MAX_PEERS ANSWERS_MAX_PEERS
#define REQUESTS_MAX_INFLIGHT 2048
/*
 * Answers between arrival and sending: each held one costs its message (up to
 * IPC_MAX_MESSAGE) for up to auth_penalty_max_delay; 4,096 is 16 MiB at worst
 * and, at the 12 s maximum delay, 340 failed logins a second held in full.
 */
#define REQUESTS_MAX_PENDING 4096

struct request_inflight;

struct auth_requests {
    struct passdb *pdb;
    struct penalty penalty;
    int have_penalty;
    struct ratelimit rate;                /* helper work per client group (auth/ratelimit.h) */
    struct answers out;                   /* the way back to the workers (auth/answers.h) */
    struct request_inflight *inflight;    /* REQUESTS_MAX_INFLIGHT, free-listed */
    int free_head;
    int pending;                          /* admitted, not yet answered (reserve()) */
    int warned_full;
    struct penalty_view *view;            /* what the workers see; NULL if it failed */
    struct buf reply;
    pid_t peer_pid[REQUESTS_MAX_PEERS];   /* each connection's process (SO_PEERCRED) */
    char router_pid_path[CONFIG_PATH_MAX + sizeof(ROUTER_PID_NAME) + 1];
};

/*
 * Set up d for pdb (and register as pdb's done callback); held answers wait
 * on timers of ev. -1: ENOMEM.
 */
int requests_init(struct auth_requests *d, struct passdb *pdb, struct ev_loop *ev);
/* New penalty settings from pdb->cfg (after a reload); scores are kept. */
void requests_reconfigure(struct auth_requests *d);
/*
 * For a clean stop: wait up to max_seconds for the answers the password
 * databases still owe (LDAP; each is due within ldap_timeout), collecting
 * them as the loop would. requests_free() then sends them with the rest.
 */
void requests_drain(struct auth_requests *d, double max_seconds);
/* Send every held answer now, then free everything. */
void requests_free(struct auth_requests *d);

/*
 * slot's connection is fd, from process pid. Only the process named in
 * run_dir/ROUTER_PID_NAME (written by the master) may send the router's
 * mechanisms: they skip the credential cache.
 */
void requests_peer_open(struct auth_requests *d, int slot, int fd, pid_t pid);
/* Answers still to come for slot are dropped from now on. */
void requests_peer_closed(struct auth_requests *d, int slot);

/*
 * Read and handle up to burst datagrams from slot's socket. Returns 0 to keep
 * the peer, -1 to close it (EOF, malformed message, an answer it did not
 * take, error; logged except EOF).
 */
int requests_serve(struct auth_requests *d, int slot, int burst);

/* Milliseconds until the password databases need a poll, or -1 (held answers have timers). */
int requests_timeout_ms(const struct auth_requests *d);
/* Poll the password databases. */
void requests_run(struct auth_requests *d);

#endif
