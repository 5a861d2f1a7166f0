/*
 * The control socket: the master serves popctl on run_dir/control.sock.
 *
 * Access. The socket is mode 0660, owned by root (or the user the daemon
 * runs as) and the group control_group (default: root's group). Every
 * caller is checked again with SO_PEERCRED / SO_PEERGROUPS: read-only
 * verbs (status, stats, who, drain-status) need root, the daemon's own user or
 * membership of control_group; changing verbs (stats-reset, kick,
 * drain, undrain, reload, stop) need root, the daemon's own user or admin_group.
 * The wire protocol is in daemon/runtime/control_proto.h.
 */
#ifndef FASTPOP_CONTROL_H
#define FASTPOP_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/event_loop.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/control_proto.h"
#include "shm/stats.h"
#include "daemon/metrics/stats_render.h"

struct scoreboard;
struct control;

struct control_child {
    const char *role;      /* "auth", "worker" or "metrics" */
    int index;
    pid_t pid;
    int retiring;
};

/* What the control socket needs of the master (daemon/master/master.c). */
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
                             struct stats_region *stats, const struct control_hooks *hooks,
                             struct ev_loop *ev);
void control_close(struct control *ctl);
/* In a forked child: close the descriptors, leave the socket file and memory. */
void control_forget(struct control *ctl);


/*
 * The statistics document (also GET /metrics); -1 without a stats region.
 * shown (may be NULL) receives the numbers it was made of.
 */
int control_render_stats(struct control *ctl, enum stats_format f, enum stats_read how,
                         struct buf *out, struct stats_snapshot *shown);
/* The gauges beside the counters: connections, logged in, workers, draining. */
void control_gauges(struct control *ctl, struct stats_gauges *g);

#endif
