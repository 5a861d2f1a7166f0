/*
 * courierpop3dsizelist, as Courier writes it (pop3dserver.C savepop3dlist;
 * ../shared/reference/legacy-uidl.md): LF-terminated lines,
 *   v0: no header;             records "<name> <size>"
 *   v1: "/1 <next>";           records "<name> <size> <uid>"
 *   v2: "/2 <next> <uidv>";    records "<name> <size> <uid>:<uidv>"
 *   v3: "/3 <next> <uidv>";    records "<name> <size> <uid>:<uidv>:<utf8>"
 * Names may hold spaces, so a record is split at its last two spaces
 * (v0: its last one). Names keep the ":2,<flags>" they had when written;
 * only the part before ':' identifies a message.
 *
 * Every version is honoured, v0 and v1 too: 1.0.16 rejects them, but the
 * 2013-2018 Courier served them, and that is what their users last saw.
 * Any other "/<n>" header makes the whole file unknown, as in Courier.
 * A line that does not parse is skipped.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "maildir/filename.h"
#include "maildir/legacy.h"

/* Decimal digits [p, end) into *out; -1 if empty, not all digits, or too big. */
static int parse_u64(const char *p, const char *end, uint64_t *out)
{
    uint64_t n = 0;
    if (p == end)
        return -1;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || n > (UINT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    *out = n;
    return 0;
}

/* The last ' ' in [p, end), or NULL. */
static const char *last_space(const char *p, const char *end)
{
    while (end > p) {
        end--;
        if (*end == ' ')
            return end;
    }
    return NULL;
}

/*
 * Courier's "version 0" UIDL: the name up to ':', each byte outside
 * 0x21-0x7E and each ' " + written "+XX" (upper-case hex). Never cut: a
 * long name gives a long UIDL, as Courier served it.
 */
static size_t courier_escape(const char *name, size_t len, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x21 || c > 0x7E || c == '\'' || c == '"' || c == '+') {
            out[o++] = '+';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xf];
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

static int parse_record(struct legacy_list *lg, const void *arg, const char *line,
                        const char *end)
{
    (void)arg;
    uint64_t size, uid = 0, uidv = 0;
    const char *name_end;

    if (lg->version == 0) {
        name_end = last_space(line, end);
        if (name_end == NULL || parse_u64(name_end + 1, end, &size) == -1)
            return 0;
    } else {
        const char *sp2 = last_space(line, end);
        if (sp2 == NULL)
            return 0;
        name_end = last_space(line, sp2);
        if (name_end == NULL || parse_u64(name_end + 1, sp2, &size) == -1)
            return 0;
        const char *f = sp2 + 1;
        const char *colon = memchr(f, ':', (size_t)(end - f));
        if (lg->version == 1) {
            if (parse_u64(f, end, &uid) == -1)
                return 0;
        } else {
            if (colon == NULL || parse_u64(f, colon, &uid) == -1)
                return 0;
            const char *v = colon + 1;
            const char *colon2 = memchr(v, ':', (size_t)(end - v));
            if (lg->version == 3 && colon2 == NULL)
                return 0;
            if (parse_u64(v, colon2 ? colon2 : end, &uidv) == -1)
                return 0;
        }
    }
    const char *colon = memchr(line, ':', (size_t)(name_end - line));
    size_t name_len = (size_t)((colon ? colon : name_end) - line);
    if (name_len == 0 || name_len > 255)
        return 0; /* no such file name in cur/ */

    char uidl[3 * 255 + 1];
    size_t uidl_len;
    if (uid != 0 && uidv != 0)
        uidl_len = (size_t)snprintf(uidl, sizeof(uidl), "UID%llu-%llu",
                                    (unsigned long long)uid, (unsigned long long)uidv);
    else if (uid != 0)
        uidl_len = (size_t)snprintf(uidl, sizeof(uidl), "UID%llu", (unsigned long long)uid);
    else
        uidl_len = courier_escape(line, name_len, uidl);
    int rc = legacy_add(lg, line, name_len, uidl, uidl_len, uid, 0, 0);
    /* A record no server could have used (an absurd length) is skipped. */
    return rc == -1 && errno == EINVAL ? 0 : rc;
}

/* "/<n> ..." header: the version, or -1 for one Courier never wrote. */
static int header_version(const char *line, const char *end)
{
    if (end - line < 2 || line[0] != '/' || line[1] < '1' || line[1] > '3')
        return -1;
    if (end - line > 2 && line[2] != ' ')
        return -1;
    return line[1] - '0';
}

int legacy_courier_parse(const char *buf, size_t len, struct legacy_list **out)
{
    const char *p = buf;
    const char *end = buf + len;
    int version = 0;

    *out = NULL;
    if (len > 0 && buf[0] == '/') {
        const char *nl = memchr(p, '\n', len);
        const char *line_end = nl ? nl : end;
        version = header_version(p, line_end);
        if (version == -1)
            return 0;
        p = nl ? nl + 1 : end;
    }
    struct legacy_list *lg = legacy_new(LEGACY_COURIER, version);
    if (lg == NULL)
        return -1;
    return legacy_parse_lines(lg, p, end, parse_record, NULL, out);
}
