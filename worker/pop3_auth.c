/*
 * AUTHORIZATION state (RFC 1939 section 4, 7): USER, PASS, QUIT, CAPA, NOOP.
 * The password goes to fastpop-auth; the worker never sees a hash.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/runtime/username.h"
#include "worker/login.h"
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
    /* The one entrance for passwords: the credential cache, then the helper. */
    return login_password(c, c->user, args, "USER", r);
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
    { "USER", POP3_IN(POP3_AUTHORIZATION), cmd_user, 0 },
    { "PASS", POP3_IN(POP3_AUTHORIZATION), cmd_pass, POP3_RAW_ARGS },
    { "STLS", POP3_IN(POP3_AUTHORIZATION), cmd_stls, 0 },
    { "AUTH", POP3_IN(POP3_AUTHORIZATION), pop3_cmd_auth, 0 },
    { "CAPA", POP3_IN(POP3_AUTHORIZATION) | POP3_IN(POP3_TRANSACTION), pop3_cmd_capa, 0 },
    { "NOOP", POP3_IN(POP3_AUTHORIZATION) | POP3_IN(POP3_TRANSACTION), pop3_cmd_noop, 0 },
    { "QUIT", POP3_IN(POP3_AUTHORIZATION), cmd_quit, 0 },
    { NULL, 0, NULL, 0 },
};
