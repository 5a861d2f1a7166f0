/*
 * Byte <-> text encodings the auth helper needs: base64 and hex for stored
 * password hashes, and a log-safe escape for strings that come from clients.
 */
#ifndef FASTPOP_AUTH_TEXT_H
#define FASTPOP_AUTH_TEXT_H

#include <stddef.h>

/* text_log_escape(): shared with the master and popctl, so it lives in daemon/. */
#include "daemon/runtime/escape.h"

/*
 * Decode standard base64 (RFC 4648 alphabet, '=' padding optional but, when
 * present, only at the end). No whitespace is accepted: stored hashes never
 * contain any, and tolerating it would make two spellings of one hash.
 *
 * Returns the decoded length, or -1 (errno EINVAL: not base64; ENOBUFS: the
 * result does not fit in outlen).
 */
long text_base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen);

/* Decode hex digits (either case). Returns the length, or -1 like base64. */
long text_hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen);

#endif
