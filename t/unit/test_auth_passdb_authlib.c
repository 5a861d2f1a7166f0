/*
 * The authlib backend's decisions that need no authdaemond: an answer into
 * user, maildir and refusals (auth/passdb_authlib_answer.c), requests refused
 * before any connection, and the outage answers: no socket, and a socket
 * that never answers (authlib_timeout). The real authdaemond is in
 * t/e2e/test_authlib.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/passdb_authlib.h"
#include "auth/protocol.h"
#include "daemon/runtime/buf.h"
#include "daemon/runtime/clock.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/ipc.h"

#define MAIL_UID 999

static struct passdb_authlib_settings settings(void)
{
    struct passdb_authlib_settings s;
    memset(&s, 0, sizeof(s));
    snprintf(s.socket_path, sizeof(s.socket_path), "/nonexistent/authdaemon/socket");
    snprintf(s.maildir_template, sizeof(s.maildir_template), "%%h/Maildir");
    s.timeout = 1;
    s.mail_uid = MAIL_UID;
    return s;
}

static void test_parse_ok_home(void **state)
{
    (void)state;
    struct passdb_authlib_settings s = settings();
    struct passdb_ldap_answer a;
    assert_int_equal(passdb_authlib_parse(&s, "alice",
                                          "UID=999\nGID=995\nHOME=/home/alice\nADDRESS=alice\n"
                                          "PASSWD=$1$x$y\nPASSWD2=secret\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_OK);
    assert_string_equal(a.user, "alice");
    assert_string_equal(a.maildir, "/home/alice/Maildir");
}

static void test_parse_maildir(void **state)
{
    (void)state;
    struct passdb_authlib_settings s = settings();
    struct passdb_ldap_answer a;
    /* Absolute MAILDIR wins over HOME. */
    assert_int_equal(passdb_authlib_parse(&s, "bob", "UID=999\nHOME=/home/bob\n"
                                          "MAILDIR=/srv/mail/bob\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_OK);
    assert_string_equal(a.maildir, "/srv/mail/bob");
    /* Relative MAILDIR: from the home directory, as Courier opens it. */
    assert_int_equal(passdb_authlib_parse(&s, "bob", "UID=999\nHOME=/home/bob\n"
                                          "MAILDIR=./Mail/box\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_OK);
    assert_string_equal(a.maildir, "/home/bob/Mail/box");
    /* A ".." would climb out: refused (tempfail, the directory's data is wrong). */
    assert_int_equal(passdb_authlib_parse(&s, "bob", "UID=999\nHOME=/home/bob\n"
                                          "MAILDIR=/srv/mail/../../etc\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_TEMPFAIL);
    assert_string_equal(a.maildir, "");
    /* No HOME and no MAILDIR: the template cannot be filled: tempfail. */
    assert_int_equal(passdb_authlib_parse(&s, "bob", "UID=999\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_TEMPFAIL);
    assert_string_equal(a.reason, "maildir");
    assert_int_equal(a.outage, 0);
}

static void test_parse_fail_and_refusals(void **state)
{
    (void)state;
    struct passdb_authlib_settings s = settings();
    struct passdb_ldap_answer a;
    assert_int_equal(passdb_authlib_parse(&s, "x", "FAIL\n", &a), 0);
    assert_int_equal(a.status, AUTH_FAIL);
    assert_int_equal(passdb_authlib_parse(&s, "bob", "UID=999\nHOME=/h\n"
                                          "OPTIONS=disableimap=1,disablepop3=1\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_REFUSED);
    assert_string_equal(a.reason, "pop3-disabled");
    assert_string_equal(a.maildir, "");
    /* disablepop3=0, or another option: allowed. */
    assert_int_equal(passdb_authlib_parse(&s, "bob", "UID=999\nHOME=/h\n"
                                          "OPTIONS=disablepop3=0,disablewebmail=1\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_OK);
    /* Another uid than the mail user's: refused, never served as the mail user. */
    assert_int_equal(passdb_authlib_parse(&s, "carol", "UID=1001\nHOME=/home/carol\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_REFUSED);
    assert_string_equal(a.reason, "foreign-uid");
    assert_int_equal(passdb_authlib_parse(&s, "carol", "HOME=/home/carol\n.\n", &a), 0);
    assert_int_equal(a.status, AUTH_REFUSED);
}

static void test_parse_canonical_and_incomplete(void **state)
{
    (void)state;
    struct passdb_authlib_settings s = settings();
    struct passdb_ldap_answer a;
    /* ADDRESS names the account; an unusable one leaves the login as typed. */
    assert_int_equal(passdb_authlib_parse(&s, "Alice", "UID=999\nHOME=/h\nADDRESS=alice\n.\n",
                                          &a), 0);
    assert_string_equal(a.user, "alice");
    assert_int_equal(passdb_authlib_parse(&s, "alice", "UID=999\nHOME=/h\nADDRESS=a b\n.\n",
                                          &a), 0);
    assert_string_equal(a.user, "alice");
    /* No "." line: not a complete answer. */
    assert_int_equal(passdb_authlib_parse(&s, "alice", "UID=999\nHOME=/h\n", &a), -1);
    assert_int_equal(passdb_authlib_parse(&s, "alice", "", &a), -1);
}

struct got {
    int n;
    struct passdb_ldap_answer ans;
};

static void on_done(void *arg, void *ctx, const struct passdb_ldap_answer *ans)
{
    struct got *g = arg;
    (void)ctx;
    g->n++;
    g->ans = *ans;
}

/* Poll until an answer came or 5 s passed (bounded). */
static void wait_answer(struct passdb_authlib *ab, struct got *g)
{
    double until = clock_mono() + 5;
    while (g->n == 0 && clock_mono() < until) {
        passdb_authlib_poll(ab);
        int ms = passdb_authlib_timeout_ms(ab);
        struct pollfd p = { .fd = passdb_authlib_fd(ab), .events = POLLIN };
        (void)poll(&p, 1, ms < 0 || ms > 100 ? 100 : ms);
    }
}

static void test_refused_before_asking(void **state)
{
    (void)state;
    struct passdb_authlib_settings s = settings();
    struct got g = { 0 };
    struct passdb_ldap_answer a;
    struct passdb_authlib *ab = passdb_authlib_new(&s, on_done, &g);
    assert_non_null(ab);
    assert_int_equal(passdb_authlib_submit(ab, "alice", "", NULL, &a), -1);
    assert_string_equal(a.reason, "empty-password");
    /* A newline would start another field of the request. */
    assert_int_equal(passdb_authlib_submit(ab, "alice", "pw\nextra", NULL, &a), -1);
    assert_int_equal(a.status, AUTH_FAIL);
    passdb_authlib_free(ab);
    assert_int_equal(g.n, 0);
}

static void test_no_socket_is_an_outage(void **state)
{
    (void)state;
    struct passdb_authlib_settings s = settings();
    struct got g = { 0 };
    struct passdb_ldap_answer a;
    struct passdb_authlib *ab = passdb_authlib_new(&s, on_done, &g);
    assert_int_equal(passdb_authlib_submit(ab, "alice", "pw", NULL, &a), 0);
    assert_int_equal(g.n, 0);   /* never from inside submit */
    wait_answer(ab, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.ans.status, AUTH_TEMPFAIL);
    assert_int_equal(g.ans.outage, 1);
    assert_string_equal(g.ans.reason, "authlib-down");
    passdb_authlib_free(ab);
}

static void test_silent_socket_times_out(void **state)
{
    (void)state;
    struct passdb_authlib_settings s = settings();
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct got g = { 0 };
    struct passdb_ldap_answer a;
    char dir[] = "/tmp/fastpop-authlib-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(s.socket_path, sizeof(s.socket_path), "%s/socket", dir);
    assert_true(strlen(s.socket_path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, s.socket_path, strlen(s.socket_path) + 1);
    /* Listens, never accepts: a hung authdaemond. */
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 16), 0);
    struct passdb_authlib *ab = passdb_authlib_new(&s, on_done, &g);
    double t0 = clock_mono();
    assert_int_equal(passdb_authlib_submit(ab, "alice", "pw", NULL, &a), 0);
    wait_answer(ab, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.ans.status, AUTH_TEMPFAIL);
    assert_int_equal(g.ans.outage, 1);
    assert_string_equal(g.ans.reason, "authlib-timeout");
    assert_true(clock_mono() - t0 >= 0.9);   /* not before authlib_timeout */
    passdb_authlib_free(ab);
    close(l);
    unlink(s.socket_path);
    rmdir(dir);
}

/* The worker reads AUTH_REFUSED (it used to close the helper's connection on it); 4 is still malformed. */
static void test_refused_crosses_the_protocol(void **state)
{
    (void)state;
    struct buf b;
    struct auth_reply rep;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(protocol_encode_pass_reply(&b, 7, AUTH_REFUSED, "", "", "why", 0, "", NULL), 0);
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), 0);
    assert_int_equal(rep.status, AUTH_REFUSED);
    assert_int_equal(rep.id, 7);
    assert_int_equal(protocol_encode_pass_reply(&b, 8, (enum auth_status)4, "", "", "", 0, "", NULL), 0);
    assert_int_equal(protocol_decode_reply(buf_rptr(&b), buf_len(&b), &rep), -1);
    buf_free(&b);
}

/* A socket path that cannot be connected to is a file:line error, not a login-time surprise. */
static void test_config_socket_path_too_long(void **state)
{
    (void)state;
    char path[] = "/tmp/fastpop-authlib-conf-XXXXXX", err[512];
    struct config cfg;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "listen = 127.0.0.1:110\npassdb = authlib\nauthlib_socket = /");
    for (int i = 0; i < 120; i++)
        fputc('s', f);
    fprintf(f, "\n");
    fclose(f);
    assert_int_equal(config_load(path, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":3: authlib_socket is longer"));
    /* The default fits, and the defaults are what an unset key gives. */
    f = fopen(path, "w");
    fprintf(f, "listen = 127.0.0.1:110\npassdb = authlib\n");
    fclose(f);
    assert_int_equal(config_load(path, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.authlib_socket, "/var/run/courier/authdaemon/socket");
    assert_int_equal(cfg.authlib_timeout, 5);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok_home),
        cmocka_unit_test(test_parse_maildir),
        cmocka_unit_test(test_parse_fail_and_refusals),
        cmocka_unit_test(test_parse_canonical_and_incomplete),
        cmocka_unit_test(test_refused_before_asking),
        cmocka_unit_test(test_no_socket_is_an_outage),
        cmocka_unit_test(test_silent_socket_times_out),
        cmocka_unit_test(test_refused_crosses_the_protocol),
        cmocka_unit_test(test_config_socket_path_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
