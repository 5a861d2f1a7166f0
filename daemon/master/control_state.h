/*
 * The control socket's insides, shared by control.c (the socket, callers,
 * requests) and control_verbs.c (what each verb does). Private to
 * fastpopd's master: nothing else includes this.
 */
#ifndef FASTPOP_CONTROL_STATE_H
#define FASTPOP_CONTROL_STATE_H

#include <sys/types.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/event_loop.h"
#include "daemon/master/control.h"
#include "daemon/runtime/limits.h"   /* MAX_CHILDREN */

/* popctl connects, asks, and goes: a handful at a time is plenty. */
#define CONTROL_MAX_CLIENTS 16
#define CONTROL_MAX_ARGS 8
#define CONTROL_ARG_MAX 256
/* How long one reply message may wait for room in a slow client's socket. */
#define CONTROL_SEND_WAIT_MS 1000

struct control_client {
    struct ev_io io;       /* first: the loop hands it back */
    int fd;                /* -1: free */
    int may_read;
    int may_change;
};

struct control {
    const struct config *cfg;
    struct scoreboard *sb;
    struct stats_region *stats;
    struct control_hooks hooks;
    int listen_fd;
    struct ev_loop *ev;    /* the master's */
    struct ev_io listen_io;
    struct ev_timer drain_timer;  /* armed at drain_deadline while it is set */
    char path[CONFIG_PATH_MAX + 32];
    gid_t socket_gid;
    struct control_client clients[CONTROL_MAX_CLIENTS];
    double started;        /* monotonic */
    time_t started_wall;   /* the same moment, for fastpop_start_time_seconds */
    /* The drain in progress: its deadline, and how many sessions it cut. */
    int drain_deadline_set;
    double drain_deadline;
    unsigned drain_cut;
};

struct reply {
    struct control *ctl;
    int fd;
    uint32_t id;
    struct buf b;
    int failed;            /* a send failed: the client is dropped */
};

struct ctl_verb {
    const char *name;
    int changes;           /* needs root, the daemon's user or admin_group */
    int (*run)(struct reply *r, int argc, char **argv);
};

/* One record of the answer: keys and values alternate, NULL ends the list. */
void control_reply_row(struct reply *r, const char *const *kv);
/* The answer's end with its status; returns status. */
int control_reply_end(struct reply *r, enum control_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The verbs, ended by a NULL name (control_verbs.c). */
extern const struct ctl_verb control_verbs[];

#endif
