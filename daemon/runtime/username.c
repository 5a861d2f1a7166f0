#include "daemon/runtime/username.h"

#include <string.h>

/* Length of the UTF-8 sequence at s (1-4), or 0 if it is not a valid one or a control. */
static size_t utf8_char(const unsigned char *s)
{
    unsigned cp;
    size_t len;

    if (s[0] < 0x80)
        return s[0] > 0x20 && s[0] != 0x7f ? 1 : 0;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        cp = s[0] & 0x1fu;
        len = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        cp = s[0] & 0x0fu;
        len = 3;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        cp = s[0] & 0x07u;
        len = 4;
    } else {
        return 0;   /* a continuation byte first, 0xc0/0xc1 (overlong) or 0xf5.. */
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;   /* also stops at the NUL */
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
        return 0;   /* overlong, out of range, a surrogate, or a C1 control */
    return len;
}

int username_check(const char *name)
{
    const unsigned char *p = (const unsigned char *)name;
    size_t total = strlen(name);

    if (total == 0 || total >= USERNAME_MAX)
        return -1;
    while (*p) {
        size_t n = utf8_char(p);
        if (n == 0)
            return -1;
        p += n;
    }
    return 0;
}
