/*
 * The pure parts of SASL in the worker (RFC 4422, RFC 5034): the PLAIN
 * message (RFC 4616) and the list of mechanisms; base64 is daemon/runtime/base64.h
 * (BASE64_STRICT). No I/O and no logging: worker/pop3_sasl.c drives the
 * exchanges.
 */
#ifndef FASTPOP_SASL_H
#define FASTPOP_SASL_H

#include <stddef.h>

enum sasl_mech {
    SASL_PLAIN,
    SASL_LOGIN,
    SASL_SCRAM_SHA_256,
    SASL_MECHS,
};

/* The IANA name of mech ("PLAIN"...). */
const char *sasl_mech_name(enum sasl_mech mech);
/* The mechanism called name (any case), or -1. */
int sasl_mech_lookup(const char *name);
/* Bit (1 << mech) per mechanism named in list (space-separated; unknown names ignored). */
unsigned sasl_mechs_parse(const char *list);

/*
 * Split a PLAIN message "authzid NUL authcid NUL passwd" (msg is modified
 * in place). authzid may be empty; authcid and passwd must not be; no other
 * NUL may appear; msg[len] must be a NUL (base64_decode puts one there),
 * so the password is a C string. Returns 0, or -1 (EINVAL).
 */
int sasl_plain_parse(char *msg, size_t len, const char **authzid, const char **authcid,
                     const char **passwd);

#endif
