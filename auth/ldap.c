#include "auth/ldap.h"

#include <errno.h>
#include <ldap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "auth/ldap_conn.h"
#include "auth/ldap_filter.h"
#include "auth/scheme.h"
#include "daemon/clock.h"
#include "daemon/log.h"
#include "shm/stats.h"

#define SERVICE 0
#define MAX_CONNS (1 + 64)
#define CONNECTOR_TAG 0xffffu
#define NONE (-1)

enum conn_state { C_DOWN, C_CONNECTING, C_READY };

struct lconn {
    enum conn_state state;
    LDAP *ld;
    int fd;
    uint32_t gen;               /* matches connector answers to the current attempt */
    double retry_at, backoff;
    int inflight;
    char last_error[200];       /* logged once until it changes or the connection works */
};

enum req_stage { R_FREE, R_QUEUED, R_SEARCH, R_BIND_QUEUED, R_BIND };

struct lreq {
    enum req_stage stage;
    int prev, next;             /* in the search or the bind queue */
    void *ctx;
    double deadline;
    uint64_t started;           /* clock_mono_us(): the LDAP timing histogram */
    int conn, msgid;
    char user[AUTH_USER_MAX];
    char password[AUTH_PASS_MAX];
    char *dn;
    struct ldap_answer ans;     /* user and maildir, found before the bind */
};

struct queue {
    int head, tail;
};

struct ldap_backend {
    struct ldap_settings s;
    int stopping;               /* ldap_backend_free: answers now are not LDAP's */
    ldap_done_fn *done;
    void *arg;
    int epfd;
    int connector;
    struct lconn conns[MAX_CONNS];
    int nconns;
    struct lreq *reqs;
    int free_head;              /* free requests, linked by next */
    int pending;
    struct queue search_q, bind_q;
};

static void q_push(struct ldap_backend *lb, struct queue *q, int i)
{
    lb->reqs[i].prev = q->tail;
    lb->reqs[i].next = NONE;
    if (q->tail != NONE)
        lb->reqs[q->tail].next = i;
    else
        q->head = i;
    q->tail = i;
}

static void q_remove(struct ldap_backend *lb, struct queue *q, int i)
{
    struct lreq *r = &lb->reqs[i];
    if (r->prev != NONE)
        lb->reqs[r->prev].next = r->next;
    else
        q->head = r->next;
    if (r->next != NONE)
        lb->reqs[r->next].prev = r->prev;
    else
        q->tail = r->prev;
}

/* Hand the answer over and free the request. */
static void answer(struct ldap_backend *lb, int i, enum ldap_outcome out, const char *reason,
                   const char *message)
{
    struct lreq *r = &lb->reqs[i];
    enum auth_status st = ldap_outcome_status(out);

    if (r->stage == R_QUEUED)
        q_remove(lb, &lb->search_q, i);
    else if (r->stage == R_BIND_QUEUED)
        q_remove(lb, &lb->bind_q, i);
    r->ans.status = st;
    r->ans.outage = out == LDAP_OUTCOME_OUTAGE;
    r->ans.account_refused = out == LDAP_OUTCOME_REFUSED;
    r->ans.reason = reason;
    /* A lookup (queue, search, bind when binding), whatever the outcome; not our own stop. */
    if (!lb->stopping) {
        stats_timing(STATS_TIME_LDAP, clock_mono_us() - r->started);
        if (st == AUTH_TEMPFAIL)
            stats_add(SV_LDAP_ERRORS, 1);
    }
    if (message != NULL)
        snprintf(r->ans.message, sizeof(r->ans.message), "%s", message);
    /* The canonical name stays when the entry was found: the penalty and the
     * cache go by it (auth/dispatch.c, auth/authcache.c); the worker never gets it. */
    if (st != AUTH_OK)
        r->ans.maildir[0] = '\0';
    void *ctx = r->ctx;
    struct ldap_answer ans = r->ans;
    explicit_bzero(r->password, sizeof(r->password));
    free(r->dn);
    r->dn = NULL;
    r->stage = R_FREE;
    r->next = lb->free_head;
    lb->free_head = i;
    lb->pending--;
    lb->done(lb->arg, ctx, &ans);
}

