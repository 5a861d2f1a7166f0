#include "maildir/uidl_format.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/runtime/template_escape.h"

/* A base file name is at most 255 bytes (maildir/legacy_dovecot.c skips longer). */
_Static_assert(TEMPLATE_SCRATCH_MAX >= 256, "uidl_format: a file name must fit the scratch");

static int copy_value(const char *s, size_t n, char *out)
{
    if (n >= TEMPLATE_SCRATCH_MAX) {
        errno = EINVAL;
        return -1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int value_of(void *arg, char var, const char **value, char *scratch)
{
    const struct uidl_format_vars *v = arg;
    *value = scratch;
    switch (var) {
    case 'u':
        snprintf(scratch, TEMPLATE_SCRATCH_MAX, "%llu", (unsigned long long)v->uid);
        return 0;
    case 'v':
        snprintf(scratch, TEMPLATE_SCRATCH_MAX, "%llu", (unsigned long long)v->uidvalidity);
        return 0;
    case 'f':
        return copy_value(v->name, v->name_len, scratch);
    case 'g':
        if (v->guid != NULL && v->guid_len > 0)
            return copy_value(v->guid, v->guid_len, scratch);
        return copy_value(v->name, v->name_len, scratch);
    default:
        errno = EINVAL;
        return -1;
    }
}

int uidl_format_expand(const char *fmt, const struct uidl_format_vars *v, char *out, size_t cap,
                       size_t *len)
{
    struct template_out o = { out, 0, cap, 0 };

    if (cap == 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (template_expand_escapes(fmt, UIDL_FORMAT_MODIFIERS, value_of, (void *)v, &o) == -1)
        return -1;
    if (o.full) {
        errno = ENAMETOOLONG;
        return -1;
    }
    out[o.len] = '\0';
    *len = o.len;
    return 0;
}
