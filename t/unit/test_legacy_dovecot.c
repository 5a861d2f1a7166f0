/*
 * dovecot-uidlist: v1 and v3 as Dovecot 2.3 and courier-dovecot-migrate.pl
 * write them, P/O/W fields, mixed old/new mail, names with spaces, and the
 * choice between a Courier and a Dovecot file found together.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir/legacy.h"
#include "maildir/scan.h"
#include "maildir/uidl.h"
#include "t/unit/helper_maildir.h"

static struct maildir *list_of(const char *const *names, size_t n)
{
    struct maildir *md = maildir_new();
    assert_non_null(md);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(maildir_add(md, names[i], 10), 0);
    maildir_sort(md);
    return md;
}

static void assert_msg(const struct maildir *md, size_t i, const char *name, const char *uidl)
{
    size_t len;
    const char *u = maildir_msg_uidl(md, i, &len);
    if (strcmp(maildir_msg_name(md, i), name) != 0)
        fail_msg("message %zu is %s, want %s", i + 1, maildir_msg_name(md, i), name);
    if (len != strlen(uidl) || memcmp(u, uidl, len) != 0)
        fail_msg("message %zu: UIDL \"%.*s\", want \"%s\"", i + 1, (int)len, u, uidl);
}

static struct maildir *apply(const char *file, const char *const *names, size_t n)
{
    struct legacy_list *lg;
    assert_int_equal(legacy_dovecot_parse(file, strlen(file), &lg), 0);
    assert_non_null(lg);
    struct maildir *md = list_of(names, n);
    assert_int_equal(legacy_apply(lg, md), 0);
    legacy_free(lg);
    return md;
}

/* As Dovecot 2.3 writes it after a first POP3 session (no pop3_save_uidl). */
static void test_v3_default_format(void **state)
{
    (void)state;
    static const char *const names[] = {
        "1700000001.M1P1.host,S=10,W=12:2,S",
        "1700000002.M2P2.host:2,F",
        "1700000003.M3P3.host:2,",   /* arrived after the switch */
    };
    const char *file = "3 V1700000000 N3 G3085f01b7f11094c501100008c4a11c1\n"
                       "1 :1700000001.M1P1.host,S=10,W=12\n"
                       "2 W2481 :1700000002.M2P2.host:2,F\n";
    struct maildir *md = apply(file, names, 3);
    /* %08Xu%08Xv prints lower-case hex: 1700000000 = 0x6553f100. */
    assert_msg(md, 0, names[0], "000000016553f100");
    assert_msg(md, 1, names[1], "000000026553f100");
    assert_msg(md, 2, names[2], "1700000003.M3P3.host");
    maildir_free(md);
}

/*
 * dovecot_uidl_format: the UIDLs a Dovecot with another pop3_uidl_format
 * served for records without P (the expectations checked against Dovecot
 * 2.3.19's own UIDL in t/e2e/test_index.py for %f, %g and %u-%v).
 */
