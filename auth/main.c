/*
 * fastpop-auth: the credential helper. Started by fastpopd as
 *
 *   fastpop-auth -c /etc/fastpop/fastpop.conf --listen-fd 3 [--stats-slot N] [-F]
 *
 * already running as auth_user, with the bound auth.sock on fd 3 (see
 * daemon/master/master_children.c) and, with --stats-slot, the master's stats
 * region on fd 4: the helper counts LDAP timings and errors and credential
 * cache outcomes in block N of it. SIGHUP re-reads the configuration (the old one stays on
 * error), SIGTERM answers what is in flight and exits 0, SIGINT is ignored:
 * the master decides when the helper stops.
 *
 * For operators:
 *
 *   fastpop-auth -c FILE --test USER     (password: one line on stdin)
 *
 * prints "ok user=U maildir=PATH" (exit 0), "fail" (exit 1) or
 * "tempfail: REASON" (exit 2), going through exactly the check the workers
 * get; the log lines of that check go to stderr.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "auth/cache_policy.h"
#include "auth/passdb.h"
#include "auth/passdb_file.h"
#include "auth/private_dir.h"
#include "auth/scram_server.h"
#include "auth/socket_server.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/program.h"
#include "shm/credcache.h"
#include "shm/stats.h"

/* Where the master leaves the stats region's memfd (with --stats-slot). */
#define STATS_FD 4

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_TEMPFAIL = 2 };

struct options {
    const char *config_path;
    int listen_fd;
    int stats_slot;
    int foreground;
    const char *test_user;
};

static volatile sig_atomic_t got_term;
static volatile sig_atomic_t got_hup;

static void on_signal(int sig)
{
    if (sig == SIGTERM)
        got_term = 1;
    else if (sig == SIGHUP)
        got_hup = 1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: fastpop-auth [-c FILE] --listen-fd N [--stats-slot N] [-F]\n"
                 "       fastpop-auth [-c FILE] --test USER   (password on stdin)\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
    o->config_path = CONFIG_DEFAULT_PATH;
    o->listen_fd = -1;
    o->stats_slot = -1;
    const struct program_option opts[] = {
        { "config", 'c', PROGRAM_ARG_STRING, 0, 0, &o->config_path },
        { "listen-fd", 0, PROGRAM_ARG_INT, 0, 65535, &o->listen_fd },
        { "stats-slot", 0, PROGRAM_ARG_INT, -1, 65535, &o->stats_slot },
        { "foreground", 'F', PROGRAM_ARG_FLAG, 0, 0, &o->foreground },
        { "test", 0, PROGRAM_ARG_STRING, 0, 0, &o->test_user },
        { 0 },
    };
    if (program_parse_args(argc, argv, "fastpop-auth", opts, usage) == -1)
        return -1;
    if ((o->listen_fd < 0) == (o->test_user == NULL)) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static void open_log(const struct config *cfg, int foreground)
{
    enum log_target t = foreground || cfg->log_target == CONFIG_LOG_STDERR ? LOG_TO_STDERR
                                                                          : LOG_TO_SYSLOG;
    log_open(t, (enum log_level)cfg->log_level, "auth", -1);
}

/*
 * One line from fd 0 into out, without stdio so no copy of the password is
 * left in a library buffer. Echo is off when it is a terminal. -1 if the
 * line does not fit (the rest of it is not read).
 */
static int read_password(char *out, size_t outlen)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    size_t n = 0;
    int rc = 0;

    if (tty) {
        fputs("Password: ", stderr);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    for (;;) {
        char ch;
        ssize_t r = read(STDIN_FILENO, &ch, 1);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0 || ch == '\n')
            break;
        if (n + 1 >= outlen) {
            rc = -1;
            break;
        }
        out[n++] = ch;
    }
    if (n > 0 && out[n - 1] == '\r')
        n--;
    out[n] = '\0';
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputs("\n", stderr);
    }
    return rc;
}

static int run_test(struct passdb *pdb, const char *user)
{
    char password[AUTH_PASS_MAX];
    struct auth_result res;

    if (strlen(user) >= AUTH_USER_MAX) {
        printf("fail\n");
        fprintf(stderr, "fastpop-auth: user names are at most %d bytes\n", AUTH_USER_MAX - 1);
        return EXIT_FAIL;
    }
    if (read_password(password, sizeof(password)) == -1) {
        explicit_bzero(password, sizeof(password));
        printf("fail\n");
        fprintf(stderr, "fastpop-auth: passwords are at most %d bytes\n", AUTH_PASS_MAX - 1);
        return EXIT_FAIL;
    }
    struct auth_request req = { user, password, "local-test", "test" };
    passdb_check(pdb, &req, &res);
    explicit_bzero(password, sizeof(password));

    switch (res.status) {
    case AUTH_OK:
        printf("ok user=%s maildir=%s\n", res.user, res.maildir);
        return EXIT_OK;
    case AUTH_FAIL:
        printf("fail\n");
        return EXIT_FAIL;
    case AUTH_REFUSED:
        /* A failure to the caller: the account may not log in over POP3. */
        printf("refused: %s\n", res.message);
        return EXIT_FAIL;
    case AUTH_TEMPFAIL:
        break;
    }
    printf("tempfail: %s\n", res.message);
    return EXIT_TEMPFAIL;
}

