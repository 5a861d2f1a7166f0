#include "daemon/runtime/base64.h"

#include <errno.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen,
                   enum base64_padding padding)
{
    size_t pad = 0;

    if (padding == BASE64_STRICT && inlen % 4 != 0) {
        errno = EINVAL;
        return -1;
    }
    while (pad < 2 && inlen > 0 && in[inlen - 1] == '=') {
        inlen--;
        pad++;
    }
    /* Padding, when given, must complete a 4-character group; one character
     * alone cannot carry a byte. */
    if ((pad > 0 && (inlen + pad) % 4 != 0) || inlen % 4 == 1) {
        errno = EINVAL;
        return -1;
    }
    size_t need = inlen / 4 * 3 + (inlen % 4 == 0 ? 0 : inlen % 4 - 1);
    if (need > outlen) {
        errno = ENOBUFS;
        return -1;
    }

    unsigned long acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < inlen; i++) {
        int v = sextet((unsigned char)in[i]);
        if (v < 0) {
            errno = EINVAL;
            return -1;
        }
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1UL << bits) - 1;
        }
    }
    if (n < outlen)
        out[n] = '\0';
    return (long)n;
}

int base64_encode(const void *in, size_t n, char *out, size_t outlen)
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