static const char *conn_name(int ci)
{
    return ci == SERVICE ? "service" : "bind";
}

/* Ask the connector thread for connection ci. */
static void conn_open(struct ldap_backend *lb, int ci)
{
    struct lconn *c = &lb->conns[ci];
    struct ldap_conn_job job = { .slot = ci, .gen = ++c->gen, .service = ci == SERVICE };

    c->state = C_CONNECTING;
    if (ldap_connector_request(lb->connector, &job) == -1) {
        /* Only if the thread died, which it does not do on its own. */
        c->state = C_DOWN;
        c->retry_at = clock_mono() + LDAP_RECONNECT_MAX;
        log_error("ldap: connector thread gone (%s)", strerror(errno));
    }
}

/*
 * Connection ci failed or stopped answering: fail what it carries, close it,
 * and say when to try again (at once if it had been working).
 */
static void conn_lost(struct ldap_backend *lb, int ci, const char *why, const char *reason)
{
    struct lconn *c = &lb->conns[ci];
    int was_ready = c->state == C_READY;

    if (c->ld != NULL) {
        epoll_ctl(lb->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        ldap_unbind_ext(c->ld, NULL, NULL);
        c->ld = NULL;
        c->fd = -1;
    }
    c->state = C_DOWN;
    c->inflight = 0;
    if (was_ready) {
        c->backoff = 0;
        c->retry_at = clock_mono();
    } else {
        c->backoff = c->backoff > 0 ? c->backoff * 2 : LDAP_RECONNECT_MIN;
        if (c->backoff > LDAP_RECONNECT_MAX)
            c->backoff = LDAP_RECONNECT_MAX;
        c->retry_at = clock_mono() + c->backoff;
    }
    if (strcmp(c->last_error, why) != 0) {
        snprintf(c->last_error, sizeof(c->last_error), "%s", why);
        if (was_ready)
            log_warning("ldap: %s connection lost: %s; reconnecting", conn_name(ci), why);
        else
            log_error("ldap: %s connection failed: %s; retrying in %.1fs", conn_name(ci), why,
                      c->backoff);
    }
    for (int i = 0; i < LDAP_MAX_REQUESTS; i++) {
        struct lreq *r = &lb->reqs[i];
        if ((r->stage == R_SEARCH || r->stage == R_BIND) && r->conn == ci)
            answer(lb, i, LDAP_OUTCOME_OUTAGE, reason, why);
    }
}

static void conn_ready(struct ldap_backend *lb, int ci, LDAP *ld)
{
    struct lconn *c = &lb->conns[ci];
    int fd = -1;

    c->ld = ld;
    if (ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0) {
        c->state = C_READY;
        conn_lost(lb, ci, "no socket after connect", "ldap-down");
        return;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)ci };
    c->fd = fd;
    if (epoll_ctl(lb->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
        c->state = C_READY;
        conn_lost(lb, ci, strerror(errno), "ldap-down");
        return;
    }
    c->state = C_READY;
    c->backoff = 0;
    c->inflight = 0;
    if (c->last_error[0])
        log_info("ldap: %s connection to %s is back", conn_name(ci), lb->s.uri);
    else
        log_debug("ldap: %s connection to %s open", conn_name(ci), lb->s.uri);
    c->last_error[0] = '\0';
}

static void read_connector(struct ldap_backend *lb)
{
    struct ldap_conn_done d;
    int rc;

    while ((rc = ldap_connector_read(lb->connector, &d)) == 1) {
        if (d.slot < 0 || d.slot >= lb->nconns || lb->conns[d.slot].gen != d.gen ||
            lb->conns[d.slot].state != C_CONNECTING) {
            if (d.ld)
                ldap_unbind_ext(d.ld, NULL, NULL);
            continue;
        }
        if (d.ld)
            conn_ready(lb, d.slot, d.ld);
        else
            conn_lost(lb, d.slot, d.error, "ldap-down");
    }
    if (rc == -1) {
        log_error("ldap: connector thread gone");
        epoll_ctl(lb->epfd, EPOLL_CTL_DEL, lb->connector, NULL);
    }
}

/* The first value of attr as a string, or NULL (absent, or holding a NUL). */
static char *first_value(LDAP *ld, LDAPMessage *e, const char *attr)
{
    struct berval **v;
    char *s = NULL;

    if (attr[0] == '\0' || (v = ldap_get_values_len(ld, e, attr)) == NULL)
        return NULL;
    if (v[0] != NULL && memchr(v[0]->bv_val, '\0', v[0]->bv_len) == NULL)
        s = strndup(v[0]->bv_val, v[0]->bv_len);
    ldap_value_free_len(v);
    return s;
}

/* The canonical user name: of attr's values, the one that is the login (ldap_entry_pick_user). */
static char *user_value(LDAP *ld, LDAPMessage *e, const char *attr, const char *login)
{
    struct berval **v = ldap_get_values_len(ld, e, attr);
    const char *vals[16];
    char *s = NULL;
    int n = 0;

    if (v == NULL)
        return NULL;
    for (int k = 0; v[k] != NULL && n < 16; k++) {
        /* A value with a NUL cannot be a name; it is skipped, not cut. */
        if (memchr(v[k]->bv_val, '\0', v[k]->bv_len) == NULL &&
            (vals[n] = strndup(v[k]->bv_val, v[k]->bv_len)) != NULL)
            n++;
    }
    const char *pick = ldap_entry_pick_user(vals, n, login);
    if (pick != NULL)
        s = strdup(pick);
    for (int k = 0; k < n; k++)
        free((char *)vals[k]);
    ldap_value_free_len(v);
    return s;
}

static void on_search(struct ldap_backend *lb, int i, LDAP *ld, LDAPMessage *msg)
{
    struct lreq *r = &lb->reqs[i];
    char *errmsg = NULL;
    int err = LDAP_OTHER;

    lb->conns[SERVICE].inflight--;
    int rc = ldap_parse_result(ld, msg, &err, NULL, &errmsg, NULL, NULL, 0);
    int n = ldap_count_entries(ld, msg);
    if (rc != LDAP_SUCCESS || (err != LDAP_SUCCESS && err != LDAP_SIZELIMIT_EXCEEDED)) {
        char why[AUTH_MESSAGE_MAX];
        snprintf(why, sizeof(why), "search: %s%s%s", ldap_err2string(rc ? rc : err),
                 errmsg && *errmsg ? ": " : "", errmsg ? errmsg : "");
        if (err == LDAP_NO_SUCH_OBJECT)
            log_error("ldap: ldap_base \"%s\" does not exist", lb->s.base);
        ldap_memfree(errmsg);
        /* Busy, unavailable, a server time limit: an outage; the rest a setup error. */
        answer(lb, i, rc != LDAP_SUCCESS ? LDAP_OUTCOME_ERROR : ldap_search_outcome(err),
               "ldap-error", why);
        return;
    }
    ldap_memfree(errmsg);
    if (n > 1 || err == LDAP_SIZELIMIT_EXCEEDED) {
        answer(lb, i, LDAP_OUTCOME_BAD_LOGIN, "ambiguous-user", "ldap_user_filter matches several entries");
        return;
    }
    if (n <= 0) {
        if (lb->s.mode == CONFIG_LDAP_AUTH_PASSWORD)
            (void)scheme_verify(lb->s.dummy_hash, r->password);
        answer(lb, i, LDAP_OUTCOME_BAD_LOGIN, "unknown-user", "");
        return;
    }

    LDAPMessage *e = ldap_first_entry(ld, msg);
    char *dn = ldap_get_dn(ld, e);
    char *maildir = first_value(ld, e, lb->s.maildir_attr);
    char *home = first_value(ld, e, lb->s.home_attr);
    char *user = user_value(ld, e, lb->s.user_attr, r->user);
    struct berval **pw = NULL;
    char *pwv[16];
    int npw = 0;
    if (lb->s.mode == CONFIG_LDAP_AUTH_PASSWORD &&
        (pw = ldap_get_values_len(ld, e, "userPassword")) != NULL) {
        for (int k = 0; pw[k] != NULL && npw < 16; k++) {
            if (memchr(pw[k]->bv_val, '\0', pw[k]->bv_len) == NULL &&
                (pwv[npw] = strndup(pw[k]->bv_val, pw[k]->bv_len)) != NULL)
                npw++;
        }
    }
    struct ldap_found f = { dn, (const char *const *)pwv, npw, maildir, home, user };

    if (dn == NULL) {
        answer(lb, i, LDAP_OUTCOME_ERROR, "ldap-error", "entry without a DN");
    } else if (ldap_entry_result(&lb->s, &f, &r->ans) == -1) {
        answer(lb, i, LDAP_OUTCOME_ERROR, r->ans.reason, NULL);
    } else if (lb->s.mode == CONFIG_LDAP_AUTH_PASSWORD) {
        int v = ldap_entry_verify(&f, r->password);
        if (v == SCHEME_MATCH)
            answer(lb, i, LDAP_OUTCOME_OK, "", "");
        else
            answer(lb, i, LDAP_OUTCOME_BAD_LOGIN, npw ? scheme_result_str(v) : "no-password", "");
    } else if ((r->dn = strdup(dn)) == NULL) {
        answer(lb, i, LDAP_OUTCOME_ERROR, "ldap-error", "out of memory");
    } else {
        r->stage = R_BIND_QUEUED;
        q_push(lb, &lb->bind_q, i);
    }
    for (int k = 0; k < npw; k++) {
        explicit_bzero(pwv[k], strlen(pwv[k]));
        free(pwv[k]);
    }
    if (pw)
        ldap_value_free_len(pw);
    ldap_memfree(dn);
    free(maildir);
    free(home);
    free(user);
}

static void on_bind(struct ldap_backend *lb, int i, LDAP *ld, LDAPMessage *msg)
{
    int err = LDAP_OTHER;
    char *errmsg = NULL;
    char why[AUTH_MESSAGE_MAX];

    lb->conns[lb->reqs[i].conn].inflight--;
    if (ldap_parse_result(ld, msg, &err, NULL, &errmsg, NULL, NULL, 0) != LDAP_SUCCESS)
        err = LDAP_OTHER;
    /* The server's own words say why (e.g. "account inactivated"): for the log. */
    snprintf(why, sizeof(why), "bind: %s%s%s", ldap_err2string(err),
             errmsg && *errmsg ? ": " : "", errmsg ? errmsg : "");
    ldap_memfree(errmsg);
    enum ldap_outcome out = ldap_bind_outcome(err);
    switch (out) {
    case LDAP_OUTCOME_OK:
        answer(lb, i, out, "", "");
        break;
    case LDAP_OUTCOME_BAD_LOGIN:
        answer(lb, i, out, "bad-password", "");
        break;
    case LDAP_OUTCOME_REFUSED:
        answer(lb, i, out, "account-refused", why);
        break;
    default:
        answer(lb, i, out, "ldap-error", why);
        break;
    }
}

static void read_conn(struct ldap_backend *lb, int ci)
{
    struct lconn *c = &lb->conns[ci];

    while (c->state == C_READY) {
        struct timeval zero = { 0, 0 };
        LDAPMessage *msg = NULL;
        int rc = ldap_result(c->ld, LDAP_RES_ANY, LDAP_MSG_ALL, &zero, &msg);
        if (rc == 0)
            return;
        if (rc == -1) {
            int err = LDAP_SERVER_DOWN;
            ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &err);
            conn_lost(lb, ci, ldap_err2string(err), "ldap-down");
            return;
        }
        int msgid = ldap_msgid(msg);
        int found = NONE;
        for (int i = 0; i < LDAP_MAX_REQUESTS && msgid > 0; i++) {
            struct lreq *r = &lb->reqs[i];
            if ((r->stage == R_SEARCH || r->stage == R_BIND) && r->conn == ci &&
                r->msgid == msgid) {
                found = i;
                break;
            }
        }
        if (msgid <= 0) {
            /* An unsolicited notice: the server is closing this connection. */
            ldap_msgfree(msg);
            conn_lost(lb, ci, "notice of disconnection", "ldap-down");
            return;
        }
        if (found != NONE && lb->reqs[found].stage == R_SEARCH)
            on_search(lb, found, c->ld, msg);
        else if (found != NONE)
            on_bind(lb, found, c->ld, msg);
        ldap_msgfree(msg);
    }
}

