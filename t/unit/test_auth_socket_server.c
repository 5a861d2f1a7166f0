/*
 * The helper's decision and its socket side, through the path production
 * runs (auth/requests.c): requests and answers over a SOCK_SEQPACKET
 * socketpair, malformed messages, a peer that does not read, the fail2ban
 * log line, and the epoll loop in a child.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/passdb.h"
#include "auth/passdb_file.h"
#include "auth/requests.h"
#include "daemon/runtime/event_loop.h"
#include "auth/protocol.h"
#include "auth/socket_server.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/log.h"

#define HASH6 "$6$Zq3vR8sT$f4HMMpXMnNyoFaF0r1Lph7182LWHZY2Ldmy4ZmxwSy2l6sRn1tucFGlPW1FAn5b.zIPWEwjzx81k66XymlGQn1"
#define HASHY "$y$j9T$/6k.2IU/5UE08g.1Bsk1E.$VYlnMd1Xpi858y2Z2H33CmaGGTzANl084f9QUEF5YHA"
#define PW "correct horse"

static const char users[] =
    "alice@example.org:" HASH6 "\n"
    "bob:{PLAIN}bobpw:1000:1000::/home/bob\n"
    "carol:{PLAIN}carolpw\n"
    "dave:{PLAIN}davepw::::::userdb_mail=maildir:/srv/dave/Maildir:LAYOUT=fs\n"
    "erin:{PLAIN}erinpw::::::userdb_mail=mbox:/var/mail/erin\n"
    "frank:{NOPE}frankpw\n";

struct fixture {
    char dir[64];
    char path[128];
    struct config cfg;
    struct passdb pdb;
    struct auth_requests d; /* the helper's request path, serving sv[1] as peer slot 0 */
    struct ev_loop *ev;     /* its timers */
    int sv[2];              /* sv[0]: the "worker", sv[1]: the helper's end; -1 when closed */
    struct buf req;
    pid_t server;           /* a forked helper still to be stopped */
};

static void write_file(const char *path, const char *text)
{
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fastpop-auth-server-test.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/passwd", f->dir);
    config_defaults(&f->cfg);
    snprintf(f->cfg.passwd_file, sizeof(f->cfg.passwd_file), "%s", f->path);
    snprintf(f->cfg.maildir, sizeof(f->cfg.maildir), "/var/mail/%%d/%%n");
    /* Answers leave at once here: the penalty's holds and the rate limit have
     * their own tests (test_auth_requests.c); test_event_loop turns them on. */
    f->cfg.auth_penalty = 0;
    f->cfg.auth_rate_limit = 0;
    if (passdb_init(&f->pdb, &f->cfg) == -1 || (f->ev = ev_loop_new()) == NULL ||
        requests_init(&f->d, &f->pdb, f->ev) == -1)
        return -1;
    f->sv[0] = f->sv[1] = -1;
    buf_init(&f->req, IPC_MAX_MESSAGE);
    log_open(LOG_TO_STDERR, LOG_LVL_ERROR, "auth", -1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char sock[160];
    if (f->server > 0) {
        /* A failed test left its helper running: it must not outlive us. */
        kill(f->server, SIGKILL);
        waitpid(f->server, NULL, 0);
    }
    if (f->sv[0] >= 0) {
        requests_peer_closed(&f->d, 0);
        close(f->sv[0]);
        close(f->sv[1]);
    }
    requests_free(&f->d);
    ev_loop_free(f->ev);
    passdb_free(&f->pdb);
    buf_free(&f->req);
    unlink(f->path);
    snprintf(sock, sizeof(sock), "%s/auth.sock", f->dir);
    unlink(sock);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A new connection from the "worker" to the helper's request path, replacing the last one. */
static void new_peer(struct fixture *f)
{
    if (f->sv[0] >= 0) {
        requests_peer_closed(&f->d, 0);
        close(f->sv[0]);
        close(f->sv[1]);
    }
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, f->sv),
                     0);
    requests_peer_open(&f->d, 0, f->sv[1], getpid());
}

