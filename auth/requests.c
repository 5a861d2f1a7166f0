#include "auth/requests.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/answers.h"
#include "auth/cache_policy.h"
#include "auth/protocol.h"
#include "auth/scram_server.h"
#include "daemon/runtime/escape.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/clock.h"
#include "daemon/runtime/event_loop.h"
#include "daemon/runtime/log.h"

#define NONE (-1)

struct request_inflight {
    int used;
    int next;               /* free list */
    int slot;
    uint32_t gen, id;
    double arrival;
};

static int build_reply(struct buf *b, uint32_t id, const struct auth_result *res)
{
    /* The canonical name of a failed login stays in the helper (auth/passdb.h). */
    const char *user = res->status == AUTH_OK ? res->user : "";

    return protocol_encode_pass_reply(b, id, res->status, user, res->maildir, res->message,
                                      res->status == AUTH_OK ? res->generation : 0,
                                      res->status == AUTH_OK ? res->host : "",
                                      res->status == AUTH_OK ? &res->policy : NULL);
}

static void log_blocked(const char *ip, double seconds)
{
    char i[TEXT_LOG_ESCAPE_SIZE(AUTH_IP_MAX)];
    log_warning("auth penalty ip=%s blocked for %.0fs", text_log_escape(ip, i, sizeof(i)),
                seconds);
}

/*
 * Count a final outcome for ip and user; returns how long its answer must
 * wait (seconds). Shared by password requests and SCRAM exchanges, so no
 * mechanism is a way around the penalty.
 */
static double penalize(struct auth_requests *d, const char *ip, const char *user,
                       enum auth_status status, double now)
{
    double delay = 0;

    /* A refused account (AUTH_REFUSED) gave the right password: not a guess, not a reward. */
    if (!d->have_penalty || status == AUTH_TEMPFAIL || status == AUTH_REFUSED)
        return 0;
    if (status == AUTH_FAIL) {
        int blocked = 0;
        delay = penalty_failure(&d->penalty, ip, user, now, &blocked);
        if (blocked)
            log_blocked(ip, d->penalty.cfg.block_time);
    } else {
        delay = penalty_success(&d->penalty, ip, user, now);
    }
    if (log_enabled(LOG_LVL_DEBUG)) {
        char i[TEXT_LOG_ESCAPE_SIZE(AUTH_IP_MAX)], u[TEXT_LOG_ESCAPE_SIZE(AUTH_USER_MAX)];
        log_debug("auth penalty ip=%s user=%s ip_score=%.2f delay=%.1fs",
                  text_log_escape(ip, i, sizeof(i)), text_log_escape(user, u, sizeof(u)),
                  penalty_ip_score(&d->penalty, ip, now), delay);
    }
    return delay;
}

/*
 * Send the answer in d->reply to slot at time at: now, or held on the timer
 * (auth/answers.h). The request's reservation (reserve()) ends when the
 * answer leaves (here or in flush()): a held answer always finds room. If it
 * cannot be held (no memory) it is dropped, never sent early: the worker's
 * own timeout turns it into a temporary failure.
 */
static void send_at(struct auth_requests *d, int slot, uint32_t gen, double at, double now)
{
    if (answers_send_at(&d->out, slot, gen, at, now, buf_rptr(&d->reply),
                        buf_len(&d->reply)) != 0)
        d->pending--;
}

static void send_now(struct auth_requests *d, int slot)
{
    answers_send(&d->out, slot, buf_rptr(&d->reply), buf_len(&d->reply));
}

/*
 * Room for one more request from arrival to answer; 0 when REQUESTS_MAX_PENDING
 * are already waiting: the request is then answered tempfail at once, before
 * any work, so an overload never makes answers leave early.
 */
static int reserve(struct auth_requests *d)
{
    if (d->pending >= REQUESTS_MAX_PENDING) {
        if (!d->warned_full++)
            log_warning("auth: %d answers pending; new requests get a temporary failure",
                        REQUESTS_MAX_PENDING);
        return 0;
    }
    d->pending++;
    return 1;
}

/* The answer to in-flight record k: penalty, then now or later. */
static void finish(struct auth_requests *d, int k, const struct auth_request *req,
                   struct auth_result *res)
{
    struct request_inflight *f = &d->inflight[k];
    double now = clock_mono();
    /* The canonical name when the database found the account: "ALICE" is alice. */
    double delay = penalize(d, req->ip, res->user[0] ? res->user : req->user, res->status, now);

