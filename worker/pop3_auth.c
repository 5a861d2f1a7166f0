/*
 * AUTHORIZATION state (RFC 1939 section 4, 7): USER, PASS, QUIT, CAPA, NOOP.
 * The password goes to fastpop-auth; the worker never sees a hash.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/runtime/log.h"
#include "daemon/runtime/username.h"
#include "shm/stats.h"
#include "worker/auth_client.h"
#include "worker/loop.h"
#include "worker/mailbox.h"
#include "worker/pop3.h"
#include "worker/pop3_sasl.h"

_Static_assert(USERNAME_MAX <= sizeof(((struct conn *)0)->user) && USERNAME_MAX <= AUTH_USER_MAX,
               "a name the rule accepts must fit the session and the helper protocol");

/* RFC 2595 section 2.2 territory: never take a password in the clear unless told to. */
static int refuse_plaintext(struct conn *c, struct pop3_reply *r)
{
    if (pop3_plaintext_allowed(c))
        return 0;
    pop3_set_reply(r, "AUTH", "Plaintext authentication is not allowed without TLS (use STLS)");
    return 1;
}

static enum pop3_verdict cmd_stls(struct conn *c, char *args, struct pop3_reply *r)
{
    if (*args) {
        pop3_set_reply(r, NULL, "STLS takes no arguments");
        return POP3_BAD;
    }
    if (c->ssl != NULL) {
        pop3_set_reply(r, NULL, "TLS is already active");
        return POP3_ERR;
    }
    if (!pop3_stls_available(c)) {
        pop3_set_reply(r, NULL, "TLS is not available");
        return POP3_ERR;
    }
    pop3_set_reply(r, NULL, "Begin TLS negotiation");
    r->start_tls = 1;
    return POP3_OK;
}

static enum pop3_verdict cmd_user(struct conn *c, char *args, struct pop3_reply *r)
{
    if (refuse_plaintext(c, r))
        return POP3_ERR;
    /* The one name rule of every mechanism (daemon/runtime/username.h). */
    if (username_check(args) == -1) {
        c->user[0] = '\0';
        pop3_set_reply(r, NULL, "Invalid user name");
        return POP3_BAD;
    }
    snprintf(c->user, sizeof(c->user), "%s", args);
    pop3_set_reply(r, NULL, "Send your password");
    return POP3_OK;
}

static enum pop3_verdict cmd_pass(struct conn *c, char *args, struct pop3_reply *r)
{
    if (refuse_plaintext(c, r)) {
        explicit_bzero(args, strlen(args));
        return POP3_ERR;
    }
    if (c->user[0] == '\0') {
        pop3_set_reply(r, NULL, "Send USER first");
        return POP3_BAD;
    }
    /* RFC 1939 allows spaces in the password: the whole rest of the line. */
    if (*args == '\0' || strlen(args) >= AUTH_PASS_MAX) {
        explicit_bzero(args, strlen(args));
        c->user[0] = '\0';
        pop3_set_reply(r, "AUTH", "Authentication failed");
        return POP3_ERR;
    }
    /* The credential cache, then the helper (worker/pop3_login.c). */
    return pop3_login_password(c, c->user, args, "USER", r);
}

static enum pop3_verdict cmd_quit(struct conn *c, char *args, struct pop3_reply *r)
{
    (void)c;
    (void)args;
    pop3_set_reply(r, NULL, "Bye");
    r->close_after = 1;
    return POP3_OK;
}

const struct pop3_command pop3_auth_commands[] = {
    { "USER", POP3_IN(CONN_AUTHORIZATION), cmd_user, 0 },
    { "PASS", POP3_IN(CONN_AUTHORIZATION), cmd_pass, POP3_RAW_ARGS },
    { "STLS", POP3_IN(CONN_AUTHORIZATION), cmd_stls, 0 },
    { "AUTH", POP3_IN(CONN_AUTHORIZATION), pop3_cmd_auth, 0 },
    { "CAPA", POP3_IN(CONN_AUTHORIZATION) | POP3_IN(CONN_TRANSACTION), pop3_cmd_capa, 0 },
    { "NOOP", POP3_IN(CONN_AUTHORIZATION) | POP3_IN(CONN_TRANSACTION), pop3_cmd_noop, 0 },
    { "QUIT", POP3_IN(CONN_AUTHORIZATION), cmd_quit, 0 },
    { NULL, 0, NULL, 0 },
};

