/*
 * AUTH (RFC 5034): one exchange per connection at a time, in c->sasl while
 * it runs. See pop3_sasl.h for the rules.
 */
#include "daemon/runtime/base64.h"
#include "worker/pop3_sasl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/runtime/log.h"
#include "daemon/runtime/username.h"
#include "shm/stats.h"
#include "worker/auth_client.h"
#include "worker/login.h"
#include "worker/loop.h"
#include "worker/sasl.h"

/* Decoded response: POP3_SASL_LINE_MAX of base64, and a NUL. */
#define DECODED_MAX (POP3_SASL_LINE_MAX / 4 * 3 + 1)

enum sasl_step {
    STEP_PLAIN,            /* PLAIN: want the whole message */
    STEP_LOGIN_USER,       /* LOGIN: want the user name */
    STEP_LOGIN_PASS,       /* LOGIN: want the password */
    STEP_SCRAM_FIRST,      /* want client-first */
    STEP_SCRAM_FINAL,      /* want client-final (server-first was sent) */
    STEP_SCRAM_DONE,       /* server-final was sent: want the empty response */
};

struct sasl_exchange {
    enum sasl_mech mech;
    enum sasl_step step;
    char client_first[AUTH_SCRAM_MSG_MAX];
    char server_first[AUTH_SCRAM_MSG_MAX];
    char user[AUTH_USER_MAX];          /* LOGIN's name; SCRAM's canonical user */
    char maildir[AUTH_PATH_MAX];       /* SCRAM: where to go after the empty response */
};

/* LOGIN's prompts, as every client expects them: "Username:" and "Password:". */
#define LOGIN_USER_PROMPT "VXNlcm5hbWU6"
#define LOGIN_PASS_PROMPT "UGFzc3dvcmQ6"

static unsigned offered(const struct conn *c)
{
    /*
     * Nothing before TLS where passwords may not cross in the clear: PLAIN and
     * LOGIN show the password, and SCRAM, while it does not, still hands a
     * listener the salt, the nonces and a proof to attack offline, and a
     * client that falls back to it would be talked out of using TLS.
     */
    if (!pop3_plaintext_allowed(c))
        return 0;
    return sasl_mechs_parse(c->lp->cfg->auth_mechanisms);
}

void pop3_sasl_capa(struct conn *c)
{
    unsigned set = offered(c);
    if (!pop3_in(c, POP3_AUTHORIZATION) || set == 0)
        return;
    conn_reply(c, "SASL");
    for (int m = 0; m < SASL_MECHS; m++) {
        if (set & (1u << m))
            conn_reply(c, " %s", sasl_mech_name((enum sasl_mech)m));
    }
    conn_reply(c, "\r\n");
}

static void list_body(struct conn *c)
{
    unsigned set = offered(c);
    for (int m = 0; m < SASL_MECHS; m++) {
        if (set & (1u << m))
            conn_reply(c, "%s\r\n", sasl_mech_name((enum sasl_mech)m));
    }
    conn_reply(c, ".\r\n");
}

void pop3_sasl_release(struct conn *c)
{
    if (c->sasl != NULL) {
        explicit_bzero(c->sasl, sizeof(*c->sasl));
        free(c->sasl);
        c->sasl = NULL;
    }
    c->line_limit = POP3_LINE_MAX;
}

/* Send a challenge and wait for the client's next line. */
static void challenge(struct conn *c, enum sasl_step next, const char *b64)
{
    c->sasl->step = next;
    conn_reply(c, "+ %s\r\n", b64);
    c->line_limit = POP3_SASL_LINE_MAX;
    pop3_set_state(c, POP3_SASL);
}

/* The exchange failed the way a wrong password does. */
static void fail(struct conn *c, const char *user)
{
    if (user != c->user) {
        /* Callers pass a name the rule took (it fits) or "-". */
        size_t n = strnlen(user, sizeof(c->user) - 1);
        memcpy(c->user, user, n);
        c->user[n] = '\0';
    }
    pop3_sasl_release(c);
    login_finish(c, AUTH_FAIL, "", "", NULL);
}

/* The rule USER applies too (daemon/runtime/username.h): one rule for every mechanism. */
static int usable_name(const char *s)
{
    return username_check(s) == 0;
}

/* The name to log for a failure now: what the client gave, if usable. */
static const char *name_so_far(const struct conn *c)
{
    if (c->user[0])
        return c->user;
    if (c->sasl != NULL && usable_name(c->sasl->user))
        return c->sasl->user;
    return "-";
}

static void ask_helper_failed(struct conn *c, const struct pop3_reply *r)
{
    pop3_sasl_release(c);
    pop3_set_state(c, POP3_AUTHORIZATION);
    pop3_write_reply(c, POP3_ERR, r);
}

/*
 * Hand a user name and password to the login path (cache, then helper). The
 * exchange is over: user and password may live in it, so they are used first.
 */