    if (build_reply(&d->reply, f->id, res) == 0)
        send_at(d, f->slot, f->gen, f->arrival + delay, now);
    else
        d->pending--;
    f->used = 0;
    f->next = d->free_head;
    d->free_head = k;
}

static void on_done(void *arg, uint64_t tag, const struct auth_request *req,
                    struct auth_result *res)
{
    struct auth_requests *d = arg;
    /* Record LDAP's answer, or stale-if-error (may turn a tempfail into ok). */
    cache_policy_after(req, res);
    if (tag < REQUESTS_MAX_INFLIGHT && d->inflight[tag].used)
        finish(d, (int)tag, req, res);
}

/* A held answer has left on its timer: its room is free again. */
static void on_released(void *arg)
{
    struct auth_requests *d = arg;

    d->pending--;
    if (d->pending == 0 && d->out.nheld == 0)
        d->warned_full = 0;
}

int requests_init(struct auth_requests *d, struct passdb *pdb, struct ev_loop *ev)
{
    struct penalty_config pc;
    struct ratelimit_config rc;

    memset(d, 0, sizeof(*d));
    d->pdb = pdb;
    snprintf(d->router_pid_path, sizeof(d->router_pid_path), "%s/%s", pdb->cfg.run_dir,
             ROUTER_PID_NAME);
    d->inflight = calloc(REQUESTS_MAX_INFLIGHT, sizeof(*d->inflight));
    penalty_config_from(&pc, &pdb->cfg);
    ratelimit_config_from(&rc, &pdb->cfg);
    if (d->inflight == NULL || answers_init(&d->out, REQUESTS_MAX_PENDING, ev, on_released, d) == -1 ||
        ratelimit_init(&d->rate, &rc, RATELIMIT_ENTRIES) == -1 ||
        penalty_init(&d->penalty, &pc) == -1) {
        free(d->inflight);
        free(d->out.held);
        ratelimit_free(&d->rate);
        errno = ENOMEM;
        return -1;
    }
    d->have_penalty = 1;
    /* Without a view the workers answer nothing from their cache: slower, never wrong. */
    if (penalty_view_create(pc.entries, pc.ipv4_prefix, pc.ipv6_prefix, &d->view) == -1) {
        log_error("auth penalty: no view for the workers (%s); no login is answered from "
                  "the credential cache", strerror(errno));
        d->view = NULL;
    }
    penalty_set_view(&d->penalty, d->view, clock_mono());
    for (int i = 0; i < REQUESTS_MAX_INFLIGHT; i++)
        d->inflight[i].next = i + 1 < REQUESTS_MAX_INFLIGHT ? i + 1 : NONE;
    buf_init(&d->reply, IPC_MAX_MESSAGE);
    passdb_set_done(pdb, on_done, d);
    return 0;
}

void requests_reconfigure(struct auth_requests *d)
{
    struct penalty_config pc;
    struct ratelimit_config rc;

    ratelimit_config_from(&rc, &d->pdb->cfg);
    ratelimit_reconfigure(&d->rate, &rc);
    penalty_config_from(&pc, &d->pdb->cfg);
    if (penalty_reconfigure(&d->penalty, &pc) == -1) {
        log_error("auth penalty: no memory for %u entries; penalty off until the next reload",
                  pc.entries);
        d->have_penalty = 0;
        return;
    }
    d->have_penalty = 1;
    /* New prefixes or a new table: the workers' view is rewritten from it. */
    penalty_set_view(&d->penalty, d->view, clock_mono());
}

void requests_free(struct auth_requests *d)
{
    d->pending -= answers_flush_all(&d->out);
    passdb_set_done(d->pdb, NULL, NULL);
    answers_free(&d->out);
    free(d->inflight);
    if (d->have_penalty)
        penalty_free(&d->penalty);
    penalty_view_free(d->view);
    d->view = NULL;
    ratelimit_free(&d->rate);
    buf_free(&d->reply);
}

void requests_peer_open(struct auth_requests *d, int slot, int fd, pid_t pid)
{
    d->peer_pid[slot] = pid;
    answers_peer_open(&d->out, slot, fd);
}

/*
 * Whether slot's process is the router the master started: the pid the
 * master wrote (auth/protocol.h, ROUTER_PID_NAME). Read at each router
 * request, so a respawned router is known at its first request.
 */
static int peer_is_router(const struct auth_requests *d, int slot)
{
    char text[32];
    int fd = open(d->router_pid_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1)
        return 0;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    char *end;
    long pid = strtol(text, &end, 10);
    return end != text && (*end == '\n' || *end == '\0') && pid > 0 &&
           pid == (long)d->peer_pid[slot];
}

