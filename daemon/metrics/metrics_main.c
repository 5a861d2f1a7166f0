/*
 * fastpop-metrics: the process that serves GET /metrics (metrics_http.h).
 *
 *   fastpop-metrics --listen-fd 3 --feed-fd 4 [--log-level 0-3] [-F]
 *
 * The master (daemon/master/master_metrics.c) starts it with the listening socket
 * it bound and its end of a socketpair (daemon/metrics/metrics_feed.h), already as
 * metrics_user with no capabilities and no_new_privs, and through an exec,
 * so nothing of the master's memory (TLS keys, ticket keys, the
 * configuration) is left in it. It parses the scrapers' HTTP, asks the
 * master for the numbers at each scrape and renders the document itself
 * (daemon/metrics/stats_render.h). It reads no file and holds no secret; whoever takes
 * it over can answer scrapers wrongly and ask the master for numbers.
 *
 * -F logs to stderr (fastpopd -F, or log = stderr), else to syslog. It ends
 * on SIGTERM, or when the master goes away (EOF on the feed).
 */
#include <errno.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/runtime/ipc.h"
#include "daemon/runtime/log.h"
#include "daemon/metrics/metrics_feed.h"
#include "daemon/metrics/metrics_http.h"
#include "daemon/runtime/event_loop.h"
#include "daemon/runtime/program.h"
#include "shm/stats.h"
#include "daemon/metrics/stats_render.h"

/*
 * How long a scrape waits for the master's numbers. The master answers
 * from its loop in microseconds; it pauses only for a reload or a burst of
 * forks. 2 s leaves the scraper 3 of its 5 s to read the answer.
 */
#define METRICS_FEED_SECONDS 2.0

struct options {
    int listen_fd;
    int feed_fd;
    int log_level;
    int foreground;
};

struct feed {
    int fd;
    uint32_t next_id;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: fastpop-metrics --listen-fd N --feed-fd N [--log-level 0-3] [-F]\n"
                 "Started by fastpopd for metrics_listen; not meant to be run by hand.\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){ .listen_fd = -1, .feed_fd = -1, .log_level = LOG_LVL_INFO };
    const struct program_option opts[] = {
        { "listen-fd", 0, PROGRAM_ARG_INT, 0, 1024, &o->listen_fd },
        { "feed-fd", 0, PROGRAM_ARG_INT, 0, 1024, &o->feed_fd },
        { "log-level", 0, PROGRAM_ARG_INT, 0, LOG_LVL_DEBUG, &o->log_level },
        { NULL, 'F', PROGRAM_ARG_FLAG, 0, 0, &o->foreground },
        { 0 },
    };
    if (program_parse_args(argc, argv, "fastpop-metrics", opts, usage) == -1)
        return -1;
    if (o->listen_fd < 0 || o->feed_fd < 0 || o->listen_fd == o->feed_fd) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static int render(void *ctx, struct buf *doc)
{
    struct feed *f = ctx;
    struct stats_snapshot s;
    struct stats_gauges g;
    int rc = metrics_feed_fetch(f->fd, f->next_id++, METRICS_FEED_SECONDS, &s, &g);
    if (rc == 1)
        return stats_render(&s, &g, STATS_PROMETHEUS, doc);
    if (rc == -1)
        log_warning("no numbers from the master: %s; answering 503", strerror(errno));
    return -1;
}

/* Between scrapes only late answers (to an ask that timed out) arrive: drop them. */
static void drain_feed(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    int fd = io->fd;
    (void)loop;
    (void)events;
    unsigned char msg[IPC_MAX_MESSAGE];
    for (;;) {
        ssize_t n = ipc_recv(fd, msg, sizeof(msg));
        if (n > 0 || (n == -1 && errno == EMSGSIZE))
            continue;
        if (n == 0) {
            log_info("the master is gone; exiting");
            exit(0);
        }
        if (errno == EAGAIN || errno == EINTR)
            return;
        log_fatal("feed from the master: %s", strerror(errno));
    }
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) == -1)
        return 2;
    program_start("metrics", o.foreground, o.log_level);

    struct feed feed = { .fd = o.feed_fd, .next_id = 1 };
    struct ev_loop *loop = ev_loop_new();
    if (loop == NULL)
        log_fatal("event loop: %s", strerror(errno));
    struct ev_io feed_io = { 0 };
    if (ev_io_start(loop, &feed_io, feed.fd, EPOLLIN, drain_feed, NULL) == -1)
        log_fatal("watching the feed: %s", strerror(errno));
    struct metrics_http *mh = metrics_http_new(loop, o.listen_fd, render, &feed);
    if (mh == NULL)
        log_fatal("out of memory");
    log_debug("serving GET /metrics");
    /* Nothing stops the loop: SIGTERM or the master's EOF end the process. */
    ev_loop_run(loop);
    log_fatal("epoll_wait: %s", strerror(errno));
}
