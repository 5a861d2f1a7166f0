/*
 * The helper's answers on their way back to the workers (auth/requests.h):
 * sent now, or held until their time on the event loop's timer (the
 * brute-force penalty's delay), never a sleep. Each worker connection has a
 * slot; a slot's generation changes when its connection closes, so an answer
 * for a worker that has reconnected meanwhile is dropped, never sent to the
 * new connection. A worker that does not take an answer (its socket is full)
 * is never waited for: its connection is shut down and marked cut.
 */
#ifndef FASTPOP_AUTH_ANSWERS_H
#define FASTPOP_AUTH_ANSWERS_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/event_loop.h"

/* Worker connections: one per worker process (auth/socket_server.h). */
#define ANSWERS_MAX_PEERS 256

struct held_answer;

/* A held answer has left (sent, or dropped for a closed connection). */
typedef void answers_released_fn(void *arg);

struct answers {
    int fd[ANSWERS_MAX_PEERS];            /* -1: no connection */
    uint32_t gen[ANSWERS_MAX_PEERS];
    /* 1: an answer could not be sent; the connection is shut down and read no more. */
    unsigned char cut[ANSWERS_MAX_PEERS];
    struct held_answer **held;            /* max_held slots; each has its timer on ev */
    int nheld, max_held;
    struct ev_loop *ev;
    answers_released_fn *released;
    void *released_arg;
};

/*
 * Room for max_held answers held at once, each on its own timer of ev;
 * released(arg) runs when a held answer leaves on its timer. -1: ENOMEM.
 */
int answers_init(struct answers *a, int max_held, struct ev_loop *ev,
                 answers_released_fn *released, void *arg);
/* Send every held answer now (to the connections still open), then free. */
void answers_free(struct answers *a);

void answers_peer_open(struct answers *a, int slot, int fd);
/* Answers still to come for slot are dropped from now on. */
void answers_peer_closed(struct answers *a, int slot);

/* Send msg to slot now; a connection that does not take it is cut (logged). */
void answers_send(struct answers *a, int slot, const void *msg, size_t len);
/* The same, passing the descriptor passfd along (SCM_RIGHTS). */
void answers_send_fd(struct answers *a, int slot, const struct buf *msg, int passfd);

/*
 * Send msg to slot at time at (monotonic seconds): now if it is due, else
 * held. Dropped, and 0 returned, if slot's generation is no longer gen.
 * Returns 1 when sent or dropped, 0 when held, -1 when it cannot be held
 * (no room, no memory; logged): it is dropped then, never sent early.
 */
int answers_send_at(struct answers *a, int slot, uint32_t gen, double at, double now,
                    const void *msg, size_t len);

/* Send every held answer now, due or not (a clean stop). Returns how many left. */
int answers_flush_all(struct answers *a);

#endif
