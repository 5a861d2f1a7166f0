/*
 * Byte <-> text encodings the auth helper needs: base64 and hex for stored
 * password hashes, and a log-safe escape for strings that come from clients.
 */
#ifndef FASTPOP_AUTH_TEXT_H
#define FASTPOP_AUTH_TEXT_H

#include <stddef.h>

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

/*
 * Copy s into out so that the result is one word of printable ASCII: bytes
 * outside 0x21-0x7E and the backslash become \xHH. Log lines are parsed by
 * tools such as fail2ban, so a user name must never be able to add a space,
 * a fake "ip=" field or a line break. Always NUL-terminates (when outlen > 0);
 * an over-long result is cut and ends in "...".
 *
 * Returns out, so the call can sit inside a log call's arguments.
 */
const char *text_log_escape(const char *s, char *out, size_t outlen);

/* Room for escaping a string of n bytes completely. */
#define TEXT_LOG_ESCAPE_SIZE(n) ((n) * 4 + 1)

#endif
