/*
 * The LDAP connections of auth/passdb_ldap.c. The connector: one thread
 * that opens them, the only step libldap cannot do without blocking (TCP connect to each URI
 * in turn, StartTLS or the ldaps handshake, the service bind). Each of those
 * is bounded by ldap_connect_timeout / ldap_timeout, and none of it runs in
 * the event loop.
 *
 * The loop sends a job {slot, gen, service} over a socketpair and gets back
 * {slot, gen, LDAP *, error text} when the connection is ready or failed.
 * A handle is owned by whoever holds it: the thread until it sends it, the
 * loop after it receives it. The thread has its own copy of the settings
 * (the secret included) and frees it when the loop closes its end; results
 * the loop never read are unbound by passdb_ldap_connector_stop().
 */
#ifndef FASTPOP_AUTH_PASSDB_LDAP_CONN_H
#define FASTPOP_AUTH_PASSDB_LDAP_CONN_H

#include <ldap.h>
#include <stdint.h>

#include "auth/passdb_ldap.h"

struct passdb_ldap_conn_job {
    int slot;
    uint32_t gen;
    int service;        /* 1: bind as ldap_bind_dn; 0: a connection for user binds */
};

struct passdb_ldap_conn_done {
    int slot;
    uint32_t gen;
    LDAP *ld;           /* NULL: failed, see error */
    char error[200];
};

/* Start the thread. Returns the loop's end of the socketpair, or -1 with errno. */
int passdb_ldap_connector_start(const struct passdb_ldap_settings *s);

/* Ask for a connection. -1 with errno if the thread is gone. */
int passdb_ldap_connector_request(int fd, const struct passdb_ldap_conn_job *job);

/* Read one finished job: 1 got one, 0 none waiting, -1 the thread is gone. */
int passdb_ldap_connector_read(int fd, struct passdb_ldap_conn_done *done);

/* Close the loop's end; connections finished but not read are unbound. */
void passdb_ldap_connector_stop(int fd);

/*
 * The loop's side: the connections it holds, each registered in epfd with
 * its slot as the event data. Slot 0 is the service connection (searches);
 * the others carry user binds, one at a time.
 */
#define PASSDB_LDAP_SERVICE 0
/* The service connection and at most 64 for binds (ldap_bind_connections' maximum). */
#define PASSDB_LDAP_MAX_CONNS (1 + 64)

enum passdb_ldap_conn_state { CONN_DOWN, CONN_CONNECTING, CONN_READY };

struct passdb_ldap_conn {
    enum passdb_ldap_conn_state state;
    LDAP *ld;
    int fd;
    uint32_t gen;               /* matches connector answers to the current attempt */
    double retry_at, backoff;   /* monotonic seconds */
    int inflight;
    char last_error[200];       /* logged once until it changes or the connection works */
};

struct passdb_ldap_pool {
    const char *uri;            /* for the log */
    int epfd;
    int connector;              /* passdb_ldap_connector_start()'s socket */
    struct passdb_ldap_conn conns[PASSDB_LDAP_MAX_CONNS];
    int nconns;
};

/* Ask the connector thread for connection ci (now: the loop's monotonic clock). */
void passdb_ldap_pool_open(struct passdb_ldap_pool *pool, int ci, double now);

/*
 * Close connection ci, which failed or stopped answering, and say when to
 * try again: at once if it had been working, else after a backoff from
 * PASSDB_LDAP_RECONNECT_MIN doubling to _MAX. Logged once per distinct
 * error. Failing the requests it carried is the caller's.
 */
void passdb_ldap_pool_close(struct passdb_ldap_pool *pool, int ci, const char *why, double now);

/* Take what the connector thread has finished: ready connections, or failed ones (closed). */
void passdb_ldap_pool_collect(struct passdb_ldap_pool *pool, double now);

/*
 * One service connection, blocking (bounded by the timeouts), bound as
 * ldap_bind_dn: for popctl's listing of every user. NULL with err set.
 */
LDAP *passdb_ldap_conn_open(const struct passdb_ldap_settings *s, char *err, size_t errlen);

/* Set the per-handle options every connection gets (exposed for the tests). */
int passdb_ldap_conn_options(LDAP *ld, const struct passdb_ldap_settings *s, char *err, size_t errlen);

#endif
