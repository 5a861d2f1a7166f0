/*
 * AUTH (RFC 5034) in the AUTHORIZATION state. PLAIN and LOGIN hand their
 * password to login_password() (worker/login.h), like PASS; every exchange
 * ends in login_finish().
 *
 * Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), and
 * SCRAM-SHA-256 (RFC 7677), relayed to the helper, which alone holds the
 * keys (auth/scram_server.h). The offered set is auth_mechanisms, and
 * nothing at all where a password may not cross in the clear
 * (pop3_plaintext_allowed: before STLS when plaintext_auth = no), SCRAM
 * included; CAPA's SASL line and a bare "AUTH" list exactly that set, and
 * AUTH refuses anything else.
 *
 * Exchange rules: a client response is one line of base64 (strict, see
 * worker/sasl.h), "=" for an empty initial response, "*" to cancel (-ERR).
 * Bad base64 or a malformed message ends the exchange with -ERR [AUTH] and
 * counts as a failed login (logged "login failed ... mechanism=..."), like a
 * wrong password. SCRAM's server-final message goes out as a last "+"
 * challenge; the client answers with an empty line and then gets +OK.
 */
#ifndef FASTPOP_POP3_SASL_H
#define FASTPOP_POP3_SASL_H

#include <stddef.h>

#include "auth/protocol.h"
#include "worker/conn.h"
#include "worker/pop3.h"

/* POP3_SASL_LINE_MAX: the longest response line while an exchange waits (POP3_SASL). */
#include "daemon/runtime/limits.h"

/* AUTH [mechanism [initial-response]]. */
enum pop3_verdict pop3_cmd_auth(struct conn *c, char *args, struct pop3_reply *r);

/* A response line while in POP3_SASL (the dispatcher hands it over unparsed). */
void pop3_sasl_response(struct conn *c, char *line, size_t len);
/* A response over POP3_SASL_LINE_MAX: the exchange ends with -ERR. */
void pop3_sasl_too_long(struct conn *c);
/* The "SASL ..." capability line for CAPA, if anything is offered now. */
void pop3_sasl_capa(struct conn *c);
/* Forget the exchange (login done, failed, or the connection closes). */
void pop3_sasl_release(struct conn *c);

#endif
