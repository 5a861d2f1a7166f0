#include "daemon/master/master_state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/master/control.h"
#include "daemon/master/service_notify.h"
#include "daemon/runtime/identity.h"
#include "daemon/runtime/listen.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/privdrop.h"
#include "daemon/runtime/clock.h"
#include "shm/index.h"
#include "shm/scoreboard.h"
#include "shm/stats.h"
#include "worker/tls.h"
#include "worker/worker.h"

/*
 * The longest the loop sleeps with nothing due: a safety net (a respawn
 * timer that could not be armed, TLS ticket rotation), not a deadline.
 */
#define MASTER_IDLE_WAIT_MS 60000
/* While stopping, children are counted at least this often (a lost SIGCHLD costs no more). */
#define MASTER_STOP_WAIT_MS 200

static volatile sig_atomic_t got_sigchld, got_sighup, got_sigterm;

static void on_signal(int sig)
{
    if (sig == SIGCHLD)
        got_sigchld = 1;
    else if (sig == SIGHUP)
        got_sighup = 1;
    else
        got_sigterm = 1;
}

/* Only ends the wait: advance_stop() acts on the deadline before the next one. */
static void on_stop_deadline(struct ev_loop *ev, struct ev_timer *timer)
{
    (void)ev;
    (void)timer;
}

static void arm_stop_timer(struct master *m)
{
    m->stop_timer.on_fire = on_stop_deadline;
    m->stop_timer.data = m;
    /*
     * No memory for it: the short wait while stopping (MASTER_STOP_WAIT_MS)
     * still sees the deadline pass.
     */
    (void)ev_timer_arm(m->ev, &m->stop_timer, m->stop_deadline);
    /* Children are counted after each wait: SIGCHLD ends one, this bounds the rest. */
    ev_loop_set_max_wait(m->ev, MASTER_STOP_WAIT_MS);
}

static void begin_stop(struct master *m, int deadline)
{
    log_info("stopping: no new connections; idle sessions are closed, busy ones have %ds "
             "to finish", deadline);
    service_notify_stopping("stopping: finishing sessions");
    m->stopping = 1;
    m->stop_deadline = clock_mono() + deadline;
    arm_stop_timer(m);
    listen_set_close(&m->listeners);
    metrics_stop(m);
    router_shutdown(m);
    /* Children waiting for a respawn are simply forgotten. */
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (m->children[i].in_use && m->children[i].pid == 0) {
            ev_timer_cancel(m->ev, &m->children[i].respawn);
            m->children[i].in_use = 0;
        }
    }
    signal_children(m, ROLE_WORKER, SIGTERM);
}

/* Workers go first; the helper last, since in-flight logins still need it. */
static void advance_stop(struct master *m)
{
    if (!m->helper_stopped && count_children(m, ROLE_WORKER) == 0) {
        signal_children(m, ROLE_AUTH, SIGTERM);
        signal_children(m, ROLE_METRICS, SIGTERM);
        m->helper_stopped = 1;
    }
    if (!m->killed && clock_mono() >= m->stop_deadline) {
        int left = count_children(m, -1);
        if (left > 0)
            log_warning("shutdown deadline passed: killing %d remaining processes", left);
        signal_children(m, -1, SIGKILL);
        m->killed = 1;
        /* If even SIGKILL was refused (no CAP_KILL), do not wait forever. */
        m->stop_deadline = clock_mono() + 10.0;
        arm_stop_timer(m);
    } else if (m->killed && clock_mono() >= m->stop_deadline) {
        log_error("%d children survived SIGKILL; exiting anyway", count_children(m, -1));
        for (int i = 0; i < MAX_CHILDREN; i++)
            m->children[i].in_use = 0;
    }
}