static void login(struct conn *c, const char *user, char *password)
{
    struct pop3_reply r = { 0 };
    enum sasl_mech mech = c->sasl->mech;

    if (!usable_name(user) || strlen(password) >= AUTH_PASS_MAX) {
        explicit_bzero(password, strlen(password));
        c->auth_mech = sasl_mech_name(mech);
        fail(c, usable_name(user) ? user : "-");
        return;
    }
    snprintf(c->user, sizeof(c->user), "%s", user);
    enum pop3_verdict v = login_password(c, c->user, password, sasl_mech_name(mech), &r);
    pop3_sasl_release(c);
    if (v == POP3_ERR)
        ask_helper_failed(c, &r);
}

static void step_plain(struct conn *c, char *msg, size_t len)
{
    const char *authzid, *authcid, *passwd;

    c->auth_mech = "PLAIN";
    if (sasl_plain_parse(msg, len, &authzid, &authcid, &passwd) == -1) {
        fail(c, "-");
        return;
    }
    /* No proxy authorization: acting as someone else is not a thing here. */
    if (authzid[0] != '\0' && strcmp(authzid, authcid) != 0) {
        explicit_bzero(msg, len);
        fail(c, usable_name(authcid) ? authcid : "-");
        return;
    }
    login(c, authcid, (char *)passwd);
}

static void scram_challenged(void *ctx, const struct auth_answer *a);
static void scram_answered(void *ctx, const struct auth_answer *a);

static void scram_send(struct conn *c, int final, const char *msg)
{
    struct pop3_reply r = { 0 };
    c->auth_mech = "SCRAM-SHA-256";
    struct helper_client *helper = auth_client_helper(c->lp->auth);
    c->auth_request = final ? helper_client_scram_finish(helper, c->sasl->client_first,
                                                         c->sasl->server_first, msg, c->ip,
                                                         scram_answered, c)
                            : helper_client_scram_start(helper, msg, c->ip, scram_challenged, c);
    if (c->auth_request == 0) {
        stats_login(c->auth_mech, STATS_LOGIN_TEMPFAIL);
        pop3_set_reply(&r, "SYS/TEMP", "Authentication service unavailable, try again later");
        ask_helper_failed(c, &r);
        return;
    }
    pop3_set_state(c, POP3_AUTH_WAIT);
}

/* One decoded client response for the current step. */
static void step(struct conn *c, char *msg, size_t len)
{
    struct sasl_exchange *x = c->sasl;
    int text_ok = memchr(msg, '\0', len) == NULL && len < AUTH_SCRAM_MSG_MAX;

    switch (x->step) {
    case STEP_PLAIN:
        step_plain(c, msg, len);
        return;
    case STEP_LOGIN_USER:
        c->auth_mech = "LOGIN";
        if (memchr(msg, '\0', len) != NULL || len >= sizeof(x->user)) {
            fail(c, "-");
            return;
        }
        memcpy(x->user, msg, len + 1);
        challenge(c, STEP_LOGIN_PASS, LOGIN_PASS_PROMPT);
        return;
    case STEP_LOGIN_PASS:
        if (memchr(msg, '\0', len) != NULL || len == 0) {
            explicit_bzero(msg, len);
            fail(c, name_so_far(c));
            return;
        }
        login(c, x->user, msg);
        return;
    case STEP_SCRAM_FIRST:
        if (!text_ok || len == 0) {
            c->auth_mech = "SCRAM-SHA-256";
            fail(c, "-");
            return;
        }
        memcpy(x->client_first, msg, len + 1);
        scram_send(c, 0, msg);
        return;
    case STEP_SCRAM_FINAL:
        if (!text_ok || len == 0) {
            fail(c, name_so_far(c));
            return;
        }
        scram_send(c, 1, msg);
        explicit_bzero(msg, len);
        return;
    case STEP_SCRAM_DONE:
        /* RFC 5034 has no success data: the empty line acknowledges server-final. */
        if (len != 0) {
            fail(c, name_so_far(c));
            return;
        }
        {
            /* Copies: the exchange is freed before the login ends. */
            char user[AUTH_USER_MAX], maildir[AUTH_PATH_MAX];
            memcpy(user, x->user, sizeof(user));
            memcpy(maildir, x->maildir, sizeof(maildir));
            pop3_sasl_release(c);
            /* scram_answered() kept the user's policy in c->policy. */
            login_finish(c, AUTH_OK, user, maildir, &c->policy);
        }
        return;
    }
}

/* Decode a response (or the initial response) and run the step. */
static void respond(struct conn *c, const char *b64, size_t b64len)
{
    unsigned char decoded[DECODED_MAX];
    long n;

    /* "=" is the empty initial response (RFC 5034 section 4). */
    if (b64len == 1 && b64[0] == '=')
        n = 0;
    else
        n = base64_decode(b64, b64len, decoded, sizeof(decoded) - 1, BASE64_STRICT);
    if (n < 0) {
        log_debug("conn %s:%u: AUTH %s: the response is not base64", c->ip, c->port,
                  c->auth_mech);
        fail(c, name_so_far(c));
        return;
    }
    decoded[n] = '\0';
    step(c, (char *)decoded, (size_t)n);
    explicit_bzero(decoded, (size_t)n + 1);
}

