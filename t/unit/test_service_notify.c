/*
 * daemon/master/service_notify: the sd_notify(3) datagrams arrive on a
 * socket bound by the test, for a path and an abstract ('@') name; the
 * variable leaves the environment; bad names and no name are harmless.
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

#include "daemon/master/service_notify.h"

/* Binds a datagram socket to name (a path, or '@' for an abstract name). */
static int bind_notify_socket(const char *name)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    memcpy(sun.sun_path, name, len);
    if (name[0] == '@')
        sun.sun_path[0] = '\0';
    else
        unlink(name);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                     (name[0] == '@' ? 0 : 1));
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, addr_len), 0);
    return fd;
}

/* The next datagram, NUL-terminated; fails the test after 5 s of silence. */
static void receive(int fd, char *out, size_t outlen)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 5000), 1);
    ssize_t n = recv(fd, out, outlen - 1, 0);
    assert_true(n > 0);
    out[n] = '\0';
}

static void test_path_socket_gets_each_state(void **state)
{
    (void)state;
    char path[64], msg[600];
    snprintf(path, sizeof(path), "/tmp/fastpop-notify-%d.sock", (int)getpid());
    int fd = bind_notify_socket(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(service_notify_init(), 0);
    /* Children the master execs must not inherit the right to speak for the service. */
    assert_null(getenv("NOTIFY_SOCKET"));

    assert_int_equal(service_notify_ready("serving"), 0);
    receive(fd, msg, sizeof(msg));
    assert_string_equal(msg, "READY=1\nSTATUS=serving");

    assert_int_equal(service_notify_reloading("reloading"), 0);
    receive(fd, msg, sizeof(msg));
    assert_true(strncmp(msg, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
    assert_non_null(strstr(msg, "\nSTATUS=reloading"));
    assert_true(strtoull(msg + 27, NULL, 10) > 0);

    assert_int_equal(service_notify_status("draining"), 0);
    receive(fd, msg, sizeof(msg));
    assert_string_equal(msg, "STATUS=draining");

    assert_int_equal(service_notify_stopping("stopping"), 0);
    receive(fd, msg, sizeof(msg));
    assert_string_equal(msg, "STOPPING=1\nSTATUS=stopping");
    close(fd);
    unlink(path);
}

static void test_abstract_socket(void **state)
{
    (void)state;
    char name[64], msg[600];
    snprintf(name, sizeof(name), "@fastpop-notify-test-%d", (int)getpid());
    int fd = bind_notify_socket(name);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(service_notify_init(), 0);
    assert_int_equal(service_notify_ready("serving"), 0);
    receive(fd, msg, sizeof(msg));
    assert_string_equal(msg, "READY=1\nSTATUS=serving");
    close(fd);
}

/* A newline in a status (an error text) must not smuggle in another variable. */
static void test_status_stays_one_line(void **state)
{
    (void)state;
    char name[64], msg[600];
    snprintf(name, sizeof(name), "@fastpop-notify-line-%d", (int)getpid());
    int fd = bind_notify_socket(name);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(service_notify_init(), 0);
    assert_int_equal(service_notify_status("bad file\nREADY=1"), 0);
    receive(fd, msg, sizeof(msg));
    assert_string_equal(msg, "STATUS=bad file");
    close(fd);
}

static void test_unset_and_invalid_names_do_nothing(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(service_notify_init(), 0);
    assert_int_equal(service_notify_ready("serving"), 0);

    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_int_equal(service_notify_init(), -1);
    assert_null(getenv("NOTIFY_SOCKET"));
    assert_int_equal(service_notify_ready("serving"), 0);

    char long_name[200];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[0] = '/';
    long_name[sizeof(long_name) - 1] = '\0';
    setenv("NOTIFY_SOCKET", long_name, 1);
    assert_int_equal(service_notify_init(), -1);
}

/* Nobody bound there: the call reports it, and the master goes on. */
static void test_missing_socket_fails_without_blocking(void **state)
{
    (void)state;
    setenv("NOTIFY_SOCKET", "/tmp/fastpop-notify-nobody-here.sock", 1);
    unlink("/tmp/fastpop-notify-nobody-here.sock");
    assert_int_equal(service_notify_init(), 0);
    assert_int_equal(service_notify_ready("serving"), -1);
    assert_int_equal(service_notify_stopping("stopping"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket_gets_each_state),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_status_stays_one_line),
        cmocka_unit_test(test_unset_and_invalid_names_do_nothing),
        cmocka_unit_test(test_missing_socket_fails_without_blocking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
