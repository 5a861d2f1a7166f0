/*
 * popctl: the operator's command line for fastpopd. Verbs are a table; each
 * returns the process exit status. Most talk to the master over its control
 * socket (protocol in daemon/runtime/control_proto.h); status falls back to the pidfile
 * when the socket is not there.
 *
 * Exit status: 0 done; 1 failed (a refused reload, a drain that had to cut
 * sessions); 2 usage; 3 fastpopd is not running; 4 refused (permission) or
 * an answer popctl cannot read.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "daemon/runtime/config.h"
#include "daemon/runtime/control_proto.h"
#include "daemon/runtime/escape.h"
#include "daemon/runtime/ipc.h"
#include "daemon/popctl/popctl_client.h"
#include "daemon/runtime/privdrop.h"
#include "daemon/popctl/popctl_drain.h"
#include "daemon/runtime/clock.h"
#include "daemon/runtime/control_proto.h"
#include "shm/credcache.h"
#include "shm/index.h"
#include "daemon/popctl/index_tool.h"
#include "maildir/legacy.h"
#include "daemon/popctl/uidl_site.h"

/* LSB init script status codes, so init scripts can pass them through. */
enum { STATUS_RUNNING = 0, STATUS_DEAD_PIDFILE = 1, STATUS_NOT_RUNNING = 3, STATUS_UNKNOWN = 4 };

struct verb {
    const char *name;
    const char *help;
    int (*run)(const struct config *cfg, int argc, char **argv);
};


static int json_output;           /* --json */

static int status_from_socket(const struct config *cfg, int *exit_status)
{
    struct answer *a = popctl_answer_new();
    char *argv[] = { "status", NULL };
    int fd = popctl_connect(cfg);
    if (fd == -1)
        return -1;
    int rc = popctl_ask(fd, 1, argv, a);
    close(fd);
    if (rc == -1 || a->status != CONTROL_OK || a->rows != 1) {
        fprintf(stderr, "popctl: %s\n", rc == -1 ? "no readable answer from fastpopd"
                                                 : a->message);
        *exit_status = STATUS_UNKNOWN;
        return 0;
    }
    *exit_status = STATUS_RUNNING;
    if (json_output) {
        popctl_print_json(a);
        return 0;
    }
    /* The first line reads as the pidfile fallback's: scripts match it. */
    printf("fastpopd is running (pid %s)\n  version:  %s\n  uptime:   %ss\n"
           "  config:   %s\n  workers:  %s\n  helper:   %s\n  sessions: %s\n"
           "  draining: %s\n  stopping: %s\n",
           popctl_field(a, 0, "pid"), popctl_field(a, 0, "version"), popctl_field(a, 0, "uptime"),
           popctl_field(a, 0, "config"), popctl_field(a, 0, "workers"), popctl_field(a, 0, "helper"),
           popctl_field(a, 0, "sessions"), popctl_field(a, 0, "draining"), popctl_field(a, 0, "stopping"));
    return 0;
}

/*
 * Through the control socket when it answers. Otherwise fastpopd's flock
 * on its pidfile, not kill(pid, 0), says whether it is up: a reused pid
 * cannot fool it.
 */
static int verb_status(const struct config *cfg, int argc, char **argv)
{
    char path[CONFIG_PATH_MAX + 32];
    char text[32] = "";
    int exit_status;
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: popctl status\n");
        return EXIT_USAGE;
    }
    if (status_from_socket(cfg, &exit_status) == 0)
        return exit_status;

    config_pid_path(cfg, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        printf("fastpopd is not running (no pidfile %s)\n", path);
        return STATUS_NOT_RUNNING;
    }
    ssize_t n = read(fd, text, sizeof(text) - 1);
    text[n > 0 ? n : 0] = '\0';
    text[strcspn(text, "\n")] = '\0';
    int locked = flock(fd, LOCK_SH | LOCK_NB) == -1 && errno == EWOULDBLOCK;
    close(fd);
    if (!locked) {
        printf("fastpopd is not running (stale pidfile %s)\n", path);
        return STATUS_DEAD_PIDFILE;
    }
    printf("fastpopd is running (pid %s)\n", text[0] ? text : "starting");
    return STATUS_RUNNING;
}

/*
 * Verbs that open a store (an LMDB environment in state_dir) do it as the
 * store's owner, never as root: its directory belongs to that user, who
 * could have put a symlink to any file of root's in it. Started by anyone
 * else, popctl stays who it is (and the store's own permissions decide).
 */
