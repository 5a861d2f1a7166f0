#include "worker.h"

#include <errno.h>
#include <lmdb.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/cidr.h"
#include "daemon/runtime/listen.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/privdrop.h"
#include "daemon/runtime/clock.h"
#include "maildir/legacy.h"
#include "maildir/scan.h"
#include "shm/index.h"
#include "shm/stats.h"
#include "worker/auth_client.h"
#include "worker/conn.h"
#include "worker/conn_drain.h"
#include "worker/conn_limits.h"
#include "worker/loop.h"
#include "worker/mailbox.h"
#include "worker/offload.h"
#include "worker/pop3.h"
#include "worker/login.h"

/* Accepting in bursts keeps a connection storm from starving existing sessions. */
#define ACCEPT_BURST 64
/*
 * The longest the loop sleeps with no deadline due: kicks and drains come
 * with a SIGUSR1, so this is only a safety net for a lost wake-up.
 */
#define IDLE_WAIT_MS 60000

struct listener {
    struct ev_io io;
    int fd;
    const struct config_listen *conf;
    struct loop *lp;
};

struct signal_source {
    struct ev_io io;
    int fd;
};

static struct listener listeners[CONFIG_MAX_LISTEN];
static struct signal_source signal_source;
static int listener_count;
/*
 * Connections this worker may hold: a session needs its socket, and now and
 * then its cur/ directory and a message; conn_cap leaves room for those.
 */
static unsigned conn_cap;
/* While armed, the listeners are not watched (a yield, see should_yield()). */
static struct ev_timer yield_end;
/* The listeners are back from a yield: they get one turn before the next decision. */
static int yield_just_ended;
/*
 * A yield lasts this long: long enough for a sibling to be woken, short
 * enough that a stale decision never leaves every worker deaf for long.
 */
#define ACCEPT_YIELD_SECONDS 0.02
/* A descriptor held in reserve: freed to accept-and-refuse when out of fds. */
static int reserve_fd = -1;

static void refuse(struct loop *lp, int fd, const char *ip, const char *limit, int value,
                   enum stats_refusal why)
{
    char msg[160];
    int n = snprintf(msg, sizeof(msg), "-ERR [SYS/TEMP] %s\r\n",
                     strcmp(limit, "max_connections_per_ip") == 0
                         ? "Too many connections from your address, try again later"
                     : strcmp(limit, "max_connections_per_ipv6_48") == 0
                         ? "Too many connections from your network, try again later"
                         : "Server busy, try again later");
    /* A fresh socket has room for one short line; if not, the client just sees a close. */
    ssize_t ignored = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    close(fd);
    (void)lp;
    stats_refused(why);
    log_info("session user=- ip=%s reason=refused limit=%s max=%d", ip, limit, value);
}

/* popctl drain: every listener answers new clients with the drain message. */
static void refuse_draining(int fd, const char *ip, const char *text)
{
    char msg[SCOREBOARD_DRAIN_MESSAGE_MAX + 32];
    int n = snprintf(msg, sizeof(msg), "-ERR [SYS/TEMP] %s\r\n",
                     text[0] ? text : conn_drain_default_message);
    ssize_t ignored = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    close(fd);
    stats_refused(STATS_REFUSED_DRAINING);
    log_info("session user=- ip=%s reason=refused limit=draining", ip);
}

static void accept_out_of_fds(struct loop *lp, int listen_fd)
{
    if (reserve_fd == -1)
        return;
    close(reserve_fd);
    reserve_fd = -1;
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        refuse(lp, fd, "?", "open-files", 0, STATS_REFUSED_DESCRIPTORS);
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    log_warning("out of file descriptors: refusing connections (raise the open file limit "
                "or lower max_connections)");
}

static int should_yield(struct loop *lp);
static void start_yield(struct loop *lp);

