#include "daemon/runtime/hex.h"

#include <errno.h>

int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen)
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
        int hi = hex_digit((unsigned char)in[i]);
        int lo = hex_digit((unsigned char)in[i + 1]);
        if (hi < 0 || lo < 0) {
            errno = EINVAL;
            return -1;
        }
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(inlen / 2);
}
