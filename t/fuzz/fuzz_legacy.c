/*
 * The legacy UIDL files a migration leaves behind (maildir/legacy*.c):
 * courierpop3dsizelist and dovecot-uidlist, parsed and applied to a listing
 * of the maildir. The first byte picks the parser; the listing holds every
 * recorded name plus names of mail delivered after the switch.
 * Invariants: every record can be found by its own name; after applying,
 * every message has a UIDL of printable, non-space ASCII that no other
 * message of the mailbox has, unless the legacy file itself gave that UIDL
 * to several records (Dovecot serves such duplicates as they are, and so
 * must we, or clients fetch mail again); the listing keeps every message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maildir/legacy.h"
#include "maildir/scan.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int by_uidl(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* How many records of the legacy file carry this UIDL. */
static size_t legacy_uidl_count(const struct legacy_list *lg, const char *uidl)
{
    size_t n = 0, len = strlen(uidl);
    for (size_t i = 0; i < lg->count; i++)
        n += lg->recs[i].uidl_len == len &&
             memcmp(legacy_rec_uidl(lg, &lg->recs[i]), uidl, len) == 0;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    struct legacy_list *lg = NULL;
    int rc = (data[0] & 1) ? legacy_dovecot_parse((const char *)data + 1, size - 1, &lg)
                           : legacy_courier_parse((const char *)data + 1, size - 1, &lg);
    if (rc == -1 || lg == NULL)
        return 0;

    struct maildir *md = maildir_new();
    fuzz_check(md != NULL, "maildir_new");
    for (size_t i = 0; i < lg->count; i++) {
        const struct legacy_rec *r = &lg->recs[i];
        const char *name = legacy_rec_name(lg, r);
        const struct legacy_rec *found = legacy_find(lg, name, r->name_len);
        fuzz_check(found != NULL && found->name_len == r->name_len &&
                   memcmp(legacy_rec_name(lg, found), name, r->name_len) == 0,
                   "a record is not found by its own name");
        /* As a file in cur/: the unique part, a flag suffix, no NUL or '/'. */
        char file[UINT16_MAX + 8];
        memcpy(file, name, r->name_len);
        memcpy(file + r->name_len, ":2,S", 5);
        if (memchr(file, '\0', r->name_len) || memchr(file, '/', r->name_len))
            continue;
        fuzz_check(maildir_add(md, file, r->name_len) == 0, "maildir_add");
    }
    /* Mail that arrived after the switch, with names no old server saw. */
    for (unsigned i = 0; i < 3; i++) {
        char file[64];
        snprintf(file, sizeof(file), "%u.M%uP1.fastpop-fuzz:2,", 1700000000u + i, i);
        fuzz_check(maildir_add(md, file, 10) == 0, "maildir_add");
    }
    /* In scan order, as index_sync gives it (which also serves one file per unique name). */
    maildir_sort(md);
    size_t before = md->count;
    if (legacy_apply(lg, md) == 0) {
        fuzz_check(md->count == before, "applying a legacy list changed the message count");
        char **uidls = calloc(md->count, sizeof(*uidls));
        fuzz_check(uidls != NULL, "calloc");
        for (size_t i = 0; i < md->count; i++) {
            size_t len;
            const char *u = maildir_msg_uidl(md, i, &len);
            fuzz_check(len > 0, "an empty UIDL");
            for (size_t k = 0; k < len; k++)
                fuzz_check(u[k] >= 0x21 && u[k] <= 0x7E, "a UIDL byte outside 0x21-0x7E");
            uidls[i] = strndup(u, len);
            fuzz_check(uidls[i] != NULL, "strndup");
        }
        qsort(uidls, md->count, sizeof(*uidls), by_uidl);
        for (size_t i = 1; i < md->count; i++)
            fuzz_check(strcmp(uidls[i - 1], uidls[i]) != 0 ||
                       legacy_uidl_count(lg, uidls[i]) > 1, "two messages share a UIDL");
        for (size_t i = 0; i < md->count; i++)
            free(uidls[i]);
        free(uidls);
    }
    maildir_free(md);
    legacy_free(lg);
    return 0;
}
