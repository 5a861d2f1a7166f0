/*
 * Maildir file names (maildir/filename.c) and the UIDL derived from them
 * (maildir/uidl.c). The input is cut at its first 0xFF into two names.
 * Invariants: a UIDL is 1-70 characters of 0x21-0x7E (RFC 1939), the same
 * every time, and two different unique names get different UIDLs; the parsed
 * parts of a name lie inside it; adding a flag or moving to cur/ keeps the
 * unique part.
 */
#include <stdint.h>
#include <string.h>

#include "maildir/filename.h"
#include "maildir/uidl.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_uidl(const char *uidl, size_t len)
{
    fuzz_check(len >= 1 && len <= MAILDIR_UIDL_MAX, "UIDL length outside 1-70");
    fuzz_check(strlen(uidl) == len, "UIDL length differs from its string");
    for (size_t i = 0; i < len; i++)
        fuzz_check(uidl[i] >= 0x21 && uidl[i] <= 0x7E, "UIDL byte outside 0x21-0x7E");
}

static void check_name(const char *name)
{
    struct maildir_name mn;
    maildir_name_parse(name, &mn);
    size_t n = strlen(name);
    fuzz_check(mn.unique_len <= n, "unique part longer than the name");
    fuzz_check(maildir_unique_len(name) == mn.unique_len, "two unique lengths disagree");
    if (mn.flags != NULL)
        fuzz_check(mn.flags >= name && mn.flags + mn.flags_len <= name + n,
                   "flags outside the name");

    char out[512];
    if (maildir_name_with_flag(name, 'S', out, sizeof(out)) == 0) {
        fuzz_check(maildir_unique_len(out) == mn.unique_len &&
                   memcmp(out, name, mn.unique_len) == 0, "the S flag changed the unique part");
        struct maildir_name flagged;
        maildir_name_parse(out, &flagged);
        /* Info other than ":2,..." (experimental ":1,") is left as it is. */
        if (flagged.flags == NULL)
            fuzz_check(strcmp(out, name) == 0, "a name without :2, info was changed");
        else
            fuzz_check(memchr(flagged.flags, 'S', flagged.flags_len) != NULL,
                       "the S flag is not in the new name");
    }
    if (maildir_name_for_cur(name, out, sizeof(out)) == 0)
        fuzz_check(maildir_unique_len(out) == mn.unique_len &&
                   memcmp(out, name, mn.unique_len) == 0, "the cur/ name changed the unique part");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    const uint8_t *cut = memchr(data, 0xFF, size);
    size_t len_a = cut ? (size_t)(cut - data) : size;
    const char *a = (const char *)data;
    const char *b = cut ? (const char *)cut + 1 : "";
    size_t len_b = cut ? size - len_a - 1 : 0;

    char ua[MAILDIR_UIDL_SIZE], ub[MAILDIR_UIDL_SIZE], again[MAILDIR_UIDL_SIZE];
    size_t la, lb, lagain;
    fuzz_check(maildir_uidl(a, len_a, ua, &la) == 0, "maildir_uidl failed");
    check_uidl(ua, la);
    fuzz_check(maildir_uidl(a, len_a, again, &lagain) == 0 && lagain == la &&
               memcmp(ua, again, la) == 0, "the same name gave two UIDLs");
    fuzz_check(maildir_uidl(b, len_b, ub, &lb) == 0, "maildir_uidl failed");
    check_uidl(ub, lb);
    if (len_a != len_b || memcmp(a, b, len_a) != 0)
        fuzz_check(la != lb || memcmp(ua, ub, la) != 0, "two unique names share a UIDL");

    /* As a file name: up to the first NUL, as readdir would give it. */
    char name[4097];
    memcpy(name, a, len_a);
    name[len_a] = '\0';
    check_name(name);
    return 0;
}
