#include "control.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/control_args.h"
#include "daemon/ipc.h"
#include "daemon/log.h"
#include "shm/scoreboard.h"
#include "shm/stats.h"
#include "shm/stats_render.h"

/* popctl connects, asks, and goes: a handful at a time is plenty. */
#define CONTROL_MAX_CLIENTS 16
#define CONTROL_MAX_ARGS 8
#define CONTROL_ARG_MAX 256
/* How long one reply message may wait for room in a slow client's socket. */
#define CONTROL_SEND_WAIT_MS 1000
#define CONTROL_MAX_CHILDREN 1024

struct control_client {
    int fd;                /* -1: free */
    int may_read;
    int may_change;
};

struct control {
    const struct config *cfg;
    struct scoreboard *sb;
    struct stats_region *stats;
    struct control_hooks hooks;
    int listen_fd;
    char path[CONFIG_PATH_MAX + 32];
    gid_t socket_gid;
    struct control_client clients[CONTROL_MAX_CLIENTS];
    double started;        /* monotonic */
    /* The drain in progress: its deadline, and how many sessions it cut. */
    int drain_deadline_set;
    double drain_deadline;
    unsigned drain_cut;
};

struct reply {
    struct control *ctl;
    int fd;
    uint32_t id;
    struct buf b;
    int failed;            /* a send failed: the client is dropped */
};

struct ctl_verb {
    const char *name;
    int changes;           /* needs root, the daemon's user or admin_group */
    int (*run)(struct reply *r, int argc, char **argv);
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A reply message; waits a little for room, then gives up on the client. */
static void reply_send(struct reply *r)
{
    if (r->failed)
        return;
    for (;;) {
        if (ipc_send(r->fd, &r->b) == 0)
            return;
        if (errno != EAGAIN) {
            r->failed = 1;
            return;
        }
        struct pollfd p = { .fd = r->fd, .events = POLLOUT };
        if (poll(&p, 1, CONTROL_SEND_WAIT_MS) != 1) {
            r->failed = 1;
            return;
        }
    }
}

/* One record: keys and values alternate, NULL ends the list. */
static void reply_row(struct reply *r, const char *const *kv)
{
    uint32_t n = 0;
    while (kv[2 * n] != NULL)
        n++;
    ipc_begin(&r->b, CONTROL_ROW, r->id);
    ipc_put_u32(&r->b, n);
    for (uint32_t i = 0; i < 2 * n; i++)
        ipc_put_str(&r->b, kv[i]);
    reply_send(r);
}

static int reply_end(struct reply *r, enum control_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reply_end(struct reply *r, enum control_status status, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ipc_begin(&r->b, CONTROL_END, r->id);
    ipc_put_u32(&r->b, (uint32_t)status);
    ipc_put_str(&r->b, text);
    reply_send(r);
    return (int)status;
}

static int verb_status(struct reply *r, int argc, char **argv)
{
    struct control *ctl = r->ctl;
    static struct control_child kids[CONTROL_MAX_CHILDREN];
    char uptime[32], pid[16], workers[2048] = "", helper[16] = "-", sessions[16];
    (void)argv;
    if (argc != 1)
        return reply_end(r, CONTROL_BAD, "usage: status");
    int n = ctl->hooks.children(ctl->hooks.ctx, kids, CONTROL_MAX_CHILDREN);
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(kids[i].role, "auth") == 0) {
            snprintf(helper, sizeof(helper), "%d", (int)kids[i].pid);
        } else if (used + 16 < sizeof(workers)) {
            int w = snprintf(workers + used, sizeof(workers) - used, "%s%d%s", used ? " " : "",
                             (int)kids[i].pid, kids[i].retiring ? "(retiring)" : "");
            used += w > 0 ? (size_t)w : 0;
        }
    }
    snprintf(uptime, sizeof(uptime), "%.0f", mono_now() - ctl->started);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    snprintf(sessions, sizeof(sessions), "%u", scoreboard_active(ctl->sb));
    const char *row[] = { "version", FASTPOP_VERSION, "pid", pid, "uptime", uptime,
                          "config", ctl->cfg->path, "workers", workers, "helper", helper,
                          "draining", scoreboard_draining(ctl->sb, NULL, 0) ? "yes" : "no",
                          "stopping", ctl->hooks.stopping(ctl->hooks.ctx) ? "yes" : "no",
                          "sessions", sessions, NULL };
    reply_row(r, row);
    return reply_end(r, CONTROL_OK, "running");
}

