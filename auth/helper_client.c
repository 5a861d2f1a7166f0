#include "auth/helper_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/clock.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/limits.h"   /* AUTH_TIMEOUT_SECONDS: then the helper is down for that login */
#include "daemon/runtime/log.h"

/* Answers read per readable event: a fast helper cannot hold its owner's loop here. */
#define HELPER_CLIENT_READS_PER_EVENT 64

struct pending {
    uint32_t id;
    uint32_t reply_type;       /* the answer this request waits for */
    auth_done_fn *done;        /* NULL once cancelled */
    void *ctx;
    double deadline;
    uint64_t sent;             /* clock_mono_us() */
    struct pending *next;
};

struct helper_client {
    struct helper_client_hooks hooks;
    struct ev_io io;               /* the connection, while there is one */
    struct ev_timer expiry;        /* when the oldest request out times out */
    int fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    uint32_t next_id;
    double last_connect;
    struct pending *head, *tail;   /* in deadline order */
    struct buf msg;
};

static void on_expiry(struct ev_loop *loop, struct ev_timer *timer);

static const struct user_policy no_policy;
static const struct auth_answer tempfail = { AUTH_TEMPFAIL, "", "", "", 0, "", "", &no_policy };

/*
 * Hand a request's answer to its completion and free the request. The
 * request is already off the list: whatever the callback does, the list
 * stays whole for the code that walks it.
 */
static void deliver(struct helper_client *hc, struct pending *p, const struct auth_answer *a)
{
    /* Timeouts too: a slow helper shows in the top bucket. */
    if (hc->hooks.timing != NULL)
        hc->hooks.timing(clock_mono_us() - p->sent);
    if (p->done != NULL)
        p->done(p->ctx, a);
    free(p);
}

/* Nothing is out any more: the caller's timer for the oldest request can go. */
static void none_out(struct helper_client *hc)
{
    ev_timer_cancel(hc->hooks.loop, &hc->expiry);
}

static void unlink_pending(struct helper_client *hc, struct pending *prev, struct pending *p)
{
    if (prev)
        prev->next = p->next;
    else
        hc->head = p->next;
    if (hc->tail == p)
        hc->tail = prev;
    p->next = NULL;
    if (hc->head == NULL)
        none_out(hc);
}

/* Every request out gets a temporary failure; the list is taken whole first. */
static void fail_all(struct helper_client *hc)
{
    struct pending *p = hc->head;
    hc->head = hc->tail = NULL;
    none_out(hc);
    while (p != NULL) {
        struct pending *next = p->next;
        deliver(hc, p, &tempfail);
        p = next;
    }
}

static void close_connection(struct helper_client *hc)
{
    ev_io_stop(hc->hooks.loop, &hc->io);
    close(hc->fd);
    hc->fd = -1;
}

static void disconnect(struct helper_client *hc, const char *why)
{
    if (hc->fd == -1)
        return;
    log_warning("auth helper connection lost (%s); in-flight logins get a temporary failure",
                why);
    close_connection(hc);
    fail_all(hc);
}

static void handle_reply(struct helper_client *hc, const unsigned char *msg, size_t len)
{
    struct auth_reply rep;

    if (protocol_decode_reply(msg, len, &rep) == -1 || rep.type == AUTH_MSG_VIEW) {
        disconnect(hc, "malformed reply");
        return;
    }
    enum auth_status status = rep.status;
    struct pending *prev = NULL;
    for (struct pending *p = hc->head; p != NULL; prev = p, p = p->next) {
        if (p->id != rep.id)
            continue;
        if (p->reply_type != rep.type) {
            disconnect(hc, "reply of the wrong type");
            return;
        }
        if (hc->hooks.require_maildir && status == AUTH_OK &&
            rep.type != AUTH_MSG_SCRAM_CHALLENGE && rep.maildir[0] != '/') {
            log_error("auth helper gave user %s a maildir that is not absolute: \"%s\"",
                      rep.user, rep.maildir);
            status = AUTH_TEMPFAIL;
        }
        if (status == AUTH_TEMPFAIL && rep.message[0])
            log_warning("auth helper: temporary failure: %s", rep.message);
        struct auth_answer a = { status,         rep.user,    rep.maildir, rep.sasl,
                                 rep.generation, rep.host,    rep.message, &rep.policy };
        unlink_pending(hc, prev, p);
        deliver(hc, p, &a);
        return;
    }
    /* Already timed out or cancelled. */
}

