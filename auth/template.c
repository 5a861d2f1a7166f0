#include "auth/template.h"

#include <errno.h>
#include <string.h>

struct out {
    char *p;
    size_t len;
    size_t cap;
    int full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || n >= o->cap - o->len) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

int template_expand(const char *tmpl, const char *user, const char *home, char *out,
                    size_t outlen)
{
    struct out o = { out, 0, outlen, 0 };
    const char *at = strchr(user, '@');
    size_t local_len = at ? (size_t)(at - user) : strlen(user);
    const char *domain = at ? at + 1 : "";

    if (outlen == 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (tmpl[0] == '~') {
        if (home[0] == '\0') {
            errno = ENOENT;
            return -1;
        }
        put(&o, home, strlen(home));
        tmpl++;
    }
    for (const char *p = tmpl; *p; p++) {
        if (*p != '%') {
            put(&o, p, 1);
            continue;
        }
        switch (*++p) {
        case 'u':
            put(&o, user, strlen(user));
            break;
        case 'n':
            put(&o, user, local_len);
            break;
        case 'd':
            put(&o, domain, strlen(domain));
            break;
        case 'h':
            if (home[0] == '\0') {
                errno = ENOENT;
                return -1;
            }
            put(&o, home, strlen(home));
            break;
        case '%':
            put(&o, "%", 1);
            break;
        default:
            /* Also a lone '%' at the end: p points at the NUL. */
            errno = EINVAL;
            return -1;
        }
    }
    if (o.full) {
        errno = ENAMETOOLONG;
        return -1;
    }
    out[o.len] = '\0';
    if (out[0] != '/') {
        errno = EINVAL;
        return -1;
    }
    return 0;
}