static int verb_who(struct reply *r, int argc, char **argv)
{
    struct control_target t;
    if (argc > 2 || control_parse_target(argc == 2 ? argv[1] : NULL, &t) == -1)
        return reply_end(r, CONTROL_BAD, "usage: who [USER|IP[/PREFIX]]");
    struct scoreboard *sb = r->ctl->sb;
    unsigned shown = 0;
    time_t now = time(NULL);
    for (unsigned i = 0; i < scoreboard_capacity(sb) && !r->failed; i++) {
        struct scoreboard_session s;
        uint8_t ip[16];
        pid_t owner;
        if (scoreboard_peek(sb, i, &s, ip, &owner) != 1 || !control_target_match(&t, s.user, ip))
            continue;
        char ipt[INET6_ADDRSTRLEN], port[8], worker[24], since[24], idle[24], bytes[24];
        control_format_ip(ip, ipt, sizeof(ipt));
        snprintf(port, sizeof(port), "%u", (unsigned)s.port);
        snprintf(worker, sizeof(worker), "%u", (unsigned)s.worker);
        snprintf(since, sizeof(since), "%lld", (long long)s.since);
        snprintf(idle, sizeof(idle), "%lld",
                 (long long)(s.active > 0 && now > s.active ? now - s.active : 0));
        snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)s.bytes);
        const char *row[] = { "user", s.user[0] ? s.user : "-", "ip", ipt, "port", port,
                              "worker", worker, "state", s.state, "since", since,
                              "idle", idle, "bytes", bytes, "tls", s.tls[0] ? s.tls : "no",
                              NULL };
        reply_row(r, row);
        shown++;
    }
    return reply_end(r, CONTROL_OK, "%u", shown);
}

static int verb_kick(struct reply *r, int argc, char **argv)
{
    struct control_target t;
    if (argc != 2 || control_parse_target(argv[1], &t) == -1)
        return reply_end(r, CONTROL_BAD, "usage: kick USER|IP[/PREFIX]");
    struct scoreboard *sb = r->ctl->sb;
    unsigned kicked = 0;
    for (unsigned i = 0; i < scoreboard_capacity(sb); i++) {
        struct scoreboard_session s;
        uint8_t ip[16];
        pid_t owner;
        if (scoreboard_peek(sb, i, &s, ip, &owner) == 1 && control_target_match(&t, s.user, ip)) {
            scoreboard_kick(sb, i, SB_KICK_IDLE);
            kicked++;
        }
    }
    if (kicked > 0)
        r->ctl->hooks.wake_workers(r->ctl->hooks.ctx);
    log_info("control: kick %s: %u session(s)", argv[1], kicked);
    return reply_end(r, CONTROL_OK, "%u", kicked);
}

static int verb_drain(struct reply *r, int argc, char **argv)
{
    struct control *ctl = r->ctl;
    const char *deadline = control_option(argc, argv, "deadline");
    const char *message = control_option(argc, argv, "message");
    long seconds = deadline ? control_parse_seconds(deadline) : ctl->cfg->shutdown_timeout;
    if (seconds < 0)
        return reply_end(r, CONTROL_BAD, "drain: deadline must be 0..86400 seconds");
    scoreboard_set_drain(ctl->sb, 1, message);
    ctl->drain_deadline_set = 1;
    ctl->drain_deadline = mono_now() + (double)seconds;
    ctl->drain_cut = 0;
    ctl->hooks.wake_workers(ctl->hooks.ctx);
    log_info("control: draining: new connections refused, %u session(s) have %lds to end",
             scoreboard_active(ctl->sb), seconds);
    return reply_end(r, CONTROL_OK, "%u", scoreboard_active(ctl->sb));
}

static int verb_drain_status(struct reply *r, int argc, char **argv)
{
    struct control *ctl = r->ctl;
    char sessions[16], cut[16], left[32];
    (void)argv;
    if (argc != 1)
        return reply_end(r, CONTROL_BAD, "usage: drain-status");
    double rest = ctl->drain_deadline_set ? ctl->drain_deadline - mono_now() : -1.0;
    snprintf(sessions, sizeof(sessions), "%u", scoreboard_active(ctl->sb));
    snprintf(cut, sizeof(cut), "%u", ctl->drain_cut);
    snprintf(left, sizeof(left), "%.1f", rest < 0 ? 0.0 : rest);
    const char *row[] = { "draining", scoreboard_draining(ctl->sb, NULL, 0) ? "yes" : "no",
                          "sessions", sessions, "cut", cut, "deadline_left", left, NULL };
    reply_row(r, row);
    return reply_end(r, CONTROL_OK, "ok");
}