static void start_search(struct ldap_backend *lb, int i)
{
    struct lreq *r = &lb->reqs[i];
    struct lconn *c = &lb->conns[SERVICE];
    char filter[CONFIG_PATH_MAX + LDAP_FILTER_ESCAPE_SIZE(AUTH_USER_MAX)];
    char *attrs[5];
    int n = 0;

    q_remove(lb, &lb->search_q, i);
    r->stage = R_SEARCH;   /* so a failure below is answered like any in-flight one */
    r->conn = SERVICE;
    if (ldap_filter_expand(lb->s.filter, r->user, filter, sizeof(filter)) == -1) {
        answer(lb, i, LDAP_OUTCOME_BAD_LOGIN, "unknown-user", "user name too long for the filter");
        return;
    }
    if (lb->s.maildir_attr[0])
        attrs[n++] = lb->s.maildir_attr;
    if (lb->s.home_attr[0])
        attrs[n++] = lb->s.home_attr;
    if (lb->s.user_attr[0])
        attrs[n++] = lb->s.user_attr;
    if (lb->s.mode == CONFIG_LDAP_AUTH_PASSWORD)
        attrs[n++] = "userPassword";
    if (n == 0)
        attrs[n++] = LDAP_NO_ATTRS;   /* "1.1": the DN alone */
    attrs[n] = NULL;
    struct timeval limit = { lb->s.timeout, 0 };
    int rc = ldap_search_ext(c->ld, lb->s.base, lb->s.scope, filter, attrs, 0, NULL, NULL,
                             &limit, 2, &r->msgid);
    c->inflight++;
    if (rc != LDAP_SUCCESS)
        conn_lost(lb, SERVICE, ldap_err2string(rc), "ldap-down");
}

