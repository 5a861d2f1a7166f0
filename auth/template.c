#include "auth/template.h"

#include "daemon/runtime/limits.h"
#include "daemon/runtime/template_escape.h"

#include <errno.h>
#include <string.h>

#define put template_out_put

/*
 * A user name part (%u %n %d) must stay one path component below the
 * template's fixed text: no '/', no leading '.' (so neither "." nor ".."
 * nor a hidden name), no '%' (never a second expansion, e.g. by a tool that
 * reads the path as a template), no control bytes. Empty only where allowed
 * (%d of a name without '@').
 */
static int component_ok(const char *s, size_t n, int may_be_empty)
{
    if (n == 0)
        return may_be_empty;
    if (s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '/' || ch == '%' || ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* 1 if path has a "." or ".." component: whatever put it there, it may climb. */
static int has_dot_component(const char *path)
{
    for (const char *p = path; *p; p++) {
        if (*p != '.' || (p != path && p[-1] != '/'))
            continue;
        size_t dots = p[1] == '.' ? 2 : 1;
        if (p[dots] == '/' || p[dots] == '\0')
            return 1;
    }
    return 0;
}

/* What a maildir template's variables stand for. */
struct template_vars {
    const char *user, *local, *domain, *home;
};

static int value_of(void *arg, char var, const char **value, char *scratch)
{
    const struct template_vars *v = arg;
    (void)scratch;
    switch (var) {
    case 'u':
        *value = v->user;
        return 0;
    case 'n':
        *value = v->local;
        return 0;
    case 'd':
        *value = v->domain;
        return 0;
    case 'h':
        if (v->home[0] == '\0') {
            errno = ENOENT;
            return -1;
        }
        *value = v->home;
        return 0;
    default:
        errno = EINVAL;
        return -1;
    }
}

int template_expand(const char *tmpl, const char *user, const char *home, char *out,
                    size_t outlen)
{
    struct template_out o = { out, 0, outlen, 0 };
    const char *at = strchr(user, '@');
    size_t local_len = at ? (size_t)(at - user) : strlen(user);
    const char *domain = at ? at + 1 : "";
    char local[USERNAME_MAX];

    if (outlen == 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    /* Checked whether or not the template uses them: a name is usable everywhere or nowhere. */
    if (!component_ok(user, strlen(user), 0) || !component_ok(user, local_len, 0) ||
        !component_ok(domain, strlen(domain), 1)) {
        errno = EPERM;
        return -1;
    }
    if (local_len >= sizeof(local)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(local, user, local_len);
    local[local_len] = '\0';
    if (tmpl[0] == '~') {
        if (home[0] == '\0') {
            errno = ENOENT;
            return -1;
        }
        put(&o, home, strlen(home));
        tmpl++;
    }
    struct template_vars vars = { user, local, domain, home };
    if (template_expand_escapes(tmpl, TEMPLATE_MAILDIR_MODIFIERS, value_of, &vars, &o) == -1)
        return -1;
    if (o.full) {
        errno = ENAMETOOLONG;
        return -1;
    }
    out[o.len] = '\0';
    if (out[0] != '/') {
        errno = EINVAL;
        return -1;
    }
    if (has_dot_component(out)) {
        errno = EPERM;
        return -1;
    }
    return 0;
}
