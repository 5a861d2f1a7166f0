/* daemon/runtime/config: parser, settings table, errors with file:line, print round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/runtime/config.h"
#include "daemon/runtime/log.h"

/* ---- helpers ------------------------------------------------------------ */

static char tmp_path[64];

/* Write len bytes to a fresh temp file; its name goes to tmp_path. */
static void write_tmp(const char *data, size_t len)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/fastpop-ut-config-XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    assert_int_equal(close(fd), 0);
}

static int load_str(const char *text, struct config *cfg, char *err, size_t errlen)
{
    write_tmp(text, strlen(text));
    err[0] = '\0';
    int rc = config_load(tmp_path, cfg, err, errlen);
    unlink(tmp_path);
    return rc;
}

static struct config cfg_a, cfg_b; /* large: keep off the stack */

static void load_ok(const char *text)
{
    char err[512];
    int rc = load_str(text, &cfg_a, err, sizeof(err));
    if (rc != 0)
        print_error("unexpected error: %s\nfor:\n%.300s\n", err, text);
    assert_int_equal(rc, 0);
}

/*
 * Load text, expect failure, and check the message starts with
 * "<file>:<line>: " and contains `want`.
 */
static void load_err_at(const char *text, size_t len, int line, const char *want)
{
    char err[512], prefix[128];

    write_tmp(text, len);
    err[0] = '\0';
    int rc = config_load(tmp_path, &cfg_a, err, sizeof(err));
    unlink(tmp_path);
    snprintf(prefix, sizeof(prefix), "%s:%d: ", tmp_path, line);
    if (rc != -1 || strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
        print_error("rc=%d err=\"%s\"\nwanted prefix \"%s\" and \"%s\"\nfor:\n%.300s\n", rc, err,
                    prefix, want, text);
    assert_int_equal(rc, -1);
    assert_int_equal(strncmp(err, prefix, strlen(prefix)), 0);
    assert_non_null(strstr(err, want));
}

static void load_err(const char *text, int line, const char *want)
{
    load_err_at(text, strlen(text), line, want);
}

#define LISTEN1 "listen = 127.0.0.1:110\n"

/* ---- defaults and the basics ------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    load_ok(LISTEN1);
    struct config *c = &cfg_a;
    assert_int_equal(c->listen_count, 1);
    assert_string_equal(c->listen[0].spec, "127.0.0.1:110");
    assert_int_equal(c->workers, 0);
    assert_string_equal(c->user, "vmail");
    assert_string_equal(c->group, "vmail");
    assert_string_equal(c->auth_user, "fastpop");
    assert_string_equal(c->run_dir, "/run/fastpop");
    assert_string_equal(c->state_dir, "/var/lib/fastpop");
    assert_string_equal(c->pid_file, "");
    assert_string_equal(c->auth_helper, "");
    assert_string_equal(c->passwd_file, "/etc/fastpop/passwd");
    assert_string_equal(c->maildir, "%h/Maildir");
    assert_int_equal(c->log_target, CONFIG_LOG_SYSLOG);
    assert_int_equal(c->log_level, LOG_LVL_INFO);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->max_connections_per_ip, 20);
    assert_int_equal(c->max_connections_per_ipv6_48, 100);
    assert_int_equal(c->idle_timeout, 600); /* RFC 1939: at least 10 minutes */
    assert_int_equal(c->login_timeout, 60);  /* as Courier and Dovecot */
    assert_int_equal(c->max_preauth_commands, 50);
    assert_int_equal(c->shutdown_timeout, 30);
    assert_int_equal(c->drain_idle_timeout, 10);
    assert_int_equal(c->max_bad_commands, 10);
    assert_int_equal(c->max_auth_failures, 3);
    assert_int_equal(c->mark_seen, 1);
    assert_int_equal(c->index_recheck, 3600); /* a listing of cur/ per hour at most */
    assert_string_equal(c->path, tmp_path);

    assert_int_equal(config_line_of(c, "listen"), 1);
    assert_int_equal(config_line_of(c, "user"), 0);
    assert_int_equal(config_line_of(c, "idle_timeout"), 0);
    assert_int_equal(config_line_of(c, "no_such_setting"), 0);

    /* config_defaults alone: the same values, no listener */
    config_defaults(&cfg_b);
    assert_int_equal(cfg_b.listen_count, 0);
    assert_int_equal(cfg_b.max_connections, 10000);
    assert_string_equal(cfg_b.maildir, "%h/Maildir");
    assert_int_equal(cfg_b.mark_seen, 1);
}

static const char full_conf[] =
    "# fastpop test configuration\r\n"
    "\n"
    "   \t\n"
    "listen = 0.0.0.0:110\n"
    "  listen=[::1]:995   # loopback v6\n"
    "workers = 4\n"
    "user = mailer\n"
    "group\t=\tmailgrp\n"
    "auth_user = authd\n"
    "run_dir = /tmp/run\n"
    "state_dir = /tmp/state\n"
    "pid_file = /tmp/run/x.pid\n"
    "auth_helper = /usr/lib/fastpop/fastpop-auth\n"
    "passwd_file = /tmp/passwd\n"
    "maildir = /var/vmail/%d/%n/Maildir\n"
    "log = stderr\n"
    "log_level = debug\n"
    "max_connections = 500\n"
    "max_connections_per_ip = 7\n"
    "idle_timeout = 15m\n"
    "shutdown_timeout = 2m\r\n"
    "max_bad_commands = 5\n"
    "max_auth_failures = 2\n"
    "mark_seen = off\n"
    "# end\n";

