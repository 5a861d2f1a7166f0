/*
 * daemon/metrics/metrics_feed: the master reads nothing of the metrics process but
 * a bare ask; the process gets every counter and the gauges back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/ipc.h"
#include "daemon/metrics/metrics_feed.h"

struct pair {
    int master, child;
};

static int setup(void **state)
{
    static struct pair p;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) == -1)
        return -1;
    p.master = sv[0];
    p.child = sv[1];
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    close(p->master);
    if (p->child >= 0)
        close(p->child);
    return 0;
}

static void send_raw(int fd, uint32_t type, uint32_t id, int extra_field)
{
    struct buf b;
    buf_init(&b, IPC_MAX_MESSAGE);
    ipc_begin(&b, type, id);
    if (extra_field)
        ipc_put_u32(&b, 7);
    assert_int_equal(ipc_send(fd, &b), 0);
    buf_free(&b);
}

static void test_bare_ask_is_taken(void **state)
{
    struct pair *p = *state;
    uint32_t id = 0;
    assert_int_equal(metrics_feed_next_ask(p->master, &id), 0);
    send_raw(p->child, METRICS_ASK, 42, 0);
    assert_int_equal(metrics_feed_next_ask(p->master, &id), 1);
    assert_int_equal(id, 42);
    assert_int_equal(metrics_feed_next_ask(p->master, &id), 0);
}

static void test_anything_else_is_refused(void **state)
{
    struct pair *p = *state;
    uint32_t id;
    send_raw(p->child, METRICS_ASK, 1, 1);          /* a field */
    assert_int_equal(metrics_feed_next_ask(p->master, &id), -1);
    assert_int_equal(errno, EPROTO);
    send_raw(p->child, METRICS_GAUGES, 1, 0);       /* another type */
    assert_int_equal(metrics_feed_next_ask(p->master, &id), -1);
    assert_int_equal(errno, EPROTO);
    assert_int_equal(send(p->child, "abc", 3, 0), 3); /* shorter than a header */
    assert_int_equal(metrics_feed_next_ask(p->master, &id), -1);
    assert_int_equal(errno, EPROTO);
    static char big[IPC_MAX_MESSAGE + 100];         /* longer than any message */
    assert_int_equal(send(p->child, big, sizeof(big), 0), (ssize_t)sizeof(big));
    assert_int_equal(metrics_feed_next_ask(p->master, &id), -1);
    assert_int_equal(errno, EPROTO);
    close(p->child);
    p->child = -1;
    assert_int_equal(metrics_feed_next_ask(p->master, &id), -1);
    assert_int_equal(errno, EPIPE);
}

static void test_round_trip(void **state)
{
    struct pair *p = *state;
    static struct stats_snapshot sent, got;
    struct stats_gauges g = { .connections = 5, .logged_in = 3, .workers = 2, .draining = 1,
                              .max_connections = 4000,
                              .open_files_limit = UINT64_C(0x1000000000),
                              .open_files_wanted = 12256,
                              .started = 1700000000, .now = 1700000123 };
    struct stats_gauges gg;
    for (unsigned v = 0; v < STATS_VALUES; v++)
        sent.v[v] = UINT64_C(0x100000000) * v + v;
    sent.since = 1700000001;
    /* An answer to an earlier ask that timed out is left aside. */
    assert_int_equal(metrics_feed_answer(p->master, 6, &sent, &g), 0);
    send_raw(p->master, METRICS_GAUGES, 6, 0);
    assert_int_equal(metrics_feed_answer(p->master, 7, &sent, &g), 0);
    assert_int_equal(metrics_feed_fetch(p->child, 7, 5.0, &got, &gg), 1);
    assert_memory_equal(got.v, sent.v, sizeof(sent.v));
    assert_int_equal(got.since, sent.since);
    assert_int_equal(gg.connections, 5);
    assert_int_equal(gg.logged_in, 3);
    assert_int_equal(gg.workers, 2);
    assert_int_equal(gg.draining, 1);
    assert_int_equal(gg.max_connections, 4000);
    assert_int_equal(gg.open_files_limit, UINT64_C(0x1000000000));
    assert_int_equal(gg.open_files_wanted, 12256);
    assert_int_equal(gg.started, 1700000000);
    assert_int_equal(gg.now, 1700000123);
    /* Its ask is what the master saw. */
    uint32_t id;
    assert_int_equal(metrics_feed_next_ask(p->master, &id), 1);
    assert_int_equal(id, 7);
    /* No statistics: 0, the child answers 503. */
    assert_int_equal(metrics_feed_answer(p->master, 8, NULL, &g), 0);
    assert_int_equal(metrics_feed_fetch(p->child, 8, 5.0, &got, &gg), 0);
}

static void test_fetch_times_out_and_sees_the_master_go(void **state)
{
    struct pair *p = *state;
    static struct stats_snapshot got;
    struct stats_gauges gg;
    assert_int_equal(metrics_feed_fetch(p->child, 1, 0.1, &got, &gg), -1);
    assert_int_equal(errno, ETIMEDOUT);
    /* Gauges without every counter first is a broken answer, never zeros. */
    struct buf b;
    buf_init(&b, IPC_MAX_MESSAGE);
    ipc_begin(&b, METRICS_GAUGES, 2);
    ipc_put_u32(&b, 1);
    ipc_put_u32(&b, STATS_VALUES);
    ipc_put_u64(&b, 0);
    ipc_put_u64(&b, 0);
    ipc_put_u64(&b, 0);
    for (int i = 0; i < 4; i++)
        ipc_put_u32(&b, 0);
    assert_int_equal(ipc_send(p->master, &b), 0);
    buf_free(&b);
    assert_int_equal(metrics_feed_fetch(p->child, 2, 5.0, &got, &gg), -1);
    assert_int_equal(errno, EPROTO);
    close(p->master);
    p->master = socket(AF_UNIX, SOCK_SEQPACKET, 0);   /* for teardown */
    /* The ask itself fails: the master went with asks unread (ECONNRESET) or not. */
    assert_int_equal(metrics_feed_fetch(p->child, 3, 5.0, &got, &gg), -1);
    assert_true(errno == EPIPE || errno == ECONNRESET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bare_ask_is_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anything_else_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_times_out_and_sees_the_master_go, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
