#include "auth/text.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int base64_value(unsigned char c)
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

long text_base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen)
{
    size_t pad = 0;
    while (pad < 2 && inlen > 0 && in[inlen - 1] == '=') {
        inlen--;
        pad++;
    }
    /* Padding, when given, must complete a 4-character group. */
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
        int v = base64_value((unsigned char)in[i]);
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
    return (long)n;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long text_hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen)
{
    if (inlen % 2 != 0) {
        errno = EINVAL;
        return -1;
    }
    if (inlen / 2 > outlen) {
        errno = ENOBUFS;
        return -1;
    }
    for (size_t i = 0; i < inlen; i += 2) {
        int hi = hex_value((unsigned char)in[i]);
        int lo = hex_value((unsigned char)in[i + 1]);
        if (hi < 0 || lo < 0) {
            errno = EINVAL;
            return -1;
        }
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(inlen / 2);
}
