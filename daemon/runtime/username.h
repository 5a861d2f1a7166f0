/*
 * The one rule for a login name, whatever the mechanism: USER, AUTH PLAIN,
 * AUTH LOGIN and SCRAM's n= in the worker, and again in fastpop-auth for
 * every name a worker sends, and for the canonical name a directory gives.
 * Two copies of this rule had drifted apart (USER took bytes 0x80-0xFF,
 * AUTH refused them), so one client could log in with USER but not with
 * AUTH; there is now only this one.
 *
 * A name is 1 to USERNAME_MAX - 1 bytes of UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF) without spaces, C0 or C1
 * control characters or DEL: one word, which log lines (parsed by
 * fail2ban) and the POP3 USER command can carry, and which is the same
 * bytes in every mechanism (SASL sends UTF-8, RFC 4422/4616). Case is kept:
 * how names compare is the password database's business (auth/passdb.h).
 */
#ifndef FASTPOP_USERNAME_H
#define FASTPOP_USERNAME_H

#include "daemon/runtime/limits.h"   /* USERNAME_MAX */

/* 0 if name follows the rule, -1 if not. */
int username_check(const char *name);

#endif
