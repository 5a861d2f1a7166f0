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

static const struct verb verbs[] = {
    { "status", "is fastpopd running (exit 0 yes, 3 no, 1 stale pidfile)", verb_status },
    { "auth", "flush [USER]: empty the credential cache (or one user's entry)", verb_auth },
    { "index", "check|uidl-diff --maildir PATH: the mailbox index and legacy UIDLs",
      verb_index },
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
