/*
 * The master's children: the role table, fork and exec, reaping, respawn
 * with backoff, signalling. See master_state.h.
 */
#include "daemon/master/master_state.h"
#include "daemon/runtime/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/master/control.h"
#include "daemon/runtime/identity.h"
#include "daemon/runtime/listen.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/privdrop.h"
#include "daemon/runtime/trusted_dir.h"
#include "shm/credcache.h"
#include "shm/credcache_check.h"
#include "shm/index.h"
#include "shm/scoreboard.h"
#include "shm/stats.h"
#include "worker/tls.h"
#include "worker/worker.h"

static int one_helper(const struct config *cfg)
{
    (void)cfg;
    return 1;
}

static void enter_auth(struct master *m, struct child *c) __attribute__((noreturn));
static void enter_worker(struct master *m, struct child *c) __attribute__((noreturn));

static const struct role roles[] = {
    [ROLE_AUTH] = { "auth", one_helper, enter_auth, NULL, NULL },
    [ROLE_WORKER] = { "worker", config_worker_count, enter_worker, NULL, NULL },
    /* Started and moved by metrics_update(), not per generation; respawned like the rest. */
    [ROLE_METRICS] = { "metrics", metrics_count, metrics_enter, metrics_prepare,
                       metrics_forked },
    /* Started and moved by router_update(), like metrics. */
    [ROLE_ROUTER] = { "router", router_count, router_enter, NULL, router_forked },
};

void child_reset(struct master *m, struct child *c, int keep_auth_fd)
{
    sigset_t none;
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigaction(SIGCHLD, &dfl, NULL);
    sigaction(SIGHUP, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    sigemptyset(&none);
    /*
     * SIGUSR1 stays blocked: the master may send it (popctl kick/drain)
     * before a new worker has its signalfd, and its default action kills.
     */
    sigaddset(&none, SIGUSR1);
    sigprocmask(SIG_SETMASK, &none, NULL);
    control_forget(m->ctl);
    /* The metrics process takes its copies before this (metrics_enter). */
    if (m->metrics_listen_fd >= 0)
        close(m->metrics_listen_fd);
    if (m->metrics_feed_fd >= 0)
        close(m->metrics_feed_fd);
    if (m->metrics_child_end >= 0)
        close(m->metrics_child_end);
    /* The router takes its copy before this (router_enter). */
    if (m->router_listen_fd >= 0)
        close(m->router_listen_fd);
    stats_attach(m->stats, c->stats_slot);
    if (m->opts->pidfile_fd >= 0)
        close(m->opts->pidfile_fd);
    if (!keep_auth_fd && m->auth_fd >= 0)
        close(m->auth_fd);
    /* Only closed and freed here: the epoll set is the master's too (control_forget()). */
    ev_loop_free(m->ev);
    m->ev = NULL;
}

static void enter_auth(struct master *m, struct child *c)
{
    pid_t master = getppid();
    child_reset(m, c, 1);
    listen_set_close(&m->listeners);
    /* Out of the way of fds 3 and 4 before they are set up. */
    int stats_fd = m->stats != NULL && c->stats_slot >= 0
                       ? fcntl(stats_region_fd(m->stats), F_DUPFD_CLOEXEC, 5)
                       : -1;
    /* The helper finds its listening socket on fd 3 (see auth/main.c). */
    if (m->auth_fd != 3) {
        if (dup2(m->auth_fd, 3) == -1)
            log_fatal("auth: dup2: %s", strerror(errno));
        close(m->auth_fd);
    } else {
        int flags = fcntl(3, F_GETFD);
        fcntl(3, F_SETFD, flags & ~FD_CLOEXEC);
    }
    /* Its stats block is in the memfd on fd 4 (the mapping does not survive exec). */
    char slot[16];
    int stats_ok = stats_fd >= 0 && dup2(stats_fd, 4) == 4;
    snprintf(slot, sizeof(slot), "%d", stats_ok ? c->stats_slot : -1);
    if (privdrop_become(m->ids.auth_uid, m->ids.auth_gid) == -1)
        log_fatal("auth: cannot drop privileges to %s: %s", m->cfg->auth_user, strerror(errno));
    /*
     * The helper goes with the master (a kill -9 of the master must leave no
     * orphan holding auth.sock). Set after the drop, which clears it; exec
     * keeps it, fastpop-auth being neither set-uid nor file-capable.
     */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master)
        _exit(0);
    char *argv[] = { "fastpop-auth", "-c", (char *)m->opts->config_path, "--listen-fd", "3",
                     "--stats-slot", slot, m->opts->foreground ? "-F" : NULL, NULL };
    execv(m->helper_path, argv);
    log_fatal("auth: cannot run %s: %s", m->helper_path, strerror(errno));
}

