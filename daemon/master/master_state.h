/*
 * The master's state and its child bookkeeping, shared by master.c (the
 * loop, reload, stop, control hooks) and master_children.c (the role table,
 * fork, reap, respawn). Private to fastpopd: nothing else includes this.
 */
#ifndef FASTPOP_MASTER_STATE_H
#define FASTPOP_MASTER_STATE_H

#include <limits.h>
#include <sys/types.h>

#include "daemon/runtime/config.h"
#include "daemon/runtime/event_loop.h"
#include "daemon/runtime/identity.h"
#include "daemon/runtime/listen.h"
#include "daemon/master/master.h"
#include "daemon/runtime/limits.h"   /* MAX_CHILDREN */

#define LISTEN_BACKLOG 1024
/* A child that dies sooner than this after its start counts as crash looping. */
#define QUICK_DEATH_SECONDS 10.0
#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 30.0

struct master;
struct child;
struct control;
struct scoreboard;
struct stats_region;
struct tls_context;

/* Process roles are data: the master walks this table to fork and respawn. */
struct role {
    const char *name;
    int (*count)(const struct config *cfg);
    void (*enter)(struct master *m, struct child *c) __attribute__((noreturn));
    /* Optional: before the fork (-1: not now, retried later); after it, in the master. */
    int (*prepare)(struct master *m, struct child *c);
    void (*forked)(struct master *m, struct child *c);
};

enum { ROLE_AUTH, ROLE_WORKER, ROLE_METRICS, ROLE_ROUTER };

struct child {
    int      in_use;
    int      role;
    int      index;
    pid_t    pid;           /* 0 while waiting to be (re)spawned */
    unsigned generation;
    int      retiring;      /* replaced by a reload: finishing its sessions */
    int      quick_deaths;
    double   started;
    double   respawn_at;
    struct ev_timer respawn;  /* armed at respawn_at while it waits (schedule_respawn) */
    int      stats_slot;    /* its block of the stats region, -1 for none */
};

struct master {
    const struct master_options *opts;
    struct config *cfg;
    struct identities ids;
    struct listen_set listeners;
    int auth_fd;
    char auth_path[CONFIG_PATH_MAX + 16];
    char helper_path[PATH_MAX];
    struct scoreboard *sb;
    struct stats_region *stats;     /* NULL if it could not be made: nothing is counted */
    struct control *ctl;            /* NULL if the control socket could not be made */
    /* GET /metrics (daemon/master/master_metrics.c): served by a child, never here. */
    int metrics_listen_fd;          /* metrics_listen bound by the master; -1 when off */
    struct config_listen metrics_addr;
    uid_t metrics_uid;              /* who the running metrics process is */
    int metrics_feed_fd;            /* the master's end of the socketpair; -1 none */
    int metrics_child_end;          /* the child's end, from prepare until the fork */
    struct child *metrics_child;    /* the metrics process serving now, or NULL */
    char metrics_path[PATH_MAX];    /* fastpop-metrics beside fastpopd */
    /* nginx's auth_http (daemon/master/master_router.c): served by a child, never here. */
    int router_listen_fd;           /* router_listen bound by the master; -1 when off */
    struct child *router_child;     /* the router serving now, or NULL */
    char router_key[2 * CONFIG_PATH_MAX]; /* the settings it was started with */
    char router_path[PATH_MAX];     /* fastpop-router beside fastpopd */
    struct tls_context *tls;        /* shared by every worker forked from now on */
    struct child children[MAX_CHILDREN];
    unsigned generation;
    int stopping;
    int helper_stopped;
    int killed;
    double stop_deadline;
    struct ev_timer stop_timer;     /* armed at stop_deadline while stopping */
    struct ev_loop *ev;             /* the master's one loop (daemon/runtime/event_loop.h) */
    struct ev_io metrics_feed_io;   /* metrics_feed_fd in ev */
};


/* The role table: name of a role, for logs. */
const char *role_name(int role);
void spawn(struct master *m, struct child *c);
struct child *add_child(struct master *m, int role, int index);
int start_generation(struct master *m, int with_helper);
void child_died(struct master *m, struct child *c, int status);
void reap_children(struct master *m);
void signal_children(struct master *m, int role, int sig);
int count_children(struct master *m, int role);
/* c waits delay seconds before it is spawned again (a timer of m->ev). */
void schedule_respawn(struct master *m, struct child *c, double delay);
void index_prepare(struct master *m);
/* out = name in the directory of the running fastpopd (fastpop-auth, fastpop-metrics). */
int sibling_program(const char *name, char *out, size_t outlen);
/*
 * Check the credential cache as auth_user and replace it if damaged or not
 * ours (shm/credcache_check.h): before the helper starts, and after a worker
 * or the helper faulted. 1 if it was replaced.
 */
int cache_prepare(struct master *m);
/* In a new child: signals back to normal, nothing of the master's left open. */
void child_reset(struct master *m, struct child *c, int keep_auth_fd);

/*
 * A child that runs another program (daemon/master/master_exec_child.c): the
 * metrics process and the router.
 */
#define EXEC_CHILD_MAX_FDS 2
struct exec_child {
    const char *what;        /* its role, for the log */
    const int *fds;          /* the master's descriptors it gets as 3, 4, ... */
    int nfds;                /* at most EXEC_CHILD_MAX_FDS */
    uid_t uid;
    gid_t gid;
    const char *user;        /* the uid's name, for the log */
    const char *path;        /* the program */
    char **argv;
};
/* In the new child: descriptors in place, privileges dropped, then exec. */
void exec_child_enter(struct master *m, struct child *c, const struct exec_child *x)
    __attribute__((noreturn));
struct exec_child_start {
    const char *program;     /* its name beside fastpopd */
    char *path;              /* out: where it is */
    size_t pathlen;
    const char *setting;     /* "metrics_listen", for the log */
    const char *service;     /* "/metrics": what is off when it cannot start */
    const struct config_listen *want;
    int backlog;
    int *listen_fd;          /* out: the bound socket, -1 when it could not start */
};
/* Bind, add the child and fork it; NULL (logged) if any of it fails. */
struct child *exec_child_start(struct master *m, int role, const struct exec_child_start *s);
/* The child in *slot (if any) finishes; a new one is not started. */
void exec_child_retire(struct child **slot);

/* /metrics (daemon/master/master_metrics.c). */
int metrics_count(const struct config *cfg);
int metrics_prepare(struct master *m, struct child *c);
void metrics_forked(struct master *m, struct child *c);
void metrics_enter(struct master *m, struct child *c) __attribute__((noreturn));
/* metrics_listen as the configuration has it now: opened, moved or closed. */
void metrics_update(struct master *m);
/* Stopping: no new metrics process; the running one ends with the helper. */
void metrics_stop(struct master *m);
/* The metrics process c has exited. */
void metrics_child_gone(struct master *m, struct child *c);


/* The router for nginx's auth_http (daemon/master/master_router.c), like /metrics. */
int router_count(const struct config *cfg);
void router_enter(struct master *m, struct child *c) __attribute__((noreturn));
/* router_listen and its settings as the configuration has them now. */
void router_update(struct master *m);
/* Close router_listen (a child has its copy). */
void router_stop(struct master *m);
/* Stopping: the router goes now, so nginx stops sending logins here. */
void router_shutdown(struct master *m);
void router_child_gone(struct master *m, struct child *c);
/* After the fork: run_dir/ROUTER_PID_NAME names the new router for the helper. */
void router_forked(struct master *m, struct child *c);

#endif
