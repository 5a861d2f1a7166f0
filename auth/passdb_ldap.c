#include "auth/passdb_ldap.h"

#include <errno.h>
#include <ldap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "auth/passdb_ldap_conn.h"
#include "auth/passdb_ldap_filter.h"
#include "auth/passdb_queue.h"
#include "auth/scheme.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/clock.h"
#include "shm/stats.h"

#define SERVICE PASSDB_LDAP_SERVICE
#define CONNECTOR_TAG 0xffffu
#define NONE PASSDB_QUEUE_NONE

enum req_stage { R_FREE, R_QUEUED, R_SEARCH, R_BIND_QUEUED, R_BIND };

struct lreq {
    enum req_stage stage;
    void *ctx;
    double deadline;
    uint64_t started;           /* clock_mono_us(): the LDAP timing histogram */
    int conn, msgid;
    char user[AUTH_USER_MAX];
    char password[AUTH_PASS_MAX];
    char *dn;
    struct passdb_ldap_answer ans;     /* user, maildir and policy, found before the bind */
};

struct passdb_ldap {
    struct passdb_ldap_settings s;
    int stopping;               /* passdb_ldap_free: answers now are not LDAP's */
    passdb_ldap_done_fn *done;
    void *arg;
    struct passdb_ldap_pool pool;     /* the connections (auth/passdb_ldap_conn.h) */
    struct lreq *reqs;
    struct passdb_slots slots;  /* reqs[i] is in use while slot i is */
    struct passdb_fifo search_q, bind_q;
};

/* Hand the answer over and free the request. */
static void answer(struct passdb_ldap *lb, int i, enum passdb_ldap_outcome out, const char *reason,
                   const char *message)
{
    struct lreq *r = &lb->reqs[i];
    enum auth_status st = passdb_ldap_outcome_status(out);
    char why[AUTH_MESSAGE_MAX];

    if (st == AUTH_OK)
        st = passdb_ldap_entry_policy_status(&r->ans, &reason, &message, why, sizeof(why));

    if (r->stage == R_QUEUED)
        passdb_fifo_remove(&lb->slots, &lb->search_q, i);
    else if (r->stage == R_BIND_QUEUED)
        passdb_fifo_remove(&lb->slots, &lb->bind_q, i);
    r->ans.status = st;
    r->ans.outage = out == PASSDB_LDAP_OUTCOME_OUTAGE;
    r->ans.account_refused = out == PASSDB_LDAP_OUTCOME_REFUSED;
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
     * cache go by it (auth/requests.c, auth/cache_policy.c); the worker never gets it. */
    if (st != AUTH_OK)
        r->ans.maildir[0] = '\0';
    void *ctx = r->ctx;
    struct passdb_ldap_answer ans = r->ans;
    explicit_bzero(r->password, sizeof(r->password));
    free(r->dn);
    r->dn = NULL;
    r->stage = R_FREE;
    passdb_slots_put(&lb->slots, i);
    lb->done(lb->arg, ctx, &ans);
}

/*
 * Connection ci failed or stopped answering: close it (auth/passdb_ldap_conn.h)
 * and fail what it carries.
 */