static void enter_worker(struct master *m, struct child *c)
{
    child_reset(m, c, 0);
    if (m->stats != NULL)
        close(stats_region_fd(m->stats));   /* the mapping is all a worker needs */
    struct worker_setup ws = {
        .cfg = m->cfg,
        .index = c->index,
        .listen_fds = m->listeners.fd,
        .listen_count = m->listeners.count,
        .sb = m->sb,
        .uid = m->ids.mail_uid,
        .gid = m->ids.mail_gid,
        .auth_socket = m->auth_path,
        .log_stderr = m->opts->foreground,
        .tls = m->tls,
    };
    worker_main(&ws);
}

void spawn(struct master *m, struct child *c)
{
    const struct role *r = &roles[c->role];
    if (r->prepare != NULL && r->prepare(m, c) == -1) {
        schedule_respawn(m, c, 1.0);
        return;
    }
    c->stats_slot = m->stats != NULL ? stats_region_claim(m->stats) : -1;
    pid_t pid = fork();
    if (pid > 0)
        c->pid = pid;   /* for the forked hook */
    if (pid != 0 && r->forked != NULL)
        r->forked(m, c);
    if (pid == -1) {
        stats_region_release(m->stats, c->stats_slot);
        c->stats_slot = -1;
        log_error("cannot fork %s[%d]: %s; retrying", roles[c->role].name, c->index,
                  strerror(errno));
        schedule_respawn(m, c, 1.0);
        return;
    }
    if (pid == 0)
        roles[c->role].enter(m, c);
    c->pid = pid;
    c->started = clock_mono();
    log_debug("started %s[%d] pid %d", roles[c->role].name, c->index, (int)pid);
}

struct child *add_child(struct master *m, int role, int index)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        struct child *c = &m->children[i];
        if (!c->in_use) {
            memset(c, 0, sizeof(*c));
            c->in_use = 1;
            c->role = role;
            c->index = index;
            c->generation = m->generation;
            return c;
        }
    }
    return NULL;
}

int start_generation(struct master *m, int with_helper)
{
    for (size_t r = 0; r < sizeof(roles) / sizeof(roles[0]); r++) {
        if (r == ROLE_AUTH && !with_helper)
            continue;
        int n = roles[r].count(m->cfg);
        for (int i = 0; i < n; i++) {
            struct child *c = add_child(m, (int)r, i);
            if (c == NULL) {
                log_error("process table full: cannot start %s[%d]", roles[r].name, i);
                return -1;
            }
            spawn(m, c);
        }
    }
    return 0;
}

static const char *describe_exit(int status, char *out, size_t outlen)
{
    if (WIFEXITED(status))
        snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, outlen, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, outlen, "stopped (status 0x%x)", status);
    return out;
}

/* In a child that is the mail user: see index_prepare(). */
static int prepare_index_as_mail_user(void *dir)
{
    int reset;
    int rc = mbindex_prepare(dir, &reset);
    if (rc != 0) {
        log_error("mailbox index %s: %s; logins will scan their maildir", (char *)dir,
                  mdb_strerror(rc));
        return -1;
    }
    if (reset)
        log_warning("mailbox index %s was unreadable; started a new one", (char *)dir);
    return 0;
}

/* In a child that is the mail user, after a check that died of a fault. */
static int remove_index_as_mail_user(void *dir)
{
    int rc = mbindex_remove(dir);
    if (rc != 0)
        log_error("mailbox index %s: cannot remove it: %s", (char *)dir, mdb_strerror(rc));
    return rc == 0 ? 0 : -1;
}