static void reload(struct passdb *pdb, struct auth_server *srv, const struct options *o)
{
    struct config cfg;
    char err[512];

    if (config_load(o->config_path, &cfg, err, sizeof(err)) == -1) {
        log_error("configuration not reloaded, keeping the old one: %s", err);
        return;
    }
    open_log(&cfg, o->foreground);
    passdb_reconfigure(pdb, &cfg);
    cache_policy_reconfigure(&cfg);
    auth_server_set_mail_user(srv, cfg.user);
    auth_server_reconfigure(srv);
    log_info("configuration reloaded from %s", o->config_path);
    (void)passdb_file_refresh(pdb);
}

static int check_listen_fd(int fd)
{
    int type;
    socklen_t len = sizeof(type);

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
        return -1;
    if (type != SOCK_SEQPACKET) {
        errno = ESOCKTNOSUPPORT;
        return -1;
    }
    return 0;
}

static int serve(struct passdb *pdb, const struct options *o)
{
    struct auth_server srv;
    struct sigaction sa;
    sigset_t block, waitmask;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* Let the signals in only inside epoll_pwait: a flag can never be set
     * between the loop's check and the wait. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGHUP);

    /* Password hashes and passwords live here: no core dumps, no ptrace by peers. */
    prctl(PR_SET_DUMPABLE, 0);

    if (check_listen_fd(o->listen_fd) == -1) {
        log_error("--listen-fd %d is not a SOCK_SEQPACKET socket: %s", o->listen_fd,
                  strerror(errno));
        return EXIT_TEMPFAIL;
    }
    if (o->stats_slot >= 0) {
        if (stats_attach_fd(STATS_FD, o->stats_slot) == -1)
            log_warning("statistics: cannot map fd %d: %s; LDAP timings are not counted",
                        STATS_FD, strerror(errno));
        close(STATS_FD);
    }
    if (auth_server_init(&srv, pdb, o->listen_fd, pdb->cfg.user) == -1) {
        log_error("cannot set up the auth socket: %s", strerror(errno));
        return EXIT_TEMPFAIL;
    }
    if (geteuid() == 0)
        log_warning("running as root: set auth_user to an unprivileged user");
    log_info("fastpop-auth %s ready (passwd_file %s)", FASTPOP_VERSION, pdb->cfg.passwd_file);
    (void)passdb_file_refresh(pdb);
    /* Optional: without it every login goes to the backend (logged inside). */
    (void)cache_policy_open(&pdb->cfg);
    if (scram_load_salt_secret(pdb->cfg.state_dir) == -1)
        log_error("SCRAM: cannot keep a salt secret in %s/%s/%s (%s); made-up salts change "
                  "at each restart", pdb->cfg.state_dir, CREDCACHE_DIR, PRIVATE_DIR,
                  strerror(errno));

    int rc = EXIT_OK;
    while (!got_term) {
        if (auth_server_run(&srv, &got_term, &got_hup, &waitmask) == -1) {
            log_error("epoll: %s", strerror(errno));
            rc = EXIT_TEMPFAIL;
            break;
        }
        if (got_hup) {
            got_hup = 0;
            reload(pdb, &srv, o);
        }
    }
    auth_server_shutdown(&srv);
    cache_policy_close();
    if (rc == EXIT_OK)
        log_info("stopping on SIGTERM");
    return rc;
}

int main(int argc, char **argv)
{
    struct options o = { 0 };
    struct config cfg;
    struct passdb pdb;
    char err[512];

    if (parse_args(argc, argv, &o) == -1)
        return EXIT_TEMPFAIL;
    /* Until the config says where, errors go to stderr, where the master
     * (or the operator) sees them. */
    log_open(LOG_TO_STDERR, LOG_LVL_INFO, "auth", -1);
    if (config_load(o.config_path, &cfg, err, sizeof(err)) == -1) {
        log_error("%s", err);
        return EXIT_TEMPFAIL;
    }
    /* --test reports on the terminal, whatever the config's log says. */
    open_log(&cfg, o.foreground || o.test_user != NULL);
    if (passdb_init(&pdb, &cfg) == -1) {
        log_error("crypt(3) cannot make a $6$ hash; refusing to run");
        return EXIT_TEMPFAIL;
    }
    int rc = o.test_user ? run_test(&pdb, o.test_user) : serve(&pdb, &o);
    passdb_free(&pdb);
    log_close();
    return rc;
}
