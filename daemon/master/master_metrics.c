/*
 * /metrics, the master's side. The master binds metrics_listen (as root, so
 * any port will do) and hands the socket to the metrics process (role
 * "metrics", daemon/metrics/metrics_main.c), which it starts as metrics_user like
 * any other child and respawns with the same backoff. Each metrics process
 * gets a fresh socketpair; over it the master answers asks for the numbers
 * (daemon/metrics/metrics_feed.h) and reads nothing else. The master never accepts
 * on the socket and never reads HTTP.
 */
#include "daemon/master/master_state.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/master/control.h"
#include "daemon/runtime/log.h"
#include "daemon/metrics/metrics_feed.h"
#include "shm/stats.h"

/* A scraper is answered within one round trip; 16 queued connections are plenty. */
#define METRICS_BACKLOG 16

int metrics_count(const struct config *cfg)
{
    (void)cfg;
    return 0;
}

static void on_feed(struct ev_loop *ev, struct ev_io *io, uint32_t events);

/* Out of the loop first: the child may still hold a copy, which would keep it in the set. */
static void close_feed(struct master *m)
{
    if (m->metrics_feed_fd < 0)
        return;
    ev_io_stop(m->ev, &m->metrics_feed_io);
    close(m->metrics_feed_fd);
    m->metrics_feed_fd = -1;
}

int metrics_prepare(struct master *m, struct child *c)
{
    int sv[2];
    (void)c;
    close_feed(m);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1) {
        log_error("metrics: socketpair: %s; retrying", strerror(errno));
        return -1;
    }
    if (ev_io_start(m->ev, &m->metrics_feed_io, sv[0], EPOLLIN, on_feed, m) == -1) {
        log_error("metrics: epoll_ctl: %s; retrying", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    m->metrics_feed_fd = sv[0];
    m->metrics_child_end = sv[1];
    return 0;
}

void metrics_forked(struct master *m, struct child *c)
{
    (void)c;
    close(m->metrics_child_end);
    m->metrics_child_end = -1;
}

void metrics_enter(struct master *m, struct child *c)
{
    char level[16];
    snprintf(level, sizeof(level), "%d", m->cfg->log_level);
    int to_stderr = m->opts->foreground || m->cfg->log_target == CONFIG_LOG_STDERR;
    char *argv[] = { "fastpop-metrics", "--listen-fd", "3", "--feed-fd", "4", "--log-level",
                     level, to_stderr ? "-F" : NULL, NULL };
    const int fds[] = { m->metrics_listen_fd, m->metrics_child_end };
    const struct exec_child x = { .what = "metrics", .fds = fds, .nfds = 2,
                                  .uid = m->ids.metrics_uid, .gid = m->ids.metrics_gid,
                                  .user = m->cfg->metrics_user, .path = m->metrics_path,
                                  .argv = argv };
    exec_child_enter(m, c, &x);
}

/* The running metrics process (if any) finishes; a new one is not started. */
static void retire(struct master *m)
{
    close_feed(m);
    exec_child_retire(&m->metrics_child);
}

void metrics_update(struct master *m)
{
    const struct config_listen *want = &m->cfg->metrics;
    if (want->addrlen != 0 && m->metrics_listen_fd >= 0 && m->metrics_child != NULL &&
        m->metrics_addr.addrlen == want->addrlen &&
        memcmp(&m->metrics_addr.addr, &want->addr, want->addrlen) == 0 &&
        m->metrics_uid == m->ids.metrics_uid)
        return;
    retire(m);
    metrics_stop(m);
    if (want->addrlen == 0)
        return;
    if (m->ctl == NULL) {
        log_error("metrics_listen %s: off, since the control socket (its data) is", want->spec);
        return;
    }
    const struct exec_child_start s = {
        .program = "fastpop-metrics", .path = m->metrics_path,
        .pathlen = sizeof(m->metrics_path), .setting = "metrics_listen", .service = "/metrics",
        .want = want, .backlog = METRICS_BACKLOG, .listen_fd = &m->metrics_listen_fd,
    };
    m->metrics_addr = *want;
    m->metrics_uid = m->ids.metrics_uid;
    m->metrics_child = exec_child_start(m, ROLE_METRICS, &s);
    if (m->metrics_child != NULL)
        log_info("serving GET /metrics on %s (process metrics, user %s)", want->spec,
                 m->cfg->metrics_user);
}

void metrics_stop(struct master *m)
{
    if (m->metrics_listen_fd >= 0)
        close(m->metrics_listen_fd);
    m->metrics_listen_fd = -1;
}

void metrics_child_gone(struct master *m, struct child *c)
{
    if (c != m->metrics_child)
        return;
    close_feed(m);
    /* Not respawned: stopping, or it had been told to go. */
    if (m->stopping || c->retiring)
        m->metrics_child = NULL;
}

/* It broke the protocol or stopped reading: it goes, and is respawned fresh. */
static void end_child(struct master *m, const char *why)
{
    struct child *c = m->metrics_child;
    close_feed(m);
    if (c == NULL || c->pid <= 0)
        return;
    log_warning("metrics[%d] pid %d %s; killing it", c->index, (int)c->pid, why);
    kill(c->pid, SIGKILL);
}

/* The metrics process asks for the numbers (daemon/metrics/metrics_feed.h). */
static void on_feed(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    struct master *m = io->data;
    (void)ev;
    (void)events;
    if (m->metrics_feed_fd < 0)
        return;
    for (int i = 0; i < METRICS_FEED_ASKS_PER_TURN; i++) {
        uint32_t id;
        int rc = metrics_feed_next_ask(m->metrics_feed_fd, &id);
        if (rc == 0)
            return;
        if (rc == -1) {
            if (errno == EPIPE) {
                close_feed(m);   /* it exited; SIGCHLD tells the rest */
            } else {
                end_child(m, "sent a message that is not an ask");
            }
            return;
        }
        struct stats_snapshot snap;
        struct stats_gauges g;
        control_gauges(m->ctl, &g);
        if (m->stats != NULL)
            stats_region_read(m->stats, &snap, STATS_SINCE_START);
        if (metrics_feed_answer(m->metrics_feed_fd, id, m->stats != NULL ? &snap : NULL,
                                &g) == -1) {
            end_child(m, "does not read its answers");
            return;
        }
    }
}
