/*
 * The master's side of a child that runs another program (fastpop-metrics,
 * fastpop-router): it binds the child's listening socket as root, forks it
 * like any other child (so it is respawned with the same backoff) and, in
 * the child, hands over the descriptors, drops privileges and execs. One
 * path, so the two programs cannot drift apart in what crosses the exec.
 */
#include "daemon/master/master_state.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "daemon/runtime/log.h"
#include "daemon/runtime/privdrop.h"

void exec_child_enter(struct master *m, struct child *c, const struct exec_child *x)
{
    pid_t master = getppid();
    int first_free = 3 + x->nfds;
    int moved[EXEC_CHILD_MAX_FDS];
    int ok = x->nfds <= EXEC_CHILD_MAX_FDS;
    /* Above the targets 3.., so that moving them below overwrites none of them. */
    for (int i = 0; ok && i < x->nfds; i++) {
        moved[i] = fcntl(x->fds[i], F_DUPFD_CLOEXEC, first_free);
        ok = moved[i] != -1;
    }
    child_reset(m, c, 0);
    listen_set_close(&m->listeners);
    for (int i = 0; ok && i < x->nfds; i++)
        ok = dup2(moved[i], 3 + i) == 3 + i;
    if (!ok)
        log_fatal("%s: cannot set up descriptors: %s", x->what, strerror(errno));
    /* Nothing else of the master's crosses the exec, whatever its flags. */
    close_range((unsigned)first_free, ~0U, 0);
    if (m->ids.privileged && x->uid == 0)
        log_fatal("%s: refusing to run as root", x->what);
    if (privdrop_become(x->uid, x->gid) == -1)
        log_fatal("%s: cannot drop privileges to %s: %s", x->what, x->user, strerror(errno));
    /* It holds a listening socket: it goes with the master (set after the drop, which clears it). */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master)
        _exit(0);
    execv(x->path, x->argv);
    log_fatal("%s: cannot run %s: %s", x->what, x->path, strerror(errno));
}

struct child *exec_child_start(struct master *m, int role, const struct exec_child_start *s)
{
    const struct config_listen *want = s->want;
    if (sibling_program(s->program, s->path, s->pathlen) == -1 || access(s->path, X_OK) == -1) {
        log_error("%s %s: %s: %s; %s is off", s->setting, want->spec, s->path, strerror(errno),
                  s->service);
        return NULL;
    }
    *s->listen_fd = listen_open(want, s->backlog);
    if (*s->listen_fd == -1) {
        log_error("%s %s: %s; %s is off", s->setting, want->spec, strerror(errno), s->service);
        return NULL;
    }
    struct child *c = add_child(m, role, 0);
    if (c == NULL) {
        log_error("process table full: %s is off", s->service);
        close(*s->listen_fd);
        *s->listen_fd = -1;
        return NULL;
    }
    spawn(m, c);
    return c;
}

void exec_child_retire(struct child **slot)
{
    struct child *c = *slot;
    *slot = NULL;
    if (c == NULL)
        return;
    if (c->pid == 0) {
        c->in_use = 0;   /* was waiting for a respawn */
        return;
    }
    c->retiring = 1;
    kill(c->pid, SIGTERM);
}