static void test_site_uidl_formats(void **state)
{
    (void)state;
    static const char *const names[] = {
        "1700000001.M1P1.host,S=10:2,S",
        "1700000002.M2P2.host:2,F",
        "1700000003.M3P3.host:2,",   /* arrived after the switch */
    };
    /* Record 2 has a G field (a GUID Dovecot generated), record 1 has none. */
    const char *file = "3 V1700000000 N3\n"
                       "1 :1700000001.M1P1.host,S=10:2,S\n"
                       "2 Gf1e2d3c4b5a6978812345678 :1700000002.M2P2.host:2,F\n";
    static const struct {
        const char *format;
        const char *uidl1, *uidl2;
    } cases[] = {
        { "%08Xu%08Xv", "000000016553f100", "000000026553f100" },
        { "%u-%v", "1-1700000000", "2-1700000000" },
        { "%f", "1700000001.M1P1.host,S=10", "1700000002.M2P2.host" },
        { "%g", "1700000001.M1P1.host,S=10", "f1e2d3c4b5a6978812345678" },
        { "%v.%Xu", "1700000000.1", "1700000000.2" },
        /* the first 8 hex digits of the name's MD5: only the length is checked here */
        { "%8Mf", NULL, NULL },
        { "100%%-%u", "100%-1", "100%-2" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(legacy_configure(cases[i].format, 0), 0);
        assert_string_equal(legacy_dovecot_uidl_format(), cases[i].format);
        struct maildir *md = apply(file, names, 3);
        if (cases[i].uidl1 != NULL) {
            assert_msg(md, 0, names[0], cases[i].uidl1);
            assert_msg(md, 1, names[1], cases[i].uidl2);
        } else {
            size_t len;
            assert_int_equal((maildir_msg_uidl(md, 1, &len), len), 8);
        }
        assert_msg(md, 2, names[2], "1700000003.M3P3.host");
        maildir_free(md);
    }
    /* A format longer than 70 characters once expanded gives no UIDL: own ones. */
    assert_int_equal(legacy_configure("%f%f%f%f", 0), 0);
    struct maildir *md = apply(file, names, 3);
    assert_msg(md, 0, names[0], "1700000001.M1P1.host,S=10");
    maildir_free(md);
    assert_int_equal(legacy_configure(NULL, 0), 0);
    assert_int_equal(legacy_configure("%08Xu%08Xv", 0), 0);
    char huge[100];
    memset(huge, 'u', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_int_equal(legacy_configure(huge, 0), -1);
    assert_string_equal(legacy_dovecot_uidl_format(), "%08Xu%08Xv");
}

/* v1: Dovecot 1.0 and courierimapuiddb layout. */
static void test_v1(void **state)
{
    (void)state;
    static const char *const names[] = { "1700000001.a:2,S", "1700000002.b b:2," };
    struct maildir *md = apply("1 1275660208 3\n1 1700000001.a\n2 1700000002.b b:2,S\n",
                               names, 2);
    assert_msg(md, 0, names[0], "000000014c0907b0");
    assert_msg(md, 1, names[1], "000000024c0907b0");
    maildir_free(md);
}

/*
 * As courier-dovecot-migrate.pl writes it: O keeps Courier's order, P its
 * UIDLs, W its sizes. Records without O follow by uid; new mail comes last.
 */
static void test_v3_migrated_order(void **state)
{
    (void)state;
    static const char *const names[] = {
        "1000000001.a:2,S", "1000000002.b:2,", "1000000003.c:2,", "1000000004.d:2,",
        "1000000005.e:2,", "0999999999.new:2,",
    };
    const char *file = "3 V1277387390 N20\n"
                       "10 O2 PUID10-1277387390 W100 :1000000003.c:2,\n"
                       "11 O1 P1000000004.d W100 :1000000004.d\n"
                       "12 P :1000000002.b\n"
                       "14 PUID3 :1000000005.e\n"
                       "15 :1000000001.a:2,S\n";
    struct maildir *md = apply(file, names, 6);
    assert_msg(md, 0, "1000000004.d:2,", "1000000004.d");
    assert_msg(md, 1, "1000000003.c:2,", "UID10-1277387390");
    assert_msg(md, 2, "1000000002.b:2,", "1000000002.b"); /* empty P: the file name */
    assert_msg(md, 3, "1000000005.e:2,", "UID3");
    assert_msg(md, 4, "1000000001.a:2,S", "0000000f4c23627e");
    assert_msg(md, 5, "0999999999.new:2,", "0999999999.new");
    maildir_free(md);
}

static void test_rejected_and_malformed(void **state)
{
    (void)state;
    struct legacy_list *lg;
    assert_int_equal(legacy_dovecot_parse("2 V1 N2\n1 :a\n", 13, &lg), 0);
    assert_null(lg);
    assert_int_equal(legacy_dovecot_parse("garbage", 7, &lg), 0);
    assert_null(lg);
    const char *file = "3 V5 N9\n"
                       "x :bad uid\n"
                       "0 :zero.uid\n"
                       "4 Pnever-ends\n"
                       "5 :1.ok name\n";
    assert_int_equal(legacy_dovecot_parse(file, strlen(file), &lg), 0);
    assert_non_null(lg);
    assert_int_equal(lg->count, 1);
    const struct legacy_rec *r = legacy_find(lg, "1.ok name", 9);
    assert_non_null(r);
    assert_string_equal(legacy_rec_uidl(lg, r), "0000000500000005");
    legacy_free(lg);
}

/*
 * A P value is served as the UIDL, so it must be one: 1-70 characters of
 * 0x21-0x7E (RFC 1939), unique within the mailbox. A record whose P is not
 * is skipped like any record that does not parse: that message gets
 * fastpop's own UIDL and comes after the listed ones. (A space cannot be
 * inside a P value: it ends the token.)
 */
static void test_p_uidl_validated(void **state)
{
    (void)state;
    char too_long[71 + 1];
    memset(too_long, 'x', 71);
    too_long[71] = '\0';
    char file[1024];
    snprintf(file, sizeof(file),
             "3 V5 N9\n"
             "1 Pgood-one :1.a\n"
             "2 Pctl\001byte :2.b\n"
             "3 Ptab\there :3.c\n"
             "4 Pdel\177 :4.d\n"
             "5 Phigh\303\251 :5.e\n"
             "6 P%s :6.f\n"
             "7 P%.70s :7.g\n"
             "8 Pgood-one :8.h\n"
             "9 Pnine :9.i\n",
             too_long, too_long);
    static const char *const names[] = { "1.a:2,", "2.b:2,", "3.c:2,", "4.d:2,", "5.e:2,",
                                         "6.f:2,", "7.g:2,", "8.h:2,", "9.i:2," };
    struct maildir *md = apply(file, names, 9);
    /* Listed and valid first, by uid: 1, 7 (exactly 70), 9. */
    assert_msg(md, 0, "1.a:2,", "good-one");
    assert_msg(md, 1, "7.g:2,", too_long + 1);
    assert_msg(md, 2, "9.i:2,", "nine");
    /* The rest keep their own UIDLs, in name order; 8.h's P was 1.a's already. */
    assert_msg(md, 3, "2.b:2,", "2.b");
    assert_msg(md, 4, "3.c:2,", "3.c");
    assert_msg(md, 5, "4.d:2,", "4.d");
    assert_msg(md, 6, "5.e:2,", "5.e");
    assert_msg(md, 7, "6.f:2,", "6.f");
    assert_msg(md, 8, "8.h:2,", "8.h");
    maildir_free(md);
}

/*
 * A legacy UIDL that equals the own UIDL of another message, listed or not,
 * present or not: that message must not be served under it (a client that
 * saw the old one would take the new message for it and never fetch it).
 * It gets its hashed form instead, which holds a '/' as no name does.
 */
static void test_legacy_uidl_is_another_messages_own(void **state)
{
    (void)state;
    /* 1.a was served as "3.c"; 3.c is not listed (mail that came later).
     * The record for gone.x (a message deleted since) used "4.d". */
    static const char file[] = "3 V5 N9\n"
                               "1 P3.c :1.a\n"
                               "2 P4.d :gone.x\n";
    static const char *const names[] = { "1.a:2,", "3.c:2,", "4.d:2,", "5.e:2," };
    struct maildir *md = apply(file, names, 4);
    assert_msg(md, 0, "1.a:2,", "3.c");
    char want[MAILDIR_UIDL_SIZE];
    size_t want_len;
    for (size_t i = 1; i <= 2; i++) {
        size_t len;
        const char *u = maildir_msg_uidl(md, i, &len);
        const char *name = maildir_msg_name(md, i);
        assert_non_null(memchr(u, '/', len));
        assert_true(len <= MAILDIR_UIDL_MAX);
        assert_false(len == 3 && memcmp(u, name, 3) == 0);
        /* The same every time: derived from the name alone. */
        assert_int_equal(maildir_uidl_hashed(name, 3, 0, want, &want_len), 0);
        assert_int_equal(len, want_len);
        assert_memory_equal(u, want, len);
    }
    assert_msg(md, 3, "5.e:2,", "5.e");
    maildir_free(md);
}

/* Both files in one maildir: the one written last wins. */
static void test_load_picks_newest(void **state)
{
    (void)state;
    char root[PATH_MAX];
    assert_int_equal(tmd_make(root, 1), 0);
    const char *c = "/3 4 200\n1000000001.a:2,S 69 2:200:0\n";
    const char *d = "3 V16 N5\n3 :1000000001.a\n";
    assert_int_equal(tmd_write(root, LEGACY_COURIER_FILE, c, strlen(c)), 0);
    assert_int_equal(tmd_write(root, LEGACY_DOVECOT_FILE, d, strlen(d)), 0);
    assert_int_equal(tmd_set_mtime(root, LEGACY_COURIER_FILE, 1000000000), 0);
    assert_int_equal(tmd_set_mtime(root, LEGACY_DOVECOT_FILE, 1100000000), 0);
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    struct legacy_list *lg;
    assert_int_equal(legacy_load(fd, &lg), 0);
    assert_non_null(lg);
    assert_int_equal(lg->kind, LEGACY_DOVECOT);
    legacy_free(lg);
    assert_int_equal(tmd_set_mtime(root, LEGACY_COURIER_FILE, 1200000000), 0);
    assert_int_equal(legacy_load(fd, &lg), 0);
    assert_int_equal(lg->kind, LEGACY_COURIER);
    assert_string_equal(legacy_rec_uidl(lg, legacy_find(lg, "1000000001.a", 12)), "UID2-200");
    legacy_free(lg);
    close(fd);
    assert_int_equal(tmd_remove(root), 0);
}

/*
 * A FIFO under a legacy file's name is no list, and reading it must not
 * block (issue 12 item 10: the worker would hang in open(2)). The alarm
 * ends a run that blocks.
 */
static void test_load_skips_a_fifo(void **state)
{
    (void)state;
    char root[PATH_MAX], path[PATH_MAX + 32];
    assert_int_equal(tmd_make(root, 1), 0);
    for (int courier = 0; courier < 2; courier++) {
        const char *name = courier ? LEGACY_COURIER_FILE : LEGACY_DOVECOT_FILE;
        snprintf(path, sizeof(path), "%s/%s", root, name);
        assert_int_equal(mkfifo(path, 0600), 0);
        int fd = open(root, O_RDONLY | O_DIRECTORY);
        assert_true(fd >= 0);
        struct legacy_list *lg = (struct legacy_list *)1;
        alarm(10);
        assert_int_equal(legacy_load(fd, &lg), 0);
        alarm(0);
        assert_null(lg);
        close(fd);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(tmd_remove(root), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v3_default_format),
        cmocka_unit_test(test_site_uidl_formats),
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v3_migrated_order),
        cmocka_unit_test(test_rejected_and_malformed),
        cmocka_unit_test(test_p_uidl_validated),
        cmocka_unit_test(test_legacy_uidl_is_another_messages_own),
        cmocka_unit_test(test_load_picks_newest),
        cmocka_unit_test(test_load_skips_a_fifo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