static void test_full_file(void **state)
{
    (void)state;
    load_ok(full_conf);
    struct config *c = &cfg_a;
    assert_int_equal(c->listen_count, 2);
    assert_string_equal(c->listen[0].spec, "0.0.0.0:110");
    assert_string_equal(c->listen[1].spec, "[::1]:995");
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)&c->listen[0].addr;
    assert_int_equal(in4->sin_family, AF_INET);
    assert_int_equal(ntohs(in4->sin_port), 110);
    assert_int_equal(in4->sin_addr.s_addr, htonl(INADDR_ANY));
    assert_int_equal(c->listen[0].addrlen, sizeof(struct sockaddr_in));
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&c->listen[1].addr;
    assert_int_equal(in6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 995);
    assert_memory_equal(&in6->sin6_addr, &in6addr_loopback, 16);
    assert_int_equal(c->listen[1].addrlen, sizeof(struct sockaddr_in6));

    assert_int_equal(c->workers, 4);
    assert_string_equal(c->user, "mailer");
    assert_string_equal(c->group, "mailgrp");
    assert_string_equal(c->auth_user, "authd");
    assert_string_equal(c->run_dir, "/tmp/run");
    assert_string_equal(c->state_dir, "/tmp/state");
    assert_string_equal(c->pid_file, "/tmp/run/x.pid");
    assert_string_equal(c->auth_helper, "/usr/lib/fastpop/fastpop-auth");
    assert_string_equal(c->passwd_file, "/tmp/passwd");
    assert_string_equal(c->maildir, "/var/vmail/%d/%n/Maildir");
    assert_int_equal(c->log_target, CONFIG_LOG_STDERR);
    assert_int_equal(c->log_level, LOG_LVL_DEBUG);
    assert_int_equal(c->max_connections, 500);
    assert_int_equal(c->max_connections_per_ip, 7);
    assert_int_equal(c->idle_timeout, 900);
    assert_int_equal(c->shutdown_timeout, 120);
    assert_int_equal(c->max_bad_commands, 5);
    assert_int_equal(c->max_auth_failures, 2);
    assert_int_equal(c->mark_seen, 0);

    assert_int_equal(config_line_of(c, "listen"), 5); /* the last listen line */
    assert_int_equal(config_line_of(c, "workers"), 6);
    assert_int_equal(config_line_of(c, "group"), 8);
    assert_int_equal(config_line_of(c, "maildir"), 15);
    assert_int_equal(config_line_of(c, "shutdown_timeout"), 21);
    assert_int_equal(config_line_of(c, "mark_seen"), 24);
}

static void test_comments(void **state)
{
    (void)state;
    load_ok("# comment = not a setting\n"
            "   # indented comment\n"
            LISTEN1
            "user = a#b\n"           /* '#' after a non-space: part of the value */
            "group = g #comment\n"
            "auth_user = h\t# tab before the hash\n"
            "#user = ignored\n");
    assert_string_equal(cfg_a.user, "a#b");
    assert_string_equal(cfg_a.group, "g");
    assert_string_equal(cfg_a.auth_user, "h");
    assert_int_equal(config_line_of(&cfg_a, "user"), 4);

    /* after stripping the comment the value is empty */
    load_err(LISTEN1 "user = #nothing\n", 2, "user");
}

static void test_missing_file(void **state)
{
    char err[512];

    (void)state;
    const char *path = "/tmp/fastpop-ut-config-does-not-exist/x.conf";
    assert_int_equal(config_load(path, &cfg_a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(ENOENT)));
}

static void test_no_listen(void **state)
{
    (void)state;
    load_err("# nothing\nuser = bob\n\n", 3, "no listen");
    load_err("user = bob\n", 1, "listen");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    load_err(LISTEN1 "\n# c\njust some words\n", 4, "key = value");
    load_err(LISTEN1 "no_such_key = 1\n", 2, "unknown setting \"no_such_key\"");
    load_err(LISTEN1 "User = bob\n", 2, "unknown setting"); /* case matters */
    load_err(LISTEN1 "= value\n", 2, "unknown setting");
    load_err(LISTEN1 "max connections = 5\n", 2, "unknown setting");
}

static void test_duplicates(void **state)
{
    (void)state;
    load_err(LISTEN1 "user = a\n\nuser = b\n", 4, "line 2");
    load_err(LISTEN1 "mark_seen = yes\nmark_seen = yes\n", 3, "mark_seen is already set on line 2");
    load_err("workers = auto\n" LISTEN1 "# x\nworkers = 2\n", 4, "line 1");
    /* the same listen address twice */
    load_err(LISTEN1 "listen = [::]:110\n" LISTEN1, 3, "twice");
    /* listen itself is repeatable */
    load_ok(LISTEN1 "listen = 127.0.0.1:111\nlisten = [::1]:110\n");
    assert_int_equal(cfg_a.listen_count, 3);
}

