#include "pop3.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "daemon/runtime/log.h"
#include "daemon/runtime/clock.h"
#include "shm/stats.h"
#include "worker/conn_limits.h"
#include "worker/login.h"
#include "worker/expire.h"
#include "worker/login_policy.h"
#include "worker/loop.h"
#include "worker/mailbox.h"
#include "worker/mailbox_update.h"
#include "worker/pop3_sasl.h"

void pop3_set_reply(struct pop3_reply *r, const char *code, const char *fmt, ...)
{
    va_list ap;
    r->code = code;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
}

static const char *const state_names[POP3_STATES] = {
    [POP3_AUTHORIZATION] = "authorization",
    [POP3_AUTH_WAIT] = "auth-wait",
    [POP3_MAILBOX_LOAD] = "mailbox-load",
    [POP3_SASL] = "sasl",
    [POP3_TRANSACTION] = "transaction",
    [POP3_UPDATE] = "update",
};

int pop3_in(const struct conn *c, enum pop3_state state)
{
    return c->state == CONN_SESSION && c->session_state == (unsigned)state;
}

void pop3_set_state(struct conn *c, enum pop3_state next)
{
    if (c->session_state == (unsigned)next)
        return;
    const char *before = state_names[c->session_state];
    c->session_state = next;
    conn_session_changed(c, before);
}

void pop3_greet(struct conn *c)
{
    conn_reply(c, "+OK fastpop ready.\r\n");
}

int pop3_plaintext_allowed(const struct conn *c)
{
    /*
     * TLS to a trusted proxy (its PROXY v2 SSL TLV) protects the password too.
     * plaintext_via_proxy: the proxy ended the client's TLS (nginx's mail proxy
     * sends only a v1 header). The flag needs proxy_protocol, and such a listener
     * serves only connections from proxy_trusted that sent a valid header
     * (worker.c, conn.c), so every session here came through the proxy.
     */
    return c->ssl != NULL || c->proxy_tls || c->lp->cfg->plaintext_auth ||
           c->listener->plaintext_via_proxy ||
           cidr_list_match(&c->lp->cfg->plaintext_trusted, (const struct sockaddr *)&c->peer);
}

int pop3_stls_available(const struct conn *c)
{
    return c->ssl == NULL && c->lp->tls != NULL && pop3_in(c, POP3_AUTHORIZATION);
}

static void capa_body(struct conn *c)
{
    /* Only what is accepted in the current state (RFC 2449 section 5). */
    conn_reply(c, "CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
    if (pop3_stls_available(c))
        conn_reply(c, "STLS\r\n");
    if (pop3_in(c, POP3_AUTHORIZATION) && pop3_plaintext_allowed(c))
        conn_reply(c, "USER\r\n");
    pop3_sasl_capa(c);
    login_policy_capa(c);
    expire_capa(c);
    conn_reply(c, "IMPLEMENTATION fastpop\r\n.\r\n");
}

enum pop3_verdict pop3_cmd_capa(struct conn *c, char *args, struct pop3_reply *r)
{
    (void)c;
    if (*args != '\0') {
        pop3_set_reply(r, NULL, "CAPA takes no arguments");
        return POP3_BAD;
    }
    pop3_set_reply(r, NULL, "Capability list follows");
    r->body = capa_body;
    return POP3_OK;
}

enum pop3_verdict pop3_cmd_noop(struct conn *c, char *args, struct pop3_reply *r)
{
    (void)c;
    (void)args;
    r->text[0] = '\0';
    return POP3_OK;
}

/*
 * The entry for name valid in state; else any entry of that name (the
 * caller then says "not valid in this state"); else NULL.
 */
static const struct pop3_command *find_command(const char *name, enum pop3_state state)
{
    const struct pop3_command *tables[] = { pop3_auth_commands, pop3_trans_commands };
    const struct pop3_command *known = NULL;
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (const struct pop3_command *cmd = tables[t]; cmd->name; cmd++) {
            if (strcasecmp(cmd->name, name) != 0)
                continue;
            if (cmd->states & POP3_IN(state))
                return cmd;
            known = cmd;
        }
    }
    return known;
}

static void count_bad(struct conn *c)
{
    c->bad_commands++;
    if (c->bad_commands >= (unsigned)c->lp->cfg->max_bad_commands) {
        conn_reply(c, "-ERR Too many bad commands, closing connection\r\n");
        conn_finish(c, "too-many-errors");
    }
}

static void write_reply(struct conn *c, enum pop3_verdict v, const struct pop3_reply *r)
{
    const char *sep = r->text[0] ? " " : "";
    if (v == POP3_OK) {
        conn_reply(c, "+OK%s%s\r\n", sep, r->text);
        if (r->body)
            r->body(c);
        if (r->job)
            conn_start_job(c, r->job);
        return;
    }
    if (r->code)
        conn_reply(c, "-ERR [%s]%s%s\r\n", r->code, sep, r->text);
    else
        conn_reply(c, "-ERR%s%s\r\n", sep, r->text);
    if (v == POP3_BAD)
        count_bad(c);
}

void pop3_line_too_long(struct conn *c)
{
    struct pop3_reply r = { 0 };
    if (pop3_in(c, POP3_AUTHORIZATION) && conn_limits_preauth_command(c))
        return;   /* one too many before login: closing */
    if (pop3_in(c, POP3_SASL)) {
        pop3_sasl_too_long(c);
        return;
    }
    pop3_set_reply(&r, NULL, "Command line too long (at most %d octets)", POP3_LINE_MAX);
    write_reply(c, POP3_BAD, &r);
}

void pop3_command_done(struct conn *c)
{
    if (c->cmd_timing < 0)
        return;
    stats_command_time((enum stats_command)c->cmd_timing, clock_mono_us() - c->cmd_started);
    c->cmd_timing = -1;
}