static void start_bind(struct ldap_backend *lb, int i, int ci)
{
    struct lreq *r = &lb->reqs[i];
    struct lconn *c = &lb->conns[ci];
    struct berval cred = { strlen(r->password), r->password };

    q_remove(lb, &lb->bind_q, i);
    r->stage = R_BIND;
    r->conn = ci;
    int rc = ldap_sasl_bind(c->ld, r->dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &r->msgid);
    /* On the wire now: our copy is no longer needed. */
    explicit_bzero(r->password, sizeof(r->password));
    c->inflight++;
    if (rc != LDAP_SUCCESS)
        conn_lost(lb, ci, ldap_err2string(rc), "ldap-down");
}

/* Fail every request in q (a connection it needs is down and waiting to retry). */
static void fail_queue(struct ldap_backend *lb, struct queue *q, const char *why)
{
    while (q->head != NONE)
        answer(lb, q->head, LDAP_OUTCOME_OUTAGE, "ldap-down", why);
}

/* Move queued requests onto connections, opening connections as needed. */
static void pump(struct ldap_backend *lb)
{
    double t = clock_mono();
    struct lconn *svc = &lb->conns[SERVICE];

    if (lb->search_q.head != NONE && svc->state == C_DOWN) {
        if (t >= svc->retry_at)
            conn_open(lb, SERVICE);
        else
            fail_queue(lb, &lb->search_q, svc->last_error);
    }
    while (svc->state == C_READY && lb->search_q.head != NONE &&
           svc->inflight < LDAP_MAX_PIPELINE)
        start_search(lb, lb->search_q.head);

    int waiting = 0, usable = 0;
    for (int i = lb->bind_q.head; i != NONE; i = lb->reqs[i].next)
        waiting++;
    for (int ci = 1; ci < lb->nconns && lb->bind_q.head != NONE; ci++) {
        struct lconn *c = &lb->conns[ci];
        if (c->state == C_READY && c->inflight == 0) {
            start_bind(lb, lb->bind_q.head, ci);
            waiting--;
        }
    }
    for (int ci = 1; ci < lb->nconns; ci++) {
        struct lconn *c = &lb->conns[ci];
        if (c->state == C_DOWN && waiting > 0 && t >= c->retry_at) {
            conn_open(lb, ci);
            waiting--;
        }
        usable += c->state != C_DOWN;
    }
    if (lb->bind_q.head != NONE && usable == 0)
        fail_queue(lb, &lb->bind_q, lb->conns[1].last_error);
}