/* What the helper's event loop does when the peer is readable: serve, then run what is due. */
static int serve(struct fixture *f, int burst)
{
    int rc = requests_serve(&f->d, 0, burst);
    int saved = errno;
    requests_run(&f->d);
    errno = saved;
    return rc;
}

/* Build and send a request; fields may be NULL to leave them out. */
static void send_request(int fd, uint32_t type, uint32_t id, const char *user, const char *pw,
                         const char *ip, const char *mech)
{
    struct buf b;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, type, id), 0);
    const char *fields[] = { user, pw, ip, mech };
    for (int i = 0; i < 4; i++)
        if (fields[i] != NULL)
            assert_int_equal(ipc_put_str(&b, fields[i]), 0);
    assert_int_equal(ipc_send(fd, &b), 0);
    buf_free(&b);
}

static void read_reply(int fd, struct auth_reply *r)
{
    unsigned char msg[IPC_MAX_MESSAGE];

    ssize_t n = ipc_recv(fd, msg, sizeof(msg));
    assert_true(n > 0);
    assert_int_equal(protocol_decode_reply(msg, (size_t)n, r), 0);
    assert_int_equal(r->type, AUTH_MSG_PASS_REPLY);
}

/* One login through the helper's request path, as a worker sends it. */
static enum auth_status check_from(struct fixture *f, const char *user, const char *pw,
                                   const char *ip, const char *mech, struct auth_reply *res)
{
    if (f->sv[0] < 0)
        new_peer(f);
    assert_int_equal(protocol_encode_pass_request(&f->req, 42, user, pw, ip, mech), 0);
    assert_int_equal(ipc_send(f->sv[0], &f->req), 0);
    assert_int_equal(serve(f, 1), 0);
    read_reply(f->sv[0], res);
    assert_int_equal(res->id, 42);
    return res->status;
}

static enum auth_status check(struct fixture *f, const char *user, const char *pw,
                              struct auth_reply *res)
{
    return check_from(f, user, pw, "192.0.2.1", "PLAIN", res);
}

static void test_check_outcomes(void **state)
{
    struct fixture *f = *state;
    struct auth_reply res;

    write_file(f->path, users);
    assert_int_equal(check(f, "alice@example.org", PW, &res), AUTH_OK);
    assert_string_equal(res.user, "alice@example.org");
    assert_string_equal(res.maildir, "/var/mail/example.org/alice");

    assert_int_equal(check(f, "alice@example.org", "wrong", &res), AUTH_FAIL);
    assert_string_equal(res.maildir, "");
    assert_int_equal(check(f, "Alice@example.org", PW, &res), AUTH_FAIL);
    assert_int_equal(check(f, "nobody", PW, &res), AUTH_FAIL);
    assert_int_equal(check(f, "bob", "", &res), AUTH_FAIL);
    assert_int_equal(check(f, "", "bobpw", &res), AUTH_FAIL);
    /* An unknown scheme is a plain failure for the client. */
    assert_int_equal(check(f, "frank", "frankpw", &res), AUTH_FAIL);

    /* userdb_mail wins over the template, options cut off. */
    assert_int_equal(check(f, "dave", "davepw", &res), AUTH_OK);
    assert_string_equal(res.maildir, "/srv/dave/Maildir");
    /* Other mailbox formats cannot be served: a server-side problem. */
    assert_int_equal(check(f, "erin", "erinpw", &res), AUTH_TEMPFAIL);
    assert_string_not_equal(res.message, "");

    /* A template with %h: bob has a home, carol has none. */
    snprintf(f->cfg.maildir, sizeof(f->cfg.maildir), "%%h/Maildir");
    passdb_reconfigure(&f->pdb, &f->cfg);
    assert_int_equal(check(f, "bob", "bobpw", &res), AUTH_OK);
    assert_string_equal(res.maildir, "/home/bob/Maildir");
    assert_int_equal(check(f, "carol", "carolpw", &res), AUTH_TEMPFAIL);
    assert_string_equal(res.message, "maildir needs a home directory");
    assert_string_equal(res.maildir, "");
    /* ...but a wrong password is still just a failure. */
    assert_int_equal(check(f, "carol", "nope", &res), AUTH_FAIL);
}