void pop3_sasl_response(struct conn *c, char *line, size_t len)
{
    if (c->sasl == NULL) {
        pop3_set_state(c, POP3_AUTHORIZATION);
        return;
    }
    if (len == 1 && line[0] == '*') {
        /* Cancelled by the client: -ERR (RFC 5034), not a failed login. */
        pop3_sasl_release(c);
        c->user[0] = '\0';
        pop3_set_state(c, POP3_AUTHORIZATION);
        conn_reply(c, "-ERR Authentication cancelled\r\n");
        return;
    }
    respond(c, line, len);
    explicit_bzero(line, len);
}

void pop3_sasl_too_long(struct conn *c)
{
    if (c->sasl != NULL)
        c->auth_mech = sasl_mech_name(c->sasl->mech);
    fail(c, name_so_far(c));
}

enum pop3_verdict pop3_cmd_auth(struct conn *c, char *args, struct pop3_reply *r)
{
    char *mech_name = args, *initial = strchr(args, ' ');

    if (*args == '\0') {
        /* Not in RFC 5034, but old Outlook asks: the list, like CAPA's SASL line. */
        pop3_set_reply(r, NULL, "Supported mechanisms follow");
        r->body = list_body;
        return POP3_OK;
    }
    if (initial != NULL)
        *initial++ = '\0';
    int mech = sasl_mech_lookup(mech_name);
    if (mech < 0 || !(offered(c) & (1u << mech))) {
        if (mech >= 0 && !pop3_plaintext_allowed(c)) {
            pop3_set_reply(r, "AUTH", "Plaintext authentication is not allowed without TLS");
            return POP3_ERR;
        }
        pop3_set_reply(r, NULL, "Unrecognized authentication type");
        return POP3_ERR;
    }
    if (initial != NULL && (*initial == '\0' || strchr(initial, ' ') != NULL)) {
        pop3_set_reply(r, NULL, "Bad initial response");
        return POP3_BAD;
    }
    c->sasl = calloc(1, sizeof(*c->sasl));
    if (c->sasl == NULL) {
        pop3_set_reply(r, "SYS/TEMP", "Out of memory, try again later");
        return POP3_ERR;
    }
    c->sasl->mech = (enum sasl_mech)mech;
    c->auth_mech = sasl_mech_name((enum sasl_mech)mech);
    c->user[0] = '\0';
    enum sasl_step first = mech == SASL_PLAIN   ? STEP_PLAIN
                           : mech == SASL_LOGIN ? STEP_LOGIN_USER
                                                : STEP_SCRAM_FIRST;
    c->sasl->step = first;
    if (initial == NULL) {
        challenge(c, first, first == STEP_LOGIN_USER ? LOGIN_USER_PROMPT : "");
        return POP3_DEFERRED;
    }
    /* The reply comes from the step (now, or when the helper answers). */
    respond(c, initial, strlen(initial));
    explicit_bzero(initial, strlen(initial));
    return POP3_DEFERRED;
}

/* The helper's answer to client-first (worker/auth_client.h): server-first. */
static void scram_challenged(void *ctx, const struct auth_answer *a)
{
    struct conn *c = ctx;
    enum auth_status status = a->status;
    const char *user = a->user, *server_first = a->sasl;
    char b64[2 * AUTH_SCRAM_MSG_MAX];

    c->auth_request = 0;
    c->auth_mech = "SCRAM-SHA-256";
    snprintf(c->user, sizeof(c->user), "%s", usable_name(user) ? user : "-");
    if (c->sasl == NULL || status != AUTH_OK ||
        strlen(server_first) >= sizeof(c->sasl->server_first) ||
        base64_encode(server_first, strlen(server_first), b64, sizeof(b64)) == -1) {
        pop3_sasl_release(c);
        login_finish(c, status == AUTH_OK ? AUTH_TEMPFAIL : status, "", "", NULL);
    } else {
        strcpy(c->sasl->server_first, server_first);
        challenge(c, STEP_SCRAM_FINAL, b64);
    }
    conn_resume(c);
}

/* The helper's answer to client-final: server-final, the user and maildir. */
static void scram_answered(void *ctx, const struct auth_answer *a)
{
    struct conn *c = ctx;
    enum auth_status status = a->status;
    const char *user = a->user, *maildir = a->maildir, *server_final = a->sasl;
    char b64[256];

    c->auth_request = 0;
    if (c->sasl == NULL || status != AUTH_OK ||
        base64_encode(server_final, strlen(server_final), b64, sizeof(b64)) == -1) {
        pop3_sasl_release(c);
        login_finish(c, status == AUTH_OK ? AUTH_TEMPFAIL : status, "", "", NULL);
    } else {
        snprintf(c->sasl->user, sizeof(c->sasl->user), "%s", user);
        snprintf(c->sasl->maildir, sizeof(c->sasl->maildir), "%s", maildir);
        c->policy = *a->policy;
        challenge(c, STEP_SCRAM_DONE, b64);
    }
    conn_resume(c);
}