static void test_listen_forms(void **state)
{
    struct config_listen l;
    char err[256];

    (void)state;
    assert_int_equal(config_parse_listen("192.0.2.1:65535", &l, err, sizeof(err)), 0);
    assert_int_equal(l.addr.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&l.addr)->sin_port), 65535);
    assert_string_equal(l.spec, "192.0.2.1:65535");

    assert_int_equal(config_parse_listen("[2001:db8::1]:1", &l, err, sizeof(err)), 0);
    assert_int_equal(l.addr.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&l.addr)->sin6_port), 1);
    assert_int_equal(l.addrlen, sizeof(struct sockaddr_in6));
    struct in6_addr want;
    inet_pton(AF_INET6, "2001:db8::1", &want);
    assert_memory_equal(&((struct sockaddr_in6 *)&l.addr)->sin6_addr, &want, 16);

    assert_int_equal(config_parse_listen("[::]:110", &l, err, sizeof(err)), 0);
    assert_int_equal(config_parse_listen("[::ffff:192.0.2.1]:110", &l, err, sizeof(err)), 0);
    assert_int_equal(l.addr.ss_family, AF_INET6);

    static const char *const bad[] = {
        "192.0.2.1",          "192.0.2.1:",      "192.0.2.1:0",    "192.0.2.1:65536",
        "192.0.2.1:-1",       "192.0.2.1:11x",   ":110",           "localhost:110",
        "999.0.0.1:110",      "1.2.3:110",       "::1:110",        "[::1]110",
        "[::1]:",             "[::1",            "[::1]:0",        "[::1]:99999",
        "[zz::1]:110",        "[]:110",          "",               "1.2.3.4:110:1",
        "[fe80::1%lo]:110",   "0.0.0.0:1100000000000000000000",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (config_parse_listen(bad[i], &l, err, sizeof(err)) != -1)
            print_error("accepted bad listen \"%s\"\n", bad[i]);
        assert_int_equal(config_parse_listen(bad[i], &l, err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
    }
    /* too long for spec */
    char longv[200];
    memset(longv, '1', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    assert_int_equal(config_parse_listen(longv, &l, err, sizeof(err)), -1);

    /* through the file, with the line number */
    load_err(LISTEN1 "\nlisten = 1.2.3.4\n", 3, "listen");
    load_err(LISTEN1 "listen = [::1]:70000\n", 2, "1-65535");
    load_err(LISTEN1 "listen = host.example:110\n", 2, "not an IPv4 or IPv6");
    load_err(LISTEN1 "listen =\n", 2, "listen");
}

static void test_listen_max(void **state)
{
    char text[2048];
    size_t n = 0;

    (void)state;
    for (int i = 0; i < CONFIG_MAX_LISTEN; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "listen = 127.0.0.1:%d\n", 1000 + i);
    load_ok(text);
    assert_int_equal(cfg_a.listen_count, CONFIG_MAX_LISTEN);
    assert_string_equal(cfg_a.listen[CONFIG_MAX_LISTEN - 1].spec, "127.0.0.1:1015");
    snprintf(text + n, sizeof(text) - n, "listen = 127.0.0.1:2000\n");
    load_err(text, CONFIG_MAX_LISTEN + 1, "too many listen");
}

static void test_integers(void **state)
{
    (void)state;
    load_ok(LISTEN1 "max_connections = 1\nmax_connections_per_ip = 1000000\n"
              "max_bad_commands = 1000\nmax_auth_failures = 100\n");
    assert_int_equal(cfg_a.max_connections, 1);
    assert_int_equal(cfg_a.max_connections_per_ip, 1000000);
    assert_int_equal(cfg_a.max_bad_commands, 1000);
    assert_int_equal(cfg_a.max_auth_failures, 100);
    load_ok(LISTEN1 "max_connections_per_ipv6_48 = 1\n");
    assert_int_equal(cfg_a.max_connections_per_ipv6_48, 1);
    load_err(LISTEN1 "max_connections_per_ipv6_48 = 0\n", 2, "max_connections_per_ipv6_48");
    load_ok(LISTEN1 "max_connections = 1000000\nmax_bad_commands = 1\nmax_auth_failures = 1\n");
    assert_int_equal(cfg_a.max_connections, 1000000);

    load_err(LISTEN1 "max_connections = 0\n", 2, "out of range");
    load_err(LISTEN1 "max_connections = 1000001\n", 2, "out of range");
    load_err(LISTEN1 "max_connections = -5\n", 2, "out of range");
    load_err(LISTEN1 "max_connections_per_ip = 0\n", 2, "out of range");
    load_err(LISTEN1 "max_bad_commands = 1001\n", 2, "out of range");
    load_err(LISTEN1 "max_auth_failures = 101\n", 2, "out of range");
    load_err(LISTEN1 "max_preauth_commands = 4\n", 2, "out of range");
    load_err(LISTEN1 "max_preauth_commands = 10001\n", 2, "out of range");
    load_err(LISTEN1 "max_connections = 99999999999999999999999\n", 2, "not a number");
    load_err(LISTEN1 "max_connections = 4294967297\n", 2, "out of range"); /* not truncated to 1 */
    load_err(LISTEN1 "max_connections = ten\n", 2, "not a number");
    load_err(LISTEN1 "max_connections = 10x\n", 2, "not a number");
    load_err(LISTEN1 "max_connections = 1.5\n", 2, "not a number");
    load_err(LISTEN1 "max_connections = 1 0\n", 2, "not a number");
    load_err(LISTEN1 "max_connections =\n", 2, "not a number");
}

static void test_workers(void **state)
{
    (void)state;
    load_ok(LISTEN1 "workers = auto\n");
    assert_int_equal(cfg_a.workers, 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cpus < 1 ? 1 : cpus > 256 ? 256 : (int)cpus;
    assert_int_equal(config_worker_count(&cfg_a), want);
    assert_true(config_worker_count(&cfg_a) >= 1);

    load_ok(LISTEN1 "workers = 1\n");
    assert_int_equal(cfg_a.workers, 1);
    assert_int_equal(config_worker_count(&cfg_a), 1);
    load_ok(LISTEN1 "workers = 256\n");
    assert_int_equal(config_worker_count(&cfg_a), 256);
    load_ok(LISTEN1 "workers = 7\n");
    assert_int_equal(config_worker_count(&cfg_a), 7);

    load_err(LISTEN1 "workers = 0\n", 2, "out of range");
    load_err(LISTEN1 "workers = 257\n", 2, "out of range");
    load_err(LISTEN1 "workers = Auto\n", 2, "not a number");
    load_err(LISTEN1 "workers = \n", 2, "workers");
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int secs;
    } ok[] = {
        { "5", 5 }, { "5s", 5 }, { "30", 30 }, { "1m", 60 }, { "10m", 600 },  { "1h", 3600 },
        { "24h", 86400 }, { "1440m", 86400 }, { "86400s", 86400 }, { "86400", 86400 },
    };
    char text[256];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), LISTEN1 "idle_timeout = %s\n", ok[i].v);
        load_ok(text);
        assert_int_equal(cfg_a.idle_timeout, ok[i].secs);
    }
    load_ok(LISTEN1 "shutdown_timeout = 1\n");
    assert_int_equal(cfg_a.shutdown_timeout, 1);
    load_ok(LISTEN1 "shutdown_timeout = 1h\n");
    assert_int_equal(cfg_a.shutdown_timeout, 3600);

    /* the minimum is 5 s (config.c: "down to 5 s") */
    load_err(LISTEN1 "idle_timeout = 4\n", 2, "out of range");
    load_err(LISTEN1 "idle_timeout = 4s\n", 2, "out of range");
    load_err(LISTEN1 "idle_timeout = 0m\n", 2, "out of range");
    load_err(LISTEN1 "idle_timeout = 86401\n", 2, "out of range");
    load_err(LISTEN1 "idle_timeout = 25h\n", 2, "out of range");
    load_err(LISTEN1 "idle_timeout = 1441m\n", 2, "out of range");
    load_err(LISTEN1 "login_timeout = 4s\n", 2, "out of range");
    load_err(LISTEN1 "login_timeout = 61m\n", 2, "out of range");
    /* drain_idle_timeout: 1 s to 1 h (config.c says why). */
    load_ok(LISTEN1 "drain_idle_timeout = 1\n");
    assert_int_equal(cfg_a.drain_idle_timeout, 1);
    load_ok(LISTEN1 "drain_idle_timeout = 1h\n");
    assert_int_equal(cfg_a.drain_idle_timeout, 3600);
    load_err(LISTEN1 "drain_idle_timeout = 0\n", 2,
             "drain_idle_timeout: 0 seconds is out of range");
    load_err(LISTEN1 "\ndrain_idle_timeout = 61m\n", 3, "out of range");
    load_err(LISTEN1 "drain_idle_timeout = 5x\n", 2, "drain_idle_timeout");
    load_err(LISTEN1 "drain_idle_timeout = -1\n", 2, "drain_idle_timeout");
    load_err(LISTEN1 "shutdown_timeout = 0\n", 2, "out of range");
    load_err(LISTEN1 "shutdown_timeout = 61m\n", 2, "out of range");
    /* index_recheck: 0 (list cur/ after every own change) up to a week */
    load_ok(LISTEN1 "index_recheck = 0\n");
    assert_int_equal(cfg_a.index_recheck, 0);
    load_ok(LISTEN1 "index_recheck = 168h\n");
    assert_int_equal(cfg_a.index_recheck, 604800);
    load_err(LISTEN1 "index_recheck = 169h\n", 2, "out of range");
    static const char *const bad[] = {
        "m", "s", "1d", "-1m", "5 m", "1.5h", "10M", "10ms", "h1", "0x10",
        "9999999999999999999h", "99999999999999999999", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), LISTEN1 "\nidle_timeout = %s\n", bad[i]);
        load_err(text, 3, "idle_timeout");
    }
    /* an overflowing product must not wrap into range */
    load_err(LISTEN1 "idle_timeout = 2562047788015215h\n", 2, "idle_timeout");
}

