/*
 * The control socket: the master serves popctl on run_dir/control.sock.
 *
 * Access. The socket is mode 0660, owned by root (or the user the daemon
 * runs as) and the group control_group (default: root's group). Every
 * caller is checked again with SO_PEERCRED / SO_PEERGROUPS: read-only
 * verbs (status, stats, who, drain-status) need root, the daemon's own user or
 * membership of control_group; changing verbs (stats-reset, kick,
 * drain, undrain, reload, stop) need root, the daemon's own user or admin_group.
 *
 * Protocol, version 1. SOCK_SEQPACKET; every message is one datagram in
 * the one IPC layer's format (daemon/ipc.h: header {u32 type, u32 id},
 * then u32 and string fields), at most IPC_MAX_MESSAGE bytes.
 *   request   CONTROL_REQUEST  u32 version (1), str verb, u32 argc, argc x str
 *             (verb arguments; options travel as "name=value")
 *   replies   CONTROL_ROW      u32 n, n x (str key, str value): one record,
 *                              zero or more of them (a who line, the status)
 *             CONTROL_END      u32 status (enum control_status), str message
 * Replies carry the request's id. A client may send further requests on
 * the same connection; each gets its rows and one END. A request that
 * does not decode, or of another version, gets END CONTROL_BAD and the
 * connection is closed. Fields are added to ROW records, never renamed,
 * within one version.
 *
 * Verbs (arguments):
 *   stats [format=text|json|prometheus]
 *                               rows {"text": piece}: the pieces, joined, are
 *                               the document (shm/stats_render.h)
 *   stats-reset [format=...]    the same, then counting starts anew (a
 *                               changing verb; /metrics is never reset)
 *   status                      version, pid, uptime, config, workers, helper,
 *                               draining, stopping, sessions, metrics (the
 *                               metrics process's pid, "-" for none)
 *   who [USER|IP[/PREFIX]]      one row per session
 *   kick USER|IP[/PREFIX]       END message "N": sessions told to end
 *   drain [deadline=S] [message=TEXT]
 *   drain-status                draining, sessions, logged_in, cut, deadline_left,
 *                               idle_limit (drain_idle_timeout)
 *   undrain
 *   reload                      END CONTROL_FAILED with "file:line: ..." if refused
 *   stop [deadline=S]
 *
 * Caveats: replies are written with a short send timeout; a client that
 * does not read them is dropped, never waited for.
 */
#ifndef FASTPOP_CONTROL_H
#define FASTPOP_CONTROL_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

#include "daemon/buf.h"
#include "daemon/config.h"
#include "shm/stats.h"
#include "shm/stats_render.h"

struct scoreboard;
struct control;

/* A stats document travels in rows of at most this many bytes of text. */
#define CONTROL_STATS_PIECE 3000
#define CONTROL_STATS_MAX (1024 * 1024)

#define CONTROL_VERSION 1
#define CONTROL_SOCKET_NAME "control.sock"

enum control_message {
    CONTROL_REQUEST = 0x43544c01,
    CONTROL_ROW = 0x43544c02,
    CONTROL_END = 0x43544c03,
};

enum control_status {
    CONTROL_OK = 0,
    CONTROL_FAILED = 1,    /* the verb ran and did not succeed (a bad config on reload) */
    CONTROL_DENIED = 2,    /* the caller may not use this verb */
    CONTROL_BAD = 3,       /* unknown verb, bad arguments, bad message */
};

struct control_child {
    const char *role;      /* "auth", "worker" or "metrics" */
    int index;
    pid_t pid;
    int retiring;
};

/* What the control socket needs of the master (daemon/master.c). */
struct control_hooks {
    void *ctx;
    /* 0, or -1 with the reason ("file:line: message") in err. */
    int (*reload)(void *ctx, char *err, size_t errlen);
    void (*stop)(void *ctx, int deadline_seconds);
    /* SIGUSR1 to every worker: look at the scoreboard's flags now. */
    void (*wake_workers)(void *ctx);
    /* Fill out with the running children; returns how many. */
    int (*children)(void *ctx, struct control_child *out, int max);
    int (*stopping)(void *ctx);
};

/*
 * Listen on cfg->run_dir/control.sock. cfg must stay valid (the master
 * reloads into the same struct). NULL after logging the reason once.
 */
struct control *control_open(const struct config *cfg, struct scoreboard *sb,
                             struct stats_region *stats, const struct control_hooks *hooks);
void control_close(struct control *ctl);
/* In a forked child: close the descriptors, leave the socket file and memory. */
void control_forget(struct control *ctl);

/* The descriptors to poll; returns how many were written (at most max). */
int control_pollfds(const struct control *ctl, struct pollfd *pfd, int max);
/* Serve what poll reported on the descriptors control_pollfds() gave. */
void control_handle(struct control *ctl, const struct pollfd *pfd, int n);

/*
 * The statistics document (also GET /metrics); -1 without a stats region.
 * shown (may be NULL) receives the numbers it was made of.
 */
int control_render_stats(struct control *ctl, enum stats_format f, enum stats_read how,
                         struct buf *out, struct stats_snapshot *shown);
/* The gauges beside the counters: connections, logged in, workers, draining. */
void control_gauges(struct control *ctl, struct stats_gauges *g);

/* Seconds until control_tick() has work (a drain deadline), or -1. */
double control_next_wake(const struct control *ctl, double now);
/* Enforce a drain deadline that has passed (monotonic now). */
void control_tick(struct control *ctl, double now);

#endif