/*
 * Ready the mailbox index for the workers: root makes state_dir/index (in
 * state_dir, which only root may write) and gives it to the mail user;
 * everything inside is then done by a child that has become that user,
 * so a symlink planted there can only lead to files the mail user may
 * touch anyway. An unreadable environment (a crash of the host with
 * MDB_NOSYNC) starts afresh: it is a cache. At start, and after a worker
 * faulted (workers that still have old files open go on with them, or
 * replace them themselves: mbindex_rebuild). Failing costs speed, not service.
 */
void index_prepare(struct master *m)
{
    char dir[CONFIG_PATH_MAX + 16];
    if (!m->cfg->index)
        return;
    snprintf(dir, sizeof(dir), "%s/%s", m->cfg->state_dir, INDEX_SUBDIR);
    int state_fd = open(m->cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (state_fd == -1 ||
        trusted_dir_give(state_fd, INDEX_SUBDIR, 0700, m->ids.mail_uid, m->ids.mail_gid) == -1) {
        log_error("mailbox index %s: %s; logins will scan their maildir", dir, strerror(errno));
        if (state_fd >= 0)
            close(state_fd);
        return;
    }
    close(state_fd);
    if (privdrop_run_as(m->ids.mail_uid, m->ids.mail_gid, prepare_index_as_mail_user, dir) == 0)
        return;
    int faulted = errno == EIO;
    log_error("mailbox index %s: cannot check it as %s: %s", dir, m->cfg->user,
              faulted ? "the check died" : strerror(errno));
    /*
     * LMDB trusts its pages: a page of garbage can kill the reader with
     * SIGSEGV, and did kill the checking child. Unread, the files go.
     */
    if (faulted &&
        privdrop_run_as(m->ids.mail_uid, m->ids.mail_gid, remove_index_as_mail_user, dir) == 0)
        log_warning("mailbox index %s removed; the workers start a new one", dir);
}

/* In a child that is auth_user: see cache_prepare(). 0 if the cache is sound. */
static int check_cache_as_auth_user(void *state_dir)
{
    int rc = credcache_check(state_dir);
    if (rc == 0)
        return 0;
    log_warning("credential cache %s/%s unreadable or not ours (%s); starting a new one",
                (char *)state_dir, CREDCACHE_DIR, mdb_strerror(rc));
    rc = credcache_remove(state_dir);
    if (rc != 0)
        log_error("credential cache %s/%s: cannot remove it: %s", (char *)state_dir,
                  CREDCACHE_DIR, strerror(rc));
    return -1;
}

static int remove_cache_as_auth_user(void *state_dir)
{
    return credcache_remove(state_dir) == 0 ? 0 : -1;
}

int cache_prepare(struct master *m)
{
    const char *state_dir = m->cfg->state_dir;
    int rc = privdrop_run_as(m->ids.auth_uid, m->ids.mail_gid, check_cache_as_auth_user,
                             (void *)state_dir);
    if (rc >= 0)
        return rc;   /* 1: the check replaced it, or logged why it could not */
    if (errno != EIO) {
        log_error("credential cache %s/%s: cannot check it: %s", state_dir, CREDCACHE_DIR,
                  strerror(errno));
        return 0;
    }
    /* The check itself faulted on the file: it goes unread (see index_prepare). */
    log_error("credential cache %s/%s: its check died; removing it", state_dir, CREDCACHE_DIR);
    return privdrop_run_as(m->ids.auth_uid, m->ids.mail_gid, remove_cache_as_auth_user,
                           (void *)state_dir) == 0;
}

/* Signals of a process that faulted, as opposed to one that was told to stop. */
static int died_of_fault(int status)
{
    if (!WIFSIGNALED(status))
        return 0;
    int sig = WTERMSIG(status);
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGABRT || sig == SIGILL || sig == SIGFPE;
}

void child_died(struct master *m, struct child *c, int status)
{
    char how[96];
    double lived = clock_mono() - c->started;
    pid_t pid = c->pid;

    describe_exit(status, how, sizeof(how));
    c->pid = 0;
    if (m->stats != NULL)
        stats_region_release(m->stats, c->stats_slot);
    c->stats_slot = -1;
    if (c->role == ROLE_WORKER) {
        unsigned freed = scoreboard_reap_owner(m->sb, pid);
        if (freed > 0)
            log_warning("worker[%d] pid %d left %u connection slots; released", c->index,
                        (int)pid, freed);
    }
    if (c->role == ROLE_METRICS)
        metrics_child_gone(m, c);
    if (c->role == ROLE_ROUTER)
        router_child_gone(m, c);
    if (m->stopping || c->retiring) {
        log_info("%s[%d] pid %d %s", roles[c->role].name, c->index, (int)pid, how);
        c->in_use = 0;
        return;
    }
    /* fastpop_respawns_total: a crash loop shows as a rate an alert can watch. */
    stats_region_count_respawn(m->stats, roles[c->role].name);
    /*
     * A worker that faulted may have read a damaged index (a page of garbage,
     * a file cut short while mapped): its replacement would fault on it too.
     * Checked, and replaced if damaged, as at a start, before the respawn.
     */
    if (c->role == ROLE_WORKER && died_of_fault(status))
        index_prepare(m);
    /*
     * The same for the credential cache, which the workers and the helper
     * read. A helper still running has the old files open: restarted, it
     * writes the new cache the workers will read.
     */
    if ((c->role == ROLE_WORKER || c->role == ROLE_AUTH) && died_of_fault(status) &&
        cache_prepare(m) == 1 && c->role != ROLE_AUTH)
        signal_children(m, ROLE_AUTH, SIGTERM);
    /*
     * Back off only from a child that fails on its own soon after its start
     * (a bad config, a missing file): restarting it at once would spin. One
     * killed with SIGKILL (the OOM killer, an operator, a crash test) did not
     * fail; it comes back at once, as does one that lived long enough.
     */
    int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (!killed)
        c->quick_deaths = lived < QUICK_DEATH_SECONDS ? c->quick_deaths + 1 : 0;
    double delay = 0.0;
    if (c->quick_deaths > 0 && !killed) {
        delay = BACKOFF_FIRST;
        for (int i = 1; i < c->quick_deaths && delay < BACKOFF_MAX; i++)
            delay *= 2;
        if (delay > BACKOFF_MAX)
            delay = BACKOFF_MAX;
    }
    schedule_respawn(m, c, delay);
    log_error("%s[%d] pid %d %s after %.1fs; respawning in %.1fs", roles[c->role].name,
              c->index, (int)pid, how, lived, delay);
}

void reap_children(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < MAX_CHILDREN; i++) {
            struct child *c = &m->children[i];
            if (c->in_use && c->pid == pid) {
                child_died(m, c, status);
                break;
            }
        }
    }
}

