/*
 * The LDAP password database (passdb = ldap), asynchronous: the helper's
 * event loop never waits for the directory.
 *
 * Why asynchronous libldap and not a thread pool: a lookup is two round
 * trips (search, then maybe a bind) that cost the helper no CPU, so one
 * thread can keep hundreds of them in flight, pipelined on one connection
 * (ldap_search_ext() returns a message id at once; ldap_result() with a
 * zero timeout collects whatever has arrived). A pool of N threads would
 * hold up request N+1 behind N slow ones, which is what this backend must
 * never do. The one thing libldap cannot do without blocking is opening a
 * connection (TCP connect, StartTLS or ldaps handshake, the service bind),
 * so that alone runs in one connector thread (auth/passdb_ldap_conn.c) that hands
 * finished connections to the loop. A dead or stopped server can keep that
 * thread busy for the connect and operation timeouts, never the loop.
 *
 * Connections:
 *  - one service connection, bound as ldap_bind_dn with the secret from
 *    ldap_bind_secret_file (or anonymous), carries every search, at most
 *    PASSDB_LDAP_MAX_PIPELINE at once (so a request never waits on a full socket
 *    buffer); in ldap_auth = password mode it also reads userPassword, which
 *    is then checked here with auth/scheme.c;
 *  - in ldap_auth = bind mode, ldap_bind_connections more connections for
 *    binding as the user's DN: a bind changes a connection's identity and no
 *    other request may be sent until it is answered (RFC 4511 4.2.1), so each
 *    carries one bind at a time and never a search.
 * All use LDAPv3 (libldap defaults to v2), no referrals, LDAP_OPT_NETWORK_TIMEOUT
 * = ldap_connect_timeout, StartTLS (ldap_starttls) or ldaps:// URIs with
 * certificate checks against ldap_tls_ca_file. ldap_uri may list several
 * URIs: libldap tries them in order at each connect, which is the failover.
 *
 * Timing: a request has ldap_timeout in all, from arrival to answer; one that
 * runs out is answered tempfail and its connection, which has stopped
 * answering, is closed and opened again. A lost connection fails what was in
 * flight on it (tempfail) and is reopened at once; a failed open is retried
 * after PASSDB_LDAP_RECONNECT_MIN seconds, doubling up to PASSDB_LDAP_RECONNECT_MAX. While a
 * connection is down and waiting to be retried, new requests are answered
 * tempfail at once (the worker says [SYS/TEMP]) instead of waiting.
 *
 * Lookups: ldap_user_filter with %u/%n/%d escaped (auth/passdb_ldap_filter.h) under
 * ldap_base, size limit 2: no entry is an unknown user, two are an
 * ambiguous one (refused, logged). Empty passwords never reach the server
 * (an empty simple bind is an "unauthenticated bind" that some servers
 * accept, RFC 4513 5.1.2). The maildir is the ldap_maildir_attribute value
 * if set and present (an absolute path, or "maildir:PATH"), else the maildir
 * template with %h from ldap_home_attribute. The canonical user name always
 * comes from the entry: the ldap_user_attribute value, by default the
 * attribute the filter compares with %u ("uid"), the value that equals the
 * login without regard to ASCII case if it has several, else its first. So
 * "ALICE" and "alice" are one user "alice", as the directory sees them.
 */
#ifndef FASTPOP_AUTH_PASSDB_LDAP_H
#define FASTPOP_AUTH_PASSDB_LDAP_H

#include <stddef.h>

#include "auth/protocol.h"
#include "daemon/runtime/config.h"

/* Searches in flight on the service connection (Dovecot keeps 8; ours are tiny). */
#define PASSDB_LDAP_MAX_PIPELINE 64
/* Requests held at once; more are answered tempfail (bounded memory). */
#define PASSDB_LDAP_MAX_REQUESTS 1024
/* Reconnect backoff, seconds. */
#define PASSDB_LDAP_RECONNECT_MIN 0.5
#define PASSDB_LDAP_RECONNECT_MAX 16.0
/* Largest secret file and DN kept. */
#define PASSDB_LDAP_SECRET_MAX 512
#define PASSDB_LDAP_DN_MAX 1024