static int verb_undrain(struct reply *r, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return reply_end(r, CONTROL_BAD, "usage: undrain");
    scoreboard_set_drain(r->ctl->sb, 0, NULL);
    r->ctl->drain_deadline_set = 0;
    r->ctl->hooks.wake_workers(r->ctl->hooks.ctx);
    log_info("control: drain ended: accepting connections");
    return reply_end(r, CONTROL_OK, "accepting");
}

static int verb_reload(struct reply *r, int argc, char **argv)
{
    char err[512];
    (void)argv;
    if (argc != 1)
        return reply_end(r, CONTROL_BAD, "usage: reload");
    if (r->ctl->hooks.reload(r->ctl->hooks.ctx, err, sizeof(err)) == -1)
        return reply_end(r, CONTROL_FAILED, "%s", err);
    return reply_end(r, CONTROL_OK, "reloaded %s", r->ctl->cfg->path);
}

static int verb_stop(struct reply *r, int argc, char **argv)
{
    const char *deadline = control_option(argc, argv, "deadline");
    long seconds = deadline ? control_parse_seconds(deadline) : r->ctl->cfg->shutdown_timeout;
    if (seconds < 0)
        return reply_end(r, CONTROL_BAD, "stop: deadline must be 0..86400 seconds");
    reply_end(r, CONTROL_OK, "stopping");
    r->ctl->hooks.stop(r->ctl->hooks.ctx, (int)seconds);
    return CONTROL_OK;
}

void control_gauges(struct control *ctl, struct stats_gauges *g)
{
    static struct control_child kids[CONTROL_MAX_CHILDREN];
    memset(g, 0, sizeof(*g));
    int n = ctl->hooks.children(ctl->hooks.ctx, kids, CONTROL_MAX_CHILDREN);
    for (int i = 0; i < n; i++)
        g->workers += strcmp(kids[i].role, "worker") == 0;
    for (unsigned i = 0; i < scoreboard_capacity(ctl->sb); i++) {
        struct scoreboard_session s;
        uint8_t ip[16];
        pid_t owner;
        if (scoreboard_peek(ctl->sb, i, &s, ip, &owner) != 1)
            continue;
        g->connections++;
        g->logged_in += s.user[0] != '\0' && strcmp(s.state, "transaction") == 0;
    }
    g->draining = scoreboard_draining(ctl->sb, NULL, 0);
    g->now = time(NULL);
    g->started = g->now - (time_t)(mono_now() - ctl->started);
}

int control_render_stats(struct control *ctl, enum stats_format f, enum stats_read how,
                         struct buf *out)
{
    struct stats_snapshot snap;
    struct stats_gauges g;
    if (ctl->stats == NULL)
        return -1;
    stats_region_read(ctl->stats, &snap, how);
    control_gauges(ctl, &g);
    return stats_render(&snap, &g, f, out);
}

/* stats [format=text|json|prometheus]: the document in rows of {"text": piece}. */
static int send_stats(struct reply *r, int argc, char **argv, enum stats_read how)
{
    enum stats_format f = STATS_TEXT;
    const char *format = control_option(argc, argv, "format");
    if ((format != NULL && stats_format_parse(format, &f) == -1) ||
        argc > 1 + (format != NULL))
        return reply_end(r, CONTROL_BAD, "usage: stats [format=text|json|prometheus]");
    struct buf doc;
    buf_init(&doc, CONTROL_STATS_MAX);
    if (control_render_stats(r->ctl, f, how, &doc) == -1) {
        buf_free(&doc);
        return reply_end(r, CONTROL_FAILED, "no statistics (see the log at start)");
    }
    for (size_t at = 0; at < buf_len(&doc) && !r->failed;) {
        char piece[CONTROL_STATS_PIECE + 1];
        size_t n = buf_len(&doc) - at;
        if (n > CONTROL_STATS_PIECE)
            n = CONTROL_STATS_PIECE;
        memcpy(piece, buf_rptr(&doc) + at, n);
        piece[n] = '\0';
        const char *row[] = { "text", piece, NULL };
        reply_row(r, row);
        at += n;
    }
    buf_free(&doc);
    if (how == STATS_AND_RESET)
        log_info("control: statistics reset");
    return reply_end(r, CONTROL_OK, "%s", how == STATS_AND_RESET ? "reset" : "ok");
}

static int verb_stats(struct reply *r, int argc, char **argv)
{
    return send_stats(r, argc, argv, STATS_SINCE_RESET);
}

static int verb_stats_reset(struct reply *r, int argc, char **argv)
{
    return send_stats(r, argc, argv, STATS_AND_RESET);
}

