#include "worker/sasl.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

static const char *const names[SASL_MECHS] = {
    [SASL_PLAIN] = "PLAIN",
    [SASL_LOGIN] = "LOGIN",
    [SASL_SCRAM_SHA_256] = "SCRAM-SHA-256",
};

const char *sasl_mech_name(enum sasl_mech mech)
{
    return mech < SASL_MECHS ? names[mech] : "?";
}

int sasl_mech_lookup(const char *name)
{
    for (int i = 0; i < SASL_MECHS; i++) {
        if (strcasecmp(name, names[i]) == 0)
            return i;
    }
    return -1;
}

unsigned sasl_mechs_parse(const char *list)
{
    unsigned set = 0;
    char word[32];

    while (*list) {
        size_t n = strcspn(list, " \t");
        if (n > 0 && n < sizeof(word)) {
            memcpy(word, list, n);
            word[n] = '\0';
            int m = sasl_mech_lookup(word);
            if (m >= 0)
                set |= 1u << m;
        }
        list += n;
        list += strspn(list, " \t");
    }
    return set;
}

int sasl_plain_parse(char *msg, size_t len, const char **authzid, const char **authcid,
                     const char **passwd)
{
    char *nul1 = memchr(msg, '\0', len);
    char *nul2 = nul1 ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg)) : NULL;

    /* The password runs to the end: a third NUL inside it is malformed. */
    if (nul2 == NULL || nul1 + 1 == nul2 || nul2 + 1 >= msg + len ||
        memchr(nul2 + 1, '\0', len - (size_t)(nul2 + 1 - msg)) != NULL || msg[len] != '\0') {
        errno = EINVAL;
        return -1;
    }
    *authzid = msg;
    *authcid = nul1 + 1;
    *passwd = nul2 + 1;
    return 0;
}