static int become_store_owner(const char *user, const char *group)
{
    uid_t uid;
    gid_t gid;
    if (geteuid() != 0)
        return 0;
    if (privdrop_lookup(user, group, &uid, &gid) == -1) {
        fprintf(stderr, "popctl: cannot become %s: %s\n", user, strerror(errno));
        return -1;
    }
    if (uid == 0) {
        fprintf(stderr, "popctl: %s is root; fastpopd refuses that too\n", user);
        return -1;
    }
    if (privdrop_become(uid, gid) == -1) {
        fprintf(stderr, "popctl: cannot become %s: %s\n", user, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * auth flush [USER]: empty the credential cache, or forget one login name,
 * in both of its stores (shm/credcache.h): the login list the workers read
 * first, so no worker vouches for a login whose verifier is gone, then the
 * helper's verifiers. Opened directly, as auth_user (the helper's user, who
 * owns both); LMDB's writer lock keeps this and the helper's writes apart.
 * Run it as root or auth_user. The count is of verifier records (one per
 * login name).
 */
static int flush_store(const struct config *cfg, enum credcache_kind kind, const char *name,
                       size_t *removed)
{
    struct credcache *cc;

    *removed = 0;
    /* Never create an env here: that is the helper's job, with its modes. */
    int exists = credcache_exists(cfg->state_dir, kind);
    if (exists == 0)
        return 0;
    if (exists == -1 || credcache_open(cfg->state_dir, kind, 1, &cc) == -1) {
        fprintf(stderr, "popctl: credential cache in %s/%s (%s): %s\n", cfg->state_dir,
                CREDCACHE_DIR, kind == CREDCACHE_PRIVATE ? "verifiers" : "login list",
                strerror(errno));
        return -1;
    }
    int rc = credcache_flush(cc, name, removed);
    if (rc == -1)
        fprintf(stderr, "popctl: flush: %s\n", credcache_error(cc));
    credcache_close(cc);
    return rc;
}

static int verb_auth(const struct config *cfg, int argc, char **argv)
{
    size_t listed, removed;

    if (argc < 2 || argc > 3 || strcmp(argv[1], "flush") != 0) {
        fprintf(stderr, "usage: popctl auth flush [USER]\n");
        return 2;
    }
    if (become_store_owner(cfg->auth_user, NULL) == -1)
        return 2;
    const char *name = argc == 3 ? argv[2] : NULL;
    if (flush_store(cfg, CREDCACHE_SHARED, name, &listed) == -1 ||
        flush_store(cfg, CREDCACHE_PRIVATE, name, &removed) == -1)
        return 1;
    printf("%zu entr%s removed\n", removed, removed == 1 ? "y" : "ies");
    return 0;
}

/*
 * index check|uidl-diff --maildir PATH: read-only looks at the mailbox
 * index and the legacy UIDL files (daemon/popctl/index_tool.h), opened directly.
 * Started as root, it first becomes the mail user, who owns the index and
 * the maildirs: nothing it opens can end up owned by root, and no symlink
 * in them leads root anywhere.
 */
/*
 * index uidl-diff --site [--json] [--rate N]: every user of the password
 * databases (daemon/popctl/uidl_site.h). The databases are read first, as
 * whoever runs popctl (root: the password file and the LDAP bind secret are
 * root's), then popctl becomes the mail user before it opens any maildir.
 */
static int index_site(const struct config *cfg, int argc, char **argv, const char *index_dir)
{
    struct uidl_site_opts o = { .json = json_output, .rate = UIDL_SITE_RATE_DEFAULT,
                                .index_dir = index_dir, .recheck = cfg->index_recheck };
    for (int i = 3; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--json") == 0) {
            o.json = 1;
        } else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc) {
            errno = 0;
            o.rate = strtod(argv[++i], &end);
            if (errno != 0 || *end != '\0' || end == argv[i] || !(o.rate >= 0) ||
                o.rate > UIDL_SITE_RATE_MAX) {
                fprintf(stderr, "popctl: --rate takes maildirs a second, 0 to %d (0: no limit)\n",
                        UIDL_SITE_RATE_MAX);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: popctl index uidl-diff --site [--json] [--rate N]\n");
            return 2;
        }
    }
    o.progress = !o.json && isatty(STDOUT_FILENO);
    struct site_users users;
    if (site_users_load(cfg, &users, stderr) == -1)
        return 2;
    if (become_store_owner(cfg->user, cfg->group) == -1) {
        site_users_free(&users);
        return 2;
    }
    int rc = uidl_site_run(&users, &o);
    site_users_free(&users);
    return rc;
}

/*
 * index check|uidl-diff --maildir PATH: read-only looks at the mailbox
 * index and the legacy UIDL files (daemon/popctl/index_tool.h), opened directly.
 * Started as root, it first becomes the mail user, who owns the index and
 * the maildirs: nothing it opens can end up owned by root, and no symlink
 * in them leads root anywhere.
 */
static int verb_index(const struct config *cfg, int argc, char **argv)
{
    const char *maildir = NULL;
    char dir[CONFIG_PATH_MAX + 16];

    snprintf(dir, sizeof(dir), "%s/%s", cfg->state_dir, INDEX_SUBDIR);
    if (argc >= 3 && strcmp(argv[1], "uidl-diff") == 0 && strcmp(argv[2], "--site") == 0)
        return index_site(cfg, argc, argv, cfg->index ? dir : NULL);
    if (argc == 4 && strcmp(argv[2], "--maildir") == 0)
        maildir = argv[3];
    if (maildir == NULL || maildir[0] != '/' ||
        (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "uidl-diff") != 0)) {
        fprintf(stderr, "usage: popctl index check --maildir /PATH\n"
                        "       popctl index uidl-diff --maildir /PATH\n"
                        "       popctl index uidl-diff --site [--json] [--rate N]\n");
        return 2;
    }
    if (become_store_owner(cfg->user, cfg->group) == -1)
        return 2;
    if (strcmp(argv[1], "check") == 0)
        return index_tool_check(dir, maildir, cfg->index_recheck, stdout);
    return index_tool_uidl_diff(maildir, stdout);
}

