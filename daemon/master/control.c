#include "control.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/master/control_state.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/clock.h"
#include "shm/scoreboard.h"

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
void control_reply_row(struct reply *r, const char *const *kv)
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

int control_reply_end(struct reply *r, enum control_status status, const char *fmt, ...)
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
        control_reply_end(&r, CONTROL_BAD, "bad request (this fastpopd speaks control protocol %d)",
                  CONTROL_VERSION);
        buf_free(&r.b);
        return -1;
    }
    for (uint32_t i = 0; i <= argc; i++)
        argv[i] = args[i];
    const struct ctl_verb *v = control_verbs;
    while (v->name != NULL && strcmp(v->name, argv[0]) != 0)
        v++;
    if (v->name == NULL)
        control_reply_end(&r, CONTROL_BAD, "unknown verb \"%s\"", argv[0]);
    else if (v->changes ? !cl->may_change : !cl->may_read)
        control_reply_end(&r, CONTROL_DENIED, "permission denied: %s needs root%s", v->name,
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

static void on_client(struct ev_loop *ev, struct ev_io *io, uint32_t events);

static void accept_client(struct control *ctl)
{
    int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1)
        return;
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        struct control_client *cl = &ctl->clients[i];
        if (cl->fd == -1) {
            if (ev_io_start(ctl->ev, &cl->io, fd, EPOLLIN, on_client, ctl) == -1) {
                log_warning("control: epoll_ctl: %s; refusing a popctl client", strerror(errno));
                close(fd);
                return;
            }
            cl->fd = fd;
            check_caller(ctl, cl);
            return;
        }
    }
    log_warning("control: more than %d popctl clients at once; refusing one",
                CONTROL_MAX_CLIENTS);
    close(fd);
}

static void close_client(struct control *ctl, struct control_client *cl)
{
    ev_io_stop(ctl->ev, &cl->io);
    close(cl->fd);
    cl->fd = -1;
}

static void on_client(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    struct control_client *cl = (struct control_client *)io;
    struct control *ctl = io->data;
    (void)ev;
    if (serve(ctl, cl) == -1 || (events & (EPOLLHUP | EPOLLERR)))
        close_client(ctl, cl);
}

static void on_listen(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    (void)ev;
    (void)events;
    accept_client(io->data);
}

/* The drain's deadline passed: every session left is cut. */
static void on_drain_deadline(struct ev_loop *ev, struct ev_timer *timer)
{
    struct control *ctl = timer->data;
    (void)ev;
    if (!ctl->drain_deadline_set)
        return;
    ctl->drain_deadline_set = 0;
    if (!scoreboard_master_draining(ctl->sb))
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
                             struct stats_region *stats, const struct control_hooks *hooks,
                             struct ev_loop *ev)
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
    ctl->ev = ev;
    ev_timer_init(&ctl->drain_timer, on_drain_deadline, ctl);
    ctl->started = clock_mono();
    ctl->started_wall = time(NULL);
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
    if (ev_io_start(ev, &ctl->listen_io, ctl->listen_fd, EPOLLIN, on_listen, ctl) == -1) {
        log_error("control socket %s: epoll_ctl: %s", ctl->path, strerror(errno));
        close(ctl->listen_fd);
        unlink(ctl->path);
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
            close_client(ctl, &ctl->clients[i]);
    }
    ev_io_stop(ctl->ev, &ctl->listen_io);
    ev_timer_cancel(ctl->ev, &ctl->drain_timer);
    close(ctl->listen_fd);
    unlink(ctl->path);
    free(ctl);
}

void control_forget(struct control *ctl)
{
    if (ctl == NULL)
        return;
    /*
     * Only close: the epoll set is shared with the master across the fork,
     * and taking a descriptor out of it here would take it out of the master's.
     */
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        if (ctl->clients[i].fd != -1)
            close(ctl->clients[i].fd);
    }
    close(ctl->listen_fd);
}
