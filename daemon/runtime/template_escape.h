/*
 * One Dovecot-style escape of a template: %[-][0]<a>[.[0]<b>]<modifiers><var>.
 * Shared by the maildir template (auth/template.h) and the UIDL format
 * (maildir/uidl_format.h), and by the config check of both, so the three
 * read the same syntax. The semantics are Dovecot 2.3's, checked against
 * doveadm (t/unit/test_template_escape.c holds the vectors):
 *   %3n      the first 3 characters (a width)
 *   %2.1n    skip 2, then 1 character (offset.width); %-2.2n: the last 2
 *   %05n     a width, padded on the left with '0' when the value is shorter
 *   L U R    lower-case, upper-case (ASCII), reverse
 *   M        the value's MD5 as 32 lower-case hex digits (then offset.width apply)
 *   N        a 32-bit number from the value's MD5, modulo the width when one
 *            is given (%256Nu: 0..ff), in lower-case hex, padded with '0' to
 *            the offset (%4.256Nu: 0000..00ff); H is the same with Dovecot's
 *            older 32-bit string hash (the ELF/PJW hash)
 *   X        the value read as a decimal number, written in lower-case hex
 * Modifiers apply left to right, then the offset and width (not after N or H,
 * which use them as modulus and padding).
 */
#ifndef FASTPOP_TEMPLATE_ESCAPE_H
#define FASTPOP_TEMPLATE_ESCAPE_H

#include <stddef.h>

/*
 * Dovecot reads at most 10 modifiers per escape; 4 hold any combination
 * that means something (e.g. %LMn); more is a typo. Tested in test_template_escape.c.
 */
#define TEMPLATE_MODIFIERS_MAX 4
/* Dovecot's widths are unsigned ints; a larger number is a typo, refused at parse time. */
#define TEMPLATE_NUMBER_MAX 4294967295UL

/* The modifiers a maildir path may use: X (decimal to hex) means nothing for a name. */
#define TEMPLATE_MAILDIR_MODIFIERS "LURMNH"

/*
 * Dovecot's pop3_uidl_format (maildir/uidl_format.h): %u uid, %v uidvalidity,
 * %f base file name, %g GUID. Not %m: Dovecot serves it for mbox only (with
 * maildir its UIDL command fails), so no maildir site ever had it.
 */
#define UIDL_FORMAT_VARS "uvfg"
#define UIDL_FORMAT_MODIFIERS "LURMNHX"

struct template_escape {
    long offset;           /* negative: count from the end */
    unsigned long width;   /* 0: all */
    int zero_pad;
    char modifiers[TEMPLATE_MODIFIERS_MAX + 1];
    char var;              /* the variable letter, or '%' for a literal '%' */
};

/*
 * Parse the escape that starts at p (p[0] == '%'). modifiers_allowed lists
 * the modifier letters this template kind takes. Returns the escape's length,
 * or -1 with a reason in why (a static string).
 */
int template_escape_parse(const char *p, const char *modifiers_allowed,
                          struct template_escape *esc, const char **why);

/* A bounded output string: writes past cap set full and are dropped. */
struct template_out {
    char *p;
    size_t len;
    size_t cap;
    int full;
};

void template_out_put(struct template_out *o, const char *s, size_t n);

/*
 * Append value, transformed by esc, to o. Returns 0, or -1 if a modifier
 * cannot apply (X of a value that is not a decimal number, no MD5 in libcrypto).
 */
int template_escape_apply(const struct template_escape *esc, const char *value,
                          struct template_out *o);

/*
 * The value of variable var for template_expand_escapes(): 0 with *value
 * set (it may point into scratch, TEMPLATE_SCRATCH_MAX bytes), or -1 with
 * errno set (EINVAL: no such variable here).
 */
enum { TEMPLATE_SCRATCH_MAX = 256 };
typedef int template_value_fn(void *arg, char var, const char **value, char *scratch);

/*
 * Append fmt to o: bytes as they are, each escape (modifiers from
 * modifiers_allowed) as value_of gives its variable, transformed. 0, or -1
 * with errno (EINVAL: a bad escape or value; value_of's own). o->full says
 * whether it fitted.
 */
int template_expand_escapes(const char *fmt, const char *modifiers_allowed,
                            template_value_fn *value_of, void *arg, struct template_out *o);

#endif
