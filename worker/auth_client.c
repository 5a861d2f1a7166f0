#include "auth_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/protocol.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/clock.h"
#include "shm/stats.h"
#include "daemon/runtime/log.h"

/* AUTH_TIMEOUT_SECONDS (daemon/runtime/limits.h): then the helper is down for that login. */
/* Do not hammer a helper that is restarting. */
#define AUTH_RECONNECT_SECONDS 0.5

struct auth_pending {
    uint32_t id;
    uint32_t reply_type;       /* the answer this request waits for */
    auth_done_fn *done;        /* NULL once cancelled */
    void *ctx;
    double deadline;
    uint64_t sent;             /* clock_mono_us() */
    struct auth_pending *next;
};

struct auth_client {
    struct loop_handler io;
    struct loop *lp;
    int fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    uint32_t next_id;
    double last_connect;
    struct auth_pending *head, *tail;   /* in deadline order */
    struct buf msg;
    auth_view_fn *on_view;
};

static const struct user_policy no_policy;
static const struct auth_answer tempfail = { AUTH_TEMPFAIL, "", "", "", 0, &no_policy };

/*
 * Hand a request's answer to its completion and free the request. The
 * request is already off the list: whatever the callback does, the list
 * stays whole for the code that walks it.
 */
static void deliver(struct auth_pending *p, const struct auth_answer *a)
{
    /* Timeouts too: a slow helper shows in the top bucket. */
    stats_timing(STATS_TIME_HELPER, clock_mono_us() - p->sent);
    if (p->done != NULL)
        p->done(p->ctx, a);
    free(p);
}

static void unlink_pending(struct auth_client *ac, struct auth_pending *prev,
                           struct auth_pending *p)
{
    if (prev)
        prev->next = p->next;
    else
        ac->head = p->next;
    if (ac->tail == p)
        ac->tail = prev;
    p->next = NULL;
}

/* Every request out gets a temporary failure; the list is taken whole first. */
static void fail_all(struct auth_client *ac)
{
    struct auth_pending *p = ac->head;
    ac->head = ac->tail = NULL;
    while (p != NULL) {
        struct auth_pending *next = p->next;
        deliver(p, &tempfail);
        p = next;
    }
}

static void disconnect(struct auth_client *ac, const char *why)
{
    if (ac->fd == -1)
        return;
    log_warning("auth helper connection lost (%s); in-flight logins get a temporary failure",
                why);
    loop_unwatch(ac->lp, ac->fd);
    close(ac->fd);
    ac->fd = -1;
    fail_all(ac);
}

static void handle_reply(struct auth_client *ac, const unsigned char *msg, size_t len)
{
    struct auth_reply rep;

    if (protocol_decode_reply(msg, len, &rep) == -1 || rep.type == AUTH_MSG_VIEW) {
        disconnect(ac, "malformed reply");
        return;
    }
    enum auth_status status = rep.status;
    struct auth_pending *prev = NULL;
    for (struct auth_pending *p = ac->head; p != NULL; prev = p, p = p->next) {
        if (p->id != rep.id)
            continue;
        if (p->reply_type != rep.type) {
            disconnect(ac, "reply of the wrong type");
            return;
        }
        if (status == AUTH_OK && rep.type != AUTH_MSG_SCRAM_CHALLENGE && rep.maildir[0] != '/') {
            log_error("auth helper gave user %s a maildir that is not absolute: \"%s\"",
                      rep.user, rep.maildir);
            status = AUTH_TEMPFAIL;
        }
        if (status == AUTH_TEMPFAIL && rep.message[0])
            log_warning("auth helper: temporary failure: %s", rep.message);
        struct auth_answer a = { status, rep.user, rep.maildir, rep.sasl, rep.generation,
                                 &rep.policy };
        unlink_pending(ac, prev, p);
        deliver(p, &a);
        return;
    }
    /* Already timed out or cancelled. */
}

