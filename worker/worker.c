#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/listen.h"
#include "daemon/log.h"
#include "daemon/privdrop.h"
#include "worker/auth_client.h"
#include "worker/conn.h"
#include "worker/loop.h"

/* Accepting in bursts keeps a connection storm from starving existing sessions. */
#define ACCEPT_BURST 64
#define MAX_EVENTS 256

struct listener {
    struct loop_handler io;
    int fd;
};

struct signal_source {
    struct loop_handler io;
    int fd;
};

static struct listener listeners[CONFIG_MAX_LISTEN];
static int listener_count;
/*
 * Connections this worker may hold: each can need a socket and an open
 * message. At the cap it stops watching the listeners, so the kernel wakes
 * the other workers instead; below 90% it watches them again.
 */
static unsigned conn_cap;
static int accept_paused;
/* A descriptor held in reserve: freed to accept-and-refuse when out of fds. */
static int reserve_fd = -1;

static void refuse(struct loop *lp, int fd, const char *ip, const char *limit, int value)
{
    char msg[160];
    int n = snprintf(msg, sizeof(msg), "-ERR [SYS/TEMP] %s\r\n",
                     strcmp(limit, "max_connections_per_ip") == 0
                         ? "Too many connections from your address, try again later"
                         : "Server busy, try again later");
    /* A fresh socket has room for one short line; if not, the client just sees a close. */
    ssize_t ignored = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    close(fd);
    (void)lp;
    log_info("session user=- ip=%s reason=refused limit=%s max=%d", ip, limit, value);
}

static void accept_out_of_fds(struct loop *lp, int listen_fd)
{
    if (reserve_fd == -1)
        return;
    close(reserve_fd);
    reserve_fd = -1;
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        refuse(lp, fd, "?", "open-files", 0);
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    log_warning("out of file descriptors: refusing connections (raise the open file limit "
                "or lower max_connections)");
}

static void on_listener(struct loop *lp, struct loop_handler *h, uint32_t events)
{
    struct listener *l = (struct listener *)h;
    (void)events;

    for (int i = 0; i < ACCEPT_BURST && !lp->retiring && lp->conn_count < conn_cap; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EMFILE || errno == ENFILE)
                accept_out_of_fds(lp, l->fd);
            else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warning("accept: %s", strerror(errno));
            return;
        }
        char ip[48];
        listen_format_ip((struct sockaddr *)&peer, ip, sizeof(ip));
        enum scoreboard_refusal why;
        int slot = scoreboard_conn_open(lp->sb, lp->pid, (struct sockaddr *)&peer,
                                        (unsigned)lp->cfg->max_connections,
                                        (unsigned)lp->cfg->max_connections_per_ip, &why);
        if (slot == -1) {
            if (why == SB_LIMIT_PER_IP)
                refuse(lp, fd, ip, "max_connections_per_ip", lp->cfg->max_connections_per_ip);
            else
                refuse(lp, fd, ip, "max_connections", lp->cfg->max_connections);
            continue;
        }
        if (conn_new(lp, fd, (struct sockaddr *)&peer, slot) == -1) {
            log_error("cannot set up a connection from %s: %s", ip, strerror(errno));
            scoreboard_conn_close(lp->sb, slot);
            close(fd);
        }
    }
}

static void watch_listeners(struct loop *lp, int on)
{
    for (int i = 0; i < listener_count; i++) {
        if (on) {
            /* EPOLLEXCLUSIVE: one worker wakes per new connection, not all of them. */
            if (loop_watch(lp, listeners[i].fd, EPOLLIN | EPOLLEXCLUSIVE, &listeners[i].io) == -1)
                log_fatal("epoll_ctl listener: %s", strerror(errno));
        } else {
            loop_unwatch(lp, listeners[i].fd);
        }
    }
}

static void balance_accepting(struct loop *lp)
{
    if (lp->retiring)
        return;
    if (!accept_paused && lp->conn_count >= conn_cap) {
        accept_paused = 1;
        watch_listeners(lp, 0);
        log_warning("holding %u connections, this worker's share of the open file limit: "
                    "leaving new ones to the other workers", lp->conn_count);
    } else if (accept_paused && lp->conn_count < conn_cap - conn_cap / 10) {
        accept_paused = 0;
        watch_listeners(lp, 1);
    }
}

