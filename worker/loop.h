/*
 * The worker's event loop state and the epoll plumbing every event source
 * (listeners, connections, the auth client, signals) shares. Sources embed a
 * struct loop_handler first; epoll hands it back with the events.
 */
#ifndef FASTPOP_LOOP_H
#define FASTPOP_LOOP_H

#include <stdint.h>
#include <sys/types.h>

#include "daemon/config.h"
#include "shm/scoreboard.h"

struct loop;
struct conn;
struct auth_client;

struct loop_handler {
    void (*on_event)(struct loop *lp, struct loop_handler *h, uint32_t events);
};

struct loop {
    const struct config *cfg;
    int index;
    pid_t pid;
    int epfd;
    struct scoreboard *sb;
    struct conn *idle_head, *idle_tail;  /* least recently active first */
    struct conn *linger_head, *linger_tail; /* QUIT answered, waiting for the client's FIN */
    struct conn *closed;                 /* closed this iteration, freed after it */
    unsigned conn_count;
    int retiring;                        /* no new connections (reload or stop) */
    int stopping;                        /* shutdown: also close idle sessions */
    struct auth_client *auth;
};

int loop_watch(struct loop *lp, int fd, uint32_t events, struct loop_handler *h);
int loop_modify(struct loop *lp, int fd, uint32_t events, struct loop_handler *h);
void loop_unwatch(struct loop *lp, int fd);
/* Monotonic seconds. */
double loop_now(void);

#endif