void requests_peer_closed(struct auth_requests *d, int slot)
{
    answers_peer_closed(&d->out, slot);
}

static void tempfail_result(struct auth_result *res, const char *why)
{
    memset(res, 0, sizeof(*res));
    res->status = AUTH_TEMPFAIL;
    snprintf(res->message, sizeof(res->message), "%s", why);
}

/*
 * Whether req's client group may have work done now (auth/ratelimit.h). A
 * refusal is logged: the first of a flood as a warning, the rest at debug.
 */
static int admit(struct auth_requests *d, const struct auth_request *req, double now)
{
    int first;

    if (ratelimit_take(&d->rate, req->ip, now, &first))
        return 1;
    if (first) {
        char i[TEXT_LOG_ESCAPE_SIZE(AUTH_IP_MAX)];
        log_warning("auth rate limit: ip=%s over %.0f requests/s (burst %.0f); refusing its "
                    "logins with a temporary failure", text_log_escape(req->ip, i, sizeof(i)),
                    d->rate.cfg.rate, d->rate.cfg.burst);
    }
    if (first || log_enabled(LOG_LVL_DEBUG))
        outcome_log(req, "tempfail", "rate-limited");
    return 0;
}

/*
 * A blocked address: no password database is asked (it learns nothing, even
 * with the right password), but the attempt counts against the user and the
 * address like any failure, and its answer waits the longest delay there is,
 * so being blocked never makes guessing faster. Returns when the answer may go.
 */
static double refuse_blocked(struct auth_requests *d, const struct auth_request *req,
                             double arrival)
{
    outcome_log(req, "failed", "ip-blocked");
    (void)penalize(d, req->ip, req->user, AUTH_FAIL, clock_mono());
    return arrival + d->penalty.cfg.max_delay;
}

/*
 * Admit q (rate limit, room, penalty) and start its check: answered now,
 * held, or when LDAP answers. The caller wipes q.
 */
static int start_pass(struct auth_requests *d, int slot, uint32_t id,
                      const struct auth_pass_request *q, double arrival, struct auth_result *res)
{
    struct auth_request req = { q->user, q->password, q->ip, q->mechanism };
    double left;
    int k = d->free_head;

    if (!admit(d, &req, arrival)) {
        tempfail_result(res, "rate limited");
        if (build_reply(&d->reply, id, res) == 0)
            send_now(d, slot);
        return 0;
    }
    if (k == NONE || !reserve(d)) {
        tempfail_result(res, "helper busy");
        outcome_log(&req, "tempfail", "helper-busy");
        if (build_reply(&d->reply, id, res) == 0)
            send_now(d, slot);
        return 0;
    }
    if (d->have_penalty && penalty_blocked(&d->penalty, q->ip, arrival, &left)) {
        double at = refuse_blocked(d, &req, arrival);
        memset(res, 0, sizeof(*res));
        res->status = AUTH_FAIL;
        if (build_reply(&d->reply, id, res) == 0)
            send_at(d, slot, d->out.gen[slot], at, clock_mono());
        else
            d->pending--;
        return 0;
    }
    struct request_inflight *f = &d->inflight[k];
    d->free_head = f->next;
    *f = (struct request_inflight){ .used = 1, .next = NONE, .slot = slot,
                                     .gen = d->out.gen[slot], .id = id, .arrival = arrival };
    /* The credential cache may know this failure already (auth/cache_policy.h). */
    int now = cache_policy_before(&req, res);
    if (!now && (now = passdb_start(d->pdb, &req, (uint64_t)k, res)) == 1)
        cache_policy_after(&req, res);
    if (now)
        finish(d, k, &req, res);
    return 0;
}

/* One password request: decode, then start_pass(). */
static int handle_pass(struct auth_requests *d, int slot, const void *msg, size_t len)
{
    struct auth_pass_request q;
    uint32_t id;
    struct auth_result res;
    double arrival = clock_mono();

    if (protocol_decode_pass_request(msg, len, &id, &q) == -1) {
        explicit_bzero(&q, sizeof(q));
        return -1;
    }
    if (protocol_is_router_mechanism(q.mechanism) && !peer_is_router(d, slot)) {
        /* A worker that claims to be the router is not one of ours any more. */
        log_warning("worker pid %d sent the router's mechanism %s; closing its connection",
                    (int)d->peer_pid[slot], q.mechanism);
        explicit_bzero(&q, sizeof(q));
        return -1;
    }
    int rc = start_pass(d, slot, id, &q, arrival, &res);
    explicit_bzero(&q, sizeof(q));
    return rc;
}