static void expire(struct ldap_backend *lb)
{
    double t = clock_mono();

    for (int i = 0; i < LDAP_MAX_REQUESTS; i++) {
        struct lreq *r = &lb->reqs[i];
        if (r->stage == R_FREE || r->deadline > t)
            continue;
        if (r->stage == R_SEARCH || r->stage == R_BIND)
            conn_lost(lb, r->conn, "no answer within ldap_timeout", "ldap-timeout");
        else
            answer(lb, i, LDAP_OUTCOME_OUTAGE, "ldap-timeout", "no LDAP connection within ldap_timeout");
    }
}

struct ldap_backend *ldap_backend_new(const struct ldap_settings *s, ldap_done_fn *done,
                                      void *arg)
{
    struct ldap_backend *lb = calloc(1, sizeof(*lb));

    if (lb == NULL || (lb->reqs = calloc(LDAP_MAX_REQUESTS, sizeof(*lb->reqs))) == NULL) {
        free(lb);
        errno = ENOMEM;
        return NULL;
    }
    lb->s = *s;
    lb->done = done;
    lb->arg = arg;
    lb->nconns = s->mode == CONFIG_LDAP_AUTH_BIND ? 1 + s->bind_connections : 1;
    if (lb->nconns > MAX_CONNS)
        lb->nconns = MAX_CONNS;
    for (int i = 0; i < lb->nconns; i++)
        lb->conns[i].fd = -1;
    lb->search_q.head = lb->search_q.tail = NONE;
    lb->bind_q.head = lb->bind_q.tail = NONE;
    for (int i = 0; i < LDAP_MAX_REQUESTS; i++)
        lb->reqs[i].next = i + 1 < LDAP_MAX_REQUESTS ? i + 1 : NONE;
    lb->free_head = 0;

    lb->epfd = epoll_create1(EPOLL_CLOEXEC);
    lb->connector = lb->epfd == -1 ? -1 : ldap_connector_start(s);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = CONNECTOR_TAG };
    if (lb->connector == -1 || epoll_ctl(lb->epfd, EPOLL_CTL_ADD, lb->connector, &ev) == -1) {
        int saved = errno;
        ldap_connector_stop(lb->connector);
        if (lb->epfd != -1)
            close(lb->epfd);
        ldap_settings_wipe(&lb->s);
        free(lb->reqs);
        free(lb);
        errno = saved;
        return NULL;
    }
    /* Open the service connection now, so a broken setup shows in the log at startup. */
    conn_open(lb, SERVICE);
    if (lb->nconns > 1)
        conn_open(lb, 1);
    return lb;
}

