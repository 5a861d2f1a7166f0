/*
 * dovecot-uidlist, as Dovecot writes it (maildir-uidlist.c;
 * ../shared/reference/interop.md 2.2, legacy-uidl.md):
 *   v1: "1 <uidvalidity> <nextuid>"      records "<uid> <filename>"
 *   v3: "3 V<uidv> N<next> G<guid> ..."  records "<uid> [<key><value> ...] :<filename>"
 * v1 is also Courier IMAP's courierimapuiddb layout. In v3 the keys that
 * matter to POP3 are P (the UIDL to serve; empty = the base file name),
 * O (POP3 order) and W (virtual size, not used: see legacy.h). The file
 * name is the last one Dovecot knew, flags included, and may hold spaces;
 * only its part before ':' identifies a message.
 *
 * A record without P gets the site's pop3_uidl_format (the setting
 * dovecot_uidl_format, maildir/uidl_format.h), by default Dovecot's
 * %08Xu%08Xv, which prints lower-case hex; %g takes the record's G field.
 * Version 2 (a few development releases of 2007) and unknown versions are
 * not read. A line that does not parse is skipped, and so is a record whose
 * UIDL is not one (maildir_uidl_valid()) or repeats an earlier record's
 * (legacy_finish()): that message keeps fastpop's own UIDL.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "maildir/filename.h"
#include "maildir/legacy.h"
#include "maildir/uidl.h"
#include "maildir/uidl_format.h"

/* Leading decimal digits at *p (advanced past them); -1 if none or too big. */
static int take_u64(const char **p, const char *end, uint64_t *out)
{
    uint64_t n = 0;
    const char *s = *p;
    if (s == end || *s < '0' || *s > '9')
        return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (n > (UINT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *out = n;
    return 0;
}

struct fields {
    const char *pop3_uidl; /* P value, NULL without P */
    size_t pop3_uidl_len;
    const char *guid;      /* G value, NULL without G */
    size_t guid_len;
    int has_order;
    uint64_t order;
    const char *name;
    size_t name_len;
};

/* After "<uid>": v3 key/value tokens, then " :<filename>". */
static int parse_v3_fields(const char *p, const char *end, struct fields *f)
{
    for (;;) {
        while (p < end && *p == ' ')
            p++;
        if (p == end)
            return -1;
        if (*p == ':') {
            f->name = p + 1;
            f->name_len = (size_t)(end - f->name);
            return 0;
        }
        const char *tok_end = memchr(p, ' ', (size_t)(end - p));
        if (tok_end == NULL)
            return -1;
        if (*p == 'P') {
            f->pop3_uidl = p + 1;
            f->pop3_uidl_len = (size_t)(tok_end - p - 1);
        } else if (*p == 'G') {
            f->guid = p + 1;
            f->guid_len = (size_t)(tok_end - p - 1);
        } else if (*p == 'O') {
            const char *v = p + 1;
            if (take_u64(&v, tok_end, &f->order) == 0 && v == tok_end)
                f->has_order = 1;
        }
        p = tok_end;
    }
}

static int parse_record(struct legacy_list *lg, const void *arg, const char *line,
                        const char *end)
{
    uint64_t uidv = *(const uint64_t *)arg;
    struct fields f = { 0 };
    uint64_t uid;
    const char *p = line;

    if (take_u64(&p, end, &uid) == -1 || uid == 0 || p == end || *p != ' ')
        return 0;
    if (lg->version == 1) {
        f.name = p + 1;
        f.name_len = (size_t)(end - f.name);
    } else if (parse_v3_fields(p, end, &f) == -1) {
        return 0;
    }
    const char *colon = memchr(f.name, ':', f.name_len);
    size_t name_len = colon ? (size_t)(colon - f.name) : f.name_len;
    if (name_len == 0 || name_len > 255)
        return 0;

    char uidl[MAILDIR_UIDL_SIZE];
    const char *u = uidl;
    size_t ulen = 0;
    if (f.pop3_uidl != NULL && f.pop3_uidl_len > 0) {
        u = f.pop3_uidl;
        ulen = f.pop3_uidl_len;
    } else if (f.pop3_uidl != NULL) {
        u = f.name; /* empty P: the base file name */
        ulen = name_len;
    } else {
        struct uidl_format_vars v = { uid, uidv, f.name, name_len, f.guid, f.guid_len };
        /* Too long for a UIDL: not one Dovecot could have served to a client that kept it. */
        if (uidl_format_expand(legacy_dovecot_uidl_format(), &v, uidl, sizeof(uidl), &ulen) == -1)
            return 0;
    }
    /* A P value (or a file name standing in for one) is served as is: it must be a UIDL. */
    if (!maildir_uidl_valid(u, ulen))
        return 0;
    int rc = legacy_add(lg, f.name, name_len, u, ulen, uid, f.has_order, f.order);
    /* A record no server could have used (an absurd length) is skipped. */
    return rc == -1 && errno == EINVAL ? 0 : rc;
}

/* Header: version and uidvalidity; -1 for a version not read here. */
static int parse_header(const char *p, const char *end, int *version, uint64_t *uidv)
{
    *uidv = 0;
    if (end - p >= 2 && p[0] == '1' && p[1] == ' ') {
        p += 2;
        *version = 1;
        return take_u64(&p, end, uidv) == -1 ? -1 : 0;
    }
    if (end - p >= 1 && p[0] == '3' && (end - p == 1 || p[1] == ' ')) {
        *version = 3;
        for (p++; p < end; p++) {
            if (p[-1] == ' ' && *p == 'V') {
                const char *v = p + 1;
                if (take_u64(&v, end, uidv) == -1)
                    return -1;
            }
        }
        return 0;
    }
    return -1;
}

int legacy_dovecot_parse(const char *buf, size_t len, struct legacy_list **out)
{
    const char *end = buf + len;
    const char *nl = memchr(buf, '\n', len);
    int version;
    uint64_t uidv;

    *out = NULL;
    if (parse_header(buf, nl ? nl : end, &version, &uidv) == -1)
        return 0;
    struct legacy_list *lg = legacy_new(LEGACY_DOVECOT, version);
    if (lg == NULL)
        return -1;
    return legacy_parse_lines(lg, nl ? nl + 1 : end, end, parse_record, &uidv, out);
}
