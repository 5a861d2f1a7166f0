/*
 * Dovecot's pop3_uidl_format, for the dovecot-uidlist records that have no
 * P field (maildir/legacy_dovecot.c): the UIDL Dovecot served for them is
 * this format expanded, so fastpop must expand it the same way. Escapes
 * and modifiers are daemon/runtime/template_escape.h's (Dovecot's own):
 *   %u the record's IMAP UID, %v the list's UIDVALIDITY (both decimal;
 *      X writes them in lower-case hex: Dovecot's default %08Xu%08Xv),
 *   %f the base file name (up to ':'), %g the record's G (GUID) field, or
 *      the base file name when it has none (Dovecot's maildir GUID),
 *   %% a '%'.
 * Checked against Dovecot 2.3.19 in t/e2e/test_index.py.
 */
#ifndef FASTPOP_MAILDIR_UIDL_FORMAT_H
#define FASTPOP_MAILDIR_UIDL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define UIDL_FORMAT_DEFAULT "%08Xu%08Xv"

struct uidl_format_vars {
    uint64_t uid;
    uint64_t uidvalidity;
    const char *name; /* base file name, not NUL-terminated */
    size_t name_len;
    const char *guid; /* NULL or empty: the base file name stands in */
    size_t guid_len;
};

/*
 * Expand fmt into out (cap bytes, NUL-terminated), length in *len.
 * Returns 0, or -1 with errno EINVAL (a bad format: the config check lets
 * none through) or ENAMETOOLONG.
 */
int uidl_format_expand(const char *fmt, const struct uidl_format_vars *v, char *out, size_t cap,
                       size_t *len);

#endif
