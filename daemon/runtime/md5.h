/*
 * MD5, for compatibility only: Dovecot's %M and %N template modifiers and its
 * pop3_uidl_format %m hash with it, and a site migrating from Dovecot needs
 * the same paths and UIDLs byte for byte. Never for anything secret.
 */
#ifndef FASTPOP_MD5_H
#define FASTPOP_MD5_H

#include <stddef.h>

#define MD5_DIGEST_LEN 16

/* Returns 0, or -1 if libcrypto refused (no MD5 in the loaded providers). */
int md5_digest(const void *data, size_t len, unsigned char out[MD5_DIGEST_LEN]);

#endif
