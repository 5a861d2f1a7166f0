#include "auth/passdb_ldap_conn.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/log.h"

struct connector {
    int fd;
    struct passdb_ldap_settings s;
};

int passdb_ldap_conn_options(LDAP *ld, const struct passdb_ldap_settings *s, char *err, size_t errlen)
{
    int v3 = LDAP_VERSION3;
    struct timeval net = { s->connect_timeout, 0 };
    struct timeval op = { s->timeout, 0 };
    int demand = LDAP_OPT_X_TLS_DEMAND;
    int zero = 0;
    const char *what = NULL;

    /* libldap defaults to LDAPv2 and to waiting forever. */
    if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS)
        what = "protocol version";
    else if (ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &net) != LDAP_OPT_SUCCESS)
        what = "network timeout";
    else if (ldap_set_option(ld, LDAP_OPT_TIMEOUT, &op) != LDAP_OPT_SUCCESS)
        what = "timeout";
    else if (ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS)
        what = "referrals";
    else if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS)
        what = "TLS require cert";
    else if (s->ca_file[0] &&
             ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, s->ca_file) != LDAP_OPT_SUCCESS)
        what = "TLS CA file";
    /* The TLS options above apply to this handle only once a new context is made. */
    else if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) != LDAP_OPT_SUCCESS)
        what = "TLS context (is ldap_tls_ca_file readable?)";
    if (what == NULL)
        return 0;
    snprintf(err, errlen, "cannot set LDAP option: %s", what);
    return -1;
}

/*
 * The log text for a failed TLS handshake. libldap does not say why (with
 * GnuTLS its message is often "(unknown error code)"), and an untrusted or
 * mismatched certificate is by far the usual cause, so the text names it and
 * the setting to check.
 */
static void tls_failed(char *err, size_t errlen, const char *prefix, const char *uri,
                       const char *diag)
{
    snprintf(err, errlen,
             "%sTLS handshake with %s failed (server certificate not trusted by "
             "ldap_tls_ca_file, or not issued for this host?)%s%s",
             prefix, uri, diag ? ": " : "", diag ? diag : "");
}

/* One connection, start to finish, blocking (bounded by the timeouts). */
static LDAP *open_one(const struct passdb_ldap_settings *s, int service, char *err, size_t errlen)
{
    LDAP *ld = NULL;
    int rc = ldap_initialize(&ld, s->uri);

    if (rc != LDAP_SUCCESS) {
        snprintf(err, errlen, "ldap_uri \"%s\": %s", s->uri, ldap_err2string(rc));
        return NULL;
    }
    if (passdb_ldap_conn_options(ld, s, err, errlen) == -1)
        goto fail;
    rc = ldap_connect(ld);
    if (rc != LDAP_SUCCESS) {
        char *diag = NULL;
        ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
        /* A refused or timed-out TCP connect leaves no diagnostic; a failed
         * ldaps handshake does (libldap's TLS layer sets one). */
        if (diag != NULL && strncasecmp(s->uri, "ldaps:", 6) == 0)
            tls_failed(err, errlen, "", s->uri, diag);
        else
            snprintf(err, errlen, "connect to %s: %s", s->uri, ldap_err2string(rc));
        ldap_memfree(diag);
        goto fail;
    }
    if (s->starttls && !ldap_tls_inplace(ld)) {
        rc = ldap_start_tls_s(ld, NULL, NULL);
        if (rc != LDAP_SUCCESS) {
            char *diag = NULL;
            ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
            /* LDAP_CONNECT_ERROR: the server said yes to StartTLS and the
             * handshake (certificate check included) failed on our side;
             * any other code is the server refusing StartTLS. */
            if (rc == LDAP_CONNECT_ERROR)
                tls_failed(err, errlen, "StartTLS: ", s->uri, diag);
            else
                snprintf(err, errlen, "StartTLS: %s%s%s", ldap_err2string(rc),
                         diag ? ": " : "", diag ? diag : "");
            ldap_memfree(diag);
            goto fail;
        }
    }
    if (service && s->bind_dn[0]) {
        struct berval cred = { strlen(s->secret), (char *)s->secret };
        rc = ldap_sasl_bind_s(ld, s->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
        if (rc != LDAP_SUCCESS) {
            /* A long DN is cut in the message rather than the message refused. */
            snprintf(err, errlen, "bind as ldap_bind_dn %.120s: %s", s->bind_dn,
                     ldap_err2string(rc));
            goto fail;
        }
    }
    return ld;
fail:
    ldap_unbind_ext(ld, NULL, NULL);
    return NULL;
}

LDAP *passdb_ldap_conn_open(const struct passdb_ldap_settings *s, char *err, size_t errlen)
{
    return open_one(s, 1, err, errlen);
}

static void *run(void *arg)
{
    struct connector *c = arg;
    struct passdb_ldap_conn_job job;

    for (;;) {
        ssize_t n = recv(c->fd, &job, sizeof(job), 0);
        if (n == -1 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(job))
            break;   /* the loop closed its end: the backend is gone */
        struct passdb_ldap_conn_done done = { .slot = job.slot, .gen = job.gen };
        done.ld = open_one(&c->s, job.service, done.error, sizeof(done.error));
        if (send(c->fd, &done, sizeof(done), MSG_NOSIGNAL) != (ssize_t)sizeof(done)) {
            if (done.ld)
                ldap_unbind_ext(done.ld, NULL, NULL);
            break;
        }
    }
    close(c->fd);
    explicit_bzero(&c->s, sizeof(c->s));
    free(c);
    return NULL;
}

int passdb_ldap_connector_start(const struct passdb_ldap_settings *s)
{
    int sv[2];
    pthread_t tid;
    pthread_attr_t attr;
    sigset_t all, old;
    int version;

    /* libldap's global defaults are set up on first use; do it here, not in two threads. */
    (void)ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version);
    struct connector *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
        free(c);
        return -1;
    }
    c->fd = sv[1];
    c->s = *s;
    /* Signals are for the loop's epoll_pwait: the thread takes none. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&tid, &attr, run, c);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        close(sv[0]);
        close(sv[1]);
        explicit_bzero(&c->s, sizeof(c->s));
        free(c);
        errno = rc;
        return -1;
    }
    return sv[0];
}

int passdb_ldap_connector_request(int fd, const struct passdb_ldap_conn_job *job)
{
    /* Jobs are few (one per connection slot), so the socket never fills. */
    if (send(fd, job, sizeof(*job), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(*job))
        return -1;
    return 0;
}