/* 0, or -1 with the reason in err (also logged): the running configuration stays. */
static int apply_reload(struct master *m, char *err, size_t errlen)
{
    struct config next;
    struct identities ids;

    log_info("reloading %s", m->opts->config_path);
    if (config_load(m->opts->config_path, &next, err, errlen) == -1 ||
        identities_resolve(&next, &ids, err, errlen) == -1) {
        log_error("reload failed: %s; keeping the running configuration", err);
        return -1;
    }
    /* The sockets and files made at start belong to these: they need a restart. */
    if (strcmp(next.run_dir, m->cfg->run_dir) != 0 ||
        strcmp(next.pid_file, m->cfg->pid_file) != 0 || strcmp(next.user, m->cfg->user) != 0 ||
        strcmp(next.group, m->cfg->group) != 0 ||
        strcmp(next.auth_user, m->cfg->auth_user) != 0) {
        log_warning("reload: run_dir, pid_file, user, group and auth_user changes need a "
                    "restart; keeping the running ones");
        memcpy(next.run_dir, m->cfg->run_dir, sizeof(next.run_dir));
        memcpy(next.pid_file, m->cfg->pid_file, sizeof(next.pid_file));
        memcpy(next.user, m->cfg->user, sizeof(next.user));
        memcpy(next.group, m->cfg->group, sizeof(next.group));
        memcpy(next.auth_user, m->cfg->auth_user, sizeof(next.auth_user));
        /* metrics_user takes effect at the next metrics process: keep its lookup. */
        struct identities fresh = ids;
        ids = m->ids;
        ids.metrics_uid = fresh.metrics_uid;
        ids.metrics_gid = fresh.metrics_gid;
    }
    if ((unsigned)next.max_connections > scoreboard_capacity(m->sb)) {
        log_warning("reload: max_connections above %u needs a restart; using %u",
                    scoreboard_capacity(m->sb), scoreboard_capacity(m->sb));
        next.max_connections = (int)scoreboard_capacity(m->sb);
    }
    /* A broken certificate refuses the whole reload; the running one stays. */
    struct tls_context *tls = NULL;
    if (next.tls_cert_count > 0) {
        tls = tls_context_build(&next, m->tls, err, errlen);
        if (tls == NULL) {
            log_error("reload failed: %s; keeping the running configuration", err);
            return -1;
        }
    }
    if (listen_set_swap(&m->listeners, &next, LISTEN_BACKLOG) == -1) {
        snprintf(err, errlen, "%s: cannot open the new listeners (see the log)", next.path);
        tls_context_free(tls);
        return -1;
    }
    /* Retiring workers keep their own copy (made at fork): this one can go. */
    tls_context_free(m->tls);
    m->tls = tls;

    *m->cfg = next;
    m->ids = ids;
    if (!m->opts->foreground)
        log_open(m->cfg->log_target == CONFIG_LOG_SYSLOG ? LOG_TO_SYSLOG : LOG_TO_STDERR,
                 (enum log_level)m->cfg->log_level, "master", -1);
    else
        log_set_level((enum log_level)m->cfg->log_level);

    /* Old workers stop accepting and finish their sessions; new ones take over. */
    for (int i = 0; i < MAX_CHILDREN; i++) {
        struct child *c = &m->children[i];
        if (!c->in_use || c->role != ROLE_WORKER || c->retiring)
            continue;
        if (c->pid == 0) {
            c->in_use = 0;
            continue;
        }
        c->retiring = 1;
        kill(c->pid, SIGUSR2);
    }
    metrics_update(m);
    router_update(m);
    m->generation++;
    signal_children(m, ROLE_AUTH, SIGHUP);
    if (start_generation(m, 0) == -1)
        log_error("reload: not every new worker could be started");
    log_info("reloaded %s: generation %u, %d workers", m->opts->config_path, m->generation,
             config_worker_count(m->cfg));
    return 0;
}

/* apply_reload, told to the service manager: READY=1 again either way, or it waits forever. */
static int reload(struct master *m, char *err, size_t errlen)
{
    char status[600];
    service_notify_reloading("reloading the configuration");
    int rc = apply_reload(m, err, errlen);
    /* A reload does not end a drain: the status must not claim otherwise. */
    snprintf(status, sizeof(status), "%s; %s%s",
             scoreboard_master_draining(m->sb) ? "draining" : "serving",
             rc == 0 ? "reloaded" : "reload failed: ", rc == 0 ? "" : err);
    service_notify_ready(status);
    return rc;
}

/* What the control socket (daemon/master/control.c) may ask of the master. */
static int hook_reload(void *ctx, char *err, size_t errlen)
{
    struct master *m = ctx;
    if (m->stopping) {
        snprintf(err, errlen, "fastpopd is stopping");
        return -1;
    }
    return reload(m, err, errlen);
}

static void hook_stop(void *ctx, int deadline)
{
    struct master *m = ctx;
    if (!m->stopping)
        begin_stop(m, deadline);
}

static void hook_wake_workers(void *ctx)
{
    signal_children(ctx, ROLE_WORKER, SIGUSR1);
}