static void test_file_missing_then_present(void **state)
{
    struct fixture *f = *state;
    struct auth_reply res;

    assert_int_equal(check(f, "bob", "bobpw", &res), AUTH_TEMPFAIL);
    assert_string_equal(res.message, "password file unavailable");
    assert_int_equal(passdb_file_refresh(&f->pdb), -1);
    write_file(f->path, users);
    assert_int_equal(check(f, "bob", "bobpw", &res), AUTH_OK);
    assert_string_equal(res.maildir, "/var/mail//bob");
    unlink(f->path);
    assert_int_equal(check(f, "bob", "bobpw", &res), AUTH_TEMPFAIL);
}

static void test_dummy_follows_file(void **state)
{
    struct fixture *f = *state;
    struct auth_reply res;

    /* With no file, the startup $6$ hash. */
    assert_ptr_equal(f->pdb.dummy, f->pdb.fallback_hash);
    assert_memory_equal(f->pdb.fallback_hash, "$6$", 3);
    assert_true(strlen(f->pdb.fallback_hash) > 50);

    /* With a file, the first usable entry's own hash (same scheme, same cost). */
    write_file(f->path, "zed:{NOPE}x\nyvonne:" HASHY "\nalex:" HASH6 "\n");
    assert_int_equal(passdb_file_refresh(&f->pdb), 0);
    assert_string_equal(f->pdb.dummy, HASHY);

    /*
     * An unknown user really pays for it. yescrypt at its default cost takes
     * tens of milliseconds; a lookup alone takes microseconds. A lower bound
     * only: a loaded machine makes both slower, never faster.
     */
    double unknown = 1e9;
    for (int i = 0; i < 3; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(check(f, "nobody", "wrong", &res), AUTH_FAIL);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double u = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        unknown = u < unknown ? u : unknown;
    }
    print_message("  unknown user: %.4fs\n", unknown);
    assert_true(unknown > 0.002);

    write_file(f->path, "");
    assert_int_equal(passdb_file_refresh(&f->pdb), 0);
    assert_ptr_equal(f->pdb.dummy, f->pdb.fallback_hash);
}