/* The penalty view (auth/protocol.h, AUTH_MSG_VIEW); takes passfd. */
static void handle_view(struct auth_client *ac, const unsigned char *msg, size_t len,
                        int passfd)
{
    struct auth_reply rep;

    if (ac->on_view == NULL) {
        if (passfd >= 0)
            close(passfd);
        return;
    }
    if (protocol_decode_reply(msg, len, &rep) == -1 || rep.status != AUTH_OK || passfd < 0) {
        log_warning("auth helper gave no penalty view; logins go to the helper");
        if (passfd >= 0)
            close(passfd);
        return;
    }
    ac->on_view(passfd);
}

static void on_event(struct loop *lp, struct loop_handler *h, uint32_t events)
{
    struct auth_client *ac = (struct auth_client *)h;
    unsigned char msg[IPC_MAX_MESSAGE];
    (void)lp;

    for (int i = 0; i < 64 && ac->fd != -1; i++) {
        int passfd = -1;
        ssize_t n = ipc_recv_fd(ac->fd, msg, sizeof(msg), &passfd);
        if (n > 0 && protocol_message_type(msg, (size_t)n) == AUTH_MSG_VIEW) {
            handle_view(ac, msg, (size_t)n, passfd);
            continue;
        }
        /* Only the view comes with a descriptor. */
        if (passfd >= 0)
            close(passfd);
        if (n > 0) {
            handle_reply(ac, msg, (size_t)n);
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            break;
        disconnect(ac, n == 0 ? "helper closed the connection" : strerror(errno));
        return;
    }
    if (ac->fd != -1 && (events & (EPOLLHUP | EPOLLERR)))
        disconnect(ac, "hangup");
}

static int ensure_connected(struct auth_client *ac)
{
    if (ac->fd != -1)
        return 0;
    double now = clock_mono();
    if (now - ac->last_connect < AUTH_RECONNECT_SECONDS) {
        errno = EAGAIN;
        return -1;
    }
    ac->last_connect = now;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    memcpy(sun.sun_path, ac->path, sizeof(sun.sun_path));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    /* The master owns the listening socket: this queues even while the helper restarts. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 && errno != EINPROGRESS) {
        log_warning("cannot connect to the auth helper at %s: %s", ac->path, strerror(errno));
        close(fd);
        return -1;
    }
    if (loop_watch(ac->lp, fd, EPOLLIN, &ac->io) == -1) {
        close(fd);
        return -1;
    }
    ac->fd = fd;
    /* Each helper (a restarted one too) has its own view: ask for it first thing. */
    if (protocol_encode_view_request(&ac->msg, 0) == -1 || ipc_send(fd, &ac->msg) == -1)
        log_warning("auth helper: cannot ask for the penalty view: %s", strerror(errno));
    buf_reset(&ac->msg);
    return 0;
}

int auth_client_connect(struct auth_client *ac)
{
    return ensure_connected(ac);
}

struct auth_client *auth_client_new(struct loop *lp, const char *socket_path,
                                    auth_view_fn *on_view)
{
    struct auth_client *ac = calloc(1, sizeof(*ac));
    if (ac == NULL)
        return NULL;
    if (strlen(socket_path) >= sizeof(ac->path)) {
        free(ac);
        errno = ENAMETOOLONG;
        return NULL;
    }
    ac->io.on_event = on_event;
    ac->on_view = on_view;
    ac->lp = lp;
    ac->fd = -1;
    ac->last_connect = -AUTH_RECONNECT_SECONDS;
    strcpy(ac->path, socket_path);
    buf_init(&ac->msg, IPC_MAX_MESSAGE);
    return ac;
}

void auth_client_free(struct auth_client *ac)
{
    if (ac == NULL)
        return;
    if (ac->fd != -1) {
        loop_unwatch(ac->lp, ac->fd);
        close(ac->fd);
    }
    while (ac->head != NULL) {
        struct auth_pending *p = ac->head;
        unlink_pending(ac, NULL, p);
        free(p);
    }
    buf_free(&ac->msg);
    free(ac);
}

/*
 * A request waiting for an answer of reply_type: its id, for the caller to
 * encode the message with into ac->msg, then send_request().
 */
static struct auth_pending *new_request(struct auth_client *ac, uint32_t reply_type,
                                        auth_done_fn *done, void *ctx)
{
    if (ensure_connected(ac) == -1)
        return NULL;
    struct auth_pending *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    if (++ac->next_id == 0)
        ac->next_id = 1;
    p->id = ac->next_id;
    p->reply_type = reply_type;
    p->done = done;
    p->ctx = ctx;
    p->deadline = clock_mono() + AUTH_TIMEOUT_SECONDS;
    p->sent = clock_mono_us();
    return p;
}

/*
 * Send the message in ac->msg (encoded == 0) for p, or give p up: p's id,
 * or 0. Every buffer that held it is wiped (a password, a SCRAM proof).
 */
static uint32_t send_request(struct auth_client *ac, struct auth_pending *p, int encoded)
{
    int rc = encoded;
    if (rc == 0)
        rc = ipc_send(ac->fd, &ac->msg);
    explicit_bzero(ac->msg.data, ac->msg.size);
    buf_reset(&ac->msg);
    if (rc == -1) {
        int saved = errno;
        free(p);
        if (saved != EAGAIN)
            disconnect(ac, strerror(saved));
        errno = saved;
        return 0;
    }
    if (ac->tail)
        ac->tail->next = p;
    else
        ac->head = p;
    ac->tail = p;
    return p->id;
}

uint32_t auth_client_check(struct auth_client *ac, const char *user, const char *password,
                           const char *ip, const char *mechanism, auth_done_fn *done, void *ctx)
{
    struct auth_pending *p = new_request(ac, AUTH_MSG_PASS_REPLY, done, ctx);
    if (p == NULL)
        return 0;
    return send_request(ac, p,
                        protocol_encode_pass_request(&ac->msg, p->id, user, password, ip,
                                                     mechanism ? mechanism : "USER"));
}

uint32_t auth_client_scram_start(struct auth_client *ac, const char *client_first,
                                 const char *ip, auth_done_fn *done, void *ctx)
{
    struct auth_pending *p = new_request(ac, AUTH_MSG_SCRAM_CHALLENGE, done, ctx);
    if (p == NULL)
        return 0;
    return send_request(ac, p, protocol_encode_scram_start(&ac->msg, p->id, client_first, ip));
}

uint32_t auth_client_scram_finish(struct auth_client *ac, const char *client_first,
                                  const char *server_first, const char *client_final,
                                  const char *ip, auth_done_fn *done, void *ctx)
{
    struct auth_pending *p = new_request(ac, AUTH_MSG_SCRAM_RESULT, done, ctx);
    if (p == NULL)
        return 0;
    return send_request(ac, p,
                        protocol_encode_scram_finish(&ac->msg, p->id, client_first,
                                                     server_first, client_final, ip));
}

void auth_client_cancel(struct auth_client *ac, uint32_t id)
{
    if (id == 0)
        return;
    for (struct auth_pending *p = ac->head; p != NULL; p = p->next) {
        if (p->id == id)
            p->done = NULL;
    }
}

double auth_client_next_expiry(struct auth_client *ac, double now)
{
    if (ac->head == NULL)
        return -1;
    double left = ac->head->deadline - now;
    return left < 0 ? 0 : left;
}

void auth_client_expire(struct auth_client *ac, double now)
{
    while (ac->head != NULL && ac->head->deadline <= now) {
        struct auth_pending *p = ac->head;
        if (p->done != NULL)
            log_warning("auth helper did not answer within %ds", AUTH_TIMEOUT_SECONDS);
        unlink_pending(ac, NULL, p);
        deliver(p, &tempfail);
    }
}
