#include "auth/dispatch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/authcache.h"
#include "auth/scram_server.h"
#include "auth/server.h"
#include "auth/text.h"
#include "daemon/clock.h"
#include "daemon/ipc.h"
#include "daemon/log.h"

#define NONE (-1)

struct dispatch_inflight {
    int used;
    int next;               /* free list */
    int slot;
    uint32_t gen, id;
    double arrival;
};

struct dispatch_held {
    int slot;
    uint32_t gen;
    double send_at;
    size_t len;
    unsigned char msg[];
};

static void peer_send(struct auth_dispatch *d, int slot, const void *msg, size_t len)
{
    int fd = d->fd[slot];

    if (fd < 0)
        return;
    if (send(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len) {
        /* As in auth_serve_fd(): never wait for a worker that does not read.
         * Shutting it down makes the loop see the end and close it. */
        log_warning("worker connection %d: cannot answer (%s); closing it", slot,
                    errno == EAGAIN ? "socket full" : strerror(errno));
        shutdown(fd, SHUT_RDWR);
    }
}

static int build_reply(struct buf *b, uint32_t id, const struct auth_result *res)
{
    /* The canonical name of a failed login stays in the helper (auth/authd.h). */
    const char *user = res->status == AUTH_OK ? res->user : "";

    if (ipc_begin(b, AUTH_MSG_PASS_REPLY, id) == -1 ||
        ipc_put_u32(b, (uint32_t)res->status) == -1 || ipc_put_str(b, user) == -1 ||
        ipc_put_str(b, res->maildir) == -1 || ipc_put_str(b, res->message) == -1 ||
        ipc_put_u64(b, res->status == AUTH_OK ? res->generation : 0) == -1)
        return -1;
    return 0;
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
static double penalize(struct auth_dispatch *d, const char *ip, const char *user,
                       enum auth_status status, double now)
{
    double delay = 0;

    if (!d->have_penalty || status == AUTH_TEMPFAIL)
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
 * Send the answer in d->reply to slot at time at: now, or held on the timer.
 * The request's reservation (reserve()) ends when the answer leaves (here or
 * in flush()): a held answer always finds room. If it cannot be held (no
 * memory) it is dropped, never sent early: the worker's own timeout turns it
 * into a temporary failure.
 */
static void send_at(struct auth_dispatch *d, int slot, uint32_t gen, double at, double now)
{
    struct dispatch_held *h = NULL;

    if (gen != d->gen[slot]) {
        d->pending--;
        return;
    }
    if (at <= now) {
        d->pending--;
        peer_send(d, slot, buf_rptr(&d->reply), buf_len(&d->reply));
        return;
    }
    if (d->nheld >= DISPATCH_MAX_PENDING ||
        (h = malloc(sizeof(*h) + buf_len(&d->reply))) == NULL) {
        d->pending--;
        log_error("auth penalty: cannot hold an answer (%s); dropped, the worker times out",
                  d->nheld >= DISPATCH_MAX_PENDING ? "table full" : "no memory");
        return;
    }
    h->slot = slot;
    h->gen = gen;
    h->send_at = at;
    h->len = buf_len(&d->reply);
    memcpy(h->msg, buf_rptr(&d->reply), h->len);
    d->held[d->nheld++] = h;
}

/*
 * Room for one more request from arrival to answer; 0 when DISPATCH_MAX_PENDING
 * are already waiting: the request is then answered tempfail at once, before
 * any work, so an overload never makes answers leave early.
 */
static int reserve(struct auth_dispatch *d)
{
    if (d->pending >= DISPATCH_MAX_PENDING) {
        if (!d->warned_full++)
            log_warning("auth: %d answers pending; new requests get a temporary failure",
                        DISPATCH_MAX_PENDING);
        return 0;
    }
    d->pending++;
    return 1;
}

/* The answer to in-flight record k: penalty, then now or later. */
static void finish(struct auth_dispatch *d, int k, const struct auth_request *req,
                   struct auth_result *res)
{
    struct dispatch_inflight *f = &d->inflight[k];
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
    struct auth_dispatch *d = arg;
    /* Record LDAP's answer, or stale-if-error (may turn a tempfail into ok). */
    authcache_after(req, res);
    if (tag < DISPATCH_MAX_INFLIGHT && d->inflight[tag].used)
        finish(d, (int)tag, req, res);
}

int dispatch_init(struct auth_dispatch *d, struct authd *ad)
{
    struct penalty_config pc;
    struct ratelimit_config rc;

    memset(d, 0, sizeof(*d));
    d->ad = ad;
    for (int i = 0; i < DISPATCH_MAX_PEERS; i++)
        d->fd[i] = -1;
    d->inflight = calloc(DISPATCH_MAX_INFLIGHT, sizeof(*d->inflight));
    d->held = calloc(DISPATCH_MAX_PENDING, sizeof(*d->held));
    penalty_config_from(&pc, &ad->cfg);
    ratelimit_config_from(&rc, &ad->cfg);
    if (d->inflight == NULL || d->held == NULL ||
        ratelimit_init(&d->rate, &rc, RATELIMIT_ENTRIES) == -1 ||
        penalty_init(&d->penalty, &pc) == -1) {
        free(d->inflight);
        free(d->held);
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
    for (int i = 0; i < DISPATCH_MAX_INFLIGHT; i++)
        d->inflight[i].next = i + 1 < DISPATCH_MAX_INFLIGHT ? i + 1 : NONE;
    buf_init(&d->reply, IPC_MAX_MESSAGE);
    authd_set_done(ad, on_done, d);
    return 0;
}

void dispatch_reconfigure(struct auth_dispatch *d)
{
    struct penalty_config pc;
    struct ratelimit_config rc;

    ratelimit_config_from(&rc, &d->ad->cfg);
    ratelimit_reconfigure(&d->rate, &rc);
    penalty_config_from(&pc, &d->ad->cfg);
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

static void flush(struct auth_dispatch *d, int all)
{
    double now = clock_mono();

    for (int i = 0; i < d->nheld;) {
        struct dispatch_held *h = d->held[i];
        if (!all && h->send_at > now) {
            i++;
            continue;
        }
        if (h->gen == d->gen[h->slot])
            peer_send(d, h->slot, h->msg, h->len);
        free(h);
        d->held[i] = d->held[--d->nheld];
        d->pending--;
    }
    if (d->pending == 0 && d->nheld == 0)
        d->warned_full = 0;
}

void dispatch_free(struct auth_dispatch *d)
{
    flush(d, 1);
    authd_set_done(d->ad, NULL, NULL);
    free(d->held);
    free(d->inflight);
    if (d->have_penalty)
        penalty_free(&d->penalty);
    penalty_view_free(d->view);
    d->view = NULL;
    ratelimit_free(&d->rate);
    buf_free(&d->reply);
}

void dispatch_peer_open(struct auth_dispatch *d, int slot, int fd)
{
    d->fd[slot] = fd;
}

void dispatch_peer_closed(struct auth_dispatch *d, int slot)
{
    d->fd[slot] = -1;
    d->gen[slot]++;
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
static int admit(struct auth_dispatch *d, const struct auth_request *req, double now)
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
        authd_log_outcome(req, "tempfail", "rate-limited");
    return 0;
}

/*
 * A blocked address: no password database is asked (it learns nothing, even
 * with the right password), but the attempt counts against the user and the
 * address like any failure, and its answer waits the longest delay there is,
 * so being blocked never makes guessing faster. Returns when the answer may go.
 */
static double refuse_blocked(struct auth_dispatch *d, const struct auth_request *req,
                             double arrival)
{
    authd_log_outcome(req, "failed", "ip-blocked");
    (void)penalize(d, req->ip, req->user, AUTH_FAIL, clock_mono());
    return arrival + d->penalty.cfg.max_delay;
}

/* One password request: decode, refuse blocked addresses, start the check. */
static int handle_pass(struct auth_dispatch *d, int slot, const void *msg, size_t len)
{
    struct ipc_reader r;
    uint32_t type, id;
    char user[AUTH_USER_MAX], pass[AUTH_PASS_MAX], ip[AUTH_IP_MAX], mech[AUTH_MECH_MAX];
    struct auth_result res;
    double arrival = clock_mono(), left;

    if (ipc_reader_init(&r, msg, len, &type, &id) == -1)
        return -1;
    ipc_get_str(&r, user, sizeof(user));
    ipc_get_str(&r, pass, sizeof(pass));
    ipc_get_str(&r, ip, sizeof(ip));
    ipc_get_str(&r, mech, sizeof(mech));
    if (ipc_reader_end(&r) == -1) {
        explicit_bzero(pass, sizeof(pass));
        errno = EPROTO;
        return -1;
    }
    struct auth_request req = { user, pass, ip, mech };
    int k = d->free_head;
    if (!admit(d, &req, arrival)) {
        tempfail_result(&res, "rate limited");
        explicit_bzero(pass, sizeof(pass));
        if (build_reply(&d->reply, id, &res) == 0)
            peer_send(d, slot, buf_rptr(&d->reply), buf_len(&d->reply));
        return 0;
    }
    if (k == NONE || !reserve(d)) {
        tempfail_result(&res, "helper busy");
        authd_log_outcome(&req, "tempfail", "helper-busy");
        explicit_bzero(pass, sizeof(pass));
        if (build_reply(&d->reply, id, &res) == 0)
            peer_send(d, slot, buf_rptr(&d->reply), buf_len(&d->reply));
        return 0;
    }
    if (d->have_penalty && penalty_blocked(&d->penalty, ip, arrival, &left)) {
        explicit_bzero(pass, sizeof(pass));
        double at = refuse_blocked(d, &req, arrival);
        memset(&res, 0, sizeof(res));
        res.status = AUTH_FAIL;
        if (build_reply(&d->reply, id, &res) == 0)
            send_at(d, slot, d->gen[slot], at, clock_mono());
        else
            d->pending--;
        return 0;
    }
    struct dispatch_inflight *f = &d->inflight[k];
    d->free_head = f->next;
    *f = (struct dispatch_inflight){ .used = 1, .next = NONE, .slot = slot,
                                     .gen = d->gen[slot], .id = id, .arrival = arrival };
    /* The credential cache may know this failure already (auth/authcache.h). */
    int now = authcache_before(&req, &res);
    if (!now && (now = authd_start(d->ad, &req, (uint64_t)k, &res)) == 1)
        authcache_after(&req, &res);
    if (now)
        finish(d, k, &req, &res);
    explicit_bzero(pass, sizeof(pass));
    return 0;
}

/*
 * One SCRAM step, answered on the spot (no backend waits) but under the
 * penalty like a password: a blocked address is refused at START and at
 * FINISH without any key lookup, counted and held like a password from it,
 * and the answer that ends an exchange counts for the address and the n=
 * user and waits its delay.
 */
static int handle_scram(struct auth_dispatch *d, int slot, const void *msg, size_t len)
{
    struct scram_outcome out;
    double arrival = clock_mono(), left;

    if (scram_peek(msg, len, &out) == -1)
        return -1;
    struct auth_request who = { out.user, "", out.ip, "SCRAM-SHA-256" };
    /* START too: it costs a key lookup, FINISH a derivation (issue 12, item 9). */
    if (!admit(d, &who, arrival)) {
        if (scram_refusal(&out, AUTH_TEMPFAIL, &d->reply) == -1)
            return -1;
        peer_send(d, slot, buf_rptr(&d->reply), buf_len(&d->reply));
        return 0;
    }
    if (!reserve(d)) {
        struct auth_request req = { out.user, "", out.ip, "SCRAM-SHA-256" };
        authd_log_outcome(&req, "tempfail", "helper-busy");
        if (scram_refusal(&out, AUTH_TEMPFAIL, &d->reply) == -1)
            return -1;
        peer_send(d, slot, buf_rptr(&d->reply), buf_len(&d->reply));
        return 0;
    }
    if (d->have_penalty && penalty_blocked(&d->penalty, out.ip, arrival, &left)) {
        struct auth_request req = { out.user, "", out.ip, "SCRAM-SHA-256" };
        double at = refuse_blocked(d, &req, arrival);
        if (scram_refusal(&out, AUTH_FAIL, &d->reply) == -1) {
            d->pending--;
            return -1;
        }
        send_at(d, slot, d->gen[slot], at, clock_mono());
        return 0;
    }
    if (scram_handle_message_outcome(d->ad, msg, len, &d->reply, &out) == -1) {
        d->pending--;
        return -1;
    }
    double now = clock_mono(), delay = 0;
    if (out.final)
        delay = penalize(d, out.ip, out.user, out.status, now);
    send_at(d, slot, d->gen[slot], arrival + delay, now);
    return 0;
}

/* A worker asks for the penalty view: a read-only descriptor of it, passed along. */
static int handle_view(struct auth_dispatch *d, int slot, const void *msg, size_t len)
{
    struct ipc_reader r;
    uint32_t type, id;
    int fd = d->view != NULL ? penalty_view_reader_fd(d->view) : -1;

    if (ipc_reader_init(&r, msg, len, &type, &id) == -1 || ipc_reader_end(&r) == -1) {
        if (fd >= 0)
            close(fd);
        errno = EPROTO;
        return -1;
    }
    if (ipc_begin(&d->reply, AUTH_MSG_VIEW, id) == -1 ||
        ipc_put_u32(&d->reply, fd >= 0 ? AUTH_OK : AUTH_TEMPFAIL) == -1) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (fd < 0) {
        peer_send(d, slot, buf_rptr(&d->reply), buf_len(&d->reply));
        return 0;
    }
    if (d->fd[slot] >= 0 && ipc_send_fd(d->fd[slot], &d->reply, fd) == -1) {
        log_warning("worker connection %d: cannot pass the penalty view (%s); closing it", slot,
                    strerror(errno));
        shutdown(d->fd[slot], SHUT_RDWR);
    }
    close(fd);
    return 0;
}

int dispatch_serve(struct auth_dispatch *d, int slot, int burst)
{
    unsigned char msg[IPC_MAX_MESSAGE];
    char who[32];

    snprintf(who, sizeof(who), "connection %d", slot);
    for (int i = 0; i < burst; i++) {
        ssize_t n = auth_recv_request(d->fd[slot], msg, sizeof(msg), who);
        uint32_t type = 0;
        if (n <= 0)
            return (int)n;
        if (n >= 4)
            memcpy(&type, msg, sizeof(type));
        int rc;
        if (type == AUTH_MSG_PASS_REQUEST) {
            rc = handle_pass(d, slot, msg, (size_t)n);
        } else if (type == AUTH_MSG_VIEW_REQUEST) {
            rc = handle_view(d, slot, msg, (size_t)n);
        } else if (scram_is_request(msg, (size_t)n)) {
            rc = handle_scram(d, slot, msg, (size_t)n);
        } else {
            /* Everything else is answered on the spot, as before. */
            rc = auth_handle_message(d->ad, msg, (size_t)n, &d->reply);
            if (rc == 0)
                peer_send(d, slot, buf_rptr(&d->reply), buf_len(&d->reply));
        }
        explicit_bzero(msg, (size_t)n);
        if (rc == -1) {
            log_warning("worker %s: malformed request (%zd bytes); closing its connection", who,
                        n);
            return -1;
        }
    }
    return 0;
}

int dispatch_timeout_ms(const struct auth_dispatch *d)
{
    double now = clock_mono(), first = -1;
    int ms = authd_timeout_ms(d->ad);

    for (int i = 0; i < d->nheld; i++) {
        if (first < 0 || d->held[i]->send_at < first)
            first = d->held[i]->send_at;
    }
    if (first >= 0) {
        int held_ms = first <= now ? 0 : (int)((first - now) * 1000) + 1;
        if (ms < 0 || held_ms < ms)
            ms = held_ms;
    }
    return ms;
}

void dispatch_run(struct auth_dispatch *d)
{
    authd_poll(d->ad);
    flush(d, 0);
}