static void test_ipc_round_trip(void **state)
{
    struct fixture *f = *state;
    struct auth_reply r;

    write_file(f->path, users);
    new_peer(f);
    int *sv = f->sv;
    send_request(sv[0], AUTH_MSG_PASS_REQUEST, 7, "alice@example.org", PW, "192.0.2.7", "USER");
    send_request(sv[0], AUTH_MSG_PASS_REQUEST, 0xfffffff0u, "bob", "bad", "192.0.2.8", "PLAIN");
    send_request(sv[0], AUTH_MSG_PASS_REQUEST, 9, "erin", "erinpw", "192.0.2.9", "PLAIN");
    assert_int_equal(serve(f, 16), 0);

    read_reply(sv[0], &r);
    assert_int_equal(r.id, 7);
    assert_int_equal(r.status, AUTH_OK);
    assert_string_equal(r.user, "alice@example.org");
    assert_string_equal(r.maildir, "/var/mail/example.org/alice");
    read_reply(sv[0], &r);
    assert_int_equal(r.id, 0xfffffff0u);
    assert_int_equal(r.status, AUTH_FAIL);
    assert_string_equal(r.user, "");
    assert_string_equal(r.maildir, "");
    read_reply(sv[0], &r);
    assert_int_equal(r.id, 9);
    assert_int_equal(r.status, AUTH_TEMPFAIL);
    assert_string_not_equal(r.message, "");

    /* Nothing more was sent. */
    unsigned char msg[16];
    assert_int_equal(ipc_recv(sv[0], msg, sizeof(msg)), -1);
    assert_int_equal(errno, EAGAIN);

    /* The burst limit leaves the rest for the next wakeup. */
    for (uint32_t id = 100; id < 105; id++)
        send_request(sv[0], AUTH_MSG_PASS_REQUEST, id, "bob", "bobpw", "", "");
    assert_int_equal(serve(f, 2), 0);
    read_reply(sv[0], &r);
    read_reply(sv[0], &r);
    assert_int_equal(r.id, 101);
    assert_int_equal(ipc_recv(sv[0], msg, sizeof(msg)), -1);
    assert_int_equal(serve(f, 16), 0);
    for (uint32_t id = 102; id < 105; id++) {
        read_reply(sv[0], &r);
        assert_int_equal(r.id, id);
        assert_int_equal(r.status, AUTH_OK);
    }

    /* The worker hangs up: -1 with errno 0 (nothing to log). */
    close(sv[0]);
    sv[0] = -1;
    assert_int_equal(serve(f, 16), -1);
    assert_int_equal(errno, 0);
    requests_peer_closed(&f->d, 0);
    close(sv[1]);
    sv[1] = -1;
}

/* The peer must be dropped and get no answer. */
static void expect_rejected(struct fixture *f)
{
    unsigned char msg[16];
    assert_int_equal(serve(f, 16), -1);
    assert_int_not_equal(errno, 0);
    assert_int_equal(ipc_recv(f->sv[0], msg, sizeof(msg)), -1);
    assert_int_equal(errno, EAGAIN);
}

static void test_malformed_requests(void **state)
{
    struct fixture *f = *state;
    char long_user[AUTH_USER_MAX + 1];
    struct buf b;

    write_file(f->path, users);

    new_peer(f);   /* mechanism missing */
    send_request(f->sv[0], AUTH_MSG_PASS_REQUEST, 1, "bob", "bobpw", "1.2.3.4", NULL);
    expect_rejected(f);

    new_peer(f);   /* wrong type: an answer's */
    send_request(f->sv[0], AUTH_MSG_PASS_REPLY, 1, "bob", "bobpw", "1.2.3.4", "PLAIN");
    expect_rejected(f);

    new_peer(f);   /* a type no one knows */
    send_request(f->sv[0], 99, 1, "bob", "bobpw", "1.2.3.4", "PLAIN");
    expect_rejected(f);

    new_peer(f);   /* user one byte over the limit */
    memset(long_user, 'u', AUTH_USER_MAX);
    long_user[AUTH_USER_MAX] = '\0';
    send_request(f->sv[0], AUTH_MSG_PASS_REQUEST, 1, long_user, "bobpw", "1.2.3.4", "PLAIN");
    expect_rejected(f);

    new_peer(f);   /* a trailing byte */
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, AUTH_MSG_PASS_REQUEST, 1), 0);
    assert_int_equal(ipc_put_str(&b, "bob"), 0);
    assert_int_equal(ipc_put_str(&b, "bobpw"), 0);
    assert_int_equal(ipc_put_str(&b, "1.2.3.4"), 0);
    assert_int_equal(ipc_put_str(&b, "PLAIN"), 0);
    assert_int_equal(buf_append(&b, "x", 1), 0);
    assert_int_equal(ipc_send(f->sv[0], &b), 0);
    expect_rejected(f);

    new_peer(f);   /* a NUL inside a string */
    assert_int_equal(ipc_begin(&b, AUTH_MSG_PASS_REQUEST, 1), 0);
    assert_int_equal(ipc_put_bytes(&b, "bo\0b", 4), 0);
    assert_int_equal(ipc_put_str(&b, "bobpw"), 0);
    assert_int_equal(ipc_put_str(&b, "1.2.3.4"), 0);
    assert_int_equal(ipc_put_str(&b, "PLAIN"), 0);
    assert_int_equal(ipc_send(f->sv[0], &b), 0);
    expect_rejected(f);

    new_peer(f);   /* shorter than a header */
    assert_int_equal(send(f->sv[0], "abc", 3, 0), 3);
    expect_rejected(f);

    new_peer(f);   /* larger than any message */
    char big[IPC_MAX_MESSAGE + 100];
    memset(big, 'x', sizeof(big));
    assert_int_equal(send(f->sv[0], big, sizeof(big), 0), (ssize_t)sizeof(big));
    expect_rejected(f);
    buf_free(&b);

    /* A header alone (type PASS_REQUEST, id 1), no fields: no answer is built for it. */
    new_peer(f);
    assert_int_equal(send(f->sv[0], "\1\0\0\0\1\0\0\0", 8, 0), 8);
    expect_rejected(f);
    /* The message layer alone says why. */
    struct auth_pass_request q;
    uint32_t id;
    assert_int_equal(protocol_decode_pass_request("\1\0\0\0\1\0\0\0", 8, &id, &q), -1);
    assert_int_equal(errno, EPROTO);
}