/*
 * The answer that ends a SCRAM request without handling it: AUTH_FAIL (a
 * blocked address) or AUTH_TEMPFAIL (rate limited, the helper is full).
 */
static int scram_refusal(struct buf *reply, uint32_t type, uint32_t id, const char *user,
                         enum auth_status status)
{
    if (type == AUTH_MSG_SCRAM_START)
        return protocol_encode_scram_challenge(reply, id, status, user, "", "");
    return protocol_encode_scram_result(reply, id, status, "", "", "", "", NULL);
}

/*
 * One SCRAM step, answered on the spot (no backend waits) but under the
 * penalty like a password: a blocked address is refused at START and at
 * FINISH without any key lookup, counted and held like a password from it,
 * and the answer that ends an exchange counts for the address and the n=
 * user and waits its delay.
 */
static int answer_scram(struct auth_requests *d, int slot, uint32_t type, uint32_t id,
                        const struct auth_scram_request *q)
{
    char user[AUTH_USER_MAX];
    enum auth_status status;
    double arrival = clock_mono(), left;

    scram_request_user(q, user, sizeof(user));
    struct auth_request who = { user, "", q->ip, "SCRAM-SHA-256" };
    /* START too: it costs a key lookup, FINISH a derivation (issue 12, item 9). */
    if (!admit(d, &who, arrival)) {
        if (scram_refusal(&d->reply, type, id, user, AUTH_TEMPFAIL) == -1)
            return -1;
        send_now(d, slot);
        return 0;
    }
    if (!reserve(d)) {
        outcome_log(&who, "tempfail", "helper-busy");
        if (scram_refusal(&d->reply, type, id, user, AUTH_TEMPFAIL) == -1)
            return -1;
        send_now(d, slot);
        return 0;
    }
    if (d->have_penalty && penalty_blocked(&d->penalty, q->ip, arrival, &left)) {
        double at = refuse_blocked(d, &who, arrival);
        if (scram_refusal(&d->reply, type, id, user, AUTH_FAIL) == -1) {
            d->pending--;
            return -1;
        }
        send_at(d, slot, d->out.gen[slot], at, clock_mono());
        return 0;
    }
    int rc = type == AUTH_MSG_SCRAM_START
                 ? scram_server_start(d->pdb, id, q, &d->reply, &status)
                 : scram_server_finish(d->pdb, id, q, &d->reply, &status);
    if (rc == -1) {
        d->pending--;
        return -1;
    }
    double now = clock_mono(), delay = 0;
    /* FINISH ends an exchange, and so does a START that fails. */
    if (type == AUTH_MSG_SCRAM_FINISH || status != AUTH_OK)
        delay = penalize(d, q->ip, user, status, now);
    send_at(d, slot, d->out.gen[slot], arrival + delay, now);
    return 0;
}

/* AUTH_MSG_SCRAM_START and _FINISH: decode, then answer_scram(). */
static int handle_scram(struct auth_requests *d, int slot, const void *msg, size_t len)
{
    struct auth_scram_request q;
    uint32_t type, id;
    int rc = -1;

    if (protocol_decode_scram_request(msg, len, &type, &id, &q) == 0)
        rc = answer_scram(d, slot, type, id, &q);
    /* client_final holds the client's proof. */
    explicit_bzero(&q, sizeof(q));
    return rc;
}

/* A worker asks for the penalty view: a read-only descriptor of it, passed along. */
static int handle_view(struct auth_requests *d, int slot, const void *msg, size_t len)
{
    uint32_t id;

    if (protocol_decode_view_request(msg, len, &id) == -1)
        return -1;
    int fd = d->view != NULL ? penalty_view_reader_fd(d->view) : -1;
    if (protocol_encode_view(&d->reply, id, fd >= 0 ? AUTH_OK : AUTH_TEMPFAIL) == -1) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (fd < 0) {
        send_now(d, slot);
        return 0;
    }
    answers_send_fd(&d->out, slot, &d->reply, fd);
    close(fd);
    return 0;
}

/*
 * Every request type a worker may send, and its handler (auth/protocol.h).
 * A handler returns 0, or -1 when the message is malformed (or cannot be
 * answered at all): the worker's connection is closed then.
 */
static const struct {
    uint32_t type;
    int (*handle)(struct auth_requests *d, int slot, const void *msg, size_t len);
} handlers[] = {
    { AUTH_MSG_PASS_REQUEST, handle_pass },
    { AUTH_MSG_SCRAM_START, handle_scram },
    { AUTH_MSG_SCRAM_FINISH, handle_scram },
    { AUTH_MSG_VIEW_REQUEST, handle_view },
};

