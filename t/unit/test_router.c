/*
 * The router's pure parts: nginx's auth_http request parser and answers
 * (daemon/router/auth_http.c), and the backend choice (route_pick.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/ipc.h"

#include "auth/protocol.h"
#include "daemon/router/auth_http.h"
#include "daemon/router/host_cache.h"
#include "daemon/router/route_pick.h"

/* As nginx 1.22 sends it for USER/PASS over POP3 (headers in its order). */
static const char nginx_request[] =
    "GET /auth HTTP/1.0\r\n"
    "Host: 127.0.0.1\r\n"
    "Auth-Method: plain\r\n"
    "Auth-User: alice@example.org\r\n"
    "Auth-Pass: p%25ss%20word\r\n"
    "Auth-Protocol: pop3\r\n"
    "Auth-Login-Attempt: 2\r\n"
    "Client-IP: 192.0.2.7\r\n"
    "Client-Host: [UNAVAILABLE]\r\n"
    "Auth-SSL: on\r\n"
    "\r\n";

static void test_parse_nginx_request(void **state)
{
    (void)state;
    struct auth_http_request req;
    size_t n = strlen(nginx_request);
    assert_int_equal(auth_http_parse(nginx_request, n, &req), AUTH_HTTP_COMPLETE);
    assert_string_equal(req.method, "plain");
    assert_string_equal(req.user, "alice@example.org");
    assert_string_equal(req.pass, "p%ss word");
    assert_string_equal(req.protocol, "pop3");
    assert_string_equal(req.client_ip, "192.0.2.7");
    assert_int_equal(req.attempt, 2);
    assert_int_equal(req.length, n);
    /* Every shorter prefix is incomplete, never bad: bytes arrive in pieces. */
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(auth_http_parse(nginx_request, cut, &req), AUTH_HTTP_INCOMPLETE);
}

static void expect_bad(const char *headers)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), "GET /auth HTTP/1.0\r\n%s\r\n", headers);
    struct auth_http_request req;
    if (auth_http_parse(buf, strlen(buf), &req) != AUTH_HTTP_BAD)
        fail_msg("accepted: %s", headers);
}

static void test_parse_refuses(void **state)
{
    (void)state;
    static const char ok_rest[] = "Auth-Pass: x\r\nClient-IP: 192.0.2.1\r\n";
    char h[1024];
    expect_bad("Auth-Pass: x\r\nClient-IP: 192.0.2.1\r\n");            /* no user */
    expect_bad("Auth-User: a\r\nClient-IP: 192.0.2.1\r\n");            /* no password */
    expect_bad("Auth-User: a\r\nAuth-Pass: x\r\n");                    /* no client */
    expect_bad("Auth-User:\r\nAuth-Pass: x\r\nClient-IP: 192.0.2.1\r\n"); /* empty user */
    snprintf(h, sizeof(h), "Auth-User: a\r\nAuth-User: b\r\n%s", ok_rest);
    expect_bad(h);                                                     /* twice */
    snprintf(h, sizeof(h), "Auth-User: a%%2\r\n%s", ok_rest);
    expect_bad(h);                                                     /* cut escape */
    snprintf(h, sizeof(h), "Auth-User: a%%zz\r\n%s", ok_rest);
    expect_bad(h);
    snprintf(h, sizeof(h), "Auth-User: a%%00b\r\n%s", ok_rest);
    expect_bad(h);                                                     /* NUL */
    snprintf(h, sizeof(h), "Auth-User: a\r\nAuth-Login-Attempt: x\r\n%s", ok_rest);
    expect_bad(h);
    snprintf(h, sizeof(h), "Auth-User: a\r\nno colon here\r\n%s", ok_rest);
    expect_bad(h);
    char longuser[400];
    memset(longuser, 'u', sizeof(longuser) - 1);
    longuser[sizeof(longuser) - 1] = '\0';
    snprintf(h, sizeof(h), "Auth-User: %s\r\n%s", longuser, ok_rest);
    expect_bad(h);                                                     /* too long */
    struct auth_http_request req;
    static const char post[] = "POST /auth HTTP/1.0\r\nAuth-User: a\r\nAuth-Pass: x\r\n"
                               "Client-IP: 192.0.2.1\r\n\r\n";
    assert_int_equal(auth_http_parse(post, strlen(post), &req), AUTH_HTTP_BAD);
    static const char http09[] = "GET /auth\r\nAuth-User: a\r\n\r\n";
    assert_int_equal(auth_http_parse(http09, strlen(http09), &req), AUTH_HTTP_BAD);
    /* A bad line after the password: refused, and the password is not kept. */
    static const char late_bad[] = "GET /auth HTTP/1.0\r\nAuth-Pass: secret\r\nno colon\r\n"
                                   "Auth-User: a\r\nClient-IP: 192.0.2.1\r\n\r\n";
    memset(&req, 0x55, sizeof(req));
    assert_int_equal(auth_http_parse(late_bad, strlen(late_bad), &req), AUTH_HTTP_BAD);
    for (size_t i = 0; i < sizeof(req.pass); i++)
        assert_int_equal(req.pass[i], 0);
    /* No end within the limit. */
    static char flood[AUTH_HTTP_REQUEST_MAX + 10];
    memset(flood, 'x', sizeof(flood));
    assert_int_equal(auth_http_parse(flood, sizeof(flood), &req), AUTH_HTTP_TOO_LONG);
}

