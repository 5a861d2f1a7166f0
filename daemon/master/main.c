/*
 * fastpopd: parse the command line, check or print the configuration, and
 * start the master (daemonized with a pidfile unless -F).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/runtime/config.h"
#include "daemon/runtime/identity.h"
#include "daemon/runtime/log.h"
#include "daemon/master/master.h"
#include "daemon/runtime/trusted_dir.h"
#include "shm/credcache.h"
#include "worker/tls.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fastpopd [-F] [-c FILE]   run the POP3 server\n"
            "       fastpopd -t [-c FILE]     check the configuration and exit\n"
            "       fastpopd -n [-c FILE]     print the effective configuration\n"
            "       fastpopd -V               print the version\n"
            "  -c FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
            "  -F       stay in the foreground and log to stderr\n");
}

/*
 * What max_connections needs (config_open_files_wanted). The master logs
 * what was obtained: running short of descriptors is how large sites fail first.
 */
static void raise_fd_limit(const struct config *cfg, struct master_options *opts)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)config_open_files_wanted(cfg);

    opts->fd_wanted = want;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return;
    if (rl.rlim_cur < want) {
        struct rlimit next = rl;
        next.rlim_cur = want;
        if (next.rlim_max < want)
            next.rlim_max = want;
        if (setrlimit(RLIMIT_NOFILE, &next) == -1) {
            /* Not allowed to raise the hard limit: go as high as it allows. */
            next.rlim_max = rl.rlim_max;
            next.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
            setrlimit(RLIMIT_NOFILE, &next);
        }
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    opts->fd_limit = rl.rlim_cur;
}

/*
 * Lock the pidfile so a second instance is refused with a clear message.
 * It lives in a directory no one else may write, and is never a symlink:
 * root truncates and writes it.
 */