/* The penalty view (auth/protocol.h, AUTH_MSG_VIEW); takes passfd. */
static void handle_view(struct helper_client *hc, const unsigned char *msg, size_t len,
                        int passfd)
{
    struct auth_reply rep;

    if (hc->hooks.on_view == NULL) {
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
    hc->hooks.on_view(passfd);
}

/* The connection is readable (or hung up): read the answers. */
static void on_event(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct helper_client *hc = io->data;
    int hangup = (events & (EPOLLHUP | EPOLLERR)) != 0;
    unsigned char msg[IPC_MAX_MESSAGE];
    (void)loop;

    for (int i = 0; i < HELPER_CLIENT_READS_PER_EVENT && hc->fd != -1; i++) {
        int passfd = -1;
        ssize_t n = ipc_recv_fd(hc->fd, msg, sizeof(msg), &passfd);
        if (n > 0 && protocol_message_type(msg, (size_t)n) == AUTH_MSG_VIEW) {
            handle_view(hc, msg, (size_t)n, passfd);
            continue;
        }
        /* Only the view comes with a descriptor. */
        if (passfd >= 0)
            close(passfd);
        if (n > 0) {
            handle_reply(hc, msg, (size_t)n);
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            break;
        disconnect(hc, n == 0 ? "helper closed the connection" : strerror(errno));
        return;
    }
    if (hc->fd != -1 && hangup)
        disconnect(hc, "hangup");
}

int helper_client_connect(struct helper_client *hc)
{
    if (hc->fd != -1)
        return 0;
    double now = clock_mono();
    if (now - hc->last_connect < hc->hooks.reconnect_seconds) {
        errno = EAGAIN;
        return -1;
    }
    hc->last_connect = now;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    memcpy(sun.sun_path, hc->path, sizeof(sun.sun_path));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    /* The master owns the listening socket: this queues even while the helper restarts. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 && errno != EINPROGRESS) {
        log_warning("cannot connect to the auth helper at %s: %s", hc->path, strerror(errno));
        close(fd);
        return -1;
    }
    if (ev_io_start(hc->hooks.loop, &hc->io, fd, EPOLLIN, on_event, hc) == -1) {
        close(fd);
        return -1;
    }
    hc->fd = fd;
    if (hc->hooks.on_view == NULL)
        return 0;
    /* Each helper (a restarted one too) has its own view: ask for it first thing. */
    if (protocol_encode_view_request(&hc->msg, 0) == -1 || ipc_send(fd, &hc->msg) == -1)
        log_warning("auth helper: cannot ask for the penalty view: %s", strerror(errno));
    buf_reset(&hc->msg);
    return 0;
}

int helper_client_fd(const struct helper_client *hc)
{
    return hc->fd;
}

struct helper_client *helper_client_new(const char *socket_path,
                                        const struct helper_client_hooks *hooks)
{
    struct helper_client *hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return NULL;
    if (strlen(socket_path) >= sizeof(hc->path)) {
        free(hc);
        errno = ENAMETOOLONG;
        return NULL;
    }
    hc->hooks = *hooks;
    ev_timer_init(&hc->expiry, on_expiry, hc);
    hc->fd = -1;
    hc->last_connect = -hooks->reconnect_seconds;
    strcpy(hc->path, socket_path);
    buf_init(&hc->msg, IPC_MAX_MESSAGE);
    return hc;
}

void helper_client_free(struct helper_client *hc)
{
    if (hc == NULL)
        return;
    if (hc->fd != -1)
        close_connection(hc);
    ev_timer_cancel(hc->hooks.loop, &hc->expiry);
    while (hc->head != NULL) {
        struct pending *p = hc->head;
        unlink_pending(hc, NULL, p);
        free(p);
    }
    buf_free(&hc->msg);
    free(hc);
}

/*
 * A request waiting for an answer of reply_type: its id, for the caller to
 * encode the message with into hc->msg, then send_request().
 */
static struct pending *new_request(struct helper_client *hc, uint32_t reply_type,
                                   auth_done_fn *done, void *ctx)
{
    if (helper_client_connect(hc) == -1)
        return NULL;
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    if (++hc->next_id == 0)
        hc->next_id = 1;
    p->id = hc->next_id;
    p->reply_type = reply_type;
    p->done = done;
    p->ctx = ctx;
    p->deadline = clock_mono() + AUTH_TIMEOUT_SECONDS;
    p->sent = clock_mono_us();
    return p;
}

/*
 * Send the message in hc->msg (encoded == 0) for p, or give p up: p's id,
 * or 0. Every buffer that held it is wiped (a password, a SCRAM proof).
 */
static uint32_t send_request(struct helper_client *hc, struct pending *p, int encoded)
{
    int rc = encoded;
    if (rc == 0)
        rc = ipc_send(hc->fd, &hc->msg);
    explicit_bzero(hc->msg.data, hc->msg.size);
    buf_reset(&hc->msg);
    if (rc == -1) {
        int saved = errno;
        free(p);
        /* A full socket buffer is the helper being slow, and a message too long is
         * this request's fault: neither is the connection's. */
        if (saved != EAGAIN && saved != ENOBUFS && saved != EMSGSIZE)
            disconnect(hc, strerror(saved));
        errno = saved;
        return 0;
    }
    if (hc->tail) {
        hc->tail->next = p;
    } else {
        hc->head = p;
        (void)ev_timer_arm_in(hc->hooks.loop, &hc->expiry, AUTH_TIMEOUT_SECONDS);
    }
    hc->tail = p;
    return p->id;
}

uint32_t helper_client_check(struct helper_client *hc, const char *user, const char *password,
                             const char *ip, const char *mechanism, auth_done_fn *done,
                             void *ctx)
{
    struct pending *p = new_request(hc, AUTH_MSG_PASS_REPLY, done, ctx);
    if (p == NULL)
        return 0;
    return send_request(hc, p,
                        protocol_encode_pass_request(&hc->msg, p->id, user, password, ip,
                                                     mechanism ? mechanism : "USER"));
}

uint32_t helper_client_scram_start(struct helper_client *hc, const char *client_first,
                                   const char *ip, auth_done_fn *done, void *ctx)
{
    struct pending *p = new_request(hc, AUTH_MSG_SCRAM_CHALLENGE, done, ctx);
    if (p == NULL)
        return 0;
    return send_request(hc, p, protocol_encode_scram_start(&hc->msg, p->id, client_first, ip));
}

uint32_t helper_client_scram_finish(struct helper_client *hc, const char *client_first,
                                    const char *server_first, const char *client_final,
                                    const char *ip, auth_done_fn *done, void *ctx)
{
    struct pending *p = new_request(hc, AUTH_MSG_SCRAM_RESULT, done, ctx);
    if (p == NULL)
        return 0;
    return send_request(hc, p,
                        protocol_encode_scram_finish(&hc->msg, p->id, client_first,
                                                     server_first, client_final, ip));
}

void helper_client_cancel(struct helper_client *hc, uint32_t id)
{
    if (id == 0)
        return;
    for (struct pending *p = hc->head; p != NULL; p = p->next) {
        if (p->id == id)
            p->done = NULL;
    }
}

void helper_client_expire(struct helper_client *hc, double now)
{
    while (hc->head != NULL && hc->head->deadline <= now) {
        struct pending *p = hc->head;
        if (p->done != NULL)
            log_warning("auth helper did not answer within %ds", AUTH_TIMEOUT_SECONDS);
        unlink_pending(hc, NULL, p);
        deliver(hc, p, &tempfail);
    }
}

/*
 * The oldest request's deadline. When the oldest is answered first, the
 * timer fires early: nothing is due, and it moves to the next one's.
 */
static void on_expiry(struct ev_loop *loop, struct ev_timer *timer)
{
    struct helper_client *hc = timer->data;
    double now = ev_loop_now(loop);
    helper_client_expire(hc, now);
    if (hc->head != NULL)
        (void)ev_timer_arm(loop, &hc->expiry, hc->head->deadline);
}
