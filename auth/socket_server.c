#include "auth/socket_server.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/runtime/clock.h"
#include "daemon/runtime/log.h"

/*
 * What a shutdown still answers per peer: a worker has at most a few
 * logins per connection out at once, so this is everything it has sent.
 */
#define SHUTDOWN_BURST 1024
/*
 * How long a shutdown waits for LDAP's answers to requests already out:
 * each is due within ldap_timeout (at most 12 s), and the worker waits 15 s.
 */
#define SHUTDOWN_DRAIN_SECONDS 13.0

void auth_server_set_mail_user(struct auth_server *srv, const char *mail_user)
{
    struct passwd *pw = getpwnam(mail_user);

    srv->have_mail_uid = pw != NULL;
    srv->mail_uid = pw ? pw->pw_uid : 0;
    if (pw == NULL)
        log_warning("mail user %s not found; only workers running as uid %u are accepted",
                    mail_user, (unsigned)srv->self_uid);
}

static void accept_peers(struct auth_server *srv);
static void close_peer(struct auth_server *srv, int slot);

static void on_listen(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    (void)ev;
    (void)events;
    accept_peers(io->data);
}

static void on_peer(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    struct auth_server *srv = io->data;
    int slot = (int)((struct auth_peer *)io - srv->peers);
    (void)ev;
    (void)events;
    if (requests_serve(&srv->requests, slot, AUTH_SERVER_BURST) == -1)
        close_peer(srv, slot);
}

/* LDAP's answers (or a connection's state): collected by requests_run() before the next wait. */
static void on_passdb(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    (void)ev;
    (void)io;
    (void)events;
}

/* A password database's deadline (an LDAP timeout, a retry); held answers have their own timers. */
static void on_requests_due(struct ev_loop *ev, struct ev_timer *timer)
{
    (void)ev;
    (void)timer;   /* only ends the wait: requests_run() runs before every wait */
}

/* The databases' fd is new after a reload (a new LDAP backend). */
static void watch_passdb(struct auth_server *srv)
{
    int afd = passdb_fd(srv->pdb);
    if (afd == srv->passdb_fd_watched)
        return;
    /* The old backend's fd is closed already: only our record of it goes. */
    srv->passdb_io.active = 0;
    if (afd >= 0 && ev_io_start(srv->ev, &srv->passdb_io, afd, EPOLLIN, on_passdb, srv) == -1 &&
        errno != EEXIST)
        log_error("epoll_ctl for the LDAP backend: %s", strerror(errno));
    srv->passdb_fd_watched = afd;
}

/*
 * After each turn, before waiting: what this turn's requests and LDAP's
 * answers made due goes out, and the next deadline of the requests
 * (auth/requests.h) bounds the wait.
 */
static void before_wait(struct ev_loop *ev, void *arg)
{
    struct auth_server *srv = arg;
    requests_run(&srv->requests);
    if (*srv->stop || *srv->reload) {
        ev_loop_stop(ev);
        return;
    }
    watch_passdb(srv);
    int ms = requests_timeout_ms(&srv->requests);
    if (ms < 0)
        ev_timer_cancel(ev, &srv->requests_due);
    else if (ev_timer_arm(ev, &srv->requests_due, clock_mono() + ms / 1000.0) == -1)
        ev_loop_no_wait(ev);   /* no memory for the timer: poll rather than miss it */
}

int auth_server_init(struct auth_server *srv, struct passdb *pdb, int listen_fd,
                     const char *mail_user)
{
    memset(srv, 0, sizeof(*srv));
    srv->pdb = pdb;
    srv->listen_fd = listen_fd;
    srv->self_uid = geteuid();
    for (int i = 0; i < AUTH_SERVER_MAX_PEERS; i++)
        srv->peers[i].fd = -1;
    srv->passdb_fd_watched = -1;
    _Static_assert(REQUESTS_MAX_PEERS >= AUTH_SERVER_MAX_PEERS, "requests: too few peer slots");
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl == -1 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
        fcntl(listen_fd, F_SETFD, FD_CLOEXEC) == -1)
        return -1;
    srv->ev = ev_loop_new();
    if (srv->ev == NULL)
        return -1;
    if (requests_init(&srv->requests, pdb, srv->ev) == -1) {
        ev_loop_free(srv->ev);
        srv->ev = NULL;
        errno = ENOMEM;
        return -1;
    }
    auth_server_set_mail_user(srv, mail_user);
    ev_timer_init(&srv->requests_due, on_requests_due, srv);
    ev_loop_set_before_wait(srv->ev, before_wait, srv);
    if (ev_io_start(srv->ev, &srv->listen_io, listen_fd, EPOLLIN, on_listen, srv) == -1) {
        int saved = errno;
        ev_loop_free(srv->ev);
        srv->ev = NULL;
        errno = saved;
        return -1;
    }
    return 0;
}

static void close_peer(struct auth_server *srv, int slot)
{
    struct auth_peer *p = &srv->peers[slot];
    log_debug("worker pid %d disconnected", (int)p->pid);
    requests_peer_closed(&srv->requests, slot);
    ev_io_stop(srv->ev, &p->io);
    close(p->fd);
    p->fd = -1;
}

/* The parent of pid, from /proc/PID/stat ("pid (comm) state ppid ..."); -1 if unknown. */
static pid_t parent_of(pid_t pid)
{
    char path[64], text[512];

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    /* comm may hold spaces and parentheses: the state follows the last ')'. */
    char *p = strrchr(text, ')');
    int ppid;
    char state;
    if (p == NULL || sscanf(p + 1, " %c %d", &state, &ppid) != 2 || ppid <= 0)
        return -1;
    return (pid_t)ppid;
}

