/*
 * popctl: the operator's command line for fastpopd. Verbs are a table; each
 * returns the process exit status. Most talk to the master over its control
 * socket (protocol in daemon/control.h); status falls back to the pidfile
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

#include "daemon/config.h"
#include "daemon/control.h"
#include "daemon/ipc.h"
#include "daemon/privdrop.h"
#include "shm/credcache.h"
#include "shm/index.h"
#include "shm/index_tool.h"

/* LSB init script status codes, so init scripts can pass them through. */
enum { STATUS_RUNNING = 0, STATUS_DEAD_PIDFILE = 1, STATUS_NOT_RUNNING = 3, STATUS_UNKNOWN = 4 };

struct verb {
    const char *name;
    const char *help;
    int (*run)(const struct config *cfg, int argc, char **argv);
};

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_DOWN = 3, EXIT_REFUSED = 4 };

static const char *socket_path;   /* -s, else run_dir/control.sock */
static int json_output;           /* --json */

/* A control socket connection and the answer to the last request. */
#define MAX_ROWS 4096
#define MAX_FIELDS 16
struct answer {
    int status;                    /* enum control_status */
    char message[1024];
    int rows;
    int fields[MAX_ROWS];
    char (*key)[MAX_FIELDS][32];
    char (*value)[MAX_FIELDS][256];
};

static int control_connect(const struct config *cfg)
{
    char path[CONFIG_PATH_MAX + 32];
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (socket_path != NULL)
        snprintf(path, sizeof(path), "%s", socket_path);
    else
        snprintf(path, sizeof(path), "%s/%s", cfg->run_dir, CONTROL_SOCKET_NAME);
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Send verb with its arguments and read rows until END; -1 on a broken answer. */
static int ask(int fd, int argc, char **argv, struct answer *a)
{
    static uint32_t next_id;
    struct buf b;
    unsigned char msg[IPC_MAX_MESSAGE];
    uint32_t id = ++next_id;

    a->rows = 0;
    buf_init(&b, IPC_MAX_MESSAGE);
    ipc_begin(&b, CONTROL_REQUEST, id);
    ipc_put_u32(&b, CONTROL_VERSION);
    ipc_put_str(&b, argv[0]);
    ipc_put_u32(&b, (uint32_t)(argc - 1));
    for (int i = 1; i < argc; i++)
        ipc_put_str(&b, argv[i]);
    /* The master reads with MSG_DONTWAIT semantics only; a request always fits. */
    int rc = ipc_send(fd, &b);
    buf_free(&b);
    if (rc == -1)
        return -1;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 30000) != 1)
            return -1;
        ssize_t n = ipc_recv(fd, msg, sizeof(msg));
        if (n <= 0)
            return -1;
        struct ipc_reader r;
        uint32_t type, got;
        if (ipc_reader_init(&r, msg, (size_t)n, &type, &got) == -1 || got != id)
            return -1;
        if (type == CONTROL_END) {
            a->status = (int)ipc_get_u32(&r);
            ipc_get_str(&r, a->message, sizeof(a->message));
            return ipc_reader_end(&r);
        }
        if (type != CONTROL_ROW || a->rows >= MAX_ROWS)
            return -1;
        uint32_t nf = ipc_get_u32(&r);
        if (nf > MAX_FIELDS)
            return -1;
        for (uint32_t i = 0; i < nf; i++) {
            ipc_get_str(&r, a->key[a->rows][i], sizeof(a->key[0][0]));
            ipc_get_str(&r, a->value[a->rows][i], sizeof(a->value[0][0]));
        }
        if (ipc_reader_end(&r) == -1)
            return -1;
        a->fields[a->rows++] = (int)nf;
    }
}

static const char *field(const struct answer *a, int row, const char *key)
{
    for (int i = 0; row < a->rows && i < a->fields[row]; i++) {
        if (strcmp(a->key[row][i], key) == 0)
            return a->value[row][i];
    }
    return "";
}

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void print_json(const struct answer *a)
{
    printf("{\"status\": %d, \"message\": ", a->status);
    json_string(a->message);
    printf(", \"rows\": [");
    for (int r = 0; r < a->rows; r++) {
        printf("%s{", r ? ", " : "");
        for (int i = 0; i < a->fields[r]; i++) {
            printf("%s", i ? ", " : "");
            json_string(a->key[r][i]);
            printf(": ");
            json_string(a->value[r][i]);
        }
        printf("}");
    }
    printf("]}\n");
}