void ldap_backend_free(struct ldap_backend *lb)
{
    if (lb == NULL)
        return;
    lb->stopping = 1;
    for (int i = 0; i < LDAP_MAX_REQUESTS; i++) {
        if (lb->reqs[i].stage != R_FREE)
            answer(lb, i, LDAP_OUTCOME_OUTAGE, "ldap-down", "LDAP backend stopped");
    }
    for (int ci = 0; ci < lb->nconns; ci++) {
        if (lb->conns[ci].ld)
            ldap_unbind_ext(lb->conns[ci].ld, NULL, NULL);
    }
    ldap_connector_stop(lb->connector);
    close(lb->epfd);
    ldap_settings_wipe(&lb->s);
    free(lb->reqs);
    free(lb);
}

int ldap_backend_submit(struct ldap_backend *lb, const char *user, const char *password,
                        void *ctx, struct ldap_answer *ans)
{
    memset(ans, 0, sizeof(*ans));
    ans->status = AUTH_FAIL;
    /* Never let an empty password reach a bind: it would be an unauthenticated bind. */
    if (user[0] == '\0' || password[0] == '\0') {
        ans->reason = user[0] ? "empty-password" : "empty-user";
        return -1;
    }
    if (strlen(user) >= AUTH_USER_MAX || strlen(password) >= AUTH_PASS_MAX) {
        ans->reason = "too-long";
        return -1;
    }
    if (lb->free_head == NONE) {
        ans->status = AUTH_TEMPFAIL;
        ans->outage = 1;   /* the directory is not keeping up */
        ans->reason = "ldap-busy";
        snprintf(ans->message, sizeof(ans->message), "%d LDAP lookups already waiting",
                 LDAP_MAX_REQUESTS);
        return -1;
    }
    int i = lb->free_head;
    struct lreq *r = &lb->reqs[i];
    lb->free_head = r->next;
    memset(r, 0, sizeof(*r));
    r->stage = R_QUEUED;
    r->ctx = ctx;
    r->deadline = clock_mono() + lb->s.timeout;
    r->started = clock_mono_us();
    snprintf(r->user, sizeof(r->user), "%s", user);
    snprintf(r->password, sizeof(r->password), "%s", password);
    q_push(lb, &lb->search_q, i);
    lb->pending++;
    /* The search goes out at the next poll: answers must never come from inside submit. */
    return 0;
}