/*
 * Only the master's children (the workers) and the master itself may hold a
 * connection: any other process with the mail uid (a delivery filter,
 * webmail, something a compromised worker forked) could otherwise fill the
 * AUTH_SERVER_MAX_PEERS slots and cut the workers off, or claim any client
 * address in its requests. The master is our parent; workers are its other
 * children. /proc must show other users' processes (no hidepid).
 */
static int peer_is_sibling(pid_t pid)
{
    pid_t master = getppid();
    return pid > 0 && (pid == master || parent_of(pid) == master);
}

/* A refused peer, logged at most once per AUTH_SERVER_REFUSAL_LOG_SECONDS with a count. */
static void refused(struct auth_server *srv, const struct ucred *cred, const char *why)
{
    time_t now = time(NULL);

    srv->refusals++;
    if (now - srv->refusal_logged < AUTH_SERVER_REFUSAL_LOG_SECONDS &&
        now >= srv->refusal_logged)
        return;
    log_warning("auth socket: refused pid %d uid %u (%s); %lu refused since the last such line",
                (int)cred->pid, (unsigned)cred->uid, why, srv->refusals);
    srv->refusal_logged = now;
    srv->refusals = 0;
}

static void accept_peers(struct auth_server *srv)
{
    for (int i = 0; i < AUTH_SERVER_MAX_PEERS; i++) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                log_warning("accept on the auth socket: %s", strerror(errno));
            return;
        }
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
            log_warning("auth socket peer: SO_PEERCRED: %s; refused", strerror(errno));
            close(fd);
            continue;
        }
        if (cred.uid != srv->self_uid && !(srv->have_mail_uid && cred.uid == srv->mail_uid)) {
            refused(srv, &cred, "not the mail user");
            close(fd);
            continue;
        }
        if (!peer_is_sibling(cred.pid)) {
            refused(srv, &cred, "not a worker of this server");
            close(fd);
            continue;
        }
        /* A process over its share gives up its oldest connection for the new one. */
        int held = 0, oldest = -1;
        for (int k = 0; k < AUTH_SERVER_MAX_PEERS; k++) {
            if (srv->peers[k].fd == -1 || srv->peers[k].pid != cred.pid)
                continue;
            held++;
            if (oldest == -1 || srv->peers[k].serial < srv->peers[oldest].serial)
                oldest = k;
        }
        if (held >= AUTH_SERVER_PEERS_PER_PROCESS)
            close_peer(srv, oldest);
        int slot = 0;
        while (slot < AUTH_SERVER_MAX_PEERS && srv->peers[slot].fd != -1)
            slot++;
        if (slot == AUTH_SERVER_MAX_PEERS) {
            log_warning("auth socket: refused pid %d: already %d workers connected",
                        (int)cred.pid, AUTH_SERVER_MAX_PEERS);
            close(fd);
            continue;
        }
        if (ev_io_start(srv->ev, &srv->peers[slot].io, fd, EPOLLIN | EPOLLRDHUP, on_peer,
                        srv) == -1) {
            log_warning("auth socket: epoll_ctl: %s; refused pid %d", strerror(errno),
                        (int)cred.pid);
            close(fd);
            continue;
        }
        srv->peers[slot].fd = fd;
        srv->peers[slot].uid = cred.uid;
        srv->peers[slot].pid = cred.pid;
        srv->peers[slot].serial = ++srv->accepted;
        requests_peer_open(&srv->requests, slot, fd, cred.pid);
        log_debug("worker pid %d uid %u connected", (int)cred.pid, (unsigned)cred.uid);
    }
}

int auth_server_run(struct auth_server *srv, volatile sig_atomic_t *stop,
                    volatile sig_atomic_t *reload, const sigset_t *waitmask)
{
    srv->stop = stop;
    srv->reload = reload;
    ev_loop_set_wait_mask(srv->ev, waitmask);
    return ev_loop_run(srv->ev);
}

void auth_server_shutdown(struct auth_server *srv)
{
    if (srv->listen_fd >= 0) {
        ev_io_stop(srv->ev, &srv->listen_io);
        close(srv->listen_fd);
        srv->listen_fd = -1;
    }
    /* What the peers have already sent goes the way of every request (auth/requests.h). */
    for (int i = 0; i < AUTH_SERVER_MAX_PEERS; i++) {
        if (srv->peers[i].fd != -1 &&
            requests_serve(&srv->requests, i, SHUTDOWN_BURST) == -1)
            close_peer(srv, i);
    }
    requests_drain(&srv->requests, SHUTDOWN_DRAIN_SECONDS);
    /* Held answers leave now: the workers would otherwise wait for their timeout. */
    requests_free(&srv->requests);
    for (int i = 0; i < AUTH_SERVER_MAX_PEERS; i++) {
        if (srv->peers[i].fd != -1) {
            ev_io_stop(srv->ev, &srv->peers[i].io);
            close(srv->peers[i].fd);
            srv->peers[i].fd = -1;
        }
    }
    ev_io_stop(srv->ev, &srv->passdb_io);
    ev_timer_cancel(srv->ev, &srv->requests_due);
    ev_loop_free(srv->ev);
    srv->ev = NULL;
}

void auth_server_reconfigure(struct auth_server *srv)
{
    requests_reconfigure(&srv->requests);
    /* The LDAP backend was made anew: register its fd again, even if the number is reused. */
    srv->passdb_fd_watched = -1;
}
