/*
 * The master process: binds, forks the auth helper and the workers from a
 * table of roles, supervises them (respawn with backoff), reloads on SIGHUP
 * and stops gracefully on SIGTERM. It never touches mail or passwords.
 */
#ifndef FASTPOP_MASTER_H
#define FASTPOP_MASTER_H

#include "daemon/runtime/config.h"

struct master_options {
    const char *config_path;   /* absolute */
    int foreground;            /* -F: stay attached, log to stderr */
    int ready_fd;              /* written once listeners and children are up; -1 none */
    int pidfile_fd;            /* locked pidfile, closed in children; -1 none */
    unsigned long long fd_limit;   /* RLIMIT_NOFILE obtained */
    unsigned long long fd_wanted;  /* what max_connections needs */
};

/* Runs until stopped; returns the process exit status. */
int master_run(const struct master_options *opts, struct config *cfg);

#endif