static void conn_lost(struct passdb_ldap *lb, int ci, const char *why, const char *reason)
{
    passdb_ldap_pool_close(&lb->pool, ci, why, clock_mono());
    for (int i = 0; i < PASSDB_LDAP_MAX_REQUESTS; i++) {
        struct lreq *r = &lb->reqs[i];
        if ((r->stage == R_SEARCH || r->stage == R_BIND) && r->conn == ci)
            answer(lb, i, PASSDB_LDAP_OUTCOME_OUTAGE, reason, why);
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

/* The canonical user name: of attr's values, the one that is the login (passdb_ldap_entry_pick_user). */
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
    const char *pick = passdb_ldap_entry_pick_user(vals, n, login);
    if (pick != NULL)
        s = strdup(pick);
    for (int k = 0; k < n; k++)
        free((char *)vals[k]);
    ldap_value_free_len(v);
    return s;
}

static void on_search(struct passdb_ldap *lb, int i, LDAP *ld, LDAPMessage *msg)
{
    struct lreq *r = &lb->reqs[i];
    char *errmsg = NULL;
    int err = LDAP_OTHER;

    lb->pool.conns[SERVICE].inflight--;
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
        answer(lb, i, rc != LDAP_SUCCESS ? PASSDB_LDAP_OUTCOME_ERROR : passdb_ldap_search_outcome(err),
               "ldap-error", why);
        return;
    }
    ldap_memfree(errmsg);
    if (n > 1 || err == LDAP_SIZELIMIT_EXCEEDED) {
        answer(lb, i, PASSDB_LDAP_OUTCOME_BAD_LOGIN, "ambiguous-user", "ldap_user_filter matches several entries");
        return;
    }
    if (n <= 0) {
        if (lb->s.mode == CONFIG_LDAP_AUTH_PASSWORD)
            (void)scheme_verify(lb->s.dummy_hash, r->password);
        answer(lb, i, PASSDB_LDAP_OUTCOME_BAD_LOGIN, "unknown-user", "");
        return;
    }

    LDAPMessage *e = ldap_first_entry(ld, msg);
    char *dn = ldap_get_dn(ld, e);
    char *maildir = first_value(ld, e, lb->s.maildir_attr);
    char *home = first_value(ld, e, lb->s.home_attr);
    char *host = first_value(ld, e, lb->s.host_attr);
    char *enabled = first_value(ld, e, lb->s.pop3_enabled_attr);
    char *plaintext = first_value(ld, e, lb->s.pop3_plaintext_attr);
    char *delay = first_value(ld, e, lb->s.login_delay_attr);
    char *expire = first_value(ld, e, lb->s.expire_attr);
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
    struct passdb_ldap_found f = { dn, (const char *const *)pwv, npw, maildir, home, user, host,
                                   enabled, plaintext, delay, expire };

    if (dn == NULL) {
        answer(lb, i, PASSDB_LDAP_OUTCOME_ERROR, "ldap-error", "entry without a DN");
    } else if (passdb_ldap_entry_result(&lb->s, &f, &r->ans) == -1) {
        answer(lb, i, PASSDB_LDAP_OUTCOME_ERROR, r->ans.reason, NULL);
    } else if (lb->s.mode == CONFIG_LDAP_AUTH_PASSWORD) {
        int v = passdb_ldap_entry_verify(&f, r->password);
        if (v == SCHEME_MATCH)
            answer(lb, i, PASSDB_LDAP_OUTCOME_OK, "", "");
        else
            answer(lb, i, PASSDB_LDAP_OUTCOME_BAD_LOGIN, npw ? scheme_result_str(v) : "no-password", "");
    } else if ((r->dn = strdup(dn)) == NULL) {
        answer(lb, i, PASSDB_LDAP_OUTCOME_ERROR, "ldap-error", "out of memory");
    } else {
        r->stage = R_BIND_QUEUED;
        passdb_fifo_push(&lb->slots, &lb->bind_q, i);
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
    free(host);
    free(enabled);
    free(plaintext);
    free(delay);
    free(expire);
    free(user);
}

static void on_bind(struct passdb_ldap *lb, int i, LDAP *ld, LDAPMessage *msg)
{
    int err = LDAP_OTHER;
    char *errmsg = NULL;
    char why[AUTH_MESSAGE_MAX];

    lb->pool.conns[lb->reqs[i].conn].inflight--;
    if (ldap_parse_result(ld, msg, &err, NULL, &errmsg, NULL, NULL, 0) != LDAP_SUCCESS)
        err = LDAP_OTHER;
    /* The server's own words say why (e.g. "account inactivated"): for the log. */
    snprintf(why, sizeof(why), "bind: %s%s%s", ldap_err2string(err),
             errmsg && *errmsg ? ": " : "", errmsg ? errmsg : "");
    ldap_memfree(errmsg);
    enum passdb_ldap_outcome out = passdb_ldap_bind_outcome(err);
    switch (out) {
    case PASSDB_LDAP_OUTCOME_OK:
        answer(lb, i, out, "", "");
        break;
    case PASSDB_LDAP_OUTCOME_BAD_LOGIN:
        answer(lb, i, out, "bad-password", "");
        break;
    case PASSDB_LDAP_OUTCOME_REFUSED:
        answer(lb, i, out, "account-refused", why);
        break;
    default:
        answer(lb, i, out, "ldap-error", why);
        break;
    }
}

static void read_conn(struct passdb_ldap *lb, int ci)
{
    struct passdb_ldap_conn *c = &lb->pool.conns[ci];

    while (c->state == CONN_READY) {
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
        for (int i = 0; i < PASSDB_LDAP_MAX_REQUESTS && msgid > 0; i++) {
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

static void start_search(struct passdb_ldap *lb, int i)
{
    struct lreq *r = &lb->reqs[i];
    struct passdb_ldap_conn *c = &lb->pool.conns[SERVICE];
    char filter[CONFIG_PATH_MAX + PASSDB_LDAP_FILTER_ESCAPE_SIZE(AUTH_USER_MAX)];
    char *attrs[10];
    int n = 0;

    passdb_fifo_remove(&lb->slots, &lb->search_q, i);
    r->stage = R_SEARCH;   /* so a failure below is answered like any in-flight one */
    r->conn = SERVICE;
    if (passdb_ldap_filter_expand(lb->s.filter, r->user, filter, sizeof(filter)) == -1) {
        answer(lb, i, PASSDB_LDAP_OUTCOME_BAD_LOGIN, "unknown-user", "user name too long for the filter");
        return;
    }
    if (lb->s.maildir_attr[0])
        attrs[n++] = lb->s.maildir_attr;
    if (lb->s.home_attr[0])
        attrs[n++] = lb->s.home_attr;
    if (lb->s.host_attr[0])
        attrs[n++] = lb->s.host_attr;
    if (lb->s.user_attr[0])
        attrs[n++] = lb->s.user_attr;
    char *policy_attrs[] = { lb->s.pop3_enabled_attr, lb->s.pop3_plaintext_attr,
                             lb->s.login_delay_attr, lb->s.expire_attr };
    for (size_t k = 0; k < sizeof(policy_attrs) / sizeof(policy_attrs[0]); k++) {
        if (policy_attrs[k][0])
            attrs[n++] = policy_attrs[k];
    }
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

static void start_bind(struct passdb_ldap *lb, int i, int ci)
{
    struct lreq *r = &lb->reqs[i];
    struct passdb_ldap_conn *c = &lb->pool.conns[ci];
    struct berval cred = { strlen(r->password), r->password };

    passdb_fifo_remove(&lb->slots, &lb->bind_q, i);
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
static void fail_queue(struct passdb_ldap *lb, struct passdb_fifo *q, const char *why)
{
    while (q->head != NONE)
        answer(lb, q->head, PASSDB_LDAP_OUTCOME_OUTAGE, "ldap-down", why);
}

/* Move queued requests onto connections, opening connections as needed. */
static void pump(struct passdb_ldap *lb)
{
    double t = clock_mono();
    struct passdb_ldap_conn *svc = &lb->pool.conns[SERVICE];

    if (lb->search_q.head != NONE && svc->state == CONN_DOWN) {
        if (t >= svc->retry_at)
            passdb_ldap_pool_open(&lb->pool, SERVICE, clock_mono());
        else
            fail_queue(lb, &lb->search_q, svc->last_error);
    }
    while (svc->state == CONN_READY && lb->search_q.head != NONE &&
           svc->inflight < PASSDB_LDAP_MAX_PIPELINE)
        start_search(lb, lb->search_q.head);

    int waiting = 0, usable = 0;
    for (int i = lb->bind_q.head; i != NONE; i = passdb_fifo_next(&lb->slots, i))
        waiting++;
    for (int ci = 1; ci < lb->pool.nconns && lb->bind_q.head != NONE; ci++) {
        struct passdb_ldap_conn *c = &lb->pool.conns[ci];
        if (c->state == CONN_READY && c->inflight == 0) {
            start_bind(lb, lb->bind_q.head, ci);
            waiting--;
        }
    }
    for (int ci = 1; ci < lb->pool.nconns; ci++) {
        struct passdb_ldap_conn *c = &lb->pool.conns[ci];
        if (c->state == CONN_DOWN && waiting > 0 && t >= c->retry_at) {
            passdb_ldap_pool_open(&lb->pool, ci, clock_mono());
            waiting--;
        }
        usable += c->state != CONN_DOWN;
    }
    if (lb->bind_q.head != NONE && usable == 0)
        fail_queue(lb, &lb->bind_q, lb->pool.conns[1].last_error);
}

static void expire(struct passdb_ldap *lb)
{
    double t = clock_mono();

    for (int i = 0; i < PASSDB_LDAP_MAX_REQUESTS; i++) {
        struct lreq *r = &lb->reqs[i];
        if (r->stage == R_FREE || r->deadline > t)
            continue;
        if (r->stage == R_SEARCH || r->stage == R_BIND)
            conn_lost(lb, r->conn, "no answer within ldap_timeout", "ldap-timeout");
        else
            answer(lb, i, PASSDB_LDAP_OUTCOME_OUTAGE, "ldap-timeout", "no LDAP connection within ldap_timeout");
    }
}

struct passdb_ldap *passdb_ldap_new(const struct passdb_ldap_settings *s, passdb_ldap_done_fn *done,
                                      void *arg)
{
    struct passdb_ldap *lb = calloc(1, sizeof(*lb));

    if (lb == NULL || (lb->reqs = calloc(PASSDB_LDAP_MAX_REQUESTS, sizeof(*lb->reqs))) == NULL ||
        passdb_slots_init(&lb->slots, PASSDB_LDAP_MAX_REQUESTS) == -1) {
        if (lb != NULL)
            free(lb->reqs);
        free(lb);
        errno = ENOMEM;
        return NULL;
    }
    lb->s = *s;
    lb->pool.uri = lb->s.uri;
    lb->done = done;
    lb->arg = arg;
    lb->pool.nconns = s->mode == CONFIG_LDAP_AUTH_BIND ? 1 + s->bind_connections : 1;
    if (lb->pool.nconns > PASSDB_LDAP_MAX_CONNS)
        lb->pool.nconns = PASSDB_LDAP_MAX_CONNS;
    for (int i = 0; i < lb->pool.nconns; i++)
        lb->pool.conns[i].fd = -1;
    passdb_fifo_init(&lb->search_q);
    passdb_fifo_init(&lb->bind_q);

    lb->pool.epfd = epoll_create1(EPOLL_CLOEXEC);
    lb->pool.connector = lb->pool.epfd == -1 ? -1 : passdb_ldap_connector_start(s);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = CONNECTOR_TAG };
    if (lb->pool.connector == -1 || epoll_ctl(lb->pool.epfd, EPOLL_CTL_ADD, lb->pool.connector, &ev) == -1) {
        int saved = errno;
        passdb_ldap_connector_stop(lb->pool.connector);
        if (lb->pool.epfd != -1)
            close(lb->pool.epfd);
        passdb_ldap_settings_wipe(&lb->s);
        passdb_slots_fini(&lb->slots);
        free(lb->reqs);
        free(lb);
        errno = saved;
        return NULL;
    }
    /* Open the service connection now, so a broken setup shows in the log at startup. */
    passdb_ldap_pool_open(&lb->pool, SERVICE, clock_mono());
    if (lb->pool.nconns > 1)
        passdb_ldap_pool_open(&lb->pool, 1, clock_mono());
    return lb;
}

void passdb_ldap_free(struct passdb_ldap *lb)
{
    if (lb == NULL)
        return;
    lb->stopping = 1;
    for (int i = 0; i < PASSDB_LDAP_MAX_REQUESTS; i++) {
        if (lb->reqs[i].stage != R_FREE)
            answer(lb, i, PASSDB_LDAP_OUTCOME_OUTAGE, "ldap-down", "LDAP backend stopped");
    }
    for (int ci = 0; ci < lb->pool.nconns; ci++) {
        if (lb->pool.conns[ci].ld)
            ldap_unbind_ext(lb->pool.conns[ci].ld, NULL, NULL);
    }
    passdb_ldap_connector_stop(lb->pool.connector);
    close(lb->pool.epfd);
    passdb_ldap_settings_wipe(&lb->s);
    passdb_slots_fini(&lb->slots);
    free(lb->reqs);
    free(lb);
}

int passdb_ldap_submit(struct passdb_ldap *lb, const char *user, const char *password,
                        void *ctx, struct passdb_ldap_answer *ans)
{
    static const struct passdb_admit_rules rules = {
        .refuse_newline = 0,
        .busy_reason = "ldap-busy",   /* the directory is not keeping up */
        .busy_waiting = "LDAP lookups",
    };
    int i = passdb_slots_admit(&lb->slots, &rules, user, password, ans);
    if (i == NONE)
        return -1;
    struct lreq *r = &lb->reqs[i];
    memset(r, 0, sizeof(*r));
    r->stage = R_QUEUED;
    r->ctx = ctx;
    r->deadline = clock_mono() + lb->s.timeout;
    r->started = clock_mono_us();
    snprintf(r->user, sizeof(r->user), "%s", user);
    snprintf(r->password, sizeof(r->password), "%s", password);
    passdb_fifo_push(&lb->slots, &lb->search_q, i);
    /* The search goes out at the next poll: answers must never come from inside submit. */
    return 0;
}

int passdb_ldap_fd(const struct passdb_ldap *lb)
{
    return lb->pool.epfd;
}

int passdb_ldap_timeout_ms(const struct passdb_ldap *lb)
{
    double t = clock_mono(), first = -1;

    for (int i = 0; i < PASSDB_LDAP_MAX_REQUESTS; i++) {
        const struct lreq *r = &lb->reqs[i];
        if (r->stage != R_FREE && (first < 0 || r->deadline < first))
            first = r->deadline;
    }
    /* Queued requests also wait for a connection's next try. */
    for (int ci = 0; ci < lb->pool.nconns && (lb->search_q.head != NONE || lb->bind_q.head != NONE);
         ci++) {
        const struct passdb_ldap_conn *c = &lb->pool.conns[ci];
        if (c->state == CONN_DOWN && c->retry_at > t && (first < 0 || c->retry_at < first))
            first = c->retry_at;
    }
    if (first < 0)
        return -1;
    return first <= t ? 0 : (int)((first - t) * 1000) + 1;
}

void passdb_ldap_poll(struct passdb_ldap *lb)
{
    struct epoll_event ev[32];
    int n = epoll_wait(lb->pool.epfd, ev, 32, 0);

    for (int k = 0; k < n; k++) {
        uint64_t tag = ev[k].data.u64;
        if (tag == CONNECTOR_TAG)
            passdb_ldap_pool_collect(&lb->pool, clock_mono());
        else if (tag < (uint64_t)lb->pool.nconns)
            read_conn(lb, (int)tag);
    }
    expire(lb);
    pump(lb);
}

int passdb_ldap_pending(const struct passdb_ldap *lb)
{
    return lb->slots.in_use;
}
