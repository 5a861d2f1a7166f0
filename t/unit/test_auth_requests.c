/*
 * auth/requests.c over a SOCK_SEQPACKET socketpair: the per-group rate limit
 * answers tempfail before any work while another address is served; at the
 * bound on pending answers new requests get tempfail and no held answer
 * leaves early; a blocked address is held for the maximum delay and still
 * counts against the user.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/passdb.h"
#include "auth/requests.h"
#include "daemon/runtime/clock.h"
#include "daemon/runtime/event_loop.h"
#include "auth/protocol.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/log.h"

struct fixture {
    char dir[64];
    char path[128];
    struct config cfg;
    struct passdb pdb;
    struct auth_requests d;
    struct ev_loop *ev;     /* the held answers' timers */
    int sv[2];              /* sv[0]: the helper's end, sv[1]: the "worker" */
    struct buf req;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fastpop-auth-requests-test.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/passwd", f->dir);
    FILE *fp = fopen(f->path, "w");
    if (fp == NULL)
        return -1;
    fputs("bob:{PLAIN}bobpw\n", fp);
    fclose(fp);
    config_defaults(&f->cfg);
    snprintf(f->cfg.passwd_file, sizeof(f->cfg.passwd_file), "%s", f->path);
    snprintf(f->cfg.maildir, sizeof(f->cfg.maildir), "/var/mail/%%n");
    buf_init(&f->req, IPC_MAX_MESSAGE);
    log_open(LOG_TO_STDERR, LOG_LVL_ERROR, "auth", -1);
    *state = f;
    return 0;
}