static void on_listener(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    struct listener *l = io->data;
    struct loop *lp = l->lp;
    (void)ev;
    (void)events;

    for (int i = 0; i < ACCEPT_BURST && !lp->retiring; i++) {
        if (lp->conn_count >= conn_cap && should_yield(lp)) {
            /* Full here, room elsewhere: leave the queue to the other workers. */
            start_yield(lp);
            return;
        }
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
        stats_add(SV_ACCEPTED, 1);
        /* An IPv4 client on an IPv6 socket is counted, matched and logged as IPv4. */
        cidr_unmap_v4(&peer);
        char ip[48];
        listen_format_ip((struct sockaddr *)&peer, ip, sizeof(ip));
        char drain_text[SCOREBOARD_DRAIN_MESSAGE_MAX + 1];
        if (scoreboard_draining(lp->sb, drain_text, sizeof(drain_text))) {
            refuse_draining(fd, ip, drain_text);
            continue;
        }
        if (lp->conn_count >= conn_cap) {
            /* Every worker is full (else this one would have yielded): say so. */
            refuse(lp, fd, ip, "open-files", (int)conn_cap, STATS_REFUSED_DESCRIPTORS);
            continue;
        }
        if (l->conf->proxy_protocol &&
            !cidr_list_match(&lp->cfg->proxy_trusted, (struct sockaddr *)&peer)) {
            /* Anyone else could claim any address: drop without a word. */
            close(fd);
            stats_refused(STATS_REFUSED_PROXY_UNTRUSTED);
            log_warning("session user=- ip=%s reason=proxy-untrusted (not in proxy_trusted)", ip);
            continue;
        }
        /* Behind a proxy every connection comes from it: count the real client later. */
        const struct scoreboard_limits limits = conn_limits(lp->cfg, l->conf->proxy_protocol);
        enum scoreboard_refusal why;
        int slot = scoreboard_conn_open_within(lp->sb, lp->pid, (struct sockaddr *)&peer,
                                               &limits, &why);
        /*
         * Full: this worker's oldest connection that has not logged in makes
         * room (as Dovecot does), so silent clients cannot lock users out.
         * Only its own: the others belong to other workers, and a worker
         * holding none refuses as before (see README, max_connections).
         */
        if (slot == -1 && why == SB_LIMIT_TOTAL && conn_limits_evict_oldest(lp, ip))
            slot = scoreboard_conn_open_within(lp->sb, lp->pid, (struct sockaddr *)&peer,
                                               &limits, &why);
        if (slot == -1) {
            if (why == SB_LIMIT_PER_IP)
                refuse(lp, fd, ip, "max_connections_per_ip", lp->cfg->max_connections_per_ip,
                       STATS_REFUSED_PER_IP);
            else if (why == SB_LIMIT_PER_IPV6_48)
                refuse(lp, fd, ip, "max_connections_per_ipv6_48",
                       lp->cfg->max_connections_per_ipv6_48, STATS_REFUSED_PER_IP);
            else
                refuse(lp, fd, ip, "max_connections", lp->cfg->max_connections,
                       STATS_REFUSED_MAX_CONNECTIONS);
            continue;
        }
        /*
         * Replies are whole buffers already: Nagle would only hold the last
         * segment of each one back until the client's delayed ACK (~40 ms).
         */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (conn_new(lp, fd, (struct sockaddr *)&peer, slot, l->conf) == -1) {
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
            if (ev_io_start(lp->ev, &listeners[i].io, listeners[i].fd,
                            EPOLLIN | EPOLLEXCLUSIVE, on_listener, &listeners[i]) == -1)
                log_fatal("epoll_ctl listener: %s", strerror(errno));
        } else {
            ev_io_stop(lp->ev, &listeners[i].io);
        }
    }
}

/*
 * EPOLLEXCLUSIVE wakes the same idle worker again and again, so left alone
 * one worker would take every connection of a quiet server. A worker well
 * above its fair share of the live connections, or at its descriptor
 * budget while others have room, yields: it stops watching the listeners
 * for a moment and the kernel wakes the others.
 */
static int should_yield(struct loop *lp)
{
    unsigned workers = (unsigned)config_worker_count(lp->cfg);
    if (workers < 2)
        return 0;
    unsigned active = scoreboard_active_hint(lp->sb);
    if (lp->conn_count >= conn_cap)
        return (uint64_t)active + 8u * workers < (uint64_t)workers * conn_cap;
    /*
     * Only a clear imbalance counts: short sessions come and go too fast for
     * shares to matter, and every yield delays new connections a little.
     */
    unsigned fair = active / workers;
    return lp->conn_count > fair + fair / 2 + 64;
}