static void auth_failed(struct conn *c, struct pop3_reply *r)
{
    c->auth_failures++;
    log_info("login failed user=%s ip=%s mechanism=%s failures=%u", c->user, c->ip,
             c->auth_mech ? c->auth_mech : "USER", c->auth_failures);
    c->user[0] = '\0';
    conn_set_state(c, CONN_AUTHORIZATION);
    pop3_write_reply(c, POP3_ERR, r);
    if (c->auth_failures >= (unsigned)c->lp->cfg->max_auth_failures) {
        conn_reply(c, "-ERR [AUTH] Too many authentication failures\r\n");
        conn_finish(c, "auth-failures");
    }
}

void pop3_auth_answer(struct conn *c, enum auth_status status, const char *user,
                      const char *maildir)
{
    pop3_auth_finish(c, status, user, maildir);
    conn_resume(c);
}

/* The login's last step: its mailbox is open, or is not (worker/mailbox.h). */
static void mailbox_opened(struct conn *c, enum mailbox_open_result res)
{
    struct pop3_reply r = { 0 };
    if (res == MAILBOX_OPEN_OK) {
        conn_set_state(c, CONN_TRANSACTION);
        stats_login(c->auth_mech, STATS_LOGIN_OK);
        pop3_set_reply(&r, NULL, "Logged in, %u messages", mailbox_count(c->session));
        pop3_write_reply(c, POP3_OK, &r);
        log_info("login user=%s ip=%s mechanism=%s messages=%u cache=%s", c->user, c->ip,
                 c->auth_mech ? c->auth_mech : "USER", mailbox_count(c->session),
                 c->auth_cached ? "hit" : "miss");
        return;
    }
    stats_login(c->auth_mech, res == MAILBOX_OPEN_IN_USE ? STATS_LOGIN_IN_USE
                                                         : STATS_LOGIN_TEMPFAIL);
    if (res == MAILBOX_OPEN_IN_USE)
        pop3_set_reply(&r, "IN-USE", "Mailbox is locked by another POP3 session");
    else if (res == MAILBOX_OPEN_TOO_BIG)
        /* RFC 3206: it takes an administrator, trying again will not help. */
        pop3_set_reply(&r, "SYS/PERM", "Mailbox has too many messages to be opened by POP3");
    else
        pop3_set_reply(&r, "SYS/TEMP", "Cannot open the mailbox, try again later");
    conn_set_state(c, CONN_AUTHORIZATION);
    pop3_write_reply(c, POP3_ERR, &r);
    c->user[0] = '\0';
}

/* A mailbox read on the loader thread: from the loop, outside c's own event. */
static void mailbox_loaded(struct conn *c, enum mailbox_open_result res)
{
    mailbox_opened(c, res);
    pop3_command_done(c);
    conn_resume(c);
}

void pop3_auth_finish(struct conn *c, enum auth_status status, const char *user,
                      const char *maildir)
{
    struct pop3_reply r = { 0 };

    /* Whatever the outcome, an AUTH exchange is over (worker/pop3_sasl.c). */
    pop3_sasl_release(c);
    /* c->user is still the name as typed: what the memo is keyed by. */
    pop3_login_settle(c, status);
    if (status == AUTH_FAIL) {
        stats_login(c->auth_mech, STATS_LOGIN_FAILED);
        pop3_set_reply(&r, "AUTH", "Authentication failed");
        auth_failed(c, &r);
    } else if (status == AUTH_REFUSED) {
        /* The password was right; the account may not use POP3 (auth/protocol.h). */
        stats_login(c->auth_mech, STATS_LOGIN_FAILED);
        pop3_set_reply(&r, "SYS/PERM", "POP3 access is not allowed for this account");
        log_info("login refused user=%s ip=%s", c->user, c->ip);
        c->user[0] = '\0';
        conn_set_state(c, CONN_AUTHORIZATION);
        pop3_write_reply(c, POP3_ERR, &r);
    } else if (status != AUTH_OK) {
        pop3_set_reply(&r, "SYS/TEMP", "Temporary authentication failure, try again later");
        stats_login(c->auth_mech, STATS_LOGIN_TEMPFAIL);
        log_info("login tempfail user=%s ip=%s", c->user, c->ip);
        c->user[0] = '\0';
        conn_set_state(c, CONN_AUTHORIZATION);
        pop3_write_reply(c, POP3_ERR, &r);
    } else {
        snprintf(c->user, sizeof(c->user), "%s", user);
        enum mailbox_open_result res = mailbox_open(c, maildir, mailbox_loaded);
        if (res == MAILBOX_OPEN_LOADING) {
            /* Answered, and timed, when the loader is done (mailbox_loaded). */
            conn_set_state(c, CONN_MAILBOX_LOAD);
            return;
        }
        mailbox_opened(c, res);
    }
    /* PASS or AUTH is answered: its time includes the helper and the mailbox sync. */
    pop3_command_done(c);
}