static const struct ctl_verb ctl_verbs[] = {
    { "stats", 0, verb_stats },
    { "stats-reset", 1, verb_stats_reset },
    { "status", 0, verb_status },
    { "who", 0, verb_who },
    { "drain-status", 0, verb_drain_status },
    { "kick", 1, verb_kick },
    { "drain", 1, verb_drain },
    { "undrain", 1, verb_undrain },
    { "reload", 1, verb_reload },
    { "stop", 1, verb_stop },
    { NULL, 0, NULL },
};

/* One request; -1 when the client is to be dropped. */
static int serve(struct control *ctl, struct control_client *cl)
{
    unsigned char msg[IPC_MAX_MESSAGE];
    static char args[CONTROL_MAX_ARGS + 1][CONTROL_ARG_MAX];
    char *argv[CONTROL_MAX_ARGS + 1];
    struct ipc_reader rd;
    uint32_t type, id;

    ssize_t n = ipc_recv(cl->fd, msg, sizeof(msg));
    if (n <= 0)
        return n == -1 && errno == EAGAIN ? 0 : -1;
    struct reply r = { .ctl = ctl, .fd = cl->fd };
    buf_init(&r.b, IPC_MAX_MESSAGE);
    int bad = ipc_reader_init(&rd, msg, (size_t)n, &type, &id) == -1 || type != CONTROL_REQUEST;
    r.id = id;
    uint32_t version = bad ? 0 : ipc_get_u32(&rd);
    ipc_get_str(&rd, args[0], sizeof(args[0]));
    uint32_t argc = ipc_get_u32(&rd);
    if (argc > CONTROL_MAX_ARGS)
        bad = 1;
    for (uint32_t i = 0; !bad && i < argc; i++)
        ipc_get_str(&rd, args[i + 1], sizeof(args[i + 1]));
    if (bad || ipc_reader_end(&rd) == -1 || version != CONTROL_VERSION) {
        reply_end(&r, CONTROL_BAD, "bad request (this fastpopd speaks control protocol %d)",
                  CONTROL_VERSION);
        buf_free(&r.b);
        return -1;
    }
    for (uint32_t i = 0; i <= argc; i++)
        argv[i] = args[i];
    const struct ctl_verb *v = ctl_verbs;
    while (v->name != NULL && strcmp(v->name, argv[0]) != 0)
        v++;
    if (v->name == NULL)
        reply_end(&r, CONTROL_BAD, "unknown verb \"%s\"", argv[0]);
    else if (v->changes ? !cl->may_change : !cl->may_read)
        reply_end(&r, CONTROL_DENIED, "permission denied: %s needs root%s", v->name,
                  v->changes ? " or admin_group" : " or control_group");
    else
        v->run(&r, (int)argc + 1, argv);
    buf_free(&r.b);
    return r.failed ? -1 : 0;
}

static int in_groups(gid_t want, gid_t primary, const gid_t *groups, int n)
{
    if (primary == want)
        return 1;
    for (int i = 0; i < n; i++) {
        if (groups[i] == want)
            return 1;
    }
    return 0;
}

/* SO_PEERCRED: who is calling decides what it may do. */
static void check_caller(struct control *ctl, struct control_client *cl)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    gid_t groups[256];
    socklen_t glen = sizeof(groups);
    cl->may_read = cl->may_change = 0;
    if (getsockopt(cl->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
        return;
    int ngroups = 0;
    if (getsockopt(cl->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
        ngroups = (int)(glen / sizeof(gid_t));
    /* The daemon's own user could signal the master anyway. */
    if (cred.uid == 0 || cred.uid == geteuid()) {
        cl->may_read = cl->may_change = 1;
        return;
    }
    cl->may_read = in_groups(ctl->socket_gid, cred.gid, groups, ngroups);
    if (ctl->cfg->admin_group[0] != '\0') {
        struct group *g = getgrnam(ctl->cfg->admin_group);
        if (g != NULL && in_groups(g->gr_gid, cred.gid, groups, ngroups))
            cl->may_read = cl->may_change = 1;
    }
}

static void accept_client(struct control *ctl)
{
    int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1)
        return;
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        struct control_client *cl = &ctl->clients[i];
        if (cl->fd == -1) {
            cl->fd = fd;
            check_caller(ctl, cl);
            return;
        }
    }
    log_warning("control: more than %d popctl clients at once; refusing one",
                CONTROL_MAX_CLIENTS);
    close(fd);
}

int control_pollfds(const struct control *ctl, struct pollfd *pfd, int max)
{
    int n = 0;
    if (ctl == NULL || max < 1)
        return 0;
    pfd[n++] = (struct pollfd){ .fd = ctl->listen_fd, .events = POLLIN };
    for (int i = 0; i < CONTROL_MAX_CLIENTS && n < max; i++) {
        if (ctl->clients[i].fd != -1)
            pfd[n++] = (struct pollfd){ .fd = ctl->clients[i].fd, .events = POLLIN };
    }
    return n;
}

void control_handle(struct control *ctl, const struct pollfd *pfd, int n)
{
    if (ctl == NULL)
        return;
    for (int k = 0; k < n; k++) {
        if (pfd[k].revents == 0)
            continue;
        if (pfd[k].fd == ctl->listen_fd) {
            accept_client(ctl);
            continue;
        }
        for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
            struct control_client *cl = &ctl->clients[i];
            if (cl->fd != pfd[k].fd)
                continue;
            if (serve(ctl, cl) == -1 || (pfd[k].revents & (POLLHUP | POLLERR))) {
                close(cl->fd);
                cl->fd = -1;
            }
            break;
        }
    }
}