static struct answer *answer_new(void)
{
    static struct answer a;
    static char keys[MAX_ROWS][MAX_FIELDS][32];
    static char values[MAX_ROWS][MAX_FIELDS][256];
    a.key = keys;
    a.value = values;
    return &a;
}

/*
 * Connect, ask, and turn a refusal or a broken answer into a message and
 * an exit status: returns -1 (and sets *exit_status) unless the verb ran.
 */
static int request(const struct config *cfg, int argc, char **argv, struct answer *a,
                   int *exit_status)
{
    int fd = control_connect(cfg);
    if (fd == -1) {
        fprintf(stderr, "popctl: fastpopd is not running (control socket: %s)\n",
                strerror(errno));
        *exit_status = EXIT_DOWN;
        return -1;
    }
    int rc = ask(fd, argc, argv, a);
    close(fd);
    if (rc == -1) {
        fprintf(stderr, "popctl: no readable answer from fastpopd\n");
        *exit_status = EXIT_REFUSED;
        return -1;
    }
    if (a->status == CONTROL_DENIED || a->status == CONTROL_BAD) {
        fprintf(stderr, "popctl: %s\n", a->message);
        *exit_status = a->status == CONTROL_DENIED ? EXIT_REFUSED : EXIT_USAGE;
        return -1;
    }
    return 0;
}

static int status_from_socket(const struct config *cfg, int *exit_status)
{
    struct answer *a = answer_new();
    char *argv[] = { "status", NULL };
    int fd = control_connect(cfg);
    if (fd == -1)
        return -1;
    int rc = ask(fd, 1, argv, a);
    close(fd);
    if (rc == -1 || a->status != CONTROL_OK || a->rows != 1) {
        fprintf(stderr, "popctl: %s\n", rc == -1 ? "no readable answer from fastpopd"
                                                 : a->message);
        *exit_status = STATUS_UNKNOWN;
        return 0;
    }
    *exit_status = STATUS_RUNNING;
    if (json_output) {
        print_json(a);
        return 0;
    }
    /* The first line reads as the pidfile fallback's: scripts match it. */
    printf("fastpopd is running (pid %s)\n  version:  %s\n  uptime:   %ss\n"
           "  config:   %s\n  workers:  %s\n  helper:   %s\n  sessions: %s\n"
           "  draining: %s\n  stopping: %s\n",
           field(a, 0, "pid"), field(a, 0, "version"), field(a, 0, "uptime"),
           field(a, 0, "config"), field(a, 0, "workers"), field(a, 0, "helper"),
           field(a, 0, "sessions"), field(a, 0, "draining"), field(a, 0, "stopping"));
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
 * auth flush [USER]: empty the credential cache, or forget one login name.
 * Opened directly (there is no control socket yet); LMDB's writer lock
 * keeps this and the helper's writes apart. Run it as root or auth_user.
 */
static int verb_auth(const struct config *cfg, int argc, char **argv)
{
    struct credcache *cc;
    size_t removed;

    if (argc < 2 || argc > 3 || strcmp(argv[1], "flush") != 0) {
        fprintf(stderr, "usage: popctl auth flush [USER]\n");
        return 2;
    }
    /* Never create the env here: as root, its files would shut the helper out. */
    char data[CONFIG_PATH_MAX + 32];
    snprintf(data, sizeof(data), "%s/%s/data.mdb", cfg->state_dir, CREDCACHE_DIR);
    if (access(data, F_OK) == -1 && errno == ENOENT) {
        printf("0 entries removed (no credential cache yet)\n");
        return 0;
    }
    if (credcache_open(cfg->state_dir, 1, &cc) == -1) {
        fprintf(stderr, "popctl: credential cache in %s/%s: %s\n", cfg->state_dir,
                CREDCACHE_DIR, strerror(errno));
        return 1;
    }
    int rc = credcache_flush(cc, argc == 3 ? argv[2] : NULL, &removed);
    if (rc == -1)
        fprintf(stderr, "popctl: flush: %s\n", credcache_error(cc));
    else
        printf("%zu entr%s removed\n", removed, removed == 1 ? "y" : "ies");
    credcache_close(cc);
    return rc == -1 ? 1 : 0;
}

/*
 * index check|uidl-diff --maildir PATH: read-only looks at the mailbox
 * index and the legacy UIDL files (shm/index_tool.h). Opened directly
 * (there is no control socket yet). Started as root, it first becomes the
 * mail user, so nothing it opens can end up owned by root.
 */
static int verb_index(const struct config *cfg, int argc, char **argv)
{
    const char *maildir = NULL;
    char dir[CONFIG_PATH_MAX + 16];

    if (argc == 4 && strcmp(argv[2], "--maildir") == 0)
        maildir = argv[3];
    if (maildir == NULL || maildir[0] != '/' ||
        (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "uidl-diff") != 0)) {
        fprintf(stderr, "usage: popctl index check --maildir /PATH\n"
                        "       popctl index uidl-diff --maildir /PATH\n");
        return 2;
    }
    if (geteuid() == 0) {
        uid_t uid;
        gid_t gid;
        if (privdrop_lookup(cfg->user, cfg->group, &uid, &gid) == -1 ||
            privdrop_become(uid, gid) == -1) {
            fprintf(stderr, "popctl: cannot become %s: %s\n", cfg->user, strerror(errno));
            return 2;
        }
    }
    snprintf(dir, sizeof(dir), "%s/%s", cfg->state_dir, INDEX_SUBDIR);
    if (strcmp(argv[1], "check") == 0)
        return index_tool_check(dir, maildir, stdout);
    return index_tool_uidl_diff(maildir, stdout);
}

