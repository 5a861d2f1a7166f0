#include "maildir/uidl_format.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/runtime/template_escape.h"

/* A base file name is at most 255 bytes (maildir/legacy_dovecot.c skips longer). */
enum { UIDL_FORMAT_VALUE_MAX = 256 };

static int copy_value(const char *s, size_t n, char *out)
{
    if (n >= UIDL_FORMAT_VALUE_MAX)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int uidl_format_expand(const char *fmt, const struct uidl_format_vars *v, char *out, size_t cap,
                       size_t *len)
{
    struct template_out o = { out, 0, cap, 0 };
    char value[UIDL_FORMAT_VALUE_MAX];

    if (cap == 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            template_out_put(&o, p, 1);
            continue;
        }
        struct template_escape esc;
        const char *why;
        int n = template_escape_parse(p, UIDL_FORMAT_MODIFIERS, &esc, &why);
        if (n == -1) {
            errno = EINVAL;
            return -1;
        }
        p += n - 1;
        int rc = 0;
        switch (esc.var) {
        case 'u':
            snprintf(value, sizeof(value), "%llu", (unsigned long long)v->uid);
            break;
        case 'v':
            snprintf(value, sizeof(value), "%llu", (unsigned long long)v->uidvalidity);
            break;
        case 'f':
            rc = copy_value(v->name, v->name_len, value);
            break;
        case 'g':
            if (v->guid != NULL && v->guid_len > 0)
                rc = copy_value(v->guid, v->guid_len, value);
            else
                rc = copy_value(v->name, v->name_len, value);
            break;
        case '%':
            strcpy(value, "%");
            break;
        default:
            rc = -1;
        }
        if (rc == -1 || template_escape_apply(&esc, value, &o) == -1) {
            errno = EINVAL;
            return -1;
        }
    }
    if (o.full) {
        errno = ENAMETOOLONG;
        return -1;
    }
    out[o.len] = '\0';
    *len = o.len;
    return 0;
}