double control_next_wake(const struct control *ctl, double now)
{
    if (ctl == NULL || !ctl->drain_deadline_set || !scoreboard_draining(ctl->sb, NULL, 0))
        return -1.0;
    return ctl->drain_deadline > now ? ctl->drain_deadline - now : 0.0;
}

void control_tick(struct control *ctl, double now)
{
    if (ctl == NULL || !ctl->drain_deadline_set || now < ctl->drain_deadline)
        return;
    ctl->drain_deadline_set = 0;
    if (!scoreboard_draining(ctl->sb, NULL, 0))
        return;
    unsigned cut = 0;
    for (unsigned i = 0; i < scoreboard_capacity(ctl->sb); i++) {
        struct scoreboard_session s;
        uint8_t ip[16];
        pid_t owner;
        if (scoreboard_peek(ctl->sb, i, &s, ip, &owner) == 1) {
            scoreboard_kick(ctl->sb, i, SB_KICK_NOW);
            cut++;
        }
    }
    ctl->drain_cut = cut;
    if (cut > 0) {
        ctl->hooks.wake_workers(ctl->hooks.ctx);
        log_warning("control: drain deadline passed: closing %u session(s)", cut);
    }
}

struct control *control_open(const struct config *cfg, struct scoreboard *sb,
                             struct stats_region *stats, const struct control_hooks *hooks)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct control *ctl = calloc(1, sizeof(*ctl));
    if (ctl == NULL) {
        log_error("control socket: %s", strerror(errno));
        return NULL;
    }
    ctl->cfg = cfg;
    ctl->sb = sb;
    ctl->stats = stats;
    ctl->hooks = *hooks;
    ctl->started = mono_now();
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
        ctl->clients[i].fd = -1;
    snprintf(ctl->path, sizeof(ctl->path), "%s/%s", cfg->run_dir, CONTROL_SOCKET_NAME);
    ctl->socket_gid = getegid() == 0 ? 0 : getegid();
    if (cfg->control_group[0] != '\0') {
        struct group *g = getgrnam(cfg->control_group);
        if (g == NULL) {
            log_error("control_group %s: no such group", cfg->control_group);
            free(ctl);
            return NULL;
        }
        ctl->socket_gid = g->gr_gid;
    }
    if (strlen(ctl->path) >= sizeof(sun.sun_path)) {
        log_error("run_dir %s is too long for a socket path", cfg->run_dir);
        free(ctl);
        return NULL;
    }
    strcpy(sun.sun_path, ctl->path);
    ctl->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ctl->listen_fd == -1) {
        log_error("control socket: %s", strerror(errno));
        free(ctl);
        return NULL;
    }
    unlink(ctl->path);
    /* Mode and group before anyone can connect: bind under a tight umask. */
    mode_t old = umask(0177);
    int rc = bind(ctl->listen_fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc == -1 || listen(ctl->listen_fd, 16) == -1 ||
        chown(ctl->path, geteuid(), ctl->socket_gid) == -1 || chmod(ctl->path, 0660) == -1) {
        log_error("control socket %s: %s", ctl->path, strerror(errno));
        close(ctl->listen_fd);
        free(ctl);
        return NULL;
    }
    return ctl;
}

void control_close(struct control *ctl)
{
    if (ctl == NULL)
        return;
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        if (ctl->clients[i].fd != -1)
            close(ctl->clients[i].fd);
    }
    close(ctl->listen_fd);
    unlink(ctl->path);
    free(ctl);
}

void control_forget(struct control *ctl)
{
    if (ctl == NULL)
        return;
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        if (ctl->clients[i].fd != -1)
            close(ctl->clients[i].fd);
    }
    close(ctl->listen_fd);
}
