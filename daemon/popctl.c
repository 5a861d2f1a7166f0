/*
 * popctl: the operator's command line for fastpopd. Verbs are a table; each
 * returns the process exit status. This first version reads the pidfile;
 * the control socket verbs (stats, who, kick, drain, reload) plug into the
 * same table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "daemon/config.h"

/* LSB init script status codes, so init scripts can pass them through. */
enum { STATUS_RUNNING = 0, STATUS_DEAD_PIDFILE = 1, STATUS_NOT_RUNNING = 3, STATUS_UNKNOWN = 4 };

struct verb {
    const char *name;
    const char *help;
    int (*run)(const struct config *cfg, int argc, char **argv);
};

/*
 * fastpopd holds an flock on its pidfile while it runs, so the lock, not
 * kill(pid, 0), says whether it is up: a reused pid cannot fool it.
 */
static int verb_status(const struct config *cfg, int argc, char **argv)
{
    char path[CONFIG_PATH_MAX + 32];
    char text[32] = "";
    (void)argc;
    (void)argv;

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

static const struct verb verbs[] = {
    { "status", "is fastpopd running (exit 0 yes, 3 no, 1 stale pidfile)", verb_status },
    { NULL, NULL, NULL },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: popctl [-c FILE] VERB [ARGS]\n"
                 "  -c FILE  fastpopd configuration (default " CONFIG_DEFAULT_PATH ")\n"
                 "verbs:\n");
    for (const struct verb *v = verbs; v->name; v++)
        fprintf(out, "  %-10s %s\n", v->name, v->help);
}

int main(int argc, char **argv)
{
    const char *config_path = CONFIG_DEFAULT_PATH;
    int opt;
    while ((opt = getopt(argc, argv, "+c:h")) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
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
        fprintf(stderr, "popctl: %s\n", err);
        return STATUS_UNKNOWN;
    }
    for (const struct verb *v = verbs; v->name; v++) {
        if (strcmp(v->name, argv[optind]) == 0)
            return v->run(&cfg, argc - optind, argv + optind);
    }
    fprintf(stderr, "popctl: unknown verb \"%s\"\n", argv[optind]);
    usage(stderr);
    return 2;
}