static void stop_accepting(struct loop *lp)
{
    if (!accept_paused)
        watch_listeners(lp, 0);
    for (int i = 0; i < listener_count; i++)
        close(listeners[i].fd);
    listener_count = 0;
}

static void on_signal(struct loop *lp, struct loop_handler *h, uint32_t events)
{
    struct signal_source *s = (struct signal_source *)h;
    struct signalfd_siginfo si;
    (void)events;

    while (read(s->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (!lp->retiring) {
            lp->retiring = 1;
            stop_accepting(lp);
            log_info("%s: no new connections, %u sessions to finish",
                     si.ssi_signo == SIGTERM ? "stopping" : "retiring", lp->conn_count);
        }
        if (si.ssi_signo == SIGTERM)
            lp->stopping = 1;
    }
}

static void setup_signals(struct loop *lp, struct signal_source *src)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);   /* stop: close idle sessions too */
    sigaddset(&set, SIGUSR2);   /* retire after a reload: sessions run to their end */
    sigprocmask(SIG_BLOCK, &set, NULL);
    /* Ctrl-C reaches the whole process group; only the master decides. */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    src->io.on_event = on_signal;
    src->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (src->fd == -1 || loop_watch(lp, src->fd, EPOLLIN, &src->io) == -1)
        log_fatal("signalfd: %s", strerror(errno));
}

void worker_main(const struct worker_setup *ws)
{
    static struct loop lp;
    static struct signal_source sigsrc;
    pid_t master = getppid();

    log_open(ws->log_stderr || ws->cfg->log_target == CONFIG_LOG_STDERR ? LOG_TO_STDERR
                                                                         : LOG_TO_SYSLOG,
             (enum log_level)ws->cfg->log_level, "worker", ws->index);
    if (privdrop_become(ws->uid, ws->gid) == -1)
        log_fatal("cannot drop privileges: %s", strerror(errno));
    /*
     * An orphaned worker stops like on a shutdown. Set after the drop: the
     * kernel clears the parent-death signal when credentials change.
     */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master)
        raise(SIGTERM);

    lp.cfg = ws->cfg;
    lp.index = ws->index;
    lp.pid = getpid();
    lp.sb = ws->sb;
    lp.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (lp.epfd == -1)
        log_fatal("epoll_create1: %s", strerror(errno));
    setup_signals(&lp, &sigsrc);
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    for (int i = 0; i < ws->listen_count; i++) {
        listeners[i].io.on_event = on_listener;
        listeners[i].fd = ws->listen_fds[i];
    }
    listener_count = ws->listen_count;
    watch_listeners(&lp, 1);
    struct rlimit rl;
    conn_cap = (unsigned)ws->cfg->max_connections;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rl.rlim_cur - 64) / 2 < conn_cap)
        conn_cap = (unsigned)((rl.rlim_cur - 64) / 2);
    lp.auth = auth_client_new(&lp, ws->auth_socket);
    if (lp.auth == NULL)
        log_fatal("auth client: %s", strerror(errno));
    log_info("serving as uid %d", (int)getuid());

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        if (lp.retiring && lp.conn_count == 0)
            break;
        double now = loop_now();
        double wait = conn_next_expiry(&lp, now);
        double auth_wait = auth_client_next_expiry(lp.auth, now);
        if (auth_wait >= 0 && (wait < 0 || auth_wait < wait))
            wait = auth_wait;
        int timeout = wait < 0 ? 60000 : (int)(wait * 1000.0) + 1;
        int n = epoll_wait(lp.epfd, events, MAX_EVENTS, timeout);
        if (n == -1 && errno != EINTR)
            log_fatal("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct loop_handler *h = events[i].data.ptr;
            h->on_event(&lp, h, events[i].events);
        }
        now = loop_now();
        auth_client_expire(lp.auth, now);
        conn_expire_idle(&lp, now);
        if (lp.stopping)
            conn_shutdown_idle(&lp);
        conn_free_closed(&lp);
        balance_accepting(&lp);
    }
    log_info("retired");
    exit(0);
}
