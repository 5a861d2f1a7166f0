/*
 * daemon/router/health.c against real sockets on 127.0.0.1: a backend
 * greeting +OK is up, one greeting -ERR is draining, a refused port and a
 * server that never greets are down; with proxy_protocol the check sends
 * "PROXY UNKNOWN" first; a backend that goes away is down at the next round.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/router/health.h"
#include "daemon/runtime/event_loop.h"

struct fake {
    int listen_fd;
    const char *greeting;   /* NULL: accept and say nothing */
    int conn_fd;
    double accepted_at;
    char got[64];           /* what the check sent before reading */
};

static unsigned listen_on(int *fd)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(*fd, 8), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run the checker's loop and the fake servers together for `seconds`. */
static void run(struct ev_loop *loop, struct fake *f, size_t nf, double seconds)
{
    double end = now_s() + seconds;
    ev_loop_set_max_wait(loop, 10);
    for (int turns = 0; turns < 10000 && now_s() < end; turns++) {
        struct pollfd pfd[8];
        assert_true(ev_loop_once(loop) >= 0);
        for (size_t i = 0; i < nf; i++)
            pfd[i] = (struct pollfd){ .fd = f[i].listen_fd, .events = POLLIN };
        poll(pfd, (nfds_t)nf, 0);
        for (size_t i = 0; i < nf; i++) {
            if (pfd[i].revents & POLLIN) {
                int c = accept(f[i].listen_fd, NULL, NULL);
                if (c >= 0) {
                    if (f[i].conn_fd >= 0)
                        close(f[i].conn_fd);
                    f[i].conn_fd = c;
                    f[i].accepted_at = now_s();
                    f[i].got[0] = '\0';
                }
            }
            /* Greet once the check had time to send its PROXY header. */
            if (f[i].conn_fd >= 0 && f[i].greeting != NULL &&
                now_s() - f[i].accepted_at > 0.05) {
                ssize_t r = recv(f[i].conn_fd, f[i].got, sizeof(f[i].got) - 1, MSG_DONTWAIT);
                f[i].got[r > 0 ? r : 0] = '\0';
                assert_true(send(f[i].conn_fd, f[i].greeting, strlen(f[i].greeting),
                                 MSG_NOSIGNAL) > 0);
                close(f[i].conn_fd);
                f[i].conn_fd = -1;
            }
        }
    }
}

static void test_states(void **state)
{
    (void)state;
    struct fake f[3] = {
        { -1, "+OK fastpop ready\r\n", -1, 0, "" },
        { -1, "-ERR [SYS/TEMP] draining\r\n", -1, 0, "" },
        { -1, NULL, -1, 0, "" },
    };
    struct route_backend b[4];
    memset(b, 0, sizeof(b));
    for (int i = 0; i < 3; i++) {
        b[i].port = listen_on(&f[i].listen_fd);
        snprintf(b[i].ip, sizeof(b[i].ip), "127.0.0.1");
    }
    int gone;
    b[3].port = listen_on(&gone);
    close(gone);   /* nothing listens there now: refused */
    snprintf(b[3].ip, sizeof(b[3].ip), "127.0.0.1");
    struct ev_loop *loop = ev_loop_new();
    assert_non_null(loop);
    struct health *h = health_new(loop, b, 4, 0.2, 1.0, 1);
    assert_non_null(h);
    run(loop, f, 3, 2.5);
    assert_true(b[0].up && !b[0].draining);
    assert_true(b[1].up && b[1].draining);
    assert_false(b[2].up);   /* never greeted within the timeout */
    assert_false(b[3].up);
    assert_string_equal(f[0].got, "PROXY UNKNOWN\r\n");
    /* The healthy one goes away: down from the next round on. */
    close(f[0].listen_fd);
    if (f[0].conn_fd >= 0)
        close(f[0].conn_fd);
    run(loop, f + 1, 2, 2.5);
    assert_false(b[0].up);
    health_free(h);
    /* Every check's watch and timer, and the round's timer, went with it. */
    assert_int_equal(ev_loop_timer_count(loop), 0);
    ev_loop_free(loop);
    for (int i = 1; i < 3; i++) {
        close(f[i].listen_fd);
        if (f[i].conn_fd >= 0)
            close(f[i].conn_fd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