static int verb_who(const struct config *cfg, int argc, char **argv)
{
    struct answer *a = popctl_answer_new();
    int exit_status;
    if (argc > 2) {
        fprintf(stderr, "usage: popctl who [USER|IP[/PREFIX]]\n");
        return EXIT_USAGE;
    }
    if (popctl_request(cfg, argc, argv, a, &exit_status) == -1)
        return exit_status;
    if (json_output) {
        popctl_print_json(a);
        return EXIT_OK;
    }
    printf("%-24s %-39s %5s %6s %-13s %-19s %6s %10s %s\n", "USER", "IP", "PORT", "WORKER",
           "STATE", "SINCE", "IDLE", "BYTES", "TLS");
    for (int r = 0; r < a->rows; r++) {
        char since[32] = "-";
        time_t t = (time_t)strtoll(popctl_field(a, r, "since"), NULL, 10);
        struct tm tm;
        if (t > 0 && localtime_r(&t, &tm) != NULL)
            strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", &tm);
        /*
         * A user name is the client's text, and the rest comes from memory a
         * worker writes: a control byte must never reach the terminal, and a
         * space must not shift the columns. Escaped as \xNN (JSON has its own).
         */
        enum { ESCAPED = TEXT_LOG_ESCAPE_SIZE(sizeof(a->value[0][0])) };
        char user[ESCAPED], ip[ESCAPED], state[ESCAPED], tls[ESCAPED];
        printf("%-24s %-39s %5s %6s %-13s %-19s %6s %10s %s\n",
               text_log_escape(popctl_field(a, r, "user"), user, sizeof(user)),
               text_log_escape(popctl_field(a, r, "ip"), ip, sizeof(ip)),
               popctl_field(a, r, "port"), popctl_field(a, r, "worker"),
               text_log_escape(popctl_field(a, r, "state"), state, sizeof(state)), since,
               popctl_field(a, r, "idle"), popctl_field(a, r, "bytes"),
               text_log_escape(popctl_field(a, r, "tls"), tls, sizeof(tls)));
    }
    return EXIT_OK;
}

/*
 * stats [--json|--prometheus] [--reset]: the master renders the document
 * (daemon/metrics/stats_render.h); popctl passes it through. --reset is a changing
 * verb: it prints the totals it ends.
 */