static void test_booleans(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int b;
    } ok[] = { { "yes", 1 }, { "on", 1 }, { "true", 1 }, { "no", 0 }, { "off", 0 }, { "false", 0 } };
    char text[256];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), LISTEN1 "mark_seen = %s\n", ok[i].v);
        load_ok(text);
        assert_int_equal(cfg_a.mark_seen, ok[i].b);
    }
    static const char *const bad[] = { "maybe", "1", "0", "Yes", "y", "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), LISTEN1 "mark_seen = %s\n", bad[i]);
        load_err(text, 2, "mark_seen");
    }
}

static void test_enums(void **state)
{
    (void)state;
    load_ok(LISTEN1 "log = syslog\nlog_level = error\n");
    assert_int_equal(cfg_a.log_target, CONFIG_LOG_SYSLOG);
    assert_int_equal(cfg_a.log_level, LOG_LVL_ERROR);
    load_ok(LISTEN1 "log = stderr\nlog_level = warning\n");
    assert_int_equal(cfg_a.log_target, CONFIG_LOG_STDERR);
    assert_int_equal(cfg_a.log_level, LOG_LVL_WARNING);
    load_ok(LISTEN1 "log_level = info\n");
    assert_int_equal(cfg_a.log_level, LOG_LVL_INFO);
    load_ok(LISTEN1 "log_level = debug\n");
    assert_int_equal(cfg_a.log_level, LOG_LVL_DEBUG);

    load_err(LISTEN1 "log = file\n", 2, "syslog, stderr");
    load_err(LISTEN1 "log_level = verbose\n", 2, "error, warning, info, debug");
    load_err(LISTEN1 "log_level = DEBUG\n", 2, "log_level");
    load_err(LISTEN1 "log =\n", 2, "log");
}

