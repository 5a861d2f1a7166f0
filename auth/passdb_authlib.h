/*
 * Courier's authentication (passdb = authlib): the password is checked by an
 * existing courier-authdaemond, so a Courier site keeps its authdaemonrc and
 * whatever modules it lists (authuserdb, authmysql, authpgsql, authldap,
 * authpam) and swaps only the POP3 daemon.
 *
 * The wire format is authlib's client protocol over authdaemond's Unix
 * socket (authlib_socket): one request per connection,
 *
 *   AUTH <n>\n pop3\n login\n <user>\n <password>\n
 *
 * where <n> is the length of everything after the first line; the answer is
 * "FAIL\n" (wrong password or unknown user: authdaemond does not say which),
 * or KEY=VALUE lines (UID, GID, HOME, MAILDIR, ADDRESS, OPTIONS, ...) ending
 * with a line ".". A connection closed without an answer is how authdaemond
 * reports a module that could not answer (a database down): an outage.
 *
 * Asynchronous like the LDAP backend: at most PASSDB_AUTHLIB_CONNECTIONS
 * requests are on the wire at once, each on its own non-blocking connection
 * watched by this backend's epoll descriptor (passdb_authlib_fd), the rest
 * queued. A request has authlib_timeout in all, from arrival to answer; one
 * that runs out, a socket nobody listens on, or a connection closed without
 * an answer is answered tempfail with outage set (stale-if-error may answer,
 * auth/cache_policy.h). Passwords with a newline are refused without asking:
 * they cannot be sent in this format.
 *
 * The answer:
 *  - maildir: MAILDIR if absolute, HOME/MAILDIR if relative (Courier opens it
 *    from the home directory), else the maildir template with %h = HOME (the
 *    default "%h/Maildir" is Courier's own default, MAILDIRPATH=Maildir);
 *  - the canonical name is ADDRESS (authlib's login id) if it is a valid
 *    user name, else the name as typed;
 *  - OPTIONS disablepop3=1: AUTH_REFUSED (the worker says -ERR [SYS/PERM]);
 *    authdaemond has already merged authdaemonrc's DEFAULTOPTIONS into it;
 *  - UID: fastpop serves every maildir as one mail user (user in
 *    fastpop.conf). A user whose UID is another one is AUTH_REFUSED (logged
 *    reason=foreign-uid): a worker could not read that maildir, or could
 *    read one it should not, and Courier's own pop3d would have switched to
 *    that uid. Sites with per-user uids are not served by this backend.
 */
#ifndef FASTPOP_AUTH_PASSDB_AUTHLIB_H
#define FASTPOP_AUTH_PASSDB_AUTHLIB_H

#include <stddef.h>
#include <sys/types.h>

#include "auth/passdb_ldap.h"
#include "daemon/runtime/config.h"

/*
 * Connections at once: authdaemond runs `daemons` processes (5 by default),
 * each serving one connection at a time; a few more keep the next requests
 * waiting in its accept queue instead of ours. Small on purpose: each costs a
 * descriptor and the daemon's work, and more only queue there.
 */
#define PASSDB_AUTHLIB_CONNECTIONS 8
/* Requests held at once; more are answered tempfail (bounded memory). */
#define PASSDB_AUTHLIB_MAX_REQUESTS 1024
/* Largest answer read: real ones are a few hundred bytes (paths, hashes, options). */
#define PASSDB_AUTHLIB_ANSWER_MAX 8192

struct passdb_authlib_settings {
    char socket_path[CONFIG_PATH_MAX];
    int timeout;                          /* seconds */
    char maildir_template[CONFIG_PATH_MAX];
    uid_t mail_uid;                       /* the only UID served */
};

/*
 * The answer type is the one the asynchronous backends share
 * (struct passdb_ldap_answer, auth/passdb_ldap.h), so auth/passdb.c turns
 * both into a result the same way.
 */
typedef void passdb_authlib_done_fn(void *arg, void *ctx, const struct passdb_ldap_answer *ans);

struct passdb_authlib;

/* Fill s from cfg (the mail user's uid looked up). 0, or -1 with a message in err. */
int passdb_authlib_settings_from(struct passdb_authlib_settings *s, const struct config *cfg,
                                 char *err, size_t errlen);

/* NULL with errno (ENOMEM, or what epoll said). */
struct passdb_authlib *passdb_authlib_new(const struct passdb_authlib_settings *s,
                                          passdb_authlib_done_fn *done, void *arg);
/* Answer every request still held (tempfail) and free everything. */
void passdb_authlib_free(struct passdb_authlib *ab);

/*
 * Start checking user / password. 0 when queued (the answer comes through
 * done, from poll), or -1 with *ans filled when answered at once (empty or
 * unsendable password, busy). The password is copied and wiped when sent.
 */
int passdb_authlib_submit(struct passdb_authlib *ab, const char *user, const char *password,
                          void *ctx, struct passdb_ldap_answer *ans);

int passdb_authlib_fd(const struct passdb_authlib *ab);
int passdb_authlib_timeout_ms(const struct passdb_authlib *ab);
void passdb_authlib_poll(struct passdb_authlib *ab);

/*
 * The part that needs no daemon (auth/passdb_authlib_answer.c): turn a
 * complete answer text (from "FAIL" or the first KEY= line to the ".") for
 * login into ans. Returns 0 (ans filled), or -1 when text is not a complete
 * answer.
 */
int passdb_authlib_parse(const struct passdb_authlib_settings *s, const char *login,
                         const char *text, struct passdb_ldap_answer *ans);

#endif
