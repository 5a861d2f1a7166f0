/*
 * A worker: one single-threaded epoll loop serving thousands of POP3
 * connections. Forked by the master with the listeners and the scoreboard
 * already in place; it drops privileges first thing and never returns.
 *
 * SIGUSR2 asks it to retire (after a reload): stop accepting, let sessions
 * run to their end, exit. SIGTERM asks it to stop: the same, but sessions
 * between commands are told -ERR [SYS/TEMP] and closed at once.
 */
#ifndef FASTPOP_WORKER_H
#define FASTPOP_WORKER_H

#include <sys/types.h>

#include "daemon/runtime/config.h"
#include "shm/scoreboard.h"

struct tls_context;

struct worker_setup {
    const struct config *cfg;
    int index;
    const int *listen_fds;
    int listen_count;
    struct scoreboard *sb;
    uid_t uid;
    gid_t gid;
    const char *auth_socket;   /* the helper's SOCK_SEQPACKET path */
    int log_stderr;            /* the master runs in the foreground */
    struct tls_context *tls;   /* built by the master before fork; NULL without certificates */
};

void worker_main(const struct worker_setup *ws) __attribute__((noreturn));

#endif
