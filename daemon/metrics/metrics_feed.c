#include "metrics_feed.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/clock.h"

/* Counters per METRICS_VALUES message: 8 + 8 + 256 * 8 bytes, well inside IPC_MAX_MESSAGE. */
#define VALUES_PER_MESSAGE 256

_Static_assert(8 + 8 + VALUES_PER_MESSAGE * 8 <= IPC_MAX_MESSAGE,
               "METRICS_VALUES must fit one IPC message");

int metrics_feed_next_ask(int fd, uint32_t *id)
{
    unsigned char msg[IPC_MAX_MESSAGE];
    struct ipc_reader r;
    uint32_t type;
    ssize_t n = ipc_recv(fd, msg, sizeof(msg));
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n == -1 && errno == EMSGSIZE) {
        errno = EPROTO;
        return -1;
    }
    if (n <= 0) {
        if (n == 0)
            errno = EPIPE;
        return -1;
    }
    /* A header and nothing else: that is all the master ever reads of this child. */
    if (ipc_reader_init(&r, msg, (size_t)n, &type, id) == -1 || type != METRICS_ASK ||
        ipc_reader_end(&r) == -1) {
        errno = EPROTO;
        return -1;
    }
    return 1;
}

int metrics_feed_answer(int fd, uint32_t id, const struct stats_snapshot *s,
                        const struct stats_gauges *g)
{
    struct buf b;
    int rc = 0;
    buf_init(&b, IPC_MAX_MESSAGE);
    for (uint32_t first = 0; s != NULL && first < STATS_VALUES && rc == 0;
         first += VALUES_PER_MESSAGE) {
        uint32_t count = STATS_VALUES - first < VALUES_PER_MESSAGE ? STATS_VALUES - first
                                                                   : VALUES_PER_MESSAGE;
        ipc_begin(&b, METRICS_VALUES, id);
        ipc_put_u32(&b, first);
        ipc_put_u32(&b, count);
        for (uint32_t i = 0; i < count; i++)
            ipc_put_u64(&b, s->v[first + i]);
        rc = ipc_send(fd, &b);
    }
    if (rc == 0) {
        ipc_begin(&b, METRICS_GAUGES, id);
        ipc_put_u32(&b, s != NULL);
        ipc_put_u32(&b, STATS_VALUES);
        ipc_put_u64(&b, s != NULL ? (uint64_t)s->since : 0);
        ipc_put_u64(&b, (uint64_t)g->started);
        ipc_put_u64(&b, (uint64_t)g->now);
        ipc_put_u32(&b, g->connections);
        ipc_put_u32(&b, g->logged_in);
        ipc_put_u32(&b, g->workers);
        ipc_put_u32(&b, (uint32_t)g->draining);
        ipc_put_u32(&b, g->max_connections);
        ipc_put_u64(&b, g->open_files_limit);
        ipc_put_u64(&b, g->open_files_wanted);
        rc = ipc_send(fd, &b);
    }
    buf_free(&b);
    return rc;
}

static int wait_ms(double deadline)
{
    double ms = (deadline - clock_mono()) * 1000.0;
    return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

/* One message of the answer to id: 1 values, 2 gauges (the end), 0 another id's, -1 bad. */
static int take_message(const unsigned char *msg, size_t len, uint32_t id,
                        struct stats_snapshot *s, struct stats_gauges *g, unsigned char *seen,
                        int *available)
{
    struct ipc_reader r;
    uint32_t type, got;
    if (ipc_reader_init(&r, msg, len, &type, &got) == -1)
        return -1;
    if (got != id)
        return 0;
    if (type == METRICS_VALUES) {
        uint32_t first = ipc_get_u32(&r), count = ipc_get_u32(&r);
        if (r.bad || first > STATS_VALUES || count > STATS_VALUES - first)
            return -1;
        for (uint32_t i = 0; i < count; i++) {
            s->v[first + i] = ipc_get_u64(&r);
            seen[first + i] = 1;
        }
        return ipc_reader_end(&r) == 0 ? 1 : -1;
    }
    if (type != METRICS_GAUGES)
        return -1;
    *available = ipc_get_u32(&r) != 0;
    uint32_t values = ipc_get_u32(&r);
    s->since = (time_t)ipc_get_u64(&r);
    g->started = (time_t)ipc_get_u64(&r);
    g->now = (time_t)ipc_get_u64(&r);
    g->connections = ipc_get_u32(&r);
    g->logged_in = ipc_get_u32(&r);
    g->workers = ipc_get_u32(&r);
    g->draining = ipc_get_u32(&r) != 0;
    g->max_connections = ipc_get_u32(&r);
    g->open_files_limit = ipc_get_u64(&r);
    g->open_files_wanted = ipc_get_u64(&r);
    /* Built from another fastpopd than this one (an upgrade in place): no numbers. */
    if (ipc_reader_end(&r) == -1 || values != STATS_VALUES)
        return -1;
    return 2;
}

int metrics_feed_fetch(int fd, uint32_t id, double timeout, struct stats_snapshot *s,
                       struct stats_gauges *g)
{
    static unsigned char seen[STATS_VALUES];
    unsigned char msg[IPC_MAX_MESSAGE];
    double deadline;
    struct buf b;
    int available = 0;

    buf_init(&b, IPC_MAX_MESSAGE);
    ipc_begin(&b, METRICS_ASK, id);
    int rc = ipc_send(fd, &b);
    buf_free(&b);
    if (rc == -1)
        return -1;
    memset(seen, 0, sizeof(seen));
    memset(s, 0, sizeof(*s));
    memset(g, 0, sizeof(*g));
    deadline = clock_mono() + timeout;
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int ready = poll(&pfd, 1, wait_ms(deadline));
        if (ready == -1 && errno == EINTR)
            continue;
        if (ready == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        ssize_t n = ipc_recv(fd, msg, sizeof(msg));
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            errno = n == 0 ? EPIPE : errno;
            return -1;
        }
        int what = take_message(msg, (size_t)n, id, s, g, seen, &available);
        if (what == -1) {
            errno = EPROTO;
            return -1;
        }
        if (what != 2)
            continue;
        if (!available)
            return 0;
        /* Every counter must have come: a gap would be a wrong number, not a zero. */
        if (memchr(seen, 0, sizeof(seen)) != NULL) {
            errno = EPROTO;
            return -1;
        }
        return 1;
    }
}