/* Start the request path with f->cfg as the test left it. */
static void start(struct fixture *f)
{
    assert_int_equal(passdb_init(&f->pdb, &f->cfg), 0);
    f->ev = ev_loop_new();
    assert_non_null(f->ev);
    assert_int_equal(requests_init(&f->d, &f->pdb, f->ev), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f->sv), 0);
    assert_int_equal(fcntl(f->sv[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(f->sv[1], F_SETFL, O_NONBLOCK), 0);
    requests_peer_open(&f->d, 0, f->sv[0], getpid());
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* Held answers are dropped, not flushed into a socket nobody reads. */
    requests_peer_closed(&f->d, 0);
    requests_free(&f->d);
    assert_int_equal(ev_loop_timer_count(f->ev), 0);
    ev_loop_free(f->ev);
    passdb_free(&f->pdb);
    close(f->sv[0]);
    close(f->sv[1]);
    buf_free(&f->req);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void send_pass(struct fixture *f, uint32_t id, const char *pw, const char *ip)
{
    assert_int_equal(ipc_begin(&f->req, AUTH_MSG_PASS_REQUEST, id), 0);
    assert_int_equal(ipc_put_str(&f->req, "bob"), 0);
    assert_int_equal(ipc_put_str(&f->req, pw), 0);
    assert_int_equal(ipc_put_str(&f->req, ip), 0);
    assert_int_equal(ipc_put_str(&f->req, "USER"), 0);
    assert_int_equal(ipc_send(f->sv[1], &f->req), 0);
}

/* Answers waiting on the worker's end, counted by status. */
static void drain(struct fixture *f, int count[3])
{
    unsigned char msg[IPC_MAX_MESSAGE];
    ssize_t n;

    while ((n = ipc_recv(f->sv[1], msg, sizeof(msg))) > 0) {
        struct ipc_reader r;
        uint32_t type, id;
        assert_int_equal(ipc_reader_init(&r, msg, (size_t)n, &type, &id), 0);
        assert_int_equal(type, AUTH_MSG_PASS_REPLY);
        uint32_t status = ipc_get_u32(&r);
        assert_true(status <= AUTH_TEMPFAIL);
        count[status]++;
    }
}

static void test_rate_limit_before_work(void **state)
{
    struct fixture *f = *state;
    int count[3] = { 0, 0, 0 };

    f->cfg.auth_penalty = 0;
    f->cfg.auth_rate_limit = 5;
    f->cfg.auth_rate_burst = 20;
    start(f);
    for (uint32_t i = 1; i <= 25; i++)
        send_pass(f, i, "bobpw", "192.0.2.1");
    assert_int_equal(requests_serve(&f->d, 0, 25), 0);
    drain(f, count);
    /* the burst is served (the right password), the rest refused unhashed */
    assert_int_equal(count[AUTH_OK], 20);
    assert_int_equal(count[AUTH_TEMPFAIL], 5);
    assert_int_equal(count[AUTH_FAIL], 0);
    /* meanwhile another address logs in */
    send_pass(f, 26, "bobpw", "192.0.2.2");
    assert_int_equal(requests_serve(&f->d, 0, 1), 0);
    drain(f, count);
    assert_int_equal(count[AUTH_OK], 21);
}

static void test_pending_cap_answers_tempfail_never_early(void **state)
{
    struct fixture *f = *state;
    int count[3] = { 0, 0, 0 };
    uint32_t id = 1;

    f->cfg.auth_rate_limit = 0;
    f->cfg.auth_penalty_delay = 0;
    f->cfg.auth_penalty_max_delay = 12;
    f->cfg.auth_penalty_block_after = 1;
    start(f);
    /* one failure (answered at once) blocks the address: from now on its answers
     * are held 12 s, unhashed */
    send_pass(f, id++, "wrong", "192.0.2.66");
    assert_int_equal(requests_serve(&f->d, 0, 1), 0);
    drain(f, count);
    assert_int_equal(count[AUTH_FAIL], 1);
    count[AUTH_FAIL] = 0;
    int extra = 10;
    int total = REQUESTS_MAX_PENDING + extra;
    for (int sent = 0; sent < total;) {
        int batch = total - sent < 16 ? total - sent : 16;
        for (int i = 0; i < batch; i++)
            send_pass(f, id++, "bobpw", "192.0.2.66");
        assert_int_equal(requests_serve(&f->d, 0, batch), 0);
        sent += batch;
        drain(f, count);
    }
    requests_run(&f->d);
    drain(f, count);
    /* exactly the requests over the bound were refused, at once; nothing else left early */
    assert_int_equal(count[AUTH_TEMPFAIL], extra);
    assert_int_equal(count[AUTH_FAIL], 0);
    assert_int_equal(count[AUTH_OK], 0);
    assert_int_equal(f->d.pending, REQUESTS_MAX_PENDING);
    /* each held answer waits on its own timer, none due within 10 s, all by 12 s */
    assert_int_equal(ev_loop_timer_count(f->ev), REQUESTS_MAX_PENDING);
    ev_loop_fire_timers(f->ev, clock_mono() + 10);
    assert_int_equal(f->d.out.nheld, REQUESTS_MAX_PENDING);
    ev_loop_fire_timers(f->ev, clock_mono() + 12.5);
    assert_int_equal(f->d.out.nheld, 0);
    assert_int_equal(f->d.pending, 0);
    assert_int_equal(ev_loop_timer_count(f->ev), 0);
}

static void test_blocked_held_for_max_delay_and_counted(void **state)
{
    struct fixture *f = *state;
    int count[3] = { 0, 0, 0 };
    struct timespec ts;

    f->cfg.auth_rate_limit = 0;
    f->cfg.auth_penalty_delay = 0;          /* failures themselves are not delayed... */
    f->cfg.auth_penalty_max_delay = 8;
    f->cfg.auth_penalty_block_after = 1;    /* ...and the first one blocks */
    start(f);
    send_pass(f, 1, "wrong", "192.0.2.77");
    assert_int_equal(requests_serve(&f->d, 0, 1), 0);
    drain(f, count);
    assert_int_equal(count[AUTH_FAIL], 1);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    double before = penalty_user_score(&f->d.penalty, "bob", now);
    /* the right password from the blocked address: refused, held the maximum delay */
    send_pass(f, 2, "bobpw", "192.0.2.77");
    assert_int_equal(requests_serve(&f->d, 0, 1), 0);
    requests_run(&f->d);
    drain(f, count);
    assert_int_equal(count[AUTH_OK] + count[AUTH_TEMPFAIL], 0);
    assert_int_equal(count[AUTH_FAIL], 1);
    assert_int_equal(f->d.out.nheld, 1);
    assert_int_equal(ev_loop_timer_count(f->ev), 1);
    ev_loop_fire_timers(f->ev, clock_mono() + 7);
    drain(f, count);
    assert_int_equal(count[AUTH_FAIL], 1);   /* not yet */
    ev_loop_fire_timers(f->ev, clock_mono() + 8.5);
    drain(f, count);
    assert_int_equal(count[AUTH_FAIL], 2);   /* refused after the 8 s maximum delay */
    assert_int_equal(f->d.out.nheld, 0);
    /* and it counted against bob like any failure */
    assert_true(penalty_user_score(&f->d.penalty, "bob", now) >= before + 0.99);
}

/*
 * A clean stop drains through the request path: a request out to LDAP is
 * waited for (bounded), and its answer reaches the worker. The "server"
 * here takes TCP connections and never answers, so the answer is LDAP's
 * timeout: a temporary failure after ldap_timeout.
 */
static void test_drain_waits_for_ldap(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sin);
    unsigned char msg[IPC_MAX_MESSAGE];
    struct auth_reply rep;
    struct timespec a, b;

    int silent = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(silent >= 0);
    assert_int_equal(bind(silent, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(silent, 16), 0);
    assert_int_equal(getsockname(silent, (struct sockaddr *)&sin, &len), 0);
    snprintf(f->cfg.passdb, sizeof(f->cfg.passdb), "ldap");
    snprintf(f->cfg.ldap_uri, sizeof(f->cfg.ldap_uri), "ldap://127.0.0.1:%d", ntohs(sin.sin_port));
    f->cfg.ldap_timeout = 1;
    f->cfg.auth_penalty = 0;
    f->cfg.auth_rate_limit = 0;
    start(f);
    send_pass(f, 1, "bobpw", "192.0.2.9");
    assert_int_equal(requests_serve(&f->d, 0, 1), 0);
    /* out to LDAP: no answer yet, and a drain with no time left does not wait */
    requests_drain(&f->d, 0);
    assert_int_equal(ipc_recv(f->sv[1], msg, sizeof(msg)), -1);
    assert_int_equal(errno, EAGAIN);
    clock_gettime(CLOCK_MONOTONIC, &a);
    requests_drain(&f->d, 30);
    clock_gettime(CLOCK_MONOTONIC, &b);
    /* it returned once LDAP had answered, long before its bound */
    assert_true(b.tv_sec - a.tv_sec < 20);
    ssize_t n = ipc_recv(f->sv[1], msg, sizeof(msg));
    assert_true(n > 0);
    assert_int_equal(protocol_decode_reply(msg, (size_t)n, &rep), 0);
    assert_int_equal(rep.id, 1);
    assert_int_equal(rep.status, AUTH_TEMPFAIL);
    close(silent);
}

/* SCRAM START is charged to the address's budget too (issue 12, item 9). */
static void test_scram_start_is_charged(void **state)
{
    struct fixture *f = *state;
    unsigned char msg[IPC_MAX_MESSAGE];
    int ok = 0, temp = 0;
    ssize_t n;

    f->cfg.auth_penalty = 0;
    f->cfg.auth_rate_limit = 1;
    f->cfg.auth_rate_burst = 2;
    start(f);
    for (uint32_t i = 1; i <= 3; i++) {
        assert_int_equal(ipc_begin(&f->req, AUTH_MSG_SCRAM_START, i), 0);
        assert_int_equal(ipc_put_str(&f->req, "n,,n=bob,r=abcdef"), 0);
        assert_int_equal(ipc_put_str(&f->req, "192.0.2.5"), 0);
        assert_int_equal(ipc_send(f->sv[1], &f->req), 0);
    }
    assert_int_equal(requests_serve(&f->d, 0, 3), 0);
    while ((n = ipc_recv(f->sv[1], msg, sizeof(msg))) > 0) {
        struct ipc_reader r;
        uint32_t type, id;
        assert_int_equal(ipc_reader_init(&r, msg, (size_t)n, &type, &id), 0);
        assert_int_equal(type, AUTH_MSG_SCRAM_CHALLENGE);
        uint32_t status = ipc_get_u32(&r);
        ok += status == AUTH_OK;
        temp += status == AUTH_TEMPFAIL;
    }
    assert_int_equal(ok, 2);
    assert_int_equal(temp, 1);
}

/* A PASS request for bob with mechanism mech, as a worker or the router sends it. */
static void send_pass_as(struct fixture *f, uint32_t id, const char *mech)
{
    assert_int_equal(ipc_begin(&f->req, AUTH_MSG_PASS_REQUEST, id), 0);
    assert_int_equal(ipc_put_str(&f->req, "bob"), 0);
    assert_int_equal(ipc_put_str(&f->req, "bobpw"), 0);
    assert_int_equal(ipc_put_str(&f->req, "192.0.2.9"), 0);
    assert_int_equal(ipc_put_str(&f->req, mech), 0);
    assert_int_equal(ipc_send(f->sv[1], &f->req), 0);
}

static void write_router_pid(struct fixture *f, long pid)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/%s", f->dir, ROUTER_PID_NAME);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "%ld\n", pid);
    fclose(fp);
}

/*
 * The router's mechanisms skip the credential cache: only the process the
 * master named in run_dir/router.pid may send them. Any other peer (a
 * worker) is cut off, with no answer; the named one is answered.
 */
static void test_router_mechanism_only_from_the_router(void **state)
{
    struct fixture *f = *state;
    int count[3] = { 0, 0, 0 };
    char path[192];

    f->cfg.auth_penalty = 0;
    snprintf(f->cfg.run_dir, sizeof(f->cfg.run_dir), "%s", f->dir);
    start(f);
    /* An ordinary mechanism is served whatever the file says. */
    send_pass_as(f, 1, "USER");
    assert_int_equal(requests_serve(&f->d, 0, 1), 0);
    drain(f, count);
    assert_int_equal(count[AUTH_OK], 1);

    /* No router running: refused. */
    send_pass_as(f, 2, AUTH_MECH_ROUTER_LOOKUP);
    assert_int_equal(requests_serve(&f->d, 0, 1), -1);
    /* Another process is the router: refused, for both of its mechanisms. */
    write_router_pid(f, (long)getpid() + 1);
    send_pass_as(f, 3, AUTH_MECH_ROUTER);
    assert_int_equal(requests_serve(&f->d, 0, 1), -1);
    drain(f, count);
    assert_int_equal(count[AUTH_OK], 1);
    assert_int_equal(count[AUTH_FAIL] + count[AUTH_TEMPFAIL], 0);

    /* This connection's process is the router: answered. */
    write_router_pid(f, (long)getpid());
    send_pass_as(f, 4, AUTH_MECH_ROUTER_LOOKUP);
    assert_int_equal(requests_serve(&f->d, 0, 1), 0);
    drain(f, count);
    assert_int_equal(count[AUTH_OK], 2);
    snprintf(path, sizeof(path), "%s/%s", f->dir, ROUTER_PID_NAME);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rate_limit_before_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_cap_answers_tempfail_never_early, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_blocked_held_for_max_delay_and_counted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scram_start_is_charged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_waits_for_ldap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_mechanism_only_from_the_router, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