int passdb_ldap_connector_read(int fd, struct passdb_ldap_conn_done *done)
{
    ssize_t n = recv(fd, done, sizeof(*done), MSG_DONTWAIT);
    if (n == (ssize_t)sizeof(*done))
        return 1;
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return -1;
}

void passdb_ldap_connector_stop(int fd)
{
    struct passdb_ldap_conn_done done;

    if (fd < 0)
        return;
    shutdown(fd, SHUT_WR);
    while (passdb_ldap_connector_read(fd, &done) == 1) {
        if (done.ld)
            ldap_unbind_ext(done.ld, NULL, NULL);
    }
    close(fd);
}

/* --- the loop's side: the connections it holds -------------------------- */

static const char *conn_name(int ci)
{
    return ci == PASSDB_LDAP_SERVICE ? "service" : "bind";
}

/* Ask the connector thread for connection ci. */
void passdb_ldap_pool_open(struct passdb_ldap_pool *pool, int ci, double now)
{
    struct passdb_ldap_conn *c = &pool->conns[ci];
    struct passdb_ldap_conn_job job = { .slot = ci, .gen = ++c->gen,
                                        .service = ci == PASSDB_LDAP_SERVICE };

    c->state = CONN_CONNECTING;
    if (passdb_ldap_connector_request(pool->connector, &job) == -1) {
        /* Only if the thread died, which it does not do on its own. */
        c->state = CONN_DOWN;
        c->retry_at = now + PASSDB_LDAP_RECONNECT_MAX;
        log_error("ldap: connector thread gone (%s)", strerror(errno));
    }
}

void passdb_ldap_pool_close(struct passdb_ldap_pool *pool, int ci, const char *why, double now)
{
    struct passdb_ldap_conn *c = &pool->conns[ci];
    int was_ready = c->state == CONN_READY;

    if (c->ld != NULL) {
        epoll_ctl(pool->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        ldap_unbind_ext(c->ld, NULL, NULL);
        c->ld = NULL;
        c->fd = -1;
    }
    c->state = CONN_DOWN;
    c->inflight = 0;
    if (was_ready) {
        c->backoff = 0;
        c->retry_at = now;
    } else {
        c->backoff = c->backoff > 0 ? c->backoff * 2 : PASSDB_LDAP_RECONNECT_MIN;
        if (c->backoff > PASSDB_LDAP_RECONNECT_MAX)
            c->backoff = PASSDB_LDAP_RECONNECT_MAX;
        c->retry_at = now + c->backoff;
    }
    if (strcmp(c->last_error, why) != 0) {
        snprintf(c->last_error, sizeof(c->last_error), "%s", why);
        if (was_ready)
            log_warning("ldap: %s connection lost: %s; reconnecting", conn_name(ci), why);
        else
            log_error("ldap: %s connection failed: %s; retrying in %.1fs", conn_name(ci), why,
                      c->backoff);
    }
}

static void conn_ready(struct passdb_ldap_pool *pool, int ci, LDAP *ld, double now)
{
    struct passdb_ldap_conn *c = &pool->conns[ci];
    int fd = -1;

    c->ld = ld;
    if (ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0) {
        c->state = CONN_READY;
        passdb_ldap_pool_close(pool, ci, "no socket after connect", now);
        return;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)ci };
    c->fd = fd;
    if (epoll_ctl(pool->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
        c->state = CONN_READY;
        passdb_ldap_pool_close(pool, ci, strerror(errno), now);
        return;
    }
    c->state = CONN_READY;
    c->backoff = 0;
    c->inflight = 0;
    if (c->last_error[0])
        log_info("ldap: %s connection to %s is back", conn_name(ci), pool->uri);
    else
        log_debug("ldap: %s connection to %s open", conn_name(ci), pool->uri);
    c->last_error[0] = '\0';
}

void passdb_ldap_pool_collect(struct passdb_ldap_pool *pool, double now)
{
    struct passdb_ldap_conn_done d;
    int rc;

    while ((rc = passdb_ldap_connector_read(pool->connector, &d)) == 1) {
        if (d.slot < 0 || d.slot >= pool->nconns || pool->conns[d.slot].gen != d.gen ||
            pool->conns[d.slot].state != CONN_CONNECTING) {
            if (d.ld)
                ldap_unbind_ext(d.ld, NULL, NULL);
            continue;
        }
        if (d.ld)
            conn_ready(pool, d.slot, d.ld, now);
        else
            passdb_ldap_pool_close(pool, d.slot, d.error, now);
    }
    if (rc == -1) {
        log_error("ldap: connector thread gone");
        epoll_ctl(pool->epfd, EPOLL_CTL_DEL, pool->connector, NULL);
    }
}