/* What the backend needs from the configuration, with the secret read in. */
struct passdb_ldap_settings {
    char uri[CONFIG_PATH_MAX];
    int starttls;
    char ca_file[CONFIG_PATH_MAX];
    char bind_dn[CONFIG_PATH_MAX];
    char secret[PASSDB_LDAP_SECRET_MAX];
    char base[CONFIG_PATH_MAX];
    int scope;                        /* LDAP_SCOPE_* */
    char filter[CONFIG_PATH_MAX];
    int mode;                         /* enum config_ldap_auth */
    char maildir_attr[CONFIG_NAME_MAX];
    char host_attr[CONFIG_NAME_MAX];  /* ldap_host_attribute; "" = not fetched */
    char home_attr[CONFIG_NAME_MAX];
    char user_attr[CONFIG_NAME_MAX];
    /* The POP3 policy attributes (etc/fastpop.conf.5); "" = not fetched. */
    char pop3_enabled_attr[CONFIG_NAME_MAX];
    char pop3_plaintext_attr[CONFIG_NAME_MAX];
    char login_delay_attr[CONFIG_NAME_MAX];
    char expire_attr[CONFIG_NAME_MAX];
    char maildir_template[CONFIG_PATH_MAX];
    int connect_timeout;              /* seconds */
    int timeout;                      /* seconds */
    int bind_connections;
    /* What an unknown user's password is checked against in password mode,
     * so "no such user" costs what a wrong password costs (from auth/passdb.h). */
    char dummy_hash[128];
};

/*
 * One answer. reason is a word for the "reason=" of the log line. outage and
 * account_refused tell the credential cache (auth/cache_policy.h) what the
 * answer means: only an outage may be answered from a stale entry, and a
 * refusal of the account makes it forget the account's cached logins.
 */
struct passdb_ldap_answer {
    enum auth_status status;
    int outage;                       /* tempfail: no answer from the directory in time */
    int account_refused;              /* fail: the directory refused the account itself */
    const char *reason;
    char user[AUTH_USER_MAX];
    char maildir[AUTH_PATH_MAX];
    char host[AUTH_HOST_MAX];         /* ldap_host_attribute's value; "" if none or too long */
    char message[AUTH_MESSAGE_MAX];
    struct user_policy policy;        /* the user's own POP3 policy (with AUTH_OK) */
    /* Read from the entry, applied only once the password matched (so a
     * guesser learns nothing): POP3 refused, or the policy attribute whose
     * value cannot be read (NULL if none). */
    int pop3_disabled;
    const char *policy_bad;
};

/* Called from passdb_ldap_poll() (never from submit) with the ctx given to submit. */
typedef void passdb_ldap_done_fn(void *arg, void *ctx, const struct passdb_ldap_answer *ans);

struct passdb_ldap;

/*
 * Fill s from cfg and read the secret file (which must not be readable by
 * others). Returns 0, or -1 with a message in err.
 */
int passdb_ldap_settings_from(struct passdb_ldap_settings *s, const struct config *cfg, char *err,
                       size_t errlen);

/* Wipe the secret. */
void passdb_ldap_settings_wipe(struct passdb_ldap_settings *s);

/*
 * Start the backend (the connector thread, and the first connection).
 * Returns NULL with errno on failure (ENOMEM, or what pthread/socketpair said).
 */
struct passdb_ldap *passdb_ldap_new(const struct passdb_ldap_settings *s, passdb_ldap_done_fn *done,
                                      void *arg);

/*
 * Answer every request still held (tempfail) and free everything. The
 * connector thread is not waited for: it exits when it sees the backend gone.
 */
void passdb_ldap_free(struct passdb_ldap *lb);

/*
 * Start looking up user / checking password. Returns 0 when queued (the answer
 * comes through done), or -1 with *ans filled when answered at once (busy,
 * down, empty password). The password is copied and wiped when done with.
 */
int passdb_ldap_submit(struct passdb_ldap *lb, const char *user, const char *password,
                        void *ctx, struct passdb_ldap_answer *ans);

/* An fd (epoll) that becomes readable when poll has work. */
int passdb_ldap_fd(const struct passdb_ldap *lb);
/* Milliseconds until poll must run anyway (a deadline or a retry), or -1. */
int passdb_ldap_timeout_ms(const struct passdb_ldap *lb);
/* Collect results and connections, answer expired requests, send queued ones. */
void passdb_ldap_poll(struct passdb_ldap *lb);
/* Requests held (for --test, which waits until it is 0). */
int passdb_ldap_pending(const struct passdb_ldap *lb);

/* ---- the parts that need no server, in auth/passdb_ldap_entry.c ---- */