/*
 * Every command line is timed until its answer is complete: here for most,
 * when the helper answers for PASS and AUTH (login_finish, worker/login.c), when the
 * last chunk is queued for RETR and TOP (conn.c), or when the session ends
 * first. AUTH counts from the client's last line of the exchange, so the
 * client's own pauses between SASL steps are not counted as ours.
 */
static void time_command(struct conn *c)
{
    c->cmd_timing = STATS_CMD_OTHER;   /* until the line names a known command */
    c->cmd_started = clock_mono_us();
}

void pop3_end_after_quit(struct conn *c)
{
    if (c->lp->cfg->quit_linger > 0)
        conn_set_state(c, CONN_LINGER);
    else
        conn_finish(c, "quit");
}

static void dispatch_command(struct conn *c, char *line, size_t len)
{
    struct pop3_reply r = { 0 };
    char name[16];
    size_t n = 0;

    if (memchr(line, '\0', len) != NULL) {
        pop3_set_reply(&r, NULL, "NUL byte in command");
        write_reply(c, POP3_BAD, &r);
        return;
    }
    while (n < len && line[n] != ' ' && line[n] != '\t')
        n++;
    if (n == 0 || n >= sizeof(name)) {
        pop3_set_reply(&r, NULL, "Unknown command");
        write_reply(c, POP3_BAD, &r);
        return;
    }
    memcpy(name, line, n);
    name[n] = '\0';
    char *args = line + n;
    if (*args != '\0')
        args++;

    const struct pop3_command *cmd = find_command(name, (enum pop3_state)c->session_state);
    if (cmd != NULL)
        c->cmd_timing = (int)stats_command_id(cmd->name);
    if (cmd == NULL) {
        pop3_set_reply(&r, NULL, "Unknown command");
        write_reply(c, POP3_BAD, &r);
        return;
    }
    if (!(cmd->states & POP3_IN(c->session_state))) {
        pop3_set_reply(&r, NULL, "%s is not valid in this state", cmd->name);
        write_reply(c, POP3_BAD, &r);
        return;
    }
    /*
     * RFC 1939 separates arguments by one space. PASS takes the rest of the
     * line as is (a password may start with a space); elsewhere be lenient.
     */
    if (!(cmd->flags & POP3_RAW_ARGS)) {
        while (*args == ' ' || *args == '\t')
            args++;
    }
    enum pop3_verdict v = cmd->run(c, args, &r);
    if (v != POP3_DEFERRED)
        write_reply(c, v, &r);
    /*
     * RFC 1939: the server closes after QUIT's reply. Lingering for the
     * client's close first is opt-in: a client that reads to EOF would wait.
     */
    if (r.close_after && v != POP3_DEFERRED)
        pop3_end_after_quit(c);
    if (r.start_tls && v == POP3_OK)
        conn_start_tls(c);
}

void pop3_dispatch(struct conn *c, char *line, size_t len)
{
    if (pop3_in(c, POP3_AUTHORIZATION) && conn_limits_preauth_command(c))
        return;   /* one too many before login: closing */
    if (pop3_in(c, POP3_SASL)) {
        /* A SASL response, not a command: AUTH is timed from the client's last line. */
        c->cmd_started = clock_mono_us();
        pop3_sasl_response(c, line, len);
    } else {
        time_command(c);
        dispatch_command(c, line, len);
    }
    /* Still waiting for the helper, the mailbox, the client's SASL response, or a job:
     * timed later. */
    if (c->job == NULL && !pop3_in(c, POP3_AUTH_WAIT) && !pop3_in(c, POP3_MAILBOX_LOAD) &&
        !pop3_in(c, POP3_SASL) && !pop3_in(c, POP3_UPDATE))
        pop3_command_done(c);
}

void pop3_write_reply(struct conn *c, enum pop3_verdict v, const struct pop3_reply *r)
{
    write_reply(c, v, r);
}

void pop3_release(struct conn *c)
{
    /* A late helper answer must not reach a closed session. */
    login_abandon(c);
    mailbox_abandon(c);   /* a load still running ends alone, then unlocks */
    mailbox_update_abandon(c);   /* so does QUIT's update: the client asked for it */
    pop3_command_done(c);   /* a command cut short still took its time */
    mailbox_apply_seen(c->session, c->user);   /* no QUIT: the flags, not the deletions */
    mailbox_close(c->session);
    c->session = NULL;
    pop3_sasl_release(c);
    expire_release(c);
}

static const char *state_name(const struct conn *c)
{
    return c->session_state < POP3_STATES ? state_names[c->session_state] : "?";
}

/* Command lines are read in these; the others wait for the helper or the loader. */
static int reading(const struct conn *c)
{
    return pop3_in(c, POP3_AUTHORIZATION) || pop3_in(c, POP3_SASL) ||
           pop3_in(c, POP3_TRANSACTION);
}

/* UPDATE too: a drain waits for its answer rather than cut it. */
static int logged_in(const struct conn *c)
{
    return pop3_in(c, POP3_TRANSACTION) || pop3_in(c, POP3_UPDATE);
}

/* Not while the login's +OK waits for the loader thread. */
static int interruptible(const struct conn *c)
{
    return reading(c) || pop3_in(c, POP3_AUTH_WAIT);
}

const struct conn_protocol pop3_protocol = {
    .greet = pop3_greet,
    .line = pop3_dispatch,
    .line_too_long = pop3_line_too_long,
    .output_done = pop3_command_done,
    .release = pop3_release,
    .state_name = state_name,
    .reading = reading,
    .logged_in = logged_in,
    .interruptible = interruptible,
};
