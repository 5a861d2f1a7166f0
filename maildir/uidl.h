/*
 * UIDL of a maildir message, derived from its unique name alone, so it is
 * the same in every session, before and after the new/ -> cur/ move and
 * across flag changes, and survives the loss of the index.
 *
 * RFC 1939 wants 1-70 characters in 0x21-0x7E. Three disjoint forms:
 *  1. verbatim: a unique name of 1-70 bytes, all in 0x21-0x7E, except ':'
 *     and '/', is its own UIDL (nearly every real name);
 *  2. escaped: otherwise every byte outside that set becomes ':' and two
 *     upper-case hex digits (a space is ":20", 0xC3 ":C3", ':' ":3A",
 *     '/' ":2F"), used when the result has at most 70 characters;
 *  3. hashed: otherwise the longest prefix of the escaped form that fits in
 *     37 characters without cutting an escape, then '/', then 32 lower-case
 *     hex digits of a 128-bit hash of the whole unique name.
 * A unique name can contain neither '/' (a file name) nor ':' (it ends
 * there), so a verbatim UIDL holds neither character, an escaped one always
 * holds a ':' and never a '/', and a hashed one always holds a '/'. Forms 1
 * and 2 are one-to-one; two names share a UIDL only if their 128-bit hashes
 * collide. The hash is two 64-bit FNV-1a passes with different offset bases,
 * each finished by the MurmurHash3 fmix64 mixer: not cryptographic (someone
 * who picks file names could force a collision), but for names produced by
 * delivery agents a collision among 2^32 long names has a chance near 2^-64.
 *
 * Caveat: the forms are part of what clients store; changing them makes
 * every client download affected mail again.
 */
#ifndef FASTPOP_MAILDIR_UIDL_H
#define FASTPOP_MAILDIR_UIDL_H

#include <stddef.h>

enum {
    MAILDIR_UIDL_MAX = 70,                   /* RFC 1939 */
    MAILDIR_UIDL_SIZE = MAILDIR_UIDL_MAX + 1 /* with the NUL */
};

/*
 * Write the UIDL of the unique name [unique, unique+len) into uidl, which
 * must hold MAILDIR_UIDL_SIZE bytes; it is NUL-terminated and its length
 * (1-70) goes to *uidl_len. The name may hold any bytes, NUL included;
 * an empty name gets a hashed UIDL.
 *
 * Returns 0; it cannot fail.
 */
int maildir_uidl(const char *unique, size_t len, char *uidl, size_t *uidl_len);

/*
 * Form 3 (hashed) of the unique name, whatever its length; round 0 uses
 * the seeds of maildir_uidl(), round n shifts both by n. For a message
 * whose own UIDL another message already holds (a legacy UIDL, see
 * maildir/legacy.h): the caller tries rounds until the result is free.
 * Returns 0; it cannot fail.
 */
int maildir_uidl_hashed(const char *unique, size_t len, unsigned round, char *uidl,
                        size_t *uidl_len);

/*
 * Whether [uidl, uidl+len) may be served as a UIDL: 1-70 characters, each
 * in 0x21-0x7E (RFC 1939 section 7). For UIDLs taken from files another
 * server left (maildir/legacy.h).
 */
int maildir_uidl_valid(const char *uidl, size_t len);

#endif
