/*
 * The worker's helper client (worker/auth_client.c) against a stand-in
 * helper on a real SOCK_SEQPACKET socket, with real connections on
 * socketpairs, each pipelining two logins. The helper answers some
 * requests, then goes away: the answers, the loss of the helper and the
 * clients' next commands must not tear the request list down under the
 * code that walks it (issue 12 item 2: a double free), and a connection's
 * next command must never run from inside a helper callback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/protocol.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/clock.h"
#include "shm/scoreboard.h"
#include "worker/auth_client.h"
#include "worker/conn.h"
#include "worker/loop.h"
#include "worker/pop3.h"
#include "worker/login.h"

#define CLIENTS 4
#define PIPELINED "USER a\r\nPASS x\r\nUSER a\r\nPASS y\r\n"

struct rig {
    struct config cfg;
    struct loop lp;
    char dir[64];
    char path[96];               /* the stand-in helper's socket */
    int listener;                /* the helper's listening socket, -1 once gone */
    int helper;                  /* its end of the worker's connection */
    int client[CLIENTS];         /* the test's ends of the connections */
    uint32_t ids[CLIENTS];       /* request ids in arrival order */
    int requests;
};

/* One turn of the event loop that does not wait, then what the worker does after it. */
static int pump_once(struct rig *r)
{
    ev_loop_no_wait(r->lp.ev);
    int n = ev_loop_once(r->lp.ev);
    assert_true(n >= 0);
    conn_run_ready(&r->lp);
    conn_free_closed(&r->lp);
    return n;
}

/* Past the helper's timeout, before login_timeout (60 s) and idle_timeout. */
static void helper_timeout_passes(struct rig *r)
{
    ev_loop_fire_timers(r->lp.ev, clock_mono() + AUTH_TIMEOUT_SECONDS + 1);
}

static void pump(struct rig *r)
{
    for (int i = 0; i < 50 && pump_once(r) > 0; i++)
        ;
}

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    signal(SIGPIPE, SIG_IGN);
    log_open(LOG_TO_STDERR, LOG_LVL_ERROR, "test", -1);
    config_defaults(&r->cfg);
    r->cfg.plaintext_auth = 1;
    r->cfg.auth_cache_ttl = 0;      /* every PASS goes to the helper */
    r->cfg.max_auth_failures = 10;
    r->lp.cfg = &r->cfg;
    r->lp.protocol = &pop3_protocol;
    r->lp.pid = getpid();
    r->lp.ev = ev_loop_new();
    assert_non_null(r->lp.ev);
    r->lp.sb = scoreboard_create(CLIENTS * 2);
    assert_non_null(r->lp.sb);

    snprintf(r->dir, sizeof(r->dir), "/tmp/fastpop-authclient-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    assert_true(strlen(r->dir) + sizeof("/auth.sock") <= sizeof(r->path));
    strcat(strcpy(r->path, r->dir), "/auth.sock");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    strcpy(sun.sun_path, r->path);
    r->listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    assert_true(r->listener >= 0);
    assert_int_equal(bind(r->listener, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(r->listener, 4), 0);
    r->helper = -1;
    r->lp.auth = auth_client_new(&r->lp, r->path, login_adopt_view);
    assert_non_null(r->lp.auth);

    static struct config_listen plain;
    for (int i = 0; i < CLIENTS; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        r->client[i] = sv[1];
        struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(4000 + i) };
        peer.sin_addr.s_addr = htonl(0x7f000001);
        enum scoreboard_refusal why;
        int slot = scoreboard_conn_open(r->lp.sb, r->lp.pid, (struct sockaddr *)&peer,
                                        CLIENTS * 2, CLIENTS * 2, &why);
        assert_true(slot >= 0);
        assert_int_equal(conn_new(&r->lp, sv[0], (struct sockaddr *)&peer, slot, &plain), 0);
    }
    *state = r;
    return 0;
}

static void helper_gone(struct rig *r)
{
    if (r->helper != -1)
        close(r->helper);
    r->helper = -1;
    /* Nothing to reconnect to either: retries fail at once, the same way every run. */
    if (r->listener != -1) {
        close(r->listener);
        unlink(r->path);
    }
    r->listener = -1;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    for (int n = 0; r->lp.conns != NULL && n < 100; n++)
        conn_close(r->lp.conns, "test-end");
    conn_free_closed(&r->lp);
    auth_client_free(r->lp.auth);
    helper_gone(r);
    for (int i = 0; i < CLIENTS; i++)
        close(r->client[i]);
    ev_loop_free(r->lp.ev);
    scoreboard_destroy(r->lp.sb);
    rmdir(r->dir);
    free(r);
    return 0;
}