void signal_children(struct master *m, int role, int sig)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        struct child *c = &m->children[i];
        if (c->in_use && c->pid > 0 && (role < 0 || c->role == role) &&
            kill(c->pid, sig) == -1 && errno != ESRCH)
            log_error("cannot signal %s[%d] pid %d: %s", roles[c->role].name, c->index,
                      (int)c->pid, strerror(errno));
    }
}

int count_children(struct master *m, int role)
{
    int n = 0;
    for (int i = 0; i < MAX_CHILDREN; i++) {
        const struct child *c = &m->children[i];
        if (c->in_use && c->pid > 0 && (role < 0 || c->role == role))
            n++;
    }
    return n;
}

/* A child's respawn is due; a stop forgets the children that wait (begin_stop). */
static void respawn_due(struct ev_loop *ev, struct ev_timer *timer)
{
    struct master *m = timer->data;
    double now = ev_loop_now(ev);
    if (m->stopping)
        return;
    /* Every child that is due, as each timer's child is not known to it. */
    for (int i = 0; i < MAX_CHILDREN; i++) {
        struct child *c = &m->children[i];
        if (c->in_use && c->pid == 0 && !c->retiring && c->respawn_at <= now) {
            ev_timer_cancel(ev, &c->respawn);
            spawn(m, c);
        }
    }
}

void schedule_respawn(struct master *m, struct child *c, double delay)
{
    c->respawn_at = clock_mono() + delay;
    c->respawn.on_fire = respawn_due;
    c->respawn.data = m;
    /* No memory for it: the master's 60 s wake finds it (master_loop). */
    if (ev_timer_arm(m->ev, &c->respawn, c->respawn_at) == -1)
        log_error("%s[%d]: no memory for its respawn timer", roles[c->role].name, c->index);
}


const char *role_name(int role)
{
    return roles[role].name;
}
