/*
 * The worker's connection and POP3 code driven through a real epoll loop
 * over a socketpair: commands arrive one byte at a time, and RETR output
 * goes through a tiny send buffer read in odd-sized pieces, so every
 * partial-read, partial-write and EAGAIN path runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/config.h"
#include "daemon/runtime/log.h"
#include "shm/scoreboard.h"
#include "t/unit/helper_maildir.h"
#include "worker/auth_client.h"
#include "worker/conn.h"
#include "worker/login.h"
#include "worker/loop.h"
#include "worker/pop3.h"

struct rig {
    struct config cfg;
    struct loop lp;
    int client;               /* the test's end of the socketpair */
    char root[PATH_MAX];      /* a maildir */
};

static void pump(struct rig *r, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        ev_loop_no_wait(r->lp.ev);
        int n = ev_loop_once(r->lp.ev);
        conn_run_ready(&r->lp);
        conn_free_closed(&r->lp);
        if (n <= 0)
            return;
    }
}

/* Read whatever the server has sent, at most max bytes per read. */
static size_t drain(struct rig *r, char *out, size_t cap, size_t max_piece)
{
    size_t got = 0;
    for (int i = 0; i < 100000 && got < cap; i++) {
        size_t want = cap - got < max_piece ? cap - got : max_piece;
        ssize_t n = recv(r->client, out + got, want, MSG_DONTWAIT);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    int sv[2];
    assert_non_null(r);
    log_open(LOG_TO_STDERR, LOG_LVL_WARNING, "test", -1);
    config_defaults(&r->cfg);
    r->cfg.max_bad_commands = 3;
    r->cfg.mark_seen = 0;
    r->cfg.plaintext_auth = 1;
    r->lp.cfg = &r->cfg;
    r->lp.protocol = &pop3_protocol;
    r->lp.pid = getpid();
    r->lp.ev = ev_loop_new();
    r->lp.sb = scoreboard_create(8);
    assert_non_null(r->lp.sb);
    r->lp.auth = auth_client_new(&r->lp, "/nonexistent/auth.sock", NULL);
    assert_non_null(r->lp.auth);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    /* The smallest send buffer the kernel allows: RETR must hit EAGAIN often. */
    int small = 1;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    r->client = sv[1];

    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(4242) };
    peer.sin_addr.s_addr = htonl(0x7f000001);
    enum scoreboard_refusal why;
    int slot = scoreboard_conn_open(r->lp.sb, r->lp.pid, (struct sockaddr *)&peer, 8, 8, &why);
    assert_true(slot >= 0);
    static struct config_listen plain;
    assert_int_equal(conn_new(&r->lp, sv[0], (struct sockaddr *)&peer, slot, &plain), 0);
    assert_int_equal(tmd_make(r->root, 1), 0);
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
    tmd_remove(r->root);
    free(r);
    return 0;
}

static void send_trickle_n(struct rig *r, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(send(r->client, s + i, 1, 0), 1);
        pump(r, 4);
    }
}

static void send_trickle(struct rig *r, const char *s)
{
    send_trickle_n(r, s, strlen(s));
}

static void test_commands_one_byte_at_a_time(void **state)
{
    struct rig *r = *state;
    char out[4096];

    pump(r, 4);
    size_t n = drain(r, out, sizeof(out) - 1, 4096);
    out[n] = '\0';
    assert_string_equal(out, "+OK fastpop ready.\r\n");

    send_trickle(r, "noop\r\nCAPA\nSTAT\r\n");
    send_trickle_n(r, "X\0Y\r\n", 5);
    n = drain(r, out, sizeof(out) - 1, 4096);
    out[n] = '\0';
    assert_string_equal(out, "+OK\r\n"
                             "+OK Capability list follows\r\n"
                             "CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
                             "PIPELINING\r\nUSER\r\nSASL PLAIN LOGIN\r\n"
                             "IMPLEMENTATION fastpop\r\n.\r\n"
                             "-ERR STAT is not valid in this state\r\n"
                             "-ERR NUL byte in command\r\n");
}