static void end_yield(struct ev_loop *ev, struct ev_timer *timer)
{
    struct loop *lp = timer->data;
    (void)ev;
    /* Give the listeners at least one turn before deciding again. */
    yield_just_ended = 1;
    watch_listeners(lp, 1);
}

static void start_yield(struct loop *lp)
{
    if (ev_timer_armed(&yield_end))
        return;
    /* Without the timer the listeners would stay deaf: then do not yield. */
    if (ev_timer_arm_in(lp->ev, &yield_end, ACCEPT_YIELD_SECONDS) == 0)
        watch_listeners(lp, 0);
}

static void balance_accepting(struct loop *lp)
{
    if (lp->retiring || ev_timer_armed(&yield_end))
        return;
    if (yield_just_ended) {
        yield_just_ended = 0;
        return;
    }
    if (should_yield(lp))
        start_yield(lp);
}

static void stop_accepting(struct loop *lp)
{
    if (!ev_timer_armed(&yield_end))
        watch_listeners(lp, 0);
    ev_timer_cancel(lp->ev, &yield_end);
    for (int i = 0; i < listener_count; i++)
        close(listeners[i].fd);
    listener_count = 0;
}

static void on_signal(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    struct loop *lp = io->data;
    struct signal_source *s = &signal_source;
    struct signalfd_siginfo si;
    (void)ev;
    (void)events;

    while (read(s->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        /* SIGUSR1 only wakes the loop to look at the scoreboard (worker_main). */
        if (si.ssi_signo == SIGUSR1)
            continue;
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

static void setup_signals(struct loop *lp)
{
    struct signal_source *src = &signal_source;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);   /* stop: close idle sessions too */
    sigaddset(&set, SIGUSR2);   /* retire after a reload: sessions run to their end */
    sigaddset(&set, SIGUSR1);   /* popctl kick/drain: look at the scoreboard's flags */
    sigprocmask(SIG_BLOCK, &set, NULL);
    /* Ctrl-C reaches the whole process group; only the master decides. */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    src->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (src->fd == -1 || ev_io_start(lp->ev, &src->io, src->fd, EPOLLIN, on_signal, lp) == -1)
        log_fatal("signalfd: %s", strerror(errno));
}

/*
 * The mailbox index env, opened here, after fork and privilege drop (LMDB
 * envs must not cross a fork; its files belong to the mail user). Without
 * it logins scan their maildir: slower, same answers.
 */
static void open_mailbox_index(struct loop *lp)
{
    char dir[CONFIG_PATH_MAX + 16];
    if (!lp->cfg->index)
        return;
    snprintf(dir, sizeof(dir), "%s/%s", lp->cfg->state_dir, INDEX_SUBDIR);
    int reset;
    int rc = mbindex_open_rebuilding(dir, 0, &lp->mbindex, &reset);
    if (rc == 0)
        rc = mbindex_limit_size(lp->mbindex, (size_t)lp->cfg->index_max_mb << 20);
    if (rc == 0)
        mbindex_set_recheck(lp->mbindex, lp->cfg->index_recheck);
    if (rc != 0) {
        mbindex_close(lp->mbindex);
        lp->mbindex = NULL;
        stats_store_error(STATS_STORE_INDEX);
        log_error("mailbox index %s: %s; logins will scan their maildir", dir,
                  mdb_strerror(rc));
    } else if (reset) {
        /* A worker before this one may have died of it: see lmdbenv_check_size(). */
        stats_store_error(STATS_STORE_INDEX);
        log_warning("mailbox index %s was unreadable; started a new one", dir);
    }
}

/*
 * Kicks and drains arrive through the scoreboard; the master's SIGUSR1
 * only ends the epoll wait. Busy sessions end at a later command boundary,
 * so the sweep repeats while any is pending.
 */
static void sweep(struct loop *lp)
{
    uint32_t changes = scoreboard_changes(lp->sb);
    char text[SCOREBOARD_DRAIN_MESSAGE_MAX + 1] = "";
    if (changes == lp->sb_changes && !lp->sweep_pending)
        return;
    lp->sb_changes = changes;
    int draining = scoreboard_draining(lp->sb, text, sizeof(text));
    lp->sweep_pending = conn_sweep(lp, draining, text) > 0;
}

/*
 * After each turn's events and timers, before the loop sleeps: the work that
 * is polled (the scoreboard's kicks and drains), the connections queued to
 * run, and whether the worker is done.
 */
static void before_wait(struct ev_loop *ev, void *arg)
{
    struct loop *lp = arg;
    if (lp->stopping)
        conn_shutdown_idle(lp);
    sweep(lp);
    /* Helper answers of this batch: their connections run now, then frees. */
    conn_run_ready(lp);
    conn_free_closed(lp);
    balance_accepting(lp);
    /* A load abandoned by its client still holds a lock and a slot: wait for it. */
    if (lp->retiring && lp->conn_count == 0 && offload_pending(lp->offload) == 0)
        ev_loop_stop(ev);
    if (lp->ready_head != NULL)
        ev_loop_no_wait(ev);   /* connections still queued to run (conn_run_ready) */
}

void worker_main(const struct worker_setup *ws)
{
    static struct loop lp;
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
    lp.protocol = &pop3_protocol;
    lp.index = ws->index;
    /* Before the loader thread starts: it reads the limit. */
    maildir_set_max_messages((size_t)ws->cfg->max_messages);
    legacy_configure(ws->cfg->dovecot_uidl_format, ws->cfg->x_uidl_header);
    open_mailbox_index(&lp);
    lp.pid = getpid();
    lp.sb = ws->sb;
    lp.ev = ev_loop_new();
    if (lp.ev == NULL)
        log_fatal("epoll_create1: %s", strerror(errno));
    ev_loop_set_max_wait(lp.ev, IDLE_WAIT_MS);
    ev_timer_init(&yield_end, end_yield, &lp);
    setup_signals(&lp);
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    for (int i = 0; i < ws->listen_count; i++) {
        listeners[i].lp = &lp;
        listeners[i].fd = ws->listen_fds[i];
        listeners[i].conf = &ws->cfg->listen[i];
    }
    lp.tls = ws->tls;
    listener_count = ws->listen_count;
    watch_listeners(&lp, 1);
    struct rlimit rl;
    /* max_connections is the scoreboard's business; this is only about descriptors. */
    conn_cap = UINT_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        /* 64 for the worker's own files; a quarter (at most 1024) for open messages. */
        rlim_t usable = rl.rlim_cur > 128 ? rl.rlim_cur - 64 : 64;
        rlim_t reserve = usable / 4 < 1024 ? usable / 4 : 1024;
        if (usable - reserve < conn_cap)
            conn_cap = (unsigned)(usable - reserve);
    }
    lp.auth = auth_client_new(&lp, ws->auth_socket, login_adopt_view);
    if (lp.auth == NULL)
        log_fatal("auth client: %s", strerror(errno));
    /* At once, for the penalty view: without it no login is answered from the cache. */
    (void)auth_client_connect(lp.auth);
    /*
     * After the signals are blocked (the thread blocks all of them anyway)
     * and before any session: big logins read their maildir there.
     */
    /*
     * One malloc arena, as before there was a second thread: glibc would give
     * the loader its own, reserving 64 MB of address space per worker, which
     * an operator's RLIMIT_AS (and the memory figures) would no longer see.
     * The loader threads wait on the disk far more than they allocate.
     */
    mallopt(M_ARENA_MAX, 1);
    lp.offload = offload_start(&lp, OFFLOAD_THREADS);
    if (lp.offload == NULL)
        log_warning("cannot start the mailbox loader thread: %s; a login that reads a big "
                    "maildir holds up this worker's other sessions", strerror(errno));
    log_info("serving as uid %d", (int)getuid());

    ev_loop_set_before_wait(lp.ev, before_wait, &lp);
    if (ev_loop_run(lp.ev) == -1)
        log_fatal("epoll_wait: %s", strerror(errno));
    offload_stop(lp.offload);
    log_info("retired");
    exit(0);
}
