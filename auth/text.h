/*
 * Byte <-> text encodings the auth helper needs: hex for stored password
 * hashes (base64 is daemon/runtime/base64.h), and a log-safe escape for strings
 * that come from clients.
 */
#ifndef FASTPOP_AUTH_TEXT_H
#define FASTPOP_AUTH_TEXT_H

#include <stddef.h>

/* text_log_escape(): shared with the master and popctl, so it lives in daemon/. */
#include "daemon/runtime/escape.h"

/* Decode hex digits (either case). Returns the length, or -1 (errno EINVAL: not hex;
 * ENOBUFS: the result does not fit in outlen). */
long text_hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen);

#endif