/* The attributes of the one entry found, as NUL-terminated strings. */
struct passdb_ldap_found {
    const char *dn;
    const char *const *passwords;     /* userPassword values (password mode) */
    int npasswords;
    const char *maildir;              /* ldap_maildir_attribute value, or NULL */
    const char *home;                 /* ldap_home_attribute value, or NULL */
    const char *user;                 /* the user attribute's value (passdb_ldap_entry_pick_user), or NULL */
    const char *host;                 /* ldap_host_attribute value, or NULL */
    const char *pop3_enabled;         /* ldap_pop3_enabled_attribute value, or NULL */
    const char *pop3_plaintext;       /* ldap_pop3_plaintext_attribute value, or NULL */
    const char *login_delay;          /* ldap_login_delay_attribute value, or NULL */
    const char *expire;               /* ldap_expire_attribute value, or NULL */
};

/* Of the user attribute's n values, the one equal to login ignoring ASCII case, else the first; NULL if n is 0. */
const char *passdb_ldap_entry_pick_user(const char *const *values, int n, const char *login);

/*
 * Password mode: check password against every userPassword value. Returns
 * SCHEME_MATCH if one matches, else the most telling other result
 * (mismatch before malformed before unknown scheme). With no values at all:
 * SCHEME_MISMATCH (a user without a password cannot log in).
 */
int passdb_ldap_entry_verify(const struct passdb_ldap_found *f, const char *password);

/*
 * Fill ans->user (f->user, which must follow daemon/runtime/username.h),
 * ans->maildir and the POP3 policy (ans->policy, ans->pop3_disabled,
 * ans->policy_bad) from f. Returns 0, or -1 with ans set to tempfail
 * (reason "user-attribute" or "maildir", message for the log).
 *
 * The policy attributes: ldap_pop3_enabled_attribute and
 * ldap_pop3_plaintext_attribute hold a boolean (TRUE/FALSE as RFC 4517
 * writes them; yes/no, 1/0, on/off, y/n too, any case): FALSE refuses POP3
 * (-ERR [SYS/PERM]), or a login without TLS (-ERR [AUTH]); absent is TRUE.
 * ldap_login_delay_attribute holds seconds, ldap_expire_attribute days or
 * "never"; absent means the global setting.
 */
int passdb_ldap_entry_result(const struct passdb_ldap_settings *s, const struct passdb_ldap_found *f,
                      struct passdb_ldap_answer *ans);

/*
 * The answer once the password matched: AUTH_OK, or what the entry's POP3
 * policy makes of it (AUTH_TEMPFAIL for an unreadable attribute, reason
 * "policy-attribute", the message in why; AUTH_REFUSED for POP3 disabled,
 * "pop3-disabled"), with *reason and *message replaced then.
 */
enum auth_status passdb_ldap_entry_policy_status(const struct passdb_ldap_answer *ans,
                                                 const char **reason, const char **message,
                                                 char *why, size_t whylen);

/*
 * What an LDAP result code means for a login. Why these classes: a cached
 * password may stand in for the directory only while the directory cannot
 * answer (stale-if-error); when it does answer that the account may not log
 * in (locked, disabled, a policy), that answer wins at once, or a locked
 * account would keep working for auth_cache_stale_ttl.
 */
enum passdb_ldap_outcome {
    PASSDB_LDAP_OUTCOME_OK,          /* 0: success */
    PASSDB_LDAP_OUTCOME_BAD_LOGIN,   /* 49 48 34 32: wrong password, no password, no entry: fail */
    PASSDB_LDAP_OUTCOME_REFUSED,     /* 53 19 50: the account is refused (locked, disabled): fail */
    PASSDB_LDAP_OUTCOME_OUTAGE,      /* down, connect error, timeout, 3 51 52: tempfail, stale ok */
    PASSDB_LDAP_OUTCOME_ERROR,       /* anything else (setup, protocol, server error): tempfail */
};

/* The outcome of a user bind's result code. */
enum passdb_ldap_outcome passdb_ldap_bind_outcome(int ldap_rc);
/* The outcome of the service connection's search result code: never a refusal of the user. */
enum passdb_ldap_outcome passdb_ldap_search_outcome(int ldap_rc);
/* The answer an outcome gives: ok, fail (bad login, refused) or tempfail (outage, error). */
enum auth_status passdb_ldap_outcome_status(enum passdb_ldap_outcome out);

#endif