/* Log lines at level from here on go to a file, for log_capture_end(). */
static int log_capture_start(struct fixture *f, enum log_level level, int *saved)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/log", f->dir);
    int logfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(logfd >= 0);
    unlink(path);
    *saved = dup(STDERR_FILENO);
    assert_int_equal(dup2(logfd, STDERR_FILENO), STDERR_FILENO);
    log_set_level(level);
    return logfd;
}

/* What was logged since log_capture_start(), into text. */
static void log_capture_end(int logfd, int saved, char *text, size_t size)
{
    log_set_level(LOG_LVL_ERROR);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    ssize_t n = pread(logfd, text, size - 1, 0);
    close(logfd);
    assert_true(n > 0);
    text[n] = '\0';
}

static void test_peer_not_reading_is_dropped(void **state)
{
    struct fixture *f = *state;
    int small = 1, saved, answers = 0;
    char text[4096];
    unsigned char msg[IPC_MAX_MESSAGE];
    ssize_t n;

    write_file(f->path, users);
    new_peer(f);
    /* The answers queue up against the helper's send buffer. */
    assert_int_equal(setsockopt(f->sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    for (uint32_t id = 1; id <= 100; id++)
        send_request(f->sv[0], AUTH_MSG_PASS_REQUEST, id, "bob", "bobpw", "", "");
    int logfd = log_capture_start(f, LOG_LVL_WARNING, &saved);
    assert_int_equal(serve(f, 100), -1);
    log_capture_end(logfd, saved, text, sizeof(text));
    /* Never waited for: the full socket is the reason, and the helper hung up on it. */
    assert_non_null(strstr(text, "cannot answer (socket full)"));
    while ((n = ipc_recv(f->sv[0], msg, sizeof(msg))) > 0)
        answers++;
    assert_int_equal(n, 0);
    assert_true(answers > 0 && answers < 100);
}

static void test_log_line(void **state)
{
    struct fixture *f = *state;
    struct auth_reply res;
    char text[4096];
    int saved;

    write_file(f->path, users);
    int logfd = log_capture_start(f, LOG_LVL_DEBUG, &saved);
    check_from(f, "ev il ip=6.6.6.6\n", "s3cr3t-PW", "192.0.2.1", "PLAIN", &res);
    check_from(f, "alice@example.org", "s3cr3t-PW", "192.0.2.2", "USER", &res);
    check_from(f, "alice@example.org", PW, "192.0.2.3", "USER", &res);
    log_capture_end(logfd, saved, text, sizeof(text));

    /* Outside the name rule (daemon/runtime/username.h): refused before any database, still escaped. */
    assert_non_null(strstr(text, "auth failed user=ev\\x20il\\x20ip=6.6.6.6\\x0a ip=192.0.2.1 "
                                 "mechanism=PLAIN reason=bad-user-name\n"));
    assert_non_null(strstr(text, "auth failed user=alice@example.org ip=192.0.2.2 "
                                 "mechanism=USER reason=bad-password\n"));
    assert_non_null(strstr(text, "auth ok user=alice@example.org ip=192.0.2.3 mechanism=USER\n"));
    /* Exactly three outcome lines, and every line is a log line of its own: no raw
     * newline escaped from the user name. */
    int outcomes = 0, lines = 0, starts = 0;
    for (char *p = text; (p = strstr(p, ": auth ")) != NULL; p++)
        outcomes += strncmp(p, ": auth ok ", 10) == 0 || strncmp(p, ": auth failed ", 14) == 0;
    for (char *p = text; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    for (char *p = text; (p = strstr(p, " fastpop auth ")) != NULL; p++)
        starts++;
    assert_int_equal(outcomes, 3);
    assert_int_equal(lines, starts);
    assert_null(strstr(text, "s3cr3t"));
    assert_null(strstr(text, PW));
    assert_null(strstr(text, "Zq3vR8sT"));
}

static volatile sig_atomic_t child_stop, child_reload;

static void child_signal(int sig)
{
    if (sig == SIGTERM)
        child_stop = 1;
}

/* Fork a helper serving listen_fd until SIGTERM; exits 0 after a clean shutdown. */
static pid_t start_server(struct fixture *f, int listen_fd)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct auth_server srv;
        struct sigaction sa = { .sa_handler = child_signal };
        sigset_t block, waitmask;
        sigaction(SIGTERM, &sa, NULL);
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigprocmask(SIG_BLOCK, &block, &waitmask);
        sigdelset(&waitmask, SIGTERM);
        if (auth_server_init(&srv, &f->pdb, listen_fd, "fastpop-no-such-user") == -1)
            _exit(3);
        if (auth_server_run(&srv, &child_stop, &child_reload, &waitmask) == -1)
            _exit(4);
        auth_server_shutdown(&srv);
        _exit(child_stop ? 0 : 5);
    }
    return pid;
}

static int connect_to(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    return fd;
}

static int wait_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 5000);
}