static int verb_stats(const struct config *cfg, int argc, char **argv)
{
    struct answer *a = popctl_answer_new();
    const char *format = json_output ? "format=json" : "format=text";
    int reset = 0, exit_status;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            format = "format=json";
        } else if (strcmp(argv[i], "--prometheus") == 0) {
            format = "format=prometheus";
        } else if (strcmp(argv[i], "--reset") == 0) {
            reset = 1;
        } else {
            fprintf(stderr, "usage: popctl stats [--json|--prometheus] [--reset]\n");
            return EXIT_USAGE;
        }
    }
    char *args[] = { reset ? "stats-reset" : "stats", (char *)format, NULL };
    a->sink = stdout;
    if (popctl_request(cfg, 2, args, a, &exit_status) == -1)
        return exit_status;
    if (a->status != CONTROL_OK) {
        fprintf(stderr, "popctl: stats: %s\n", a->message);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

/* Verbs that change something and answer with one line. */
static int simple_change(const struct config *cfg, int argc, char **argv, const char *usage,
                         int min_args, int max_args)
{
    struct answer *a = popctl_answer_new();
    int exit_status;
    if (argc - 1 < min_args || argc - 1 > max_args) {
        fprintf(stderr, "usage: popctl %s\n", usage);
        return EXIT_USAGE;
    }
    if (popctl_request(cfg, argc, argv, a, &exit_status) == -1)
        return exit_status;
    if (json_output)
        popctl_print_json(a);
    else if (strcmp(argv[0], "kick") == 0)
        printf("%s session(s) kicked\n", a->message);
    else if (a->status != CONTROL_OK)
        fprintf(stderr, "popctl: %s failed: %s\n", argv[0], a->message);
    else
        printf("%s\n", a->message);
    return a->status == CONTROL_OK ? EXIT_OK : EXIT_FAILED;
}

static int verb_kick(const struct config *cfg, int argc, char **argv)
{
    return simple_change(cfg, argc, argv, "kick USER|IP[/PREFIX]", 1, 1);
}

static int verb_undrain(const struct config *cfg, int argc, char **argv)
{
    return simple_change(cfg, argc, argv, "undrain", 0, 0);
}

static int verb_reload(const struct config *cfg, int argc, char **argv)
{
    return simple_change(cfg, argc, argv, "reload", 0, 0);
}

static int verb_drain(const struct config *cfg, int argc, char **argv)
{
    return popctl_drain(cfg, argc, argv, json_output);
}

static int verb_drain_status(const struct config *cfg, int argc, char **argv)
{
    return popctl_drain_status(cfg, argc, argv, json_output);
}

static int verb_stop(const struct config *cfg, int argc, char **argv)
{
    return popctl_stop(cfg, argc, argv, json_output);
}

static const struct verb verbs[] = {
    { "status", "is fastpopd running (exit 0 yes, 3 no, 1 stale pidfile)", verb_status },
    { "stats", "[--json|--prometheus] [--reset]: counters and timings since start or reset",
      verb_stats },
    { "who", "[USER|IP[/PREFIX]]: the sessions, one line each", verb_who },
    { "kick", "USER|IP[/PREFIX]: end those sessions (-ERR [SYS/TEMP]; nothing deleted)",
      verb_kick },
    { "drain", "[--deadline S] [--message TEXT] [--no-wait]: refuse new sessions, serve "
               "logged-in ones to their end", verb_drain },
    { "drain-status", "draining?, the sessions left, the deadline", verb_drain_status },
    { "undrain", "accept connections again", verb_undrain },
    { "reload", "reread the configuration; says whether it was accepted", verb_reload },
    { "stop", "[--deadline S]: end the sessions, then fastpopd", verb_stop },
    { "auth", "flush [USER]: empty the credential cache (or one user's entry)", verb_auth },
    { "index", "check|uidl-diff --maildir PATH, uidl-diff --site [--json] [--rate N]: the "
               "mailbox index and legacy UIDLs",
      verb_index },
    { NULL, NULL, NULL },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: popctl [-c FILE] [-s SOCKET] [--json] VERB [ARGS]\n"
                 "  -c FILE    fastpopd configuration (default " CONFIG_DEFAULT_PATH ")\n"
                 "  -s SOCKET  the control socket (default run_dir/" CONTROL_SOCKET_NAME ")\n"
                 "  --json     answers for scripts (every verb that talks to fastpopd)\n"
                 "verbs:\n");
    for (const struct verb *v = verbs; v->name; v++)
        fprintf(out, "  %-12s %s\n", v->name, v->help);
}

int main(int argc, char **argv)
{
    const char *config_path = CONFIG_DEFAULT_PATH;
    int opt;
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    while ((opt = getopt_long(argc, argv, "+c:s:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 's': popctl_socket_path = optarg; break;
        case 'j': json_output = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    static struct config cfg;
    char err[512];
    if (config_load(config_path, &cfg, err, sizeof(err)) == -1) {
        /*
         * With -s the socket is known: a broken file (about to be reloaded,
         * and refused) must not stop popctl from asking the running daemon.
         */
        if (popctl_socket_path == NULL) {
            fprintf(stderr, "popctl: %s (give the control socket with -s)\n", err);
            return STATUS_UNKNOWN;
        }
        config_defaults(&cfg);
    }
    /* The index verbs must derive UIDLs as the workers do. */
    legacy_configure(cfg.dovecot_uidl_format, cfg.x_uidl_header);
    for (const struct verb *v = verbs; v->name; v++) {
        if (strcmp(v->name, argv[optind]) == 0)
            return v->run(&cfg, argc - optind, argv + optind);
    }
    fprintf(stderr, "popctl: unknown verb \"%s\"\n", argv[optind]);
    usage(stderr);
    return 2;
}
