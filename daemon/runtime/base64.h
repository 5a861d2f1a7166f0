/*
 * The one base64 of fastpop (RFC 4648 section 4: the standard alphabet,
 * '=' padding). Used for SASL exchanges (worker/pop3_sasl.c), SCRAM
 * messages (auth/scram_server.c) and stored password hashes (auth/scheme.c).
 *
 * Decoding never accepts whitespace, characters outside the alphabet or '='
 * anywhere but at the very end: a client sending them is broken or probing,
 * and a stored hash with two spellings would be two hashes. The one choice
 * is the padding:
 *  - BASE64_STRICT: the length is a multiple of 4 (padding required), as
 *    SASL (RFC 4422 section 3.1 via RFC 5034) and SCRAM (RFC 5802) say;
 *  - BASE64_PAD_OPTIONAL: the padding may be left out, as password files
 *    written by other tools sometimes do; when present it must complete the
 *    last group of four.
 */
#ifndef FASTPOP_BASE64_H
#define FASTPOP_BASE64_H

#include <stddef.h>

enum base64_padding { BASE64_STRICT, BASE64_PAD_OPTIONAL };

/*
 * Decode inlen characters of in. Returns the decoded length (0 for ""), or
 * -1 (errno EINVAL: not base64 under the rule; ENOBUFS: over outlen).
 * out is NUL-terminated when there is room, for text mechanisms.
 */
long base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen,
                   enum base64_padding padding);
/* Encode n bytes, padded, NUL-terminated; -1 (ENOBUFS) if out is too small. */
int base64_encode(const void *in, size_t n, char *out, size_t outlen);

#endif