static void test_event_loop(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct auth_reply r;
    int status;

    struct config defaults;
    config_defaults(&defaults);
    f->cfg.auth_penalty = defaults.auth_penalty;
    f->cfg.auth_rate_limit = defaults.auth_rate_limit;
    passdb_reconfigure(&f->pdb, &f->cfg);
    write_file(f->path, users);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/auth.sock", f->dir);
    int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 16), 0);
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(chmod(sun.sun_path, 0777), 0);
    pid_t pid = start_server(f, lfd);
    f->server = pid;
    close(lfd);

    /* Our own uid is always welcome. */
    int c1 = connect_to(sun.sun_path);
    int c2 = connect_to(sun.sun_path);
    send_request(c1, AUTH_MSG_PASS_REQUEST, 11, "bob", "bobpw", "192.0.2.1", "USER");
    send_request(c2, AUTH_MSG_PASS_REQUEST, 12, "carol", "bad", "192.0.2.2", "USER");
    assert_int_equal(wait_readable(c1), 1);
    read_reply(c1, &r);
    assert_int_equal(r.id, 11);
    assert_int_equal(r.status, AUTH_OK);
    assert_int_equal(wait_readable(c2), 1);
    read_reply(c2, &r);
    assert_int_equal(r.id, 12);
    assert_int_equal(r.status, AUTH_FAIL);

    /* A malformed message costs that peer its connection, not the others. */
    assert_int_equal(send(c2, "junk", 4, 0), 4);
    assert_int_equal(wait_readable(c2), 1);
    char tmp[8];
    assert_int_equal(recv(c2, tmp, sizeof(tmp), 0), 0);
    send_request(c1, AUTH_MSG_PASS_REQUEST, 13, "bob", "bobpw", "192.0.2.1", "USER");
    assert_int_equal(wait_readable(c1), 1);
    read_reply(c1, &r);
    assert_int_equal(r.id, 13);
    close(c2);

    /* Another uid (not ours, not the mail user) is refused unanswered. */
    if (geteuid() == 0) {
        pid_t other = fork();
        assert_true(other >= 0);
        if (other == 0) {
            /* No cmocka asserts in here: a failing one would run the rest of
             * the tests in this child. The helper may hang up before the
             * request is even sent. */
            struct sockaddr_un to = sun;
            struct buf req;
            buf_init(&req, IPC_MAX_MESSAGE);
            if (ipc_begin(&req, AUTH_MSG_PASS_REQUEST, 14) == -1 || ipc_put_str(&req, "bob") == -1 ||
                ipc_put_str(&req, "bobpw") == -1 || ipc_put_str(&req, "192.0.2.1") == -1 ||
                ipc_put_str(&req, "USER") == -1)
                _exit(9);
            if (setresgid(65534, 65534, 65534) == -1 || setresuid(65534, 65534, 65534) == -1)
                _exit(10);
            int c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
            if (c == -1 || connect(c, (struct sockaddr *)&to, sizeof(to)) == -1)
                _exit(11);
            (void)ipc_send(c, &req);
            if (wait_readable(c) != 1)
                _exit(12);
            ssize_t n = recv(c, tmp, sizeof(tmp), 0);
            _exit(n == 0 || (n == -1 && errno == ECONNRESET) ? 0 : 13);
        }
        assert_int_equal(waitpid(other, &status, 0), other);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }

    /* A process holds at most AUTH_SERVER_PEERS_PER_PROCESS connections: a third one
     * closes its oldest (c1; c2 is gone already). */
    int c3 = connect_to(sun.sun_path);
    int c4 = connect_to(sun.sun_path);
    send_request(c4, AUTH_MSG_PASS_REQUEST, 16, "bob", "bobpw", "192.0.2.1", "USER");
    assert_int_equal(wait_readable(c4), 1);
    read_reply(c4, &r);
    assert_int_equal(r.id, 16);
    assert_int_equal(wait_readable(c1), 1);
    assert_int_equal(recv(c1, tmp, sizeof(tmp), 0), 0);
    close(c1);
    c1 = c3;

    /* A process that is neither our parent nor its child (a grandchild here, as anything a
     * worker forks would be) is refused unanswered, whatever its uid. */
    pid_t mid = fork();
    assert_true(mid >= 0);
    if (mid == 0) {
        pid_t grand = fork();
        if (grand == -1)
            _exit(20);
        if (grand == 0) {
            struct sockaddr_un to = sun;
            int c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
            if (c == -1 || connect(c, (struct sockaddr *)&to, sizeof(to)) == -1)
                _exit(21);
            if (wait_readable(c) != 1)
                _exit(22);
            ssize_t n = recv(c, tmp, sizeof(tmp), 0);
            _exit(n == 0 || (n == -1 && errno == ECONNRESET) ? 0 : 23);
        }
        int st;
        if (waitpid(grand, &st, 0) != grand || !WIFEXITED(st))
            _exit(24);
        _exit(WEXITSTATUS(st));
    }
    assert_int_equal(waitpid(mid, &status, 0), mid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* SIGTERM: what is already queued is answered, then a clean exit. */
    send_request(c1, AUTH_MSG_PASS_REQUEST, 15, "bob", "bobpw", "192.0.2.1", "USER");
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    f->server = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(wait_readable(c1), 1);
    read_reply(c1, &r);
    assert_int_equal(r.id, 15);
    assert_int_equal(r.status, AUTH_OK);
    close(c1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_check_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_missing_then_present, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dummy_follows_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipc_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_not_reading_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