static int verb_who(const struct config *cfg, int argc, char **argv)
{
    struct answer *a = answer_new();
    int exit_status;
    if (argc > 2) {
        fprintf(stderr, "usage: popctl who [USER|IP[/PREFIX]]\n");
        return EXIT_USAGE;
    }
    if (request(cfg, argc, argv, a, &exit_status) == -1)
        return exit_status;
    if (json_output) {
        print_json(a);
        return EXIT_OK;
    }
    printf("%-24s %-39s %5s %6s %-13s %-19s %6s %10s %s\n", "USER", "IP", "PORT", "WORKER",
           "STATE", "SINCE", "IDLE", "BYTES", "TLS");
    for (int r = 0; r < a->rows; r++) {
        char since[32] = "-";
        time_t t = (time_t)strtoll(field(a, r, "since"), NULL, 10);
        struct tm tm;
        if (t > 0 && localtime_r(&t, &tm) != NULL)
            strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", &tm);
        printf("%-24s %-39s %5s %6s %-13s %-19s %6s %10s %s\n", field(a, r, "user"),
               field(a, r, "ip"), field(a, r, "port"), field(a, r, "worker"),
               field(a, r, "state"), since, field(a, r, "idle"), field(a, r, "bytes"),
               field(a, r, "tls"));
    }
    return EXIT_OK;
}

/* Verbs that change something and answer with one line. */
static int simple_change(const struct config *cfg, int argc, char **argv, const char *usage,
                         int min_args, int max_args)
{
    struct answer *a = answer_new();
    int exit_status;
    if (argc - 1 < min_args || argc - 1 > max_args) {
        fprintf(stderr, "usage: popctl %s\n", usage);
        return EXIT_USAGE;
    }
    if (request(cfg, argc, argv, a, &exit_status) == -1)
        return exit_status;
    if (json_output)
        print_json(a);
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

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --deadline S, --message TEXT, --no-wait into name=value arguments for the master. */
static int drain_args(int argc, char **argv, char *out[], char deadline[32], char message[256],
                      int *no_wait, int allow_message)
{
    int n = 1;
    out[0] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--deadline") == 0 && i + 1 < argc) {
            snprintf(deadline, 32, "deadline=%s", argv[++i]);
            out[n++] = deadline;
        } else if (allow_message && strcmp(argv[i], "--message") == 0 && i + 1 < argc) {
            snprintf(message, 256, "message=%s", argv[++i]);
            out[n++] = message;
        } else if (allow_message && strcmp(argv[i], "--no-wait") == 0) {
            *no_wait = 1;
        } else {
            return -1;
        }
    }
    out[n] = NULL;
    return n;
}

/*
 * drain: the master refuses new connections and closes idle sessions at
 * once; popctl then watches until every session is gone (exit 0) or the
 * master cut the last ones at the deadline (exit 1, with the count).
 */