static int hook_children(void *ctx, struct control_child *out, int max)
{
    struct master *m = ctx;
    int n = 0;
    for (int i = 0; i < MAX_CHILDREN && n < max; i++) {
        const struct child *c = &m->children[i];
        if (c->in_use && c->pid > 0)
            out[n++] = (struct control_child){ role_name(c->role), c->index, c->pid,
                                               c->retiring };
    }
    return n;
}

static int hook_stopping(void *ctx)
{
    return ((struct master *)ctx)->stopping;
}

static int open_auth_socket(struct master *m)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(m->auth_path, sizeof(m->auth_path), "%s/auth.sock", m->cfg->run_dir);
    if (strlen(m->auth_path) >= sizeof(sun.sun_path)) {
        log_error("run_dir %s is too long for a socket path", m->cfg->run_dir);
        return -1;
    }
    strcpy(sun.sun_path, m->auth_path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    unlink(m->auth_path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 || listen(fd, 256) == -1) {
        log_error("cannot listen on %s: %s", m->auth_path, strerror(errno));
        close(fd);
        return -1;
    }
    /*
     * Only the workers' group may connect; the helper checks SO_PEERCRED too.
     * chmod first: once the file is the helper's, changing its mode would
     * need CAP_FOWNER, which a hardened unit may not grant.
     */
    if (chmod(m->auth_path, 0660) == -1 ||
        (geteuid() == 0 && chown(m->auth_path, m->ids.auth_uid, m->ids.mail_gid) == -1)) {
        log_error("cannot set the owner and mode of %s: %s", m->auth_path, strerror(errno));
        close(fd);
        return -1;
    }
    m->auth_fd = fd;
    return 0;
}