/* Everything the server has sent to client i so far. */
static const char *output(struct rig *r, int i)
{
    static char out[4096];
    size_t got = 0;
    for (int k = 0; k < 100 && got < sizeof(out) - 1; k++) {
        ssize_t n = recv(r->client[i], out + got, sizeof(out) - 1 - got, MSG_DONTWAIT);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    out[got] = '\0';
    return out;
}

/* Every client pipelines two logins; each first PASS reaches the helper. */
static void start_logins(struct rig *r)
{
    for (int i = 0; i < CLIENTS; i++)
        assert_int_equal(send(r->client[i], PIPELINED, strlen(PIPELINED), 0),
                         (ssize_t)strlen(PIPELINED));
    pump(r);
    r->helper = accept4(r->listener, NULL, NULL, SOCK_CLOEXEC);
    assert_true(r->helper >= 0);
    unsigned char msg[IPC_MAX_MESSAGE];
    /* A worker's first message on a new connection asks for the penalty view: not a login. */
    r->requests = 0;
    for (int tries = 0; r->requests < CLIENTS && tries < CLIENTS + 2; tries++) {
        ssize_t n = recv(r->helper, msg, sizeof(msg), MSG_DONTWAIT);
        assert_true(n > 0);
        struct ipc_reader rd;
        uint32_t type;
        assert_int_equal(ipc_reader_init(&rd, msg, (size_t)n, &type, &r->ids[r->requests]), 0);
        if (type == AUTH_MSG_VIEW_REQUEST)
            continue;
        assert_int_equal(type, AUTH_MSG_PASS_REQUEST);
        r->requests++;
    }
    assert_int_equal(r->requests, CLIENTS);
    /* The second PASS of each client waits behind the first. */
    assert_int_equal(recv(r->helper, msg, sizeof(msg), MSG_DONTWAIT), -1);
    for (int i = 0; i < CLIENTS; i++)
        assert_string_equal(output(r, i), "+OK fastpop ready.\r\n+OK Send your password\r\n");
}

static void answer_fail(struct rig *r, uint32_t id)
{
    struct buf b;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, AUTH_MSG_PASS_REPLY, id), 0);
    assert_int_equal(ipc_put_u32(&b, AUTH_FAIL), 0);
    assert_int_equal(ipc_put_str(&b, "a"), 0);
    assert_int_equal(ipc_put_str(&b, ""), 0);
    assert_int_equal(ipc_put_str(&b, ""), 0);
    assert_int_equal(ipc_put_u64(&b, 0), 0);   /* no cache generation */
    assert_int_equal(ipc_send(r->helper, &b), 0);
    buf_free(&b);
}

#define FAILED "-ERR [AUTH] Authentication failed\r\n"
#define TEMPFAIL "-ERR [SYS/TEMP] Temporary authentication failure, try again later\r\n"
#define UNAVAILABLE "-ERR [SYS/TEMP] Authentication service unavailable, try again later\r\n"
#define SECOND_USER "+OK Send your password\r\n"

/*
 * The helper answers the first request, then shuts down with the others
 * out. The answered client's second PASS then finds the helper gone (on
 * the old code: its send failed inside the answer's callback, and the
 * teardown freed the request the reply handler was still holding).
 */
static void test_helper_answers_then_shuts_down(void **state)
{
    struct rig *r = *state;
    start_logins(r);
    answer_fail(r, r->ids[0]);
    helper_gone(r);
    pump(r);

    /* Which client the first request came from: the one that got FAILED. */
    int failed = 0;
    for (int i = 0; i < CLIENTS; i++) {
        const char *out = output(r, i);
        if (strcmp(out, FAILED SECOND_USER UNAVAILABLE) == 0) {
            failed++;
            continue;
        }
        assert_string_equal(out, TEMPFAIL SECOND_USER UNAVAILABLE);
    }
    assert_int_equal(failed, 1);
    /* Every session is back in AUTHORIZATION, nothing is left out at the helper. */
    /* Armed: each connection's idle and login deadlines, and no request's timeout. */
    assert_int_equal(ev_loop_timer_count(r->lp.ev), 2 * CLIENTS);
    assert_int_equal(r->lp.conn_count, CLIENTS);
    for (struct conn *c = r->lp.conns; c != NULL; c = c->all_next) {
        assert_true(pop3_in(c, POP3_AUTHORIZATION));
        assert_int_equal(c->auth_request, 0);
    }
}

/*
 * The helper goes silent and away; the worker's timeout fires before it
 * reads the hangup. The timeout's answers must not run the clients' next
 * PASS (whose send would fail and tear down the list being expired).
 */
static void test_timeout_before_the_hangup_is_seen(void **state)
{
    struct rig *r = *state;
    start_logins(r);
    helper_gone(r);

    helper_timeout_passes(r);
    /* Recorded, not run: no client has its answer or a new request yet. */
    for (int i = 0; i < CLIENTS; i++)
        assert_string_equal(output(r, i), "");
    assert_int_equal(ev_loop_timer_count(r->lp.ev), 2 * CLIENTS);

    pump(r);
    for (int i = 0; i < CLIENTS; i++)
        assert_string_equal(output(r, i), TEMPFAIL SECOND_USER UNAVAILABLE);
}

/*
 * A connection that closes while its answer is queued is not run, and the
 * queue never points at freed memory (the close and the answer in one batch).
 */
static void test_closed_while_queued(void **state)
{
    struct rig *r = *state;
    start_logins(r);
    helper_timeout_passes(r);
    struct conn *first = r->lp.conns;
    assert_non_null(first);
    conn_close(first, "test");
    conn_free_closed(&r->lp);
    pump(r);
    int closed = 0;
    for (int i = 0; i < CLIENTS; i++) {
        const char *out = output(r, i);
        if (out[0] == '\0') {
            closed++;
            assert_int_equal(recv(r->client[i], (char[1]){ 0 }, 1, MSG_DONTWAIT), 0);
            continue;
        }
        /* The others' second PASS reached the (still running) helper. */
        assert_string_equal(out, TEMPFAIL SECOND_USER);
    }
    assert_int_equal(closed, 1);
    assert_int_equal(r->lp.conn_count, CLIENTS - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_helper_answers_then_shuts_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_before_the_hangup_is_seen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_closed_while_queued, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
