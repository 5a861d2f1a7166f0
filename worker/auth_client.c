#include "auth_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/protocol.h"
#include "daemon/clock.h"
#include "daemon/ipc.h"
#include "shm/stats.h"
#include "daemon/log.h"
#include "worker/pop3.h"
#include "worker/pop3_sasl.h"

/* AUTH_TIMEOUT_SECONDS (daemon/limits.h): then the helper is down for that login. */
/* Do not hammer a helper that is restarting. */
#define AUTH_RECONNECT_SECONDS 0.5

struct auth_pending {
    uint32_t id;
    uint32_t reply_type;       /* the answer this request waits for */
    struct conn *c;            /* NULL once cancelled */
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
};

/* What an answer carries; the fields a reply type lacks stay "". */
struct auth_answer {
    enum auth_status status;
    const char *user;
    const char *maildir;
    const char *sasl;          /* server-first or server-final for SCRAM */
    uint64_t generation;       /* PASS replies: the credential cache's, for the memo */
};

static const struct auth_answer tempfail = { AUTH_TEMPFAIL, "", "", "", 0 };

/*
 * Hand a request's answer to its connection and free the request. The
 * request is already off the list: whatever the callback does (the answer
 * is recorded and the connection queued to run after the event batch, see
 * conn_resume()), the list stays whole for the code that walks it.
 */
static void deliver(struct auth_pending *p, const struct auth_answer *a)
{
    struct conn *c = p->c;
    /* Timeouts too: a slow helper shows in the top bucket. */
    stats_timing(STATS_TIME_HELPER, clock_mono_us() - p->sent);
    if (c != NULL && c->fd != -1) {
        c->auth_request = 0;
        if (p->reply_type == AUTH_MSG_SCRAM_CHALLENGE)
            pop3_sasl_scram_challenge(c, a->status, a->user, a->sasl);
        else if (p->reply_type == AUTH_MSG_SCRAM_RESULT)
            pop3_sasl_scram_result(c, a->status, a->user, a->maildir, a->sasl);
        else {
            c->auth_generation = a->generation;
            pop3_auth_answer(c, a->status, a->user, a->maildir);
        }
    }
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
    struct ipc_reader r;
    uint32_t type, id, status;
    char user[AUTH_USER_MAX], maildir[AUTH_PATH_MAX] = "", text[AUTH_MESSAGE_MAX];
    char sasl[AUTH_SCRAM_MSG_MAX] = "";

    if (ipc_reader_init(&r, msg, len, &type, &id) == -1 ||
        (type != AUTH_MSG_PASS_REPLY && type != AUTH_MSG_SCRAM_CHALLENGE &&
         type != AUTH_MSG_SCRAM_RESULT)) {
        disconnect(ac, "malformed reply");
        return;
    }
    status = ipc_get_u32(&r);
    ipc_get_str(&r, user, sizeof(user));
    if (type != AUTH_MSG_SCRAM_CHALLENGE)
        ipc_get_str(&r, maildir, sizeof(maildir));
    if (type != AUTH_MSG_PASS_REPLY)
        ipc_get_str(&r, sasl, sizeof(sasl));
    ipc_get_str(&r, text, sizeof(text));
    uint64_t generation = type == AUTH_MSG_PASS_REPLY ? ipc_get_u64(&r) : 0;
    if (ipc_reader_end(&r) == -1 || status > AUTH_TEMPFAIL) {
        disconnect(ac, "malformed reply");
        return;
    }
    struct auth_pending *prev = NULL;
    for (struct auth_pending *p = ac->head; p != NULL; prev = p, p = p->next) {
        if (p->id != id)
            continue;
        if (p->reply_type != type) {
            disconnect(ac, "reply of the wrong type");
            return;
        }
        if (status == AUTH_OK && type != AUTH_MSG_SCRAM_CHALLENGE && maildir[0] != '/') {
            log_error("auth helper gave user %s a maildir that is not absolute: \"%s\"",
                      user, maildir);
            status = AUTH_TEMPFAIL;
        }
        if (status == AUTH_TEMPFAIL && text[0])
            log_warning("auth helper: temporary failure: %s", text);
        struct auth_answer a = { (enum auth_status)status, user, maildir, sasl, generation };
        unlink_pending(ac, prev, p);
        deliver(p, &a);
        return;
    }
    /* Already timed out or cancelled. */
}

