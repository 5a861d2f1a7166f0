/*
 * Moving bytes for a connection, plain or TLS: the only code that calls
 * recv/send or SSL_read/SSL_write/SSL_do_handshake. OpenSSL's WANT_READ and
 * WANT_WRITE are turned into the conn's tls_*_wants_* flags, which
 * conn.c folds into the epoll interest.
 */
#ifndef FASTPOP_CONN_IO_H
#define FASTPOP_CONN_IO_H

#include <stddef.h>
#include <sys/types.h>

#include "worker/conn.h"
#include "worker/proxy.h"

/* Read up to max bytes into c->in: >0 read, 0 end of stream, -1 error or EAGAIN (errno). */
ssize_t conn_io_read(struct conn *c, size_t max);
/* Write from c->out: bytes written (0: would block), -1 on a broken connection. */
ssize_t conn_io_write(struct conn *c);
/* Decrypted input waiting inside OpenSSL that epoll cannot see. */
int conn_io_pending(const struct conn *c);

/* One handshake step: 1 done, 0 in progress, -1 failed (why says how). */
int conn_io_handshake(struct conn *c, char *why, size_t whylen);

/*
 * Read the PROXY header without reading past it (the client's TLS hello may
 * follow in the same segment): 1 complete (info filled), 0 wait for more,
 * -1 invalid or closed (why says which).
 */
int conn_io_proxy(struct conn *c, struct proxy_info *info, char *why, size_t whylen);

/* Best-effort close_notify, for orderly ends of TLS sessions. */
void conn_io_tls_goodbye(struct conn *c);

#endif
