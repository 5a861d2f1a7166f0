/*
 * The master's state and its child bookkeeping, shared by master.c (the
 * loop, reload, stop, control hooks) and master_children.c (the role table,
 * fork, reap, respawn). Private to fastpopd: nothing else includes this.
 */
#ifndef FASTPOP_MASTER_STATE_H
#define FASTPOP_MASTER_STATE_H

#include <limits.h>
#include <sys/types.h>

#include "daemon/config.h"
#include "daemon/identity.h"
#include "daemon/listen.h"
#include "daemon/master.h"

#define MAX_CHILDREN 1024
#define LISTEN_BACKLOG 1024
/* A child that dies sooner than this after its start counts as crash looping. */
#define QUICK_DEATH_SECONDS 10.0
#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 30.0

struct master;
struct child;
struct control;
struct metrics_http;
struct scoreboard;
struct stats_region;
struct tls_context;

/* Process roles are data: the master walks this table to fork and respawn. */
struct role {
    const char *name;
    int (*count)(const struct config *cfg);
    void (*enter)(struct master *m, struct child *c) __attribute__((noreturn));
};

enum { ROLE_AUTH, ROLE_WORKER };

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
    struct metrics_http *metrics;   /* GET /metrics, when metrics_listen is set */
    struct tls_context *tls;        /* shared by every worker forked from now on */
    struct child children[MAX_CHILDREN];
    unsigned generation;
    int stopping;
    int helper_stopped;
    int killed;
    double stop_deadline;
};


double now_seconds(void);
/* The role table: name of a role, for logs. */
const char *role_name(int role);
void spawn(struct master *m, struct child *c);
struct child *add_child(struct master *m, int role, int index);
int start_generation(struct master *m, int with_helper);
void child_died(struct master *m, struct child *c, int status);
void reap_children(struct master *m);
void signal_children(struct master *m, int role, int sig);
int count_children(struct master *m, int role);
void respawn_due(struct master *m, double now);
void index_prepare(struct master *m);

#endif
