#include "daemon/runtime/escape.h"

#include <stdio.h>
#include <string.h>

const char *text_log_escape(const char *s, char *out, size_t outlen)
{
    size_t n = 0;

    if (outlen == 0)
        return out;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char piece[5];
        size_t len;
        if (c > 0x20 && c < 0x7f && c != '\\') {
            piece[0] = (char)c;
            len = 1;
        } else {
            snprintf(piece, sizeof(piece), "\\x%02x", c);
            len = 4;
        }
        if (n + len >= outlen) {
            /* Mark the cut so a shortened name is never mistaken for a real one. */
            size_t keep = outlen > 4 ? outlen - 4 : 0;
            if (n > keep)
                n = keep;
            while (n + 1 < outlen && n < keep + 3)
                out[n++] = '.';
            break;
        }
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = '\0';
    return out;
}
