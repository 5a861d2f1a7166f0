/*
 * The maildir template of fastpop.conf (and of userdb_mail overrides):
 *   %u the user name as found in the password file, %n its local part (before
 *   the first '@'), %d its domain (after the first '@', or empty), %h the home
 *   field, %% a literal '%'. A leading "~" means the home directory.
 *   Each escape takes Dovecot's substring and hash forms
 *   (daemon/runtime/template_escape.h), so a Dovecot or Courier site's hashed
 *   tree is used as it is: /var/vmail/%d/%1n/%2.1n/%n, /var/vmail/%d/%2.256Nn/%n.
 */
#ifndef FASTPOP_AUTH_TEMPLATE_H
#define FASTPOP_AUTH_TEMPLATE_H

#include <stddef.h>

/*
 * Expand tmpl for user into out. The result must be an absolute path.
 * A user name can never climb out of the template's fixed text: user, its
 * local part and its domain (when not empty) must each be usable as one path
 * component (no '/', no leading '.', no '%', no control bytes; %u and %n not
 * empty), and the result may hold no "." or ".." component at all (whatever
 * put it there, %h included, or a substring such as %1.1n of "j.doe": Dovecot
 * would let the kernel collapse it, fastpop refuses the name).
 * Returns 0, or -1 with errno:
 *   ENOENT      the template needs the home directory and home is empty
 *   EINVAL      an unknown or trailing % escape or modifier, or the result is
 *               not absolute
 *   EPERM       the user name is not usable in a path, or the result has a
 *               "." or ".." component
 *   ENAMETOOLONG the result does not fit in outlen
 */
int template_expand(const char *tmpl, const char *user, const char *home, char *out,
                    size_t outlen);

#endif