static void test_strings_and_paths(void **state)
{
    char text[1400];
    char name[70];

    (void)state;
    load_err(LISTEN1 "user =\n", 2, "user needs a value");
    load_err(LISTEN1 "auth_mechanisms =\n", 2, "auth_mechanisms needs a value");
    /* names that may be empty: "" means none (root's group, no endpoint, ...) */
    load_ok(LISTEN1 "control_group = adm\nadmin_group = wheel\n");
    load_ok(LISTEN1 "control_group =\nadmin_group =\nmetrics_listen =\nldap_base =\n");
    assert_string_equal(cfg_a.control_group, "");
    assert_string_equal(cfg_a.admin_group, "");
    assert_string_equal(cfg_a.metrics_listen, "");
    memset(name, 'u', 63);
    name[63] = '\0';
    snprintf(text, sizeof(text), LISTEN1 "user = %s\n", name);
    load_ok(text);
    assert_string_equal(cfg_a.user, name);
    memset(name, 'u', 64);
    name[64] = '\0';
    snprintf(text, sizeof(text), LISTEN1 "user = %s\n", name);
    load_err(text, 2, "too long");

    /* empty allowed for pid_file and auth_helper, meaning "the built-in choice" */
    load_ok(LISTEN1 "pid_file =\nauth_helper =   \n");
    assert_string_equal(cfg_a.pid_file, "");
    assert_string_equal(cfg_a.auth_helper, "");
    load_err(LISTEN1 "run_dir =\n", 2, "absolute");
    load_err(LISTEN1 "state_dir =\n", 2, "absolute");
    load_err(LISTEN1 "passwd_file =\n", 2, "absolute");
    load_err(LISTEN1 "run_dir = run/fastpop\n", 2, "absolute");
    load_err(LISTEN1 "pid_file = fastpopd.pid\n", 2, "absolute");
    load_err(LISTEN1 "auth_helper = ./fastpop-auth\n", 2, "absolute");
    load_err(LISTEN1 "passwd_file = ~/passwd\n", 2, "absolute");

    char path[600];
    path[0] = '/';
    memset(path + 1, 'p', 510); /* 511 characters: fits in 512 */
    path[511] = '\0';
    snprintf(text, sizeof(text), LISTEN1 "state_dir = %s\n", path);
    load_ok(text);
    assert_string_equal(cfg_a.state_dir, path);
    memset(path + 1, 'p', 511);
    path[512] = '\0';
    snprintf(text, sizeof(text), LISTEN1 "state_dir = %s\n", path);
    load_err(text, 2, "too long");
}

