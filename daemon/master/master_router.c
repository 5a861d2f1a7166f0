/*
 * The router, the master's side. With router_listen set, the master binds
 * it (as root, so any port will do) and starts fastpop-router
 * (daemon/router/router_main.c) on it as the mail user, like any other
 * child, respawned with the same backoff. The router is one more client of
 * the auth helper (run_dir/auth.sock), whose peer check takes it because it
 * runs as the mail user and is the master's child. The master never accepts
 * on the socket and never reads HTTP; the router gets its settings on its
 * command line and is replaced when they change at a reload.
 */
#include "daemon/master/master_state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth/protocol.h"
#include "daemon/runtime/log.h"

/* nginx opens one connection per login; a burst of logins queues here, not in SYN retries. */
#define ROUTER_BACKLOG 128

int router_count(const struct config *cfg)
{
    (void)cfg;
    return 0;
}

/* What the running router was started with: a reload that changes any of it replaces it. */
static void settings_key(const struct master *m, char *out, size_t outlen)
{
    const struct config *cfg = m->cfg;
    snprintf(out, outlen, "%s|%s|%d|%d|%d|%u|%d", cfg->router_listen, cfg->router_backends,
             cfg->router_check_interval, cfg->router_proxy_protocol, cfg->router_cache_ttl,
             (unsigned)m->ids.mail_uid, cfg->log_level);
}

void router_enter(struct master *m, struct child *c)
{
    char level[16], interval[16], ttl[16];
    snprintf(level, sizeof(level), "%d", m->cfg->log_level);
    snprintf(interval, sizeof(interval), "%d", m->cfg->router_check_interval);
    snprintf(ttl, sizeof(ttl), "%d", m->cfg->router_cache_ttl);
    int to_stderr = m->opts->foreground || m->cfg->log_target == CONFIG_LOG_STDERR;
    char *argv[18];
    int n = 0;
    argv[n++] = "fastpop-router";
    argv[n++] = "--listen-fd";
    argv[n++] = "3";
    argv[n++] = "--auth-socket";
    argv[n++] = m->auth_path;
    argv[n++] = "--backends";
    argv[n++] = m->cfg->router_backends;
    argv[n++] = "--check-interval";
    argv[n++] = interval;
    argv[n++] = "--cache-ttl";
    argv[n++] = ttl;
    argv[n++] = "--log-level";
    argv[n++] = level;
    if (m->cfg->router_proxy_protocol)
        argv[n++] = "--proxy-protocol";
    if (to_stderr)
        argv[n++] = "-F";
    argv[n] = NULL;
    const int fds[] = { m->router_listen_fd };
    const struct exec_child x = { .what = "router", .fds = fds, .nfds = 1,
                                  .uid = m->ids.mail_uid, .gid = m->ids.mail_gid,
                                  .user = m->cfg->user, .path = m->router_path, .argv = argv };
    exec_child_enter(m, c, &x);
}

/* run_dir/ROUTER_PID_NAME: the one process whose router requests the helper takes. */
static void pid_file_path(const struct master *m, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", m->cfg->run_dir, ROUTER_PID_NAME);
}

static void forget_pid(const struct master *m)
{
    char path[CONFIG_PATH_MAX + sizeof(ROUTER_PID_NAME) + 1];
    pid_file_path(m, path, sizeof(path));
    if (unlink(path) == -1 && errno != ENOENT)
        log_warning("cannot remove %s: %s", path, strerror(errno));
}

/*
 * Written whole under another name and renamed, so the helper never reads
 * half a pid; run_dir is root's alone (daemon/runtime/trusted_dir.h).
 */
void router_forked(struct master *m, struct child *c)
{
    char path[CONFIG_PATH_MAX + sizeof(ROUTER_PID_NAME) + 1], tmp[sizeof(path) + 4];
    char text[32];

    /* Only the current router is forked: a retiring one is never respawned. */
    if (c->pid <= 0)
        return;
    pid_file_path(m, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    int len = snprintf(text, sizeof(text), "%d\n", (int)c->pid);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd == -1 || write(fd, text, (size_t)len) != len || close(fd) == -1 ||
        rename(tmp, path) == -1) {
        /* The helper then refuses the router's requests: logins through nginx fail, loudly. */
        log_error("cannot write %s: %s; the helper will not take the router's requests", path,
                  strerror(errno));
        unlink(tmp);
    }
}

void router_update(struct master *m)
{
    char key[sizeof(m->router_key)];
    settings_key(m, key, sizeof(key));
    const struct config_listen *want = &m->cfg->router;
    if (want->addrlen != 0 && m->router_listen_fd >= 0 && m->router_child != NULL &&
        strcmp(key, m->router_key) == 0)
        return;
    router_shutdown(m);
    if (want->addrlen == 0)
        return;
    snprintf(m->router_key, sizeof(m->router_key), "%s", key);
    const struct exec_child_start s = {
        .program = "fastpop-router", .path = m->router_path, .pathlen = sizeof(m->router_path),
        .setting = "router_listen", .service = "the router", .want = want,
        .backlog = ROUTER_BACKLOG, .listen_fd = &m->router_listen_fd,
    };
    m->router_child = exec_child_start(m, ROLE_ROUTER, &s);
    if (m->router_child != NULL)
        log_info("answering nginx's auth_http on %s (process router, user %s)", want->spec,
                 m->cfg->user);
}

void router_stop(struct master *m)
{
    if (m->router_listen_fd >= 0)
        close(m->router_listen_fd);
    m->router_listen_fd = -1;
}

void router_shutdown(struct master *m)
{
    forget_pid(m);
    exec_child_retire(&m->router_child);
    router_stop(m);
}

void router_child_gone(struct master *m, struct child *c)
{
    /* Not respawned: stopping, or it had been told to go. */
    if (c != m->router_child)
        return;
    /* Its pid may be another process's soon: no request from it is the router's. */
    forget_pid(m);
    if (m->stopping || c->retiring)
        m->router_child = NULL;
}
