/*
 * popctl drain inside a worker (worker/conn_drain.c), on a real connection
 * over a socketpair: a session not logged in is told and closed when the
 * drain is seen; a logged-in one only once it has been idle for
 * drain_idle_timeout (the idle deadline list, expired with a clock moved
 * forward instead of waiting), or at the deadline's kick; undrain puts
 * idle_timeout back. The e2e tests (t/e2e/test_drain.py) log in for real.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/clock.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/log.h"
#include "shm/scoreboard.h"
#include "worker/auth_client.h"
#include "worker/conn.h"
#include "worker/conn_drain.h"
#include "worker/conn_timer.h"
#include "worker/loop.h"
#include "worker/pop3.h"

struct rig {
    struct config cfg;
    struct loop lp;
    int client;               /* the test's end of the socketpair */
    int slot;
    char got[512];            /* what the server sent since the last read */
};

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    int sv[2];
    assert_non_null(r);
    log_open(LOG_TO_STDERR, LOG_LVL_ERROR, "test", -1);
    config_defaults(&r->cfg);
    assert_int_equal(r->cfg.idle_timeout, 600);
    assert_int_equal(r->cfg.drain_idle_timeout, 10);
    r->lp.cfg = &r->cfg;
    r->lp.protocol = &pop3_protocol;
    r->lp.pid = getpid();
    r->lp.ev = ev_loop_new();
    assert_non_null(r->lp.ev);
    r->lp.sb = scoreboard_create(8);
    assert_non_null(r->lp.sb);
    r->lp.auth = auth_client_new(&r->lp, "/nonexistent/auth.sock", NULL);
    assert_non_null(r->lp.auth);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    r->client = sv[1];
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(4242) };
    peer.sin_addr.s_addr = htonl(0x7f000001);
    enum scoreboard_refusal why;
    r->slot = scoreboard_conn_open(r->lp.sb, r->lp.pid, (struct sockaddr *)&peer, 8, 8, &why);
    assert_true(r->slot >= 0);
    static struct config_listen plain;
    assert_int_equal(conn_new(&r->lp, sv[0], (struct sockaddr *)&peer, r->slot, &plain), 0);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    while (r->lp.conns != NULL)
        conn_close(r->lp.conns, "test-end");
    conn_free_closed(&r->lp);
    auth_client_free(r->lp.auth);
    close(r->client);
    ev_loop_free(r->lp.ev);
    scoreboard_destroy(r->lp.sb);
    free(r);
    return 0;
}

/* What the server has sent so far, as a string; 1 if it has also closed. */
static int read_server(struct rig *r)
{
    size_t used = 0;
    int closed = 0;
    for (int i = 0; i < 100 && used < sizeof(r->got) - 1; i++) {
        ssize_t n = recv(r->client, r->got + used, sizeof(r->got) - 1 - used, MSG_DONTWAIT);
        if (n == 0)
            closed = 1;
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    r->got[used] = '\0';
    return closed;
}

/* The one connection of the rig, or NULL once it is closed. */
static struct conn *the_conn(struct rig *r)
{
    conn_free_closed(&r->lp);
    return r->lp.conns;
}

/*
 * Logged in, as far as the drain can tell: the login itself needs the auth
 * helper (the e2e tests do it for real); the drain looks only at the state.
 */
static struct conn *logged_in(struct rig *r)
{
    struct conn *c = the_conn(r);
    assert_non_null(c);
    read_server(r);
    assert_string_equal(r->got, "+OK fastpop ready.\r\n");
    pop3_set_state(c, POP3_TRANSACTION);
    return c;
}

static void test_not_logged_in_closed_at_once(void **state)
{
    struct rig *r = *state;
    assert_int_equal(conn_sweep(&r->lp, 1, "Back at 02:00"), 0);
    assert_true(read_server(r));
    assert_string_equal(r->got, "+OK fastpop ready.\r\n-ERR [SYS/TEMP] Back at 02:00\r\n");
    assert_null(the_conn(r));
}

static void test_default_message(void **state)
{
    struct rig *r = *state;
    conn_sweep(&r->lp, 1, "");
    assert_true(read_server(r));
    assert_non_null(strstr(r->got, "-ERR [SYS/TEMP] Server is going down for maintenance\r\n"));
}

static void test_idle_limit_only_while_draining(void **state)
{
    struct rig *r = *state;
    assert_true(conn_drain_idle_limit(&r->lp) == 600.0);
    conn_sweep(&r->lp, 1, "Maint");
    assert_true(conn_drain_idle_limit(&r->lp) == 10.0);
    r->cfg.drain_idle_timeout = 900;   /* longer than idle_timeout: that one wins */
    assert_true(conn_drain_idle_limit(&r->lp) == 600.0);
    r->cfg.drain_idle_timeout = 10;
    conn_sweep(&r->lp, 0, "");
    assert_true(conn_drain_idle_limit(&r->lp) == 600.0);
}

static void test_logged_in_served_until_idle(void **state)
{
    struct rig *r = *state;
    struct conn *c = logged_in(r);
    conn_sweep(&r->lp, 1, "Maint");
    assert_false(read_server(r));
    assert_string_equal(r->got, "");
    /* The next deadline is the drain's, not idle_timeout's. */
    double next = c->deadline.deadline - clock_mono();
    assert_true(next > 0 && next <= 10.0);
    ev_loop_fire_timers(r->lp.ev, clock_mono() + 9.0);
    assert_ptr_equal(the_conn(r), c);
    ev_loop_fire_timers(r->lp.ev, clock_mono() + 10.5);
    assert_true(read_server(r));
    assert_string_equal(r->got, "-ERR [SYS/TEMP] Maint\r\n");
    assert_null(the_conn(r));
}

static void test_undrain_restores_idle_timeout(void **state)
{
    struct rig *r = *state;
    struct conn *c = logged_in(r);
    conn_sweep(&r->lp, 1, "Maint");
    conn_sweep(&r->lp, 0, "");
    ev_loop_fire_timers(r->lp.ev, clock_mono() + 60.0);
    assert_ptr_equal(the_conn(r), c);
    assert_false(read_server(r));
    /* Past idle_timeout it is the ordinary idle close, not the drain's. */
    ev_loop_fire_timers(r->lp.ev, clock_mono() + 601.0);
    assert_true(read_server(r));
    assert_string_equal(r->got, "-ERR Disconnected for inactivity\r\n");
}

static void test_deadline_cuts_logged_in(void **state)
{
    struct rig *r = *state;
    logged_in(r);
    conn_sweep(&r->lp, 1, "Maint");
    assert_false(read_server(r));
    scoreboard_kick(r->lp.sb, (unsigned)r->slot, SB_KICK_NOW);
    assert_int_equal(conn_sweep(&r->lp, 1, "Maint"), 0);
    assert_true(read_server(r));
    assert_string_equal(r->got, "-ERR [SYS/TEMP] Maint\r\n");
    assert_null(the_conn(r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_logged_in_closed_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_limit_only_while_draining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logged_in_served_until_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undrain_restores_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_cuts_logged_in, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