static void test_parse_case_and_bare_lf(void **state)
{
    (void)state;
    static const char req_text[] = "GET / HTTP/1.1\nauth-user:bob\nAUTH-PASS:   pw  \n"
                                   "client-ip: ::1\n\n";
    struct auth_http_request req;
    assert_int_equal(auth_http_parse(req_text, strlen(req_text), &req), AUTH_HTTP_COMPLETE);
    assert_string_equal(req.user, "bob");
    assert_string_equal(req.pass, "pw");
    assert_string_equal(req.client_ip, "::1");
    assert_int_equal(req.attempt, 1);
}

static void test_answers(void **state)
{
    (void)state;
    char out[256];
    size_t n = auth_http_ok(out, sizeof(out), "127.0.1.2", 110, NULL);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.1.2\r\n"
                             "Auth-Port: 110\r\n\r\n");
    n = auth_http_fail(out, sizeof(out), "[AUTH] Bad\r\nX-Injected: 1", 3);
    assert_string_equal(out, "HTTP/1.0 200 OK\r\nAuth-Status: [AUTH] BadX-Injected: 1\r\n"
                             "Auth-Wait: 3\r\n\r\n");
    n = auth_http_fail(out, sizeof(out), "[SYS/TEMP] later", 0);
    assert_string_equal(out, "HTTP/1.0 200 OK\r\nAuth-Status: [SYS/TEMP] later\r\n\r\n");
    assert_int_equal(auth_http_ok(out, 10, "127.0.1.2", 110, NULL), 0);
    n = auth_http_ok(out, sizeof(out), "127.0.1.2", 110, "Alice");
    assert_string_equal(out, "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.1.2\r\n"
                             "Auth-Port: 110\r\nAuth-User: Alice\r\n\r\n");
}

static struct route_backend three[3] = {
    { "pop1", "127.0.1.1", 110, 1, 0 },
    { "pop2", "127.0.1.2", 110, 1, 0 },
    { "pop3", "127.0.1.3", 110, 1, 0 },
};

static void test_pick_preferred_then_rendezvous(void **state)
{
    (void)state;
    struct route_backend b[3];
    memcpy(b, three, sizeof(b));
    assert_int_equal(route_pick("alice", "pop2", b, 3), 1);
    int fallback = route_pick("alice", NULL, b, 3);
    assert_true(fallback >= 0);
    assert_int_equal(route_pick("alice", "nosuchhost", b, 3), fallback);
    b[1].draining = 1;
    int moved = route_pick("alice", "pop2", b, 3);
    assert_true(moved == 0 || moved == 2);
    assert_int_equal(route_pick("alice", "pop2", b, 3), moved);   /* deterministic */
    b[0].up = b[2].up = 0;
    assert_int_equal(route_pick("alice", "pop2", b, 3), -1);
}