static int open_pidfile(const char *path, uid_t owner)
{
    char dir[CONFIG_PATH_MAX + 32], err[CONFIG_PATH_MAX * 3 + 256];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        log_error("pidfile %s: not an absolute path", path);
        return -1;
    }
    const char *base = path + (slash - dir) + 1;
    slash[slash == dir ? 1 : 0] = '\0';
    int dir_fd = trusted_dir_open(dir, "the pidfile's directory", owner, err, sizeof(err));
    if (dir_fd == -1) {
        log_error("pidfile %s: %s", path, err);
        return -1;
    }
    int fd = openat(dir_fd, base, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    int saved = errno;
    close(dir_fd);
    struct stat st;
    if (fd == -1 && saved == ELOOP) {
        log_error("pidfile %s is a symbolic link; refusing to write through it (remove it)",
                  path);
        return -1;
    }
    if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        log_error("cannot open pidfile %s: %s", path,
                  fd == -1 ? strerror(saved) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        char running[32] = "";
        ssize_t n = read(fd, running, sizeof(running) - 1);
        running[n > 0 ? n : 0] = '\0';
        running[strcspn(running, "\n")] = '\0';
        log_error("already running (pid %s, pidfile %s)", running[0] ? running : "?", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int write_pidfile(int fd)
{
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, (size_t)n, 0) != n)
        return -1;
    return 0;
}

/*
 * The starting process waits on a pipe until the master says it is serving,
 * so an init script's exit status means what it says.
 */
static int daemonize(int *ready_fd)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) == -1)
        return -1;
    pid_t pid = fork();
    if (pid == -1)
        return -1;
    if (pid > 0) {
        char ok;
        close(pipefd[1]);
        ssize_t n;
        do {
            n = read(pipefd[0], &ok, 1);
        } while (n == -1 && errno == EINTR);
        _exit(n == 1 ? 0 : 1);
    }
    close(pipefd[0]);
    if (setsid() == -1)
        return -1;
    if (chdir("/") == -1)
        return -1;
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        if (devnull > STDERR_FILENO)
            close(devnull);
    }
    *ready_fd = pipefd[1];
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_arg = CONFIG_DEFAULT_PATH;
    int foreground = 0, test_only = 0, print_only = 0;
    int opt;

    while ((opt = getopt(argc, argv, "c:FtnVh")) != -1) {
        switch (opt) {
        case 'c': config_arg = optarg; break;
        case 'F': foreground = 1; break;
        case 't': test_only = 1; break;
        case 'n': print_only = 1; break;
        case 'V': printf("fastpopd %s\n", FASTPOP_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    /* Children re-read the file after a reload, from any working directory. */
    char config_path[PATH_MAX];
    if (realpath(config_arg, config_path) == NULL) {
        fprintf(stderr, "fastpopd: %s: %s\n", config_arg, strerror(errno));
        return 1;
    }

    static struct config cfg;
    char err[512];
    if (config_load(config_path, &cfg, err, sizeof(err)) == -1) {
        fprintf(stderr, "fastpopd: %s\n", err);
        return 1;
    }
    if (print_only) {
        config_print(&cfg, stdout);
        return 0;
    }
    struct identities ids;
    if (identities_resolve(&cfg, &ids, err, sizeof(err)) == -1) {
        fprintf(stderr, "fastpopd: %s\n", err);
        return 1;
    }
    if (test_only) {
        /* Certificates are part of the configuration: load them as a start would. */
        if (cfg.tls_cert_count > 0) {
            struct tls_context *tls = tls_context_build(&cfg, NULL, err, sizeof(err));
            if (tls == NULL) {
                fprintf(stderr, "fastpopd: %s\n", err);
                return 1;
            }
            tls_context_free(tls);
        }
        if (config_login_warning(&cfg) != NULL)
            fprintf(stderr, "fastpopd: warning: %s\n", config_login_warning(&cfg));
        fprintf(stderr, "fastpopd: configuration file %s is valid\n", config_path);
        return 0;
    }

    /* Until the master is serving, errors go to the terminal that started it. */
    log_open(LOG_TO_STDERR, (enum log_level)cfg.log_level, "master", -1);
    /*
     * Root creates and uses names in these: no one else may write to them
     * (daemon/runtime/trusted_dir.h). Started unprivileged, they are the user's own.
     */
    uid_t dir_owner = ids.privileged ? 0 : geteuid();
    char dir_err[CONFIG_PATH_MAX * 3 + 256];
    if (trusted_dir_make(cfg.run_dir, "run_dir", dir_owner, dir_err, sizeof(dir_err)) == -1 ||
        trusted_dir_make(cfg.state_dir, "state_dir", dir_owner, dir_err, sizeof(dir_err)) == -1) {
        log_error("%s", dir_err);
        return 1;
    }
    /* The helper writes the credential cache, the workers (the mail group) read it. */
    if (credcache_prepare_dir(cfg.state_dir, ids.auth_uid, ids.mail_gid) == -1) {
        log_error("cannot prepare %s/%s for the credential cache: %s", cfg.state_dir,
                  CREDCACHE_DIR, strerror(errno));
        return 1;
    }

    char pid_path[CONFIG_PATH_MAX + 32];
    config_pid_path(&cfg, pid_path, sizeof(pid_path));
    int pidfile_fd = open_pidfile(pid_path, dir_owner);
    if (pidfile_fd == -1)
        return 1;

    int ready_fd = -1;
    if (!foreground && daemonize(&ready_fd) == -1) {
        log_error("cannot daemonize: %s", strerror(errno));
        return 1;
    }
    if (write_pidfile(pidfile_fd) == -1) {
        log_error("cannot write pidfile %s: %s", pid_path, strerror(errno));
        return 1;
    }

    struct master_options opts = {
        .config_path = config_path,
        .foreground = foreground,
        .ready_fd = ready_fd,
        .pidfile_fd = pidfile_fd,
    };
    raise_fd_limit(&cfg, &opts);
    int status = master_run(&opts, &cfg);
    unlink(pid_path);
    close(pidfile_fd);
    log_close();
    return status;
}
