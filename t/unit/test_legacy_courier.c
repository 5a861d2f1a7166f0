/*
 * courierpop3dsizelist: every version parsed from files laid out byte for
 * byte as pop3dserver.C savepop3dlist writes them ("/%d %lu %lu" header,
 * "%s %lu %lu:%lu:%d" records), mixed old/new mail, odd names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "maildir/legacy.h"
#include "maildir/scan.h"

/* A message list as a scan of cur/ holding these names would give. */
static struct maildir *list_of(const char *const *names, size_t n)
{
    struct maildir *md = maildir_new();
    assert_non_null(md);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(maildir_add(md, names[i], 10), 0);
    maildir_sort(md);
    return md;
}

static void assert_uidl(const struct maildir *md, size_t i, const char *want)
{
    size_t len;
    const char *u = maildir_msg_uidl(md, i, &len);
    if (len != strlen(want) || memcmp(u, want, len) != 0)
        fail_msg("message %zu: UIDL \"%.*s\", want \"%s\"", i + 1, (int)len, u, want);
}

static struct maildir *apply(const char *file, const char *const *names, size_t n)
{
    struct legacy_list *lg;
    assert_int_equal(legacy_courier_parse(file, strlen(file), &lg), 0);
    assert_non_null(lg);
    assert_int_equal(lg->kind, LEGACY_COURIER);
    struct maildir *md = list_of(names, n);
    assert_int_equal(legacy_apply(lg, md), 0);
    legacy_free(lg);
    return md;
}

/* Courier's own test suite: imap/pop3testsuite.txt. */
static void test_v3_testsuite(void **state)
{
    (void)state;
    static const char *const names[] = { "msg2:2,S" };
    struct maildir *md = apply("/3 4 200\nmsg2:2,S 69 2:200:0\n", names, 1);
    assert_uidl(md, 0, "UID2-200");
    assert_int_equal(md->msgs[0].size, 10); /* a legacy size is never served */
    maildir_free(md);
}

/*
 * A /2 list rewritten by the 2013-2018 Courier from a v0/v1 one: file-name
 * UIDLs (0:0), UID<n> (n:0) and UID<n>-<uidv> side by side, plus mail that
 * arrived after the switch, and flags that changed since the list was written.
 */
static void test_v2_mixed(void **state)
{
    (void)state;
    static const char *const names[] = {
        "1277000001.M1P1.host:2,S",   /* listed with other flags */
        "1277000002.M2P2.host:2,",
        "1277000003.M3P3.host:2,RS",
        "1277000004.M4P4.host:2,",    /* new after the switch */
        "1277000000.M0P0.host:2,",    /* new, but sorts first */
    };
    const char *file = "/2 13 1277387390\n"
                       "1277000001.M1P1.host:2, 120 0:0\n"
                       "1277000002.M2P2.host:2, 50 11:0\n"
                       "1277000003.M3P3.host:2,S 75 12:1277387390\n"
                       "1276000000.gone:2,S 75 10:1277387390\n";
    struct maildir *md = apply(file, names, 5);
    assert_string_equal(maildir_msg_name(md, 0), "1277000000.M0P0.host:2,");
    assert_uidl(md, 0, "1277000000.M0P0.host");
    assert_uidl(md, 1, "1277000001.M1P1.host");
    assert_uidl(md, 2, "UID11");
    assert_uidl(md, 3, "UID12-1277387390");
    assert_uidl(md, 4, "1277000004.M4P4.host");
    maildir_free(md);
}

static void test_v1_and_v0(void **state)
{
    (void)state;
    static const char *const names[] = { "1000000001.x:2,S", "1000000002.y:2," };
    struct maildir *md = apply("/1 12\n1000000001.x:2,S 10 5\n1000000002.y 11 6\n", names, 2);
    assert_uidl(md, 0, "UID5");
    assert_uidl(md, 1, "UID6");
    maildir_free(md);

    /* v0: no header, "<name> <size>": every UIDL is the escaped file name. */
    md = apply("1000000001.x:2,S 10\n1000000002.y 11\n", names, 2);
    assert_uidl(md, 0, "1000000001.x");
    assert_uidl(md, 1, "1000000002.y");
    maildir_free(md);
}

/* Spaces in names (split at the last two spaces) and Courier's +XX escape. */
static void test_odd_names(void **state)
{
    (void)state;
    static const char *const names[] = {
        "1000000001.host name  two:2,S",
        "1000000002.q'u\"o+te\t\xc3\xa9~!%\\:2,",
        "1000000003.p 1 2:2,",
    };
    const char *file = "/3 9 77\n"
                       "1000000001.host name  two:2,S 10 0:77:0\n"
                       "1000000002.q'u\"o+te\t\xc3\xa9~!%\\:2, 10 0:0:0\n"
                       "1000000003.p 1 2:2, 10 8:77:1\n";
    struct maildir *md = apply(file, names, 3);
    assert_uidl(md, 0, "1000000001.host+20name+20+20two");
    assert_uidl(md, 1, "1000000002.q+27u+22o+2Bte+09+C3+A9~!%\\");
    assert_uidl(md, 2, "UID8-77");
    maildir_free(md);
}

/* A 117-character file-name UIDL is served whole, as Courier served it. */
static void test_long_name(void **state)
{
    (void)state;
    char name[160], file[200];
    memset(name, 'a', 117);
    memcpy(name, "1000000001.", 11);
    name[117] = '\0';
    snprintf(file, sizeof(file), "%s 10\n", name);
    const char *names[] = { name };
    struct maildir *md = apply(file, names, 1);
    assert_uidl(md, 0, name);
    maildir_free(md);
}

/* Versions Courier never wrote make the list unknown; bad lines are skipped. */
static void test_rejected_and_malformed(void **state)
{
    (void)state;
    struct legacy_list *lg;
    assert_int_equal(legacy_courier_parse("/4 1 2\nx 1 1:2:0\n", 18, &lg), 0);
    assert_null(lg);
    assert_int_equal(legacy_courier_parse("/9\n", 3, &lg), 0);
    assert_null(lg);

    const char *file = "/3 5 99\n"
                       "nospace\n"
                       "1000000001.a 12x 1:99:0\n"
                       "1000000002.b 12 2:99\n"      /* v2 record in a v3 list */
                       "1000000003.c 12 3:99:0\n"
                       "1000000003.c 12 4:99:0\n"    /* listed twice: the first wins */
                       "1000000004.d 12 4:99:0";     /* no final newline */
    assert_int_equal(legacy_courier_parse(file, strlen(file), &lg), 0);
    assert_non_null(lg);
    assert_int_equal(lg->count, 2);
    const struct legacy_rec *r = legacy_find(lg, "1000000003.c", 12);
    assert_non_null(r);
    assert_string_equal(legacy_rec_uidl(lg, r), "UID3-99");
    assert_null(legacy_find(lg, "1000000001.a", 12));
    assert_non_null(legacy_find(lg, "1000000004.d", 12));
    legacy_free(lg);

    /* An empty file is a v0 list with nothing in it. */
    assert_int_equal(legacy_courier_parse("", 0, &lg), 0);
    assert_non_null(lg);
    assert_int_equal(lg->count, 0);
    legacy_free(lg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v3_testsuite),
        cmocka_unit_test(test_v2_mixed),
        cmocka_unit_test(test_v1_and_v0),
        cmocka_unit_test(test_odd_names),
        cmocka_unit_test(test_long_name),
        cmocka_unit_test(test_rejected_and_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
