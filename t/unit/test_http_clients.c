/*
 * The HTTP connection side shared by fastpop-metrics and fastpop-router
 * (daemon/runtime/http_clients.h), over real loopback sockets: an answer
 * given later reaches its client, a stale token answers nobody, a client
 * that hangs up while waiting is reported gone, a header block past its
 * limit gets 431, and a client past max_clients gets 503.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "daemon/runtime/clock.h"
#include "daemon/runtime/event_loop.h"
#include "daemon/runtime/http_clients.h"

struct owner {
    int requests, gone;
    uint64_t last_token;
    char last_request[256];
};

static void on_request(void *ctx, uint64_t token, const char *req, size_t len)
{
    struct owner *o = ctx;
    o->requests++;
    o->last_token = token;
    snprintf(o->last_request, sizeof(o->last_request), "%.*s", (int)len, req);
}

static void on_gone(void *ctx, uint64_t token)
{
    struct owner *o = ctx;
    (void)token;
    o->gone++;
}

static int listener(int *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static int client(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static struct ev_loop *loop;

/* A bounded number of loop turns, each waiting at most 50 ms. */
static void serve(int turns)
{
    ev_loop_set_max_wait(loop, 50);
    for (int i = 0; i < turns; i++)
        assert_true(ev_loop_once(loop) >= 0);
}

/* Everything the server sent until it closed (bounded by the socket's 2 s timeout). */
static void read_all(int fd, char *out, size_t outlen)
{
    struct timeval tv = { 2, 0 };
    size_t have = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (;;) {
        ssize_t n = recv(fd, out + have, outlen - 1 - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    out[have] = '\0';
}

static const struct http_clients_limits lim = {
    .max_clients = 2, .client_seconds = 5.0, .request_max = 64, .answer_max = 256,
};

static void test_answer_later_and_stale_token(void **state)
{
    (void)state;
    struct owner o = { 0 };
    int port;
    struct http_clients *hc = http_clients_new(loop, listener(&port), &lim, on_request, on_gone, &o);
    assert_non_null(hc);
    int c = client(port);
    static const char req[] = "GET /auth HTTP/1.0\r\nAuth-User: a\r\n\r\n";
    assert_int_equal(send(c, req, sizeof(req) - 1, 0), (ssize_t)(sizeof(req) - 1));
    serve(10);
    assert_int_equal(o.requests, 1);
    assert_string_equal(o.last_request, req);
    uint64_t token = o.last_token;
    assert_int_equal(http_clients_answer(hc, token, "HTTP/1.0 200 OK\r\n\r\n", 19), 0);
    /* Answered once: the same token names nobody now. */
    assert_int_equal(http_clients_answer(hc, token, "x", 1), -1);
    assert_int_equal(http_clients_answer(hc, token + 1, "x", 1), -1);
    shutdown(c, SHUT_WR);
    serve(5);
    char got[256];
    read_all(c, got, sizeof(got));
    assert_string_equal(got, "HTTP/1.0 200 OK\r\n\r\n");
    close(c);
    assert_int_equal(o.gone, 0);
    http_clients_free(hc);
}

static void test_hangup_while_waiting_is_reported(void **state)
{
    (void)state;
    struct owner o = { 0 };
    int port;
    struct http_clients *hc = http_clients_new(loop, listener(&port), &lim, on_request, on_gone, &o);
    int c = client(port);
    assert_int_equal(send(c, "GET / HTTP/1.0\r\n\r\n", 18, 0), 18);
    serve(10);
    assert_int_equal(o.requests, 1);
    close(c);
    serve(10);
    assert_int_equal(o.gone, 1);
    assert_int_equal(http_clients_answer(hc, o.last_token, "x", 1), -1);
    http_clients_free(hc);
}

static void test_too_long_and_too_many(void **state)
{
    (void)state;
    struct owner o = { 0 };
    int port;
    char got[256], big[100];
    struct http_clients *hc = http_clients_new(loop, listener(&port), &lim, on_request, on_gone, &o);
    int c = client(port);
    memset(big, 'a', sizeof(big));
    assert_int_equal(send(c, big, sizeof(big), 0), (ssize_t)sizeof(big));
    serve(10);
    shutdown(c, SHUT_WR);
    serve(5);
    read_all(c, got, sizeof(got));
    assert_non_null(strstr(got, "431"));
    assert_int_equal(o.requests, 0);
    close(c);
    serve(5);
    /* Two clients hold both places; the third is told 503 at once. */
    int a = client(port), b = client(port);
    serve(5);
    int third = client(port);
    serve(5);
    read_all(third, got, sizeof(got));
    assert_non_null(strstr(got, "503"));
    close(third);
    close(a);
    close(b);
    http_clients_free(hc);
}

/* Each client's client_seconds is its own timer of the loop: past it, a waiting client is gone. */
static void test_client_timeout_is_a_timer(void **state)
{
    (void)state;
    struct owner o = { 0 };
    int port;
    char got[256];
    struct http_clients *hc = http_clients_new(loop, listener(&port), &lim, on_request, on_gone, &o);
    assert_non_null(hc);
    int fd = client(port);
    assert_int_equal(send(fd, "GET / HTTP/1.0\r\n\r\n", 18, 0), 18);
    serve(10);
    assert_int_equal(o.requests, 1);
    assert_int_equal(ev_loop_timer_count(loop), 1);
    ev_loop_fire_timers(loop, clock_mono() + lim.client_seconds - 1.0);
    assert_int_equal(o.gone, 0);
    ev_loop_fire_timers(loop, clock_mono() + lim.client_seconds + 0.1);
    assert_int_equal(o.gone, 1);
    assert_int_equal(ev_loop_timer_count(loop), 0);
    read_all(fd, got, sizeof(got));
    assert_string_equal(got, "");
    assert_int_equal(http_clients_answer(hc, o.last_token, "x", 1), -1);
    close(fd);
    http_clients_free(hc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_later_and_stale_token),
        cmocka_unit_test(test_hangup_while_waiting_is_reported),
        cmocka_unit_test(test_too_long_and_too_many),
        cmocka_unit_test(test_client_timeout_is_a_timer),
    };
    loop = ev_loop_new();
    assert_non_null(loop);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ev_loop_free(loop);
    return rc;
}
