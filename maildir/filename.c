#include "maildir/filename.h"

#include <errno.h>
#include <string.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* 1-20 digits, all of [p, p+n), that fit in 64 bits. */
static int parse_u64(const char *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;

    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

static uint64_t leading_number(const char *p, size_t n)
{
    uint64_t x = 0;

    for (size_t i = 0; i < n && is_digit(p[i]); i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return UINT64_MAX;
        x = x * 10 + d;
    }
    return x;
}

static void parse_hint(const char *field, size_t n, struct maildir_name *out)
{
    uint64_t v;

    if (n < 2 || field[1] != '=' || parse_u64(field + 2, n - 2, &v) == -1)
        return;
    if (field[0] == 'S' && !out->has_size_s) {
        out->size_s = v;
        out->has_size_s = 1;
    } else if (field[0] == 'W' && !out->has_size_w) {
        out->size_w = v;
        out->has_size_w = 1;
    }
}

size_t maildir_unique_len(const char *name)
{
    return strcspn(name, ":");
}

void maildir_name_parse(const char *name, struct maildir_name *out)
{
    size_t ulen = maildir_unique_len(name);

    memset(out, 0, sizeof(*out));
    out->unique_len = ulen;
    out->timestamp = leading_number(name, ulen);

    /* The first field is the delivery's own name, never a hint. */
    const char *end = name + ulen;
    const char *p = memchr(name, ',', ulen);
    while (p != NULL) {
        const char *field = p + 1;
        const char *next = memchr(field, ',', (size_t)(end - field));
        const char *fend = next ? next : end;
        parse_hint(field, (size_t)(fend - field), out);
        p = next;
    }

    if (name[ulen] == ':' && name[ulen + 1] == '2' && name[ulen + 2] == ',') {
        out->flags = name + ulen + 3;
        out->flags_len = strcspn(out->flags, ",");
    }
}

/* Concatenate up to three pieces into out; ERANGE if they do not fit. */
static int join3(char *out, size_t outsz, const char *a, size_t alen,
                 const char *b, size_t blen, const char *c, size_t clen)
{
    if (alen + blen + clen >= outsz) {
        errno = ERANGE;
        return -1;
    }
    memcpy(out, a, alen);
    memcpy(out + alen, b, blen);
    memcpy(out + alen + blen, c, clen);
    out[alen + blen + clen] = '\0';
    return 0;
}

int maildir_name_for_cur(const char *name, char *out, size_t outsz)
{
    size_t len = strlen(name);
    int has_info = name[maildir_unique_len(name)] == ':';

    return join3(out, outsz, name, len, ":2,", has_info ? 0 : 3, "", 0);
}

int maildir_name_with_flag(const char *name, char flag, char *out, size_t outsz)
{
    struct maildir_name pn;
    size_t len = strlen(name);

    if (!((flag >= 'A' && flag <= 'Z') || (flag >= 'a' && flag <= 'z'))) {
        errno = EINVAL;
        return -1;
    }
    maildir_name_parse(name, &pn);
    if (name[pn.unique_len] != ':')
        return join3(out, outsz, name, len, ":2,", 3, &flag, 1);
    if (pn.flags == NULL || memchr(pn.flags, flag, pn.flags_len) != NULL)
        return join3(out, outsz, name, len, "", 0, "", 0);

    size_t at = (size_t)(pn.flags - name);
    size_t stop = at + pn.flags_len;
    while (at < stop && name[at] < flag)
        at++;
    return join3(out, outsz, name, at, &flag, 1, name + at, len - at);
}
