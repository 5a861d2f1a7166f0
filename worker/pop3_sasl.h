/*
 * AUTH (RFC 5034) in the AUTHORIZATION state, and the one way every
 * password enters a session (PASS, AUTH PLAIN, AUTH LOGIN):
 * pop3_login_password() first asks the shared credential cache
 * (shm/credcache.h), then fastpop-auth.
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

/* POP3_SASL_LINE_MAX: the longest response line while an exchange waits (CONN_SASL). */
#include "daemon/runtime/limits.h"

/* AUTH [mechanism [initial-response]]. */
enum pop3_verdict pop3_cmd_auth(struct conn *c, char *args, struct pop3_reply *r);

/* A response line while in CONN_SASL (the dispatcher hands it over unparsed). */
void pop3_sasl_response(struct conn *c, char *line, size_t len);
/* A response over POP3_SASL_LINE_MAX: the exchange ends with -ERR. */
void pop3_sasl_too_long(struct conn *c);
/* The "SASL ..." capability line for CAPA, if anything is offered now. */
void pop3_sasl_capa(struct conn *c);
/* Forget the exchange (login done, failed, or the connection closes). */
void pop3_sasl_release(struct conn *c);

/* Answers of fastpop-auth to the SCRAM steps, delivered by the auth client. */
void pop3_sasl_scram_challenge(struct conn *c, enum auth_status status, const char *user,
                               const char *server_first);
void pop3_sasl_scram_result(struct conn *c, enum auth_status status, const char *user,
                            const char *maildir, const char *server_final);

/*
 * Log in user with password by mechanism mech: a fresh credential-cache
 * entry answers at once (the reply is written, no IPC); otherwise the helper
 * is asked. Returns POP3_DEFERRED (the reply is written now or later), or
 * POP3_ERR with r set when the helper cannot be reached. password is wiped.
 */
enum pop3_verdict pop3_login_password(struct conn *c, const char *user, char *password,
                                      const char *mech, struct pop3_reply *r);

/*
 * A login the helper answered (status): if it accepted a password that
 * pop3_login_password() sent, remember it in this worker's memo under the
 * generation the helper named (c->auth_generation), so the next login with
 * that password is answered here. Forgets the pending pre-tag either way.
 */
void pop3_login_settle(struct conn *c, enum auth_status status);

/*
 * The helper's penalty view (shm/penalty_view.h), received by the auth
 * client: fd is taken (mapped, then closed) and replaces the view in use.
 * Until a worker has one, no login is answered from the credential cache.
 */
void pop3_login_adopt_view(int fd);

#endif