int ldap_backend_fd(const struct ldap_backend *lb)
{
    return lb->epfd;
}

int ldap_backend_timeout_ms(const struct ldap_backend *lb)
{
    double t = clock_mono(), first = -1;

    for (int i = 0; i < LDAP_MAX_REQUESTS; i++) {
        const struct lreq *r = &lb->reqs[i];
        if (r->stage != R_FREE && (first < 0 || r->deadline < first))
            first = r->deadline;
    }
    /* Queued requests also wait for a connection's next try. */
    for (int ci = 0; ci < lb->nconns && (lb->search_q.head != NONE || lb->bind_q.head != NONE);
         ci++) {
        const struct lconn *c = &lb->conns[ci];
        if (c->state == C_DOWN && c->retry_at > t && (first < 0 || c->retry_at < first))
            first = c->retry_at;
    }
    if (first < 0)
        return -1;
    return first <= t ? 0 : (int)((first - t) * 1000) + 1;
}

void ldap_backend_poll(struct ldap_backend *lb)
{
    struct epoll_event ev[32];
    int n = epoll_wait(lb->epfd, ev, 32, 0);

    for (int k = 0; k < n; k++) {
        uint64_t tag = ev[k].data.u64;
        if (tag == CONNECTOR_TAG)
            read_connector(lb);
        else if (tag < (uint64_t)lb->nconns)
            read_conn(lb, (int)tag);
    }
    expire(lb);
    pump(lb);
}

int ldap_backend_pending(const struct ldap_backend *lb)
{
    return lb->pending;
}