static void test_maildir_template(void **state)
{
    char err[256];

    (void)state;
    static const char *const ok[] = {
        "%h/Maildir", "/var/vmail/%d/%n", "/x/%u", "/x/100%%/%u", "/", "%h", "/%%%u%n%d%h",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        err[0] = '\0';
        if (config_check_maildir_template(ok[i], err, sizeof(err)) != 0)
            print_error("rejected \"%s\": %s\n", ok[i], err);
        assert_int_equal(config_check_maildir_template(ok[i], err, sizeof(err)), 0);
    }
    static const char *const bad[] = {
        "%x/Maildir", "/x/%", "/x/%U", "Maildir", "%u/Maildir", "", "%%h/x", "~/Maildir",
        "/x/%\t",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (config_check_maildir_template(bad[i], err, sizeof(err)) != -1)
            print_error("accepted \"%s\"\n", bad[i]);
        assert_int_equal(config_check_maildir_template(bad[i], err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
    }
    err[0] = '\0';
    config_check_maildir_template("/x/%q", err, sizeof(err));
    assert_non_null(strstr(err, "%q"));

    load_ok(LISTEN1 "maildir = /srv/mail/%d/%n/\n");
    assert_string_equal(cfg_a.maildir, "/srv/mail/%d/%n/");
    load_err(LISTEN1 "maildir = /srv/%z\n", 2, "%z");
    load_err(LISTEN1 "\n\nmaildir = Maildir\n", 4, "start with / or %h");
    load_err(LISTEN1 "maildir = /srv/%\n", 2, "lone");
    load_err(LISTEN1 "maildir =\n", 2, "maildir");
}

static void test_long_lines(void **state)
{
    static char text[10000];
    size_t n;

    (void)state;
    /* 5000 characters on line 3 */
    n = (size_t)snprintf(text, sizeof(text), LISTEN1 "# ok\n#");
    memset(text + n, 'x', 4999);
    n += 4999;
    memcpy(text + n, "\n", 2);
    load_err(text, 3, "too long");

    /* 4096 characters (over the 4095 limit), in a value */
    n = (size_t)snprintf(text, sizeof(text), LISTEN1 "user = ");
    size_t start = n - strlen("user = ");
    memset(text + n, 'u', 4096 - 7);
    n = start + 4096;
    memcpy(text + n, "\n", 2);
    load_err(text, 2, "too long");

    /* without a final newline too */
    text[n] = '\0';
    load_err(text, 2, "too long");
}

/* The documented limit is 4095 characters: a line of exactly 4095 is fine. */
static void test_line_of_4095_is_accepted(void **state)
{
    static char text[10000];

    (void)state;
    size_t n = (size_t)snprintf(text, sizeof(text), LISTEN1 "#");
    memset(text + n, 'c', 4094); /* '#' + 4094 = 4095 characters */
    n += 4094;
    memcpy(text + n, "\n" "user = bob\n", 12);
    load_ok(text);
    assert_string_equal(cfg_a.user, "bob");
}

static void test_nul_byte(void **state)
{
    static const char text[] = LISTEN1 "# fine\nuser = a\0b\nworkers = 2\n";

    (void)state;
    load_err_at(text, sizeof(text) - 1, 3, "NUL");
    static const char text2[] = LISTEN1 "\0";
    load_err_at(text2, sizeof(text2) - 1, 2, "NUL");
}

static void test_error_message_truncation(void **state)
{
    char err[12];

    (void)state;
    memset(err, 'Z', sizeof(err));
    static const char text[] = LISTEN1 "nonsense_key_with_a_long_name = 1\n";
    write_tmp(text, sizeof(text) - 1);
    assert_int_equal(config_load(tmp_path, &cfg_a, err, sizeof(err)), -1);
    unlink(tmp_path);
    assert_int_equal(strlen(err), sizeof(err) - 1); /* cut, NUL-terminated */
    assert_memory_equal(err, tmp_path, sizeof(err) - 1);
}

static void test_pid_path(void **state)
{
    char out[CONFIG_PATH_MAX + 32];
    char small[8];

    (void)state;
    load_ok(LISTEN1 "run_dir = /var/run/fp\n");
    config_pid_path(&cfg_a, out, sizeof(out));
    assert_string_equal(out, "/var/run/fp/fastpopd.pid");
    config_pid_path(&cfg_a, small, sizeof(small));
    assert_string_equal(small, "/var/ru"); /* truncated, terminated */

    load_ok(LISTEN1 "pid_file = /tmp/other.pid\n");
    config_pid_path(&cfg_a, out, sizeof(out));
    assert_string_equal(out, "/tmp/other.pid");

    load_ok(LISTEN1);
    config_pid_path(&cfg_a, out, sizeof(out));
    assert_string_equal(out, "/run/fastpop/fastpopd.pid");
}

/* ---- config_print round trip ---------------------------------------------- */

static void assert_same_config(const struct config *a, const struct config *b)
{
    assert_int_equal(a->listen_count, b->listen_count);
    for (int i = 0; i < a->listen_count; i++) {
        assert_string_equal(a->listen[i].spec, b->listen[i].spec);
        assert_int_equal(a->listen[i].addrlen, b->listen[i].addrlen);
        assert_memory_equal(&a->listen[i].addr, &b->listen[i].addr, sizeof(a->listen[i].addr));
    }
    assert_int_equal(a->workers, b->workers);
    assert_string_equal(a->user, b->user);
    assert_string_equal(a->group, b->group);
    assert_string_equal(a->auth_user, b->auth_user);
    assert_string_equal(a->run_dir, b->run_dir);
    assert_string_equal(a->state_dir, b->state_dir);
    assert_string_equal(a->pid_file, b->pid_file);
    assert_string_equal(a->auth_helper, b->auth_helper);
    assert_string_equal(a->passwd_file, b->passwd_file);
    assert_string_equal(a->maildir, b->maildir);
    assert_int_equal(a->log_target, b->log_target);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->max_connections, b->max_connections);
    assert_int_equal(a->max_connections_per_ip, b->max_connections_per_ip);
    assert_int_equal(a->idle_timeout, b->idle_timeout);
    assert_int_equal(a->shutdown_timeout, b->shutdown_timeout);
    assert_int_equal(a->max_bad_commands, b->max_bad_commands);
    assert_int_equal(a->max_auth_failures, b->max_auth_failures);
    assert_int_equal(a->mark_seen, b->mark_seen);
    /* and byte for byte, everything between path and set_on_line */
    size_t from = offsetof(struct config, listen);
    size_t to = offsetof(struct config, set_on_line);
    assert_memory_equal((const char *)a + from, (const char *)b + from, to - from);
}

/* Load text into cfg_a, print it, load the print into cfg_b, compare. */
static void round_trip(const char *text)
{
    char err[512];
    char printed[16384];

    load_ok(text);
    FILE *f = fmemopen(printed, sizeof(printed), "w");
    assert_non_null(f);
    config_print(&cfg_a, f);
    long len = ftell(f);
    assert_int_equal(fclose(f), 0);
    assert_true(len > 0 && (size_t)len < sizeof(printed));
    printed[len] = '\0';

    write_tmp(printed, (size_t)len);
    int rc = config_load(tmp_path, &cfg_b, err, sizeof(err));
    unlink(tmp_path);
    if (rc != 0)
        print_error("printed config does not load: %s\n---\n%s---\n", err, printed);
    assert_int_equal(rc, 0);
    assert_same_config(&cfg_a, &cfg_b);
}

static void test_print_round_trip(void **state)
{
    (void)state;
    round_trip(LISTEN1);
    round_trip(full_conf);
    round_trip(LISTEN1 "workers = auto\npid_file =\nauth_helper = /x/y\nlog_level = error\n"
                 "mark_seen = true\nidle_timeout = 24h\nshutdown_timeout = 1\n");
    round_trip("listen = [::ffff:10.0.0.1]:1\nlisten = [2001:db8::1]:65535\n"
               "listen = 10.1.2.3:2\nmaildir = /m/%%/%u%d%n%h\nuser = a#b\n"
               "workers = 256\nmax_connections = 1000000\n");
}

static void test_print_content(void **state)
{
    char printed[16384];

    (void)state;
    load_ok(full_conf);
    FILE *f = fmemopen(printed, sizeof(printed), "w");
    assert_non_null(f);
    config_print(&cfg_a, f);
    long len = ftell(f);
    fclose(f);
    printed[len] = '\0';
    /* every setting appears, durations in seconds, listen once per line */
    assert_non_null(strstr(printed, "\nlisten = 0.0.0.0:110\n"));
    assert_non_null(strstr(printed, "\nlisten = [::1]:995\n"));
    assert_non_null(strstr(printed, "\nworkers = 4\n"));
    assert_non_null(strstr(printed, "\nidle_timeout = 900s\n"));
    assert_non_null(strstr(printed, "\nshutdown_timeout = 120s\n"));
    assert_non_null(strstr(printed, "\nmark_seen = no\n"));
    assert_non_null(strstr(printed, "\nlog = stderr\n"));
    assert_non_null(strstr(printed, "\nlog_level = debug\n"));
    assert_non_null(strstr(printed, "\nmaildir = /var/vmail/%d/%n/Maildir\n"));
    assert_int_equal(printed[0], '#');
}

/*
 * A value that starts with '#' is accepted when written "key=#v" (the hash
 * follows '='), but config_print writes "key = #v", where the hash follows
 * a space and starts a comment: the printed file no longer loads.
 */
static void test_print_round_trip_value_starting_with_hash(void **state)
{
    (void)state;
    load_ok(LISTEN1 "user=#1000\n");
    assert_string_equal(cfg_a.user, "#1000");
    round_trip(LISTEN1 "user=#1000\ngroup=#grp\n");
}

/*
 * "given twice" compares the text only: the same socket address written
 * another way gets through, and the daemon then fails at bind() with
 * EADDRINUSE and no file:line.
 */
/* passdb ldap: no password in the clear to another host; the user attribute is known. */
static void test_ldap_checks(void **state)
{
    (void)state;
#define LDAP1 LISTEN1 "passdb = passwd-file ldap\n"
    /* loopback, TLS or a local socket: fine */
    load_ok(LDAP1 "ldap_uri = ldap://127.0.0.1:389\n");
    load_ok(LDAP1 "ldap_uri = ldap://127.0.0.2 ldap://[::1]:3389/ ldap://localhost\n");
    load_ok(LDAP1 "ldap_uri = ldaps://ldap.example.org ldapi://%2frun%2fslapd%2fldapi\n");
    load_ok(LDAP1 "ldap_uri = ldap://ldap.example.org\nldap_starttls = yes\n");
    /* plain ldap:// elsewhere: refused at the ldap_uri line */
    load_err(LDAP1 "ldap_uri = ldap://ldap.example.org\n", 3, "in the clear");
    load_err(LDAP1 "ldap_uri = ldap://127.0.0.1 ldap://10.0.0.5:389\n", 3,
             "ldap://10.0.0.5:389 would send passwords in the clear");
    load_err(LDAP1 "ldap_uri = ldap://[2001:db8::1]\n", 3, "in the clear");
    load_err(LDAP1 "ldap_uri = ldap:///\n", 3, "in the clear");
    load_err(LDAP1 "ldap_uri = ldap://127.0.0.1.example.org\n", 3, "in the clear");
    load_err(LDAP1 "ldap_uri = http://127.0.0.1\n", 3, "not an ldap://");
    /* without passdb ldap the LDAP settings are not used, so not checked */
    load_ok(LISTEN1 "ldap_uri = ldap://ldap.example.org\n");
    /* the canonical user name needs an attribute */
    load_err(LDAP1 "ldap_uri = ldapi:///\nldap_user_filter = (&(uid=%n)(dc=%d))\n", 4,
             "set ldap_user_attribute");
    load_ok(LDAP1 "ldap_uri = ldapi:///\nldap_user_filter = (&(uid=%n)(dc=%d))\n"
                  "ldap_user_attribute = mail\n");
#undef LDAP1
}

static void test_listen_same_address_other_spelling(void **state)
{
    (void)state;
    load_err("listen = 127.0.0.1:110\nlisten = 127.0.0.1:0110\n", 2, "twice");
    load_err("listen = [::1]:995\nlisten = [0:0::1]:995\n", 2, "twice");
}

/* The router's settings: defaults, a good farm, and each mistake at its line. */
static void test_router_settings(void **state)
{
    (void)state;
    load_ok(LISTEN1);
    assert_int_equal(cfg_a.router.addrlen, 0);
    assert_int_equal(cfg_a.router_check_interval, 2);
    assert_int_equal(cfg_a.router_proxy_protocol, 0);
    assert_int_equal(cfg_a.router_cache_ttl, 30);
    load_ok(LISTEN1 "router_listen = 127.0.0.1:9110\n"
            "router_backends = pop1=127.0.1.1:110 pop2=[::1]:1110\nrouter_check_interval = 5s\n"
            "router_proxy_protocol = yes\n");
    assert_int_not_equal(cfg_a.router.addrlen, 0);
    assert_int_equal(cfg_a.router_check_interval, 5);
    struct config_backend b[4];
    char err[256];
    assert_int_equal(config_parse_backends(cfg_a.router_backends, b, 4, err, sizeof(err)), 2);
    assert_string_equal(b[1].name, "pop2");
    assert_string_equal(b[1].ip, "::1");
    assert_int_equal(b[1].port, 1110);
    assert_int_equal(config_parse_backends("a=127.0.0.1:1 b=127.0.0.1:2", b, 1, err,
                                           sizeof(err)), -1);
    load_err(LISTEN1 "router_listen = 127.0.0.1:9110\n", 2, "needs router_backends");
    load_err(LISTEN1 "router_listen = localhost:9110\nrouter_backends = a=127.0.0.1:110\n", 2,
             "router_listen");
    load_err(LISTEN1 "router_listen = 127.0.0.1:9110\nrouter_backends = a=pop.example:110\n", 3,
             "not an IPv4 or IPv6 address");
    load_err(LISTEN1 "router_backends = a=127.0.0.1:110 a=127.0.0.2:110\n", 2, "named twice");
    load_err(LISTEN1 "router_backends = 127.0.0.1:110\n", 2, "name=IP:port");
    load_err(LISTEN1 "router_check_interval = 0\n", 2, "router_check_interval");
    load_err(LISTEN1 "router_cache_ttl = 2h\n", 2, "router_cache_ttl");
    load_ok(LISTEN1 "router_cache_ttl = 0\n");
}

/*
 * plaintext_via_proxy: per listener, off by default, only with proxy_protocol
 * (alone it could allow nothing), printed back, and it counts as a way to
 * log in for the no-one-can-log-in warning.
 */
static void test_listen_plaintext_via_proxy(void **state)
{
    char printed[16384];

    (void)state;
    load_ok("listen = 127.0.0.1:110\n"
            "listen = 127.0.0.1:1110 proxy_protocol plaintext_via_proxy\n"
            "listen = 127.0.0.1:2110 proxy_protocol\n"
            "proxy_trusted = 127.0.0.1/32\n");
    assert_int_equal(cfg_a.listen[0].plaintext_via_proxy, 0);
    assert_int_equal(cfg_a.listen[1].plaintext_via_proxy, 1);
    assert_int_equal(cfg_a.listen[2].plaintext_via_proxy, 0);
    assert_int_equal(cfg_a.plaintext_auth, 0);
    assert_null(config_login_warning(&cfg_a));
    FILE *f = fmemopen(printed, sizeof(printed), "w");
    assert_non_null(f);
    config_print(&cfg_a, f);
    long len = ftell(f);
    fclose(f);
    printed[len] = '\0';
    assert_non_null(strstr(printed, "\nlisten = 127.0.0.1:1110 proxy_protocol "
                                    "plaintext_via_proxy\n"));
    assert_non_null(strstr(printed, "\nlisten = 127.0.0.1:2110 proxy_protocol\n"));

    load_ok("listen = 127.0.0.1:1110 proxy_protocol\nproxy_trusted = 127.0.0.1/32\n");
    assert_non_null(config_login_warning(&cfg_a));

    load_err("proxy_trusted = 127.0.0.1/32\nlisten = 127.0.0.1:110 plaintext_via_proxy\n", 2,
             "plaintext_via_proxy needs proxy_protocol");
    load_err("listen = 127.0.0.1:110 proxy_protocol plaintext\nproxy_trusted = 127.0.0.1/32\n",
             1, "unknown flag \"plaintext\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_router_settings),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_no_listen),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_listen_max),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_workers),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_strings_and_paths),
        cmocka_unit_test(test_maildir_template),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_line_of_4095_is_accepted),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_error_message_truncation),
        cmocka_unit_test(test_pid_path),
        cmocka_unit_test(test_print_round_trip),
        cmocka_unit_test(test_print_content),
        cmocka_unit_test(test_print_round_trip_value_starting_with_hash),
        cmocka_unit_test(test_listen_same_address_other_spelling),
        cmocka_unit_test(test_ldap_checks),
        cmocka_unit_test(test_listen_plaintext_via_proxy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
