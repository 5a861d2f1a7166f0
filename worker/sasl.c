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

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int sextet(char ch)
{
    const char *p = ch ? strchr(alphabet, ch) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

long sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen)
{
    size_t o = 0;

    if (inlen % 4 != 0) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < inlen; i += 4) {
        int v[4] = { 0, 0, 0, 0 };
        int pad = 0;
        /* Padding only ends the last group: "xxx=" or "xx==". */
        if (i + 4 == inlen && in[i + 3] == '=')
            pad = in[i + 2] == '=' ? 2 : 1;
        for (int k = 0; k < 4 - pad; k++) {
            if ((v[k] = sextet(in[i + k])) < 0) {
                errno = EINVAL;
                return -1;
            }
        }
        unsigned triple = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 |
                          (unsigned)v[3];
        size_t n = 3 - (size_t)pad;
        if (o + n > outlen) {
            errno = ENOBUFS;
            return -1;
        }
        for (size_t k = 0; k < n; k++)
            out[o++] = (unsigned char)(triple >> (16 - 8 * k));
    }
    if (o < outlen)
        out[o] = '\0';
    return (long)o;
}

int sasl_b64_encode(const void *in, size_t n, char *out, size_t outlen)
{
    const unsigned char *p = in;
    size_t o = 0;

    if ((n + 2) / 3 * 4 + 1 > outlen) {
        errno = ENOBUFS;
        return -1;
    }
    for (size_t i = 0; i < n; i += 3) {
        unsigned triple = (unsigned)p[i] << 16;
        if (i + 1 < n)
            triple |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            triple |= p[i + 2];
        out[o++] = alphabet[(triple >> 18) & 63];
        out[o++] = alphabet[(triple >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(triple >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[triple & 63] : '=';
    }
    out[o] = '\0';
    return 0;
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
