#include "auth/passdb_ldap_filter.h"

#include <errno.h>
#include <string.h>

static int needs_escape(unsigned char c)
{
    return c < 0x20 || c >= 0x7f || c == '*' || c == '(' || c == ')' || c == '\\';
}

long passdb_ldap_filter_escape(const char *s, size_t n, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = needs_escape(c) ? 3 : 1;
        if (o + need >= outlen) {
            if (outlen > 0)
                out[0] = '\0';
            errno = ENOBUFS;
            return -1;
        }
        if (need == 3) {
            out[o++] = '\\';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xf];
        } else {
            out[o++] = (char)c;
        }
    }
    if (o >= outlen) {
        errno = ENOBUFS;
        return -1;
    }
    out[o] = '\0';
    return (long)o;
}

int passdb_ldap_filter_expand(const char *tmpl, const char *user, char *out, size_t outlen)
{
    const char *at = strchr(user, '@');
    size_t ulen = strlen(user);
    size_t o = 0;

    if (outlen == 0) {
        errno = ENOBUFS;
        return -1;
    }
    for (const char *p = tmpl; *p; p++) {
        const char *part = NULL;
        size_t plen = 0;

        if (*p != '%') {
            if (o + 1 >= outlen)
                goto full;
            out[o++] = *p;
            continue;
        }
        switch (*++p) {
        case '%':
            if (o + 1 >= outlen)
                goto full;
            out[o++] = '%';
            continue;
        case 'u':
            part = user;
            plen = ulen;
            break;
        case 'n':
            part = user;
            plen = at ? (size_t)(at - user) : ulen;
            break;
        case 'd':
            part = at ? at + 1 : "";
            plen = strlen(part);
            break;
        default:
            out[0] = '\0';
            errno = EINVAL;
            return -1;
        }
        long n = passdb_ldap_filter_escape(part, plen, out + o, outlen - o);
        if (n < 0)
            goto full;
        o += (size_t)n;
    }
    out[o] = '\0';
    return 0;
full:
    out[0] = '\0';
    errno = ENOBUFS;
    return -1;
}

int passdb_ldap_filter_check(const char *tmpl)
{
    size_t len = strlen(tmpl);
    int depth = 0;

    if (len < 2 || tmpl[0] != '(' || tmpl[len - 1] != ')')
        goto bad;
    for (size_t i = 0; i < len; i++) {
        if (tmpl[i] == '%') {
            i++;
            if (tmpl[i] == '\0' || strchr("%und", tmpl[i]) == NULL)
                goto bad;
        } else if (tmpl[i] == '\\') {
            /* A literal escape in the template itself: \XX. */
            i++;
            if (tmpl[i] == '\0' || tmpl[i + 1] == '\0')
                goto bad;
            i++;
        } else if (tmpl[i] == '(') {
            depth++;
        } else if (tmpl[i] == ')') {
            /* One filter: the outer parentheses close only at the end. */
            if (--depth < 0 || (depth == 0 && i != len - 1))
                goto bad;
        }
    }
    if (depth != 0)
        goto bad;
    return 0;
bad:
    errno = EINVAL;
    return -1;
}