static int verb_drain(const struct config *cfg, int argc, char **argv)
{
    struct answer *a = answer_new();
    char *args[8], deadline[32], message[256];
    int no_wait = 0, exit_status;
    int n = argc <= 6 ? drain_args(argc, argv, args, deadline, message, &no_wait, 1) : -1;
    if (n == -1) {
        fprintf(stderr, "usage: popctl drain [--deadline SECONDS] [--message TEXT] "
                        "[--no-wait]\n");
        return EXIT_USAGE;
    }
    if (request(cfg, n, args, a, &exit_status) == -1)
        return exit_status;
    if (no_wait) {
        printf("draining: %s session(s) open\n", a->message);
        return EXIT_OK;
    }
    char *status_argv[] = { "drain-status", NULL };
    double give_up = -1;
    for (;;) {
        if (request(cfg, 1, status_argv, a, &exit_status) == -1)
            return exit_status;
        long sessions = strtol(field(a, 0, "sessions"), NULL, 10);
        long cut = strtol(field(a, 0, "cut"), NULL, 10);
        if (strcmp(field(a, 0, "draining"), "yes") != 0) {
            fprintf(stderr, "popctl: the drain was ended (undrain) before all sessions were "
                            "gone\n");
            return EXIT_FAILED;
        }
        if (sessions == 0) {
            if (cut > 0) {
                printf("drained: %ld session(s) cut at the deadline\n", cut);
                return EXIT_FAILED;
            }
            printf("drained: no sessions left\n");
            return EXIT_OK;
        }
        /* Sessions cut at the deadline take a moment to close; then give up. */
        double left = strtod(field(a, 0, "deadline_left"), NULL);
        if (give_up < 0 || left > 0)
            give_up = mono() + left + 5.0;
        if (mono() > give_up) {
            printf("%ld session(s) still open after the deadline\n", sessions);
            return EXIT_FAILED;
        }
        struct timespec pause = { 0, 100 * 1000000L };
        nanosleep(&pause, NULL);
    }
}

/* stop: a drain by another name, then the master exits; wait for it to be gone. */
static int verb_stop(const struct config *cfg, int argc, char **argv)
{
    struct answer *a = answer_new();
    char *args[8], deadline[32], unused[256];
    int no_wait = 0, exit_status;
    int n = argc <= 3 ? drain_args(argc, argv, args, deadline, unused, &no_wait, 0) : -1;
    if (n == -1) {
        fprintf(stderr, "usage: popctl stop [--deadline SECONDS]\n");
        return EXIT_USAGE;
    }
    long seconds = n == 2 ? strtol(deadline + strlen("deadline="), NULL, 10)
                          : cfg->shutdown_timeout;
    if (request(cfg, n, args, a, &exit_status) == -1)
        return exit_status;
    /* The master closes the socket last, as it exits. */
    double give_up = mono() + (double)seconds + 15.0;
    while (mono() < give_up) {
        int fd = control_connect(cfg);
        if (fd == -1) {
            printf("fastpopd stopped\n");
            return EXIT_OK;
        }
        close(fd);
        struct timespec pause = { 0, 100 * 1000000L };
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "popctl: fastpopd is still running %lds after stop\n", seconds + 15);
    return EXIT_FAILED;
}

static const struct verb verbs[] = {
    { "status", "is fastpopd running (exit 0 yes, 3 no, 1 stale pidfile)", verb_status },
    { "who", "[USER|IP[/PREFIX]]: the sessions, one line each", verb_who },
    { "kick", "USER|IP[/PREFIX]: end those sessions (-ERR [SYS/TEMP]; nothing deleted)",
      verb_kick },
    { "drain", "[--deadline S] [--message TEXT] [--no-wait]: refuse new sessions, end the "
               "rest", verb_drain },
    { "undrain", "accept connections again", verb_undrain },
    { "reload", "reread the configuration; says whether it was accepted", verb_reload },
    { "stop", "[--deadline S]: end the sessions, then fastpopd", verb_stop },
    { "auth", "flush [USER]: empty the credential cache (or one user's entry)", verb_auth },
    { "index", "check|uidl-diff --maildir PATH: the mailbox index and legacy UIDLs",
      verb_index },
    { NULL, NULL, NULL },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: popctl [-c FILE] [-s SOCKET] [--json] VERB [ARGS]\n"
                 "  -c FILE    fastpopd configuration (default " CONFIG_DEFAULT_PATH ")\n"
                 "  -s SOCKET  the control socket (default run_dir/" CONTROL_SOCKET_NAME ")\n"
                 "  --json     answers for scripts (status, who, kick, undrain, reload)\n"
                 "verbs:\n");
    for (const struct verb *v = verbs; v->name; v++)
        fprintf(out, "  %-10s %s\n", v->name, v->help);
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
        case 's': socket_path = optarg; break;
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
        if (socket_path == NULL) {
            fprintf(stderr, "popctl: %s (give the control socket with -s)\n", err);
            return STATUS_UNKNOWN;
        }
        config_defaults(&cfg);
    }
    for (const struct verb *v = verbs; v->name; v++) {
        if (strcmp(v->name, argv[optind]) == 0)
            return v->run(&cfg, argc - optind, argv + optind);
    }
    fprintf(stderr, "popctl: unknown verb \"%s\"\n", argv[optind]);
    usage(stderr);
    return 2;
}