/* The penalty view (auth/protocol.h, AUTH_MSG_VIEW); takes passfd. */
static void handle_view(const unsigned char *msg, size_t len, int passfd)
{
    struct ipc_reader r;
    uint32_t type, id, status;

    if (ipc_reader_init(&r, msg, len, &type, &id) == -1) {
        if (passfd >= 0)
            close(passfd);
        return;
    }
    status = ipc_get_u32(&r);
    if (ipc_reader_end(&r) == -1 || status != AUTH_OK || passfd < 0) {
        log_warning("auth helper gave no penalty view; logins go to the helper");
        if (passfd >= 0)
            close(passfd);
        return;
    }
    pop3_login_adopt_view(passfd);
}

static void on_event(struct loop *lp, struct loop_handler *h, uint32_t events)
{
    struct auth_client *ac = (struct auth_client *)h;
    unsigned char msg[IPC_MAX_MESSAGE];
    (void)lp;

    for (int i = 0; i < 64 && ac->fd != -1; i++) {
        int passfd = -1;
        ssize_t n = ipc_recv_fd(ac->fd, msg, sizeof(msg), &passfd);
        uint32_t type = 0;
        if (n >= 4)
            memcpy(&type, msg, sizeof(type));
        if (n > 0 && type == AUTH_MSG_VIEW) {
            handle_view(msg, (size_t)n, passfd);
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
    if (ipc_begin(&ac->msg, AUTH_MSG_VIEW_REQUEST, 0) == -1 || ipc_send(fd, &ac->msg) == -1)
        log_warning("auth helper: cannot ask for the penalty view: %s", strerror(errno));
    buf_reset(&ac->msg);
    return 0;
}

int auth_client_connect(struct auth_client *ac)
{
    return ensure_connected(ac);
}

struct auth_client *auth_client_new(struct loop *lp, const char *socket_path)
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
 * Send a request of type for c: the strings in fields, then the client's
 * ip. Every buffer that held them is wiped (a password, a SCRAM proof).
 */
static int send_request(struct auth_client *ac, struct conn *c, uint32_t type,
                        uint32_t reply_type, const char *const *fields, int nfields)
{
    if (ensure_connected(ac) == -1)
        return -1;
    struct auth_pending *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -1;
    if (++ac->next_id == 0)
        ac->next_id = 1;
    p->id = ac->next_id;
    p->reply_type = reply_type;
    p->c = c;
    p->deadline = clock_mono() + AUTH_TIMEOUT_SECONDS;
    p->sent = clock_mono_us();

    int rc = ipc_begin(&ac->msg, type, p->id);
    for (int i = 0; rc == 0 && i < nfields; i++)
        rc = ipc_put_str(&ac->msg, fields[i]);
    if (rc == 0)
        rc = ipc_put_str(&ac->msg, c->ip);
    if (rc == 0 && type == AUTH_MSG_PASS_REQUEST)
        rc = ipc_put_str(&ac->msg, c->auth_mech ? c->auth_mech : "USER");
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
        return -1;
    }
    if (ac->tail)
        ac->tail->next = p;
    else
        ac->head = p;
    ac->tail = p;
    c->auth_request = p->id;
    return 0;
}

int auth_client_check(struct auth_client *ac, struct conn *c, const char *user,
                      const char *password, const char *mechanism)
{
    const char *fields[] = { user, password };
    c->auth_mech = mechanism;
    return send_request(ac, c, AUTH_MSG_PASS_REQUEST, AUTH_MSG_PASS_REPLY, fields, 2);
}

int auth_client_scram_start(struct auth_client *ac, struct conn *c, const char *client_first)
{
    const char *fields[] = { client_first };
    return send_request(ac, c, AUTH_MSG_SCRAM_START, AUTH_MSG_SCRAM_CHALLENGE, fields, 1);
}

int auth_client_scram_finish(struct auth_client *ac, struct conn *c, const char *client_first,
                             const char *server_first, const char *client_final)
{
    const char *fields[] = { client_first, server_first, client_final };
    return send_request(ac, c, AUTH_MSG_SCRAM_FINISH, AUTH_MSG_SCRAM_RESULT, fields, 3);
}

void auth_client_cancel(struct auth_client *ac, struct conn *c)
{
    if (c->auth_request == 0)
        return;
    for (struct auth_pending *p = ac->head; p != NULL; p = p->next) {
        if (p->c == c)
            p->c = NULL;
    }
    c->auth_request = 0;
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
        if (p->c != NULL)
            log_warning("auth helper did not answer within %ds", AUTH_TIMEOUT_SECONDS);
        unlink_pending(ac, NULL, p);
        deliver(p, &tempfail);
    }
}
