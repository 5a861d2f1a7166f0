/*
 * The server's TLS setup (OpenSSL 3): one SSL_CTX per distinct set of
 * certificate names, chosen by SNI, the first being the default.
 *
 * Built by the master before it forks (certificates and keys are read while
 * still root, and every worker inherits the same session-ticket key
 * schedule, so a client resumes whichever worker it reaches). Ticket keys
 * rotate every tls_ticket_lifetime, the previous one still decrypting
 * (worker/tls_ticket.h). A reload builds a new context and carries the
 * schedule over, so tickets issued before still resume.
 *
 * Policy: tls_min_version (default TLS 1.2), tls_ciphers / tls_ciphersuites,
 * server cipher preference, no renegotiation, no compression, buffers
 * released while a connection is idle. A "legacy_tls" listener lowers the
 * floor to TLS 1.0 for its own connections only.
 */
#ifndef FASTPOP_TLS_H
#define FASTPOP_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <time.h>

#include "daemon/runtime/config.h"

struct tls_context;

/*
 * Load every tls_cert/tls_key pair of cfg. previous (may be NULL) lends its
 * ticket keys. NULL with a message naming the file in err if anything is
 * wrong: a reload then keeps the running context.
 */
struct tls_context *tls_context_build(const struct config *cfg,
                                      const struct tls_context *previous, char *err,
                                      size_t errlen);
void tls_context_free(struct tls_context *t);

/* The master, now and then: step its ticket keys forward, forgetting old ones. */
void tls_context_tick(struct tls_context *t, time_t now);

/* A server-side SSL on fd with the listener's policy; NULL on failure. */
SSL *tls_session_new(struct tls_context *t, int fd, int legacy);

/* "TLSv1.3" and the like, for logs. */
const char *tls_session_version(const SSL *ssl);

/* The last OpenSSL error as text (and clear the queue), for one log line. */
const char *tls_last_error(char *buf, size_t len);

#endif