int sibling_program(const char *name, char *out, size_t outlen)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    if ((size_t)snprintf(out, outlen, "%s/%s", self, name) >= outlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static int find_helper(struct master *m)
{
    if (m->cfg->auth_helper[0]) {
        snprintf(m->helper_path, sizeof(m->helper_path), "%s", m->cfg->auth_helper);
    } else if (sibling_program("fastpop-auth", m->helper_path, sizeof(m->helper_path)) == -1) {
        return -1;
    }
    if (access(m->helper_path, X_OK) == -1) {
        log_error("auth helper %s: %s", m->helper_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Block the signals the loop handles; only its wait lets them in (unblocked). */
static void install_signals(sigset_t *unblocked)
{
    static const int handled[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT };
    struct sigaction sa = { .sa_handler = on_signal };
    sigset_t block;

    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        sigaddset(&block, handled[i]);
    sigprocmask(SIG_BLOCK, &block, unblocked);
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++) {
        sigdelset(unblocked, handled[i]);
        sigaction(handled[i], &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
}

/* The shared regions and stores, and the control socket; only the scoreboard is a must. */
static int open_shared_state(struct master *m)
{
    static const struct control_hooks hooks_template = {
        .reload = hook_reload, .stop = hook_stop, .wake_workers = hook_wake_workers,
        .children = hook_children, .stopping = hook_stopping,
    };
    const struct config *cfg = m->cfg;

    m->sb = scoreboard_create((unsigned)cfg->max_connections);
    if (m->sb == NULL) {
        log_error("cannot create the scoreboard: %s", strerror(errno));
        return -1;
    }
    /* Room for every child a reload can have alive at once (old and new generations). */
    m->stats = stats_region_create(MAX_CHILDREN);
    if (m->stats == NULL)
        log_error("cannot create the statistics region: %s; popctl stats stays empty",
                  strerror(errno));
    index_prepare(m);
    (void)cache_prepare(m);
    /* Without it popctl falls back to the pidfile; the service itself runs on. */
    struct control_hooks hooks = hooks_template;
    hooks.ctx = m;
    m->ctl = control_open(cfg, m->sb, m->stats, &hooks, m->ev);
    return 0;
}

/* Everything that can fail at start has been done: leave the terminal. */
static void leave_terminal(const struct master *m)
{
    if (m->opts->foreground || m->cfg->log_target != CONFIG_LOG_SYSLOG)
        return;
    log_open(LOG_TO_SYSLOG, (enum log_level)m->cfg->log_level, "master", -1);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull >= 0) {
        dup2(devnull, STDERR_FILENO);
        close(devnull);
    }
}

static void log_start_warnings(const struct master *m)
{
    const struct master_options *opts = m->opts;
    const struct config *cfg = m->cfg;

    if (config_login_warning(cfg) != NULL)
        log_warning("%s", config_login_warning(cfg));
    if (opts->fd_limit < opts->fd_wanted)
        log_warning("open file limit is %llu, below the %llu that max_connections=%d needs",
                    opts->fd_limit, opts->fd_wanted, cfg->max_connections);
    else
        log_info("open file limit: %llu (max_connections=%d)", opts->fd_limit,
                 cfg->max_connections);
}

/*
 * Everything before the loop: identities, sockets, TLS, shared state,
 * signals, the first generation of children; then tell the starting process
 * (fastpopd -D's parent) that we are up. -1 (logged) if the service cannot run.
 */
static int master_start(struct master *m, sigset_t *unblocked)
{
    const struct config *cfg = m->cfg;
    char err[512];

    m->auth_fd = -1;
    m->ev = ev_loop_new();
    if (m->ev == NULL) {
        log_error("epoll_create1: %s", strerror(errno));
        return -1;
    }
    ev_loop_set_max_wait(m->ev, MASTER_IDLE_WAIT_MS);
    m->metrics_listen_fd = m->metrics_feed_fd = m->metrics_child_end = -1;
    m->router_listen_fd = -1;
    if (service_notify_init() == -1)
        log_warning("NOTIFY_SOCKET names no usable unix socket: the service manager is not told");
    if (identities_resolve(cfg, &m->ids, err, sizeof(err)) == -1) {
        log_error("%s", err);
        return -1;
    }
    if (find_helper(m) == -1 || listen_set_open(&m->listeners, cfg, LISTEN_BACKLOG) == -1 ||
        open_auth_socket(m) == -1)
        return -1;
    if (cfg->tls_cert_count > 0) {
        m->tls = tls_context_build(cfg, NULL, err, sizeof(err));
        if (m->tls == NULL) {
            log_error("%s", err);
            return -1;
        }
    }
    if (open_shared_state(m) == -1)
        return -1;
    install_signals(unblocked);
    leave_terminal(m);
    log_start_warnings(m);
    if (start_generation(m, 1) == -1)
        return -1;
    metrics_update(m);
    router_update(m);
    log_info("fastpopd %s started: %d workers, auth helper %s", FASTPOP_VERSION,
             config_worker_count(cfg), m->helper_path);
    service_notify_ready("serving");
    if (m->opts->ready_fd >= 0) {
        if (write(m->opts->ready_fd, "1", 1) != 1)
            log_warning("could not tell the starting process we are ready");
        close(m->opts->ready_fd);
    }
    return 0;
}

/*
 * Before each wait of the loop: signals are only flags (they get in only
 * while the loop waits, epoll_pwait), acted on here; a stop advances here
 * and ends the loop when every child has gone.
 */
static void before_wait(struct ev_loop *ev, void *arg)
{
    struct master *m = arg;
    char err[512];

    if (got_sigchld) {
        got_sigchld = 0;
        reap_children(m);
    }
    if (got_sigterm && !m->stopping) {
        got_sigterm = 0;
        begin_stop(m, m->cfg->shutdown_timeout);
    }
    if (got_sighup) {
        got_sighup = 0;
        if (!m->stopping)
            reload(m, err, sizeof(err));
    }
    tls_context_tick(m->tls, time(NULL));
    if (m->stopping) {
        advance_stop(m);
        if (count_children(m, -1) == 0)
            ev_loop_stop(ev);
    }
}

/* Until every child has gone after a stop; everything happens in callbacks and before_wait(). */
static void master_loop(struct master *m, const sigset_t *unblocked)
{
    ev_loop_set_wait_mask(m->ev, unblocked);
    ev_loop_set_before_wait(m->ev, before_wait, m);
    if (ev_loop_run(m->ev) == -1)
        log_fatal("epoll_wait: %s", strerror(errno));
}

static void master_finish(struct master *m)
{
    metrics_stop(m);
    router_stop(m);
    control_close(m->ctl);
    if (m->auth_fd >= 0) {
        close(m->auth_fd);
        unlink(m->auth_path);
    }
    scoreboard_destroy(m->sb);
    stats_region_destroy(m->stats);
    ev_loop_free(m->ev);
    m->ev = NULL;
    log_info("stopped");
}

int master_run(const struct master_options *opts, struct config *cfg)
{
    static struct master master;
    struct master *m = &master;
    sigset_t unblocked;

    m->opts = opts;
    m->cfg = cfg;
    if (master_start(m, &unblocked) == -1)
        return 1;
    master_loop(m, &unblocked);
    master_finish(m);
    return 0;
}
