/*
 * The maildir template of fastpop.conf (and of userdb_mail overrides):
 *   %u the user name as found in the password file, %n its local part (before
 *   the first '@'), %d its domain (after the first '@', or empty), %h the home
 *   field, %% a literal '%'. A leading "~" means the home directory.
 */
#ifndef FASTPOP_AUTH_TEMPLATE_H
#define FASTPOP_AUTH_TEMPLATE_H

#include <stddef.h>

/*
 * Expand tmpl for user into out. The result must be an absolute path.
 * Returns 0, or -1 with errno:
 *   ENOENT      the template needs the home directory and home is empty
 *   EINVAL      an unknown or trailing % escape, or the result is not absolute
 *   ENAMETOOLONG the result does not fit in outlen
 */
int template_expand(const char *tmpl, const char *user, const char *home, char *out,
                    size_t outlen);

#endif