/*
 * One request from slot's connection into msg: its length, 0 when none is
 * waiting, -1 when the connection is to be closed (errno 0 at EOF; other
 * errors are logged).
 */
static ssize_t recv_request(struct auth_requests *d, int slot, unsigned char *msg, size_t len)
{
    for (;;) {
        ssize_t n = ipc_recv(d->out.fd[slot], msg, len);
        if (n > 0)
            return n;
        if (n == 0) {
            errno = 0;
            return -1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR) {
            log_warning("worker connection %d: %s; closing its connection", slot,
                        errno == EMSGSIZE ? "request too long" : strerror(errno));
            return -1;
        }
    }
}

int requests_serve(struct auth_requests *d, int slot, int burst)
{
    unsigned char msg[IPC_MAX_MESSAGE];

    for (int i = 0; i < burst; i++) {
        if (d->out.cut[slot]) {
            errno = EPIPE;
            return -1;
        }
        ssize_t n = recv_request(d, slot, msg, sizeof(msg));
        if (n <= 0)
            return (int)n;
        uint32_t type = protocol_message_type(msg, (size_t)n);
        int rc = -1;
        for (size_t h = 0; h < sizeof(handlers) / sizeof(handlers[0]); h++) {
            if (handlers[h].type == type) {
                rc = handlers[h].handle(d, slot, msg, (size_t)n);
                break;
            }
        }
        explicit_bzero(msg, (size_t)n);
        if (rc == -1) {
            log_warning("worker connection %d: malformed request (%zd bytes); closing its "
                        "connection", slot, n);
            errno = EPROTO;
            return -1;
        }
    }
    return 0;
}

int requests_timeout_ms(const struct auth_requests *d)
{
    return passdb_timeout_ms(d->pdb);
}

void requests_run(struct auth_requests *d)
{
    passdb_poll(d->pdb);
    if (d->pending == 0)
        d->warned_full = 0;   /* the next flood is warned about again */
}

/* 1 while a request waits for LDAP's answer. */
static int awaiting_backend(const struct auth_requests *d)
{
    for (int k = 0; k < REQUESTS_MAX_INFLIGHT; k++) {
        if (d->inflight[k].used)
            return 1;
    }
    return 0;
}

/* The drain's bound, or a password database's next deadline: only ends the wait. */
static void on_drain_timer(struct ev_loop *ev, struct ev_timer *timer)
{
    (void)ev;
    (void)timer;
}

/* LDAP's connections are readable: collected in drain_before_wait(). */
static void on_drain_passdb(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    (void)ev;
    (void)io;
    (void)events;
}

struct drain {
    struct auth_requests *d;
    struct ev_timer bound, passdb_due;
};

static void drain_before_wait(struct ev_loop *ev, void *arg)
{
    struct drain *dr = arg;
    passdb_poll(dr->d->pdb);
    if (!awaiting_backend(dr->d) || !ev_timer_armed(&dr->bound)) {
        ev_loop_stop(ev);
        return;
    }
    int ms = passdb_timeout_ms(dr->d->pdb);
    if (ms < 0)
        ev_timer_cancel(ev, &dr->passdb_due);
    else if (ev_timer_arm(ev, &dr->passdb_due, clock_mono() + ms / 1000.0) == -1)
        ev_loop_no_wait(ev);
}

void requests_drain(struct auth_requests *d, double max_seconds)
{
    /* The helper's loop has ended: this wait is the only thing left to do, in a loop of its own. */
    struct ev_loop *ev = ev_loop_new();
    struct ev_io passdb_io = { 0 };
    struct drain dr = { .d = d };
    if (ev == NULL) {
        log_error("cannot wait for LDAP's answers at shutdown: %s", strerror(errno));
        return;
    }
    ev_timer_init(&dr.bound, on_drain_timer, &dr);
    ev_timer_init(&dr.passdb_due, on_drain_timer, &dr);
    if (max_seconds > 0 && ev_timer_arm_in(ev, &dr.bound, max_seconds) == 0) {
        int fd = passdb_fd(d->pdb);
        if (fd >= 0)
            (void)ev_io_start(ev, &passdb_io, fd, EPOLLIN, on_drain_passdb, &dr);
        ev_loop_set_before_wait(ev, drain_before_wait, &dr);
        (void)ev_loop_run(ev);
    }
    ev_io_stop(ev, &passdb_io);
    ev_loop_free(ev);
}
