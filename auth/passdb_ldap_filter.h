/*
 * Building the LDAP search filter for a login: the configured template
 * (ldap_user_filter, e.g. "(&(objectClass=posixAccount)(uid=%u))") with the
 * user name put in as an RFC 4515 assertion value.
 *
 * Escaping follows libldap's ldap_bv2escaped_filter_value(): '*' '(' ')' '\'
 * NUL, every control byte, DEL and every byte >= 0x80 become "\XX" (two hex
 * digits). RFC 4515 needs only the first five; escaping the rest too means a
 * client can never put a byte into the filter that a server might read as
 * syntax, and UTF-8 names still match (the server unescapes before comparing).
 * So "*", ")(uid=*" or "\" in a user name stay literal characters and can
 * never widen the search.
 */
#ifndef FASTPOP_AUTH_PASSDB_LDAP_FILTER_H
#define FASTPOP_AUTH_PASSDB_LDAP_FILTER_H

#include <stddef.h>

/* Room for escaping n bytes completely ("\XX" each) and the NUL. */
#define PASSDB_LDAP_FILTER_ESCAPE_SIZE(n) ((n) * 3 + 1)

/*
 * Escape the n bytes at s (NULs included) into out. Returns the length
 * written (without the NUL), or -1 (errno ENOBUFS) if out is too small; out
 * is then the empty string.
 */
long passdb_ldap_filter_escape(const char *s, size_t n, char *out, size_t outlen);

/*
 * Expand tmpl for user into out: %u the user, %n its local part (before the
 * first '@'), %d its domain (after it, or empty), each escaped as above;
 * %% a literal '%'. Returns 0, or -1 with errno:
 *   EINVAL       an unknown or trailing % escape
 *   ENOBUFS      the result does not fit in outlen
 */
int passdb_ldap_filter_expand(const char *tmpl, const char *user, char *out, size_t outlen);

/*
 * Check a template once, at configuration time: its escapes, and that it
 * looks like one filter (starts with '(', ends with ')', parentheses
 * balanced). Returns 0 or -1 (errno EINVAL).
 */
int passdb_ldap_filter_check(const char *tmpl);

#endif
