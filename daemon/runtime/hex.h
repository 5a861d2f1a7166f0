/*
 * Hex digits: the router %-decodes nginx's headers with them, the auth helper
 * decodes stored password hashes. One rule for both.
 */
#ifndef FASTPOP_RUNTIME_HEX_H
#define FASTPOP_RUNTIME_HEX_H

#include <stddef.h>

/* The value of one hex digit (either case), or -1 if c is not one. */
int hex_digit(unsigned char c);

/* Decode hex digits (either case). Returns the length, or -1 (errno EINVAL: not hex;
 * ENOBUFS: the result does not fit in outlen). */
long hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen);

#endif
