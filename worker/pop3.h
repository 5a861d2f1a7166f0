/*
 * The POP3 protocol engine (RFC 1939, RFC 2449, RFC 3206). One file per
 * state: pop3_auth.c (AUTHORIZATION), pop3_trans.c (TRANSACTION),
 * pop3_update.c (UPDATE), with AUTH in pop3_sasl.c and the end of every
 * login in login.c. Handlers return a verdict and fill a reply; only the
 * dispatcher (pop3.c) writes status lines. The dispatcher is what the
 * transport sees (pop3_protocol, the hooks of worker/conn.h), and it ends
 * sessions (pop3_release).
 */
#ifndef FASTPOP_POP3_H
#define FASTPOP_POP3_H

#include <stddef.h>

#include "auth/protocol.h"
#include "worker/conn.h"

#include "daemon/runtime/limits.h"   /* POP3_LINE_MAX */

/* The session's state while the transport is CONN_SESSION (c->session_state). */
enum pop3_state {
    POP3_AUTHORIZATION,   /* RFC 1939 AUTHORIZATION: waiting for USER/PASS; first, so 0 */
    POP3_AUTH_WAIT,       /* a credential check is out at the helper */
    POP3_MAILBOX_LOAD,    /* logged in; its maildir is read on the loader thread */
    POP3_SASL,            /* AUTH: waiting for the client's next SASL response line */
    POP3_TRANSACTION,     /* logged in */
    POP3_UPDATE,          /* QUIT's deletions run on the loader thread; answered after */
    POP3_STATES,
};

enum pop3_verdict {
    POP3_OK,        /* +OK text, then the body or job if any */
    POP3_ERR,       /* -ERR [code] text */
    POP3_BAD,       /* -ERR, and it counts toward max_bad_commands */
    POP3_DEFERRED,  /* no reply now: it comes when an answer arrives */
};

struct pop3_reply {
    const char *code;                       /* RFC 2449/3206 response code or NULL */
    char text[256];
    void (*body)(struct conn *c);           /* small multi-line body after +OK */
    struct conn_job *job;                   /* long multi-line body after +OK */
    int close_after;                        /* QUIT: linger after the reply */
    int start_tls;                          /* STLS: TLS begins after the reply */
};

enum pop3_command_flags {
    POP3_RAW_ARGS = 1,   /* the argument is everything after the one separator space */
};

struct pop3_command {
    const char *name;
    unsigned states;                        /* bit per enum pop3_state */
    enum pop3_verdict (*run)(struct conn *c, char *args, struct pop3_reply *r);
    unsigned flags;                         /* enum pop3_command_flags */
};

#define POP3_IN(state) (1u << (state))

/* Whether c's session is in state (and the transport is not closing it). */
int pop3_in(const struct conn *c, enum pop3_state state);
/* Enter a new session state. */
void pop3_set_state(struct conn *c, enum pop3_state next);

void pop3_greet(struct conn *c);
void pop3_dispatch(struct conn *c, char *line, size_t len);
void pop3_line_too_long(struct conn *c);
/* The command being timed has its whole answer (see worker/pop3.c); no-op if none. */
void pop3_command_done(struct conn *c);
/*
 * The session ends (the connection closes): cancel a login out at the
 * helper, give up a mailbox still loading, stop timing the command, free the
 * mailbox state (no UPDATE: nothing is deleted) and any SASL exchange.
 */
void pop3_release(struct conn *c);

/* The hooks conn.c runs POP3 through (worker/conn.h). */
extern const struct conn_protocol pop3_protocol;

/* Per-state command tables (NULL-name terminated). */
extern const struct pop3_command pop3_auth_commands[];
extern const struct pop3_command pop3_trans_commands[];

/* Shared by the states. */
enum pop3_verdict pop3_cmd_capa(struct conn *c, char *args, struct pop3_reply *r);
enum pop3_verdict pop3_cmd_noop(struct conn *c, char *args, struct pop3_reply *r);
enum pop3_verdict pop3_cmd_quit_update(struct conn *c, char *args, struct pop3_reply *r);
void pop3_set_reply(struct pop3_reply *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Whether a password may cross this connection: under TLS, with
 * plaintext_auth = yes, from a plaintext_trusted network, or through the
 * trusted proxy on a listener flagged plaintext_via_proxy.
 */
int pop3_plaintext_allowed(const struct conn *c);
/* STLS is offered: TLS is configured, not yet on, and no one is logged in. */
int pop3_stls_available(const struct conn *c);
/* QUIT is answered: close (or linger for the client's close, quit_linger). */
void pop3_end_after_quit(struct conn *c);
/* Write a status line (and body) outside the dispatcher, for deferred replies. */
void pop3_write_reply(struct conn *c, enum pop3_verdict v, const struct pop3_reply *r);

#endif