static void test_partial_long_line_then_too_many_errors(void **state)
{
    struct rig *r = *state;
    char out[4096];
    char longline[300];

    pump(r, 4);
    drain(r, out, sizeof(out), 4096);
    memset(longline, 'a', sizeof(longline) - 1);
    longline[sizeof(longline) - 1] = '\0';
    /* The limit holds before the line end arrives. */
    send_trickle(r, longline);
    size_t n = drain(r, out, sizeof(out) - 1, 4096);
    out[n] = '\0';
    assert_string_equal(out, "-ERR Command line too long (at most 255 octets)\r\n");
    send_trickle(r, "aaaa\r\nNOOP\r\nFOO\r\nBAR\r\n");
    n = drain(r, out, sizeof(out) - 1, 4096);
    out[n] = '\0';
    assert_string_equal(out, "+OK\r\n-ERR Unknown command\r\n-ERR Unknown command\r\n"
                             "-ERR Too many bad commands, closing connection\r\n");
    pump(r, 4);
    assert_null(r->lp.conns);
    assert_int_equal(recv(r->client, out, 1, MSG_DONTWAIT), 0); /* closed */
}

/* What RETR must put on the wire for data: CRLF line ends, dot-stuffing, final dot. */
static size_t expected_retr(const char *data, size_t len, char *out)
{
    size_t o = 0;
    int bol = 1;
    for (size_t i = 0; i < len; i++) {
        if (bol && data[i] == '.')
            out[o++] = '.';
        bol = 0;
        if (data[i] == '\n') {
            out[o++] = '\r';
            bol = 1;
        }
        out[o++] = data[i];
    }
    memcpy(out + o, ".\r\n", 3);
    return o + 3;
}

static void test_retr_through_a_tiny_send_buffer(void **state)
{
    struct rig *r = *state;
    size_t len = 300 * 1024;
    char *data = malloc(len);
    char *want = malloc(len * 3);
    char *got = malloc(len * 3 + 4096);
    assert_non_null(data);
    assert_non_null(want);
    assert_non_null(got);

    /* LF-only lines, some starting with a dot, as delivery agents write them. */
    for (size_t i = 0; i < len; i++)
        data[i] = (i % 61 == 60) ? '\n' : (i % 61 == 0 && i % 7 == 0) ? '.' : 'a' + (char)(i % 26);
    data[len - 1] = '\n';
    assert_int_equal(tmd_write(r->root, "cur/1000.M1.test:2,", data, len), 0);
    size_t want_len = expected_retr(data, len, want);

    pump(r, 4);
    drain(r, got, 4096, 4096);
    send_trickle(r, "USER someone\r\n");
    drain(r, got, 4096, 4096);
    /* Stand in for fastpop-auth: the helper's answer arrives. */
    struct conn *c = r->lp.conns;
    assert_non_null(c);
    login_finish(c, AUTH_OK, "someone", r->root, NULL);
    conn_resume(c);
    pump(r, 4);
    size_t n = drain(r, got, 4096, 4096);
    got[n] = '\0';
    assert_string_equal(got, "+OK Logged in, 1 messages\r\n");

    send_trickle(r, "RETR 1\r\nNOOP\r\n");
    size_t total = 0;
    for (int i = 0; i < 2000000 && total < want_len + 200; i++) {
        /* Odd-sized reads keep the server's writes partial. */
        total += drain(r, got + total, want_len + 200 - total, 1 + (size_t)(i % 13) * 97);
        pump(r, 2);
        /* Backpressure: output never piles up past the high-water mark. */
        if (r->lp.conns != NULL)
            assert_true(buf_len(&r->lp.conns->out) <= 64 * 1024 + 1);
        if (total >= want_len + 15)
            break;
    }
    size_t lfs = 0;
    for (size_t i = 0; i < len; i++)
        lfs += data[i] == '\n';
    char status_line[64];
    snprintf(status_line, sizeof(status_line), "+OK %zu octets\r\n", len + lfs);
    size_t sl = strlen(status_line);
    assert_true(total >= sl);
    assert_memory_equal(got, status_line, sl);
    assert_int_equal(total - sl, want_len + strlen("+OK\r\n"));
    assert_memory_equal(got + sl, want, want_len);
    assert_memory_equal(got + sl + want_len, "+OK\r\n", 5);
    free(data);
    free(want);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commands_one_byte_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_long_line_then_too_many_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retr_through_a_tiny_send_buffer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