/* Losing one backend moves only its own users; the rest stay where they were. */
static void test_pick_moves_only_the_lost_hosts_users(void **state)
{
    (void)state;
    struct route_backend b[3];
    memcpy(b, three, sizeof(b));
    int before[3000], count[3] = { 0 };
    char user[32];
    for (int u = 0; u < 3000; u++) {
        snprintf(user, sizeof(user), "user%d@example.org", u);
        before[u] = route_pick(user, NULL, b, 3);
        count[before[u]]++;
    }
    for (int i = 0; i < 3; i++)
        assert_true(count[i] > 800);   /* about 1,000 each */
    b[2].up = 0;
    for (int u = 0; u < 3000; u++) {
        snprintf(user, sizeof(user), "user%d@example.org", u);
        int now = route_pick(user, NULL, b, 3);
        if (before[u] != 2)
            assert_int_equal(now, before[u]);
        else
            assert_true(now == 0 || now == 1);
    }
}

/* A login's host is remembered for the TTL, then forgotten; TTL 0 remembers nothing. */
static void test_host_cache(void **state)
{
    (void)state;
    char host[AUTH_HOST_MAX];
    struct host_cache *hc = host_cache_new(30);
    assert_non_null(hc);
    assert_int_equal(host_cache_get(hc, "amy", 100.0, host), 0);
    host_cache_put(hc, "amy", "pop1", 100.0);
    host_cache_put(hc, "ezra", "", 100.0);
    assert_int_equal(host_cache_get(hc, "amy", 129.0, host), 1);
    assert_string_equal(host, "pop1");
    assert_int_equal(host_cache_get(hc, "ezra", 129.0, host), 1);   /* "no host" is remembered too */
    assert_string_equal(host, "");
    assert_int_equal(host_cache_get(hc, "Amy", 129.0, host), 0);
    assert_int_equal(host_cache_get(hc, "amy", 130.0, host), 0);
    host_cache_put(hc, "amy", "pop2", 131.0);                          /* a fresh lookup replaces */
    assert_int_equal(host_cache_get(hc, "amy", 132.0, host), 1);
    assert_string_equal(host, "pop2");
    host_cache_free(hc);
    hc = host_cache_new(0);
    host_cache_put(hc, "amy", "pop1", 100.0);
    assert_int_equal(host_cache_get(hc, "amy", 100.0, host), 0);
    host_cache_free(hc);
}

/* The helper's PASS reply carries the user's host; one without it (as before) decodes as "". */
static void test_pass_reply_host(void **state)
{
    (void)state;
    struct buf b;
    struct auth_reply rep;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(protocol_encode_pass_reply(&b, 7, AUTH_OK, "amy", "/m/amy", "", 3, "pop2", NULL),
                     0);
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), 0);
    assert_int_equal(rep.id, 7);
    assert_string_equal(rep.user, "amy");
    assert_string_equal(rep.host, "pop2");
    assert_int_equal(ipc_begin(&b, AUTH_MSG_PASS_REPLY, 8), 0);
    assert_int_equal(ipc_put_u32(&b, AUTH_OK), 0);
    assert_int_equal(ipc_put_str(&b, "amy"), 0);
    assert_int_equal(ipc_put_str(&b, "/m/amy"), 0);
    assert_int_equal(ipc_put_str(&b, ""), 0);
    assert_int_equal(ipc_put_u64(&b, 0), 0);
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), 0);
    assert_string_equal(rep.host, "");
    /* A host longer than any backend name is malformed. */
    char longhost[AUTH_HOST_MAX + 1];
    memset(longhost, 'h', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = '\0';
    assert_int_equal(protocol_encode_pass_reply(&b, 9, AUTH_OK, "amy", "/m", "", 0, longhost, NULL), 0);
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), -1);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_nginx_request),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_parse_case_and_bare_lf),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_host_cache),
        cmocka_unit_test(test_pass_reply_host),
        cmocka_unit_test(test_pick_preferred_then_rendezvous),
        cmocka_unit_test(test_pick_moves_only_the_lost_hosts_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
