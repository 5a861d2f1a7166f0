/* Scanning a maildir: new/ -> cur/, tmp/ cleanup, listing, order, sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "maildir/scan.h"
#include "t/unit/helper_maildir.h"

/*
 * Replaces libc's openat() for this test program: opening vanish_name
 * first unlinks it, as another session's expunge between readdir() and
 * open() would.
 */
static const char *vanish_name;

int openat(int dirfd, const char *path, int flags, ...)
{
    unsigned mode = 0;

    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, unsigned);
        va_end(ap);
    }
    if (vanish_name != NULL && strcmp(path, vanish_name) == 0)
        unlinkat(dirfd, path, 0);
    return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

static int setup(void **state)
{
    static char root[PATH_MAX];

    if (tmd_make(root, 1) == -1)
        return -1;
    *state = root;
    return 0;
}

static int teardown(void **state)
{
    vanish_name = NULL;
    return tmd_remove(*state);
}

static void put(const char *root, const char *rel, const char *data)
{
    assert_int_equal(tmd_write(root, rel, data, strlen(data)), 0);
}

static struct maildir *scan_ok(const char *root)
{
    struct maildir *md = NULL;

    assert_int_equal(maildir_scan(root, time(NULL), &md), 0);
    assert_non_null(md);
    return md;
}

static void test_missing_root(void **state)
{
    struct maildir *md = NULL;
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/nope", (char *)*state);
    assert_int_equal(maildir_scan(path, time(NULL), &md), -1);
    assert_int_equal(errno, ENOENT);
    assert_null(md);
    assert_false(tmd_exists(*state, "nope"));
}

static void test_creates_subdirs(void **state)
{
    const char *root = *state;

    assert_int_equal(tmd_remove(root), 0);
    assert_int_equal(mkdir(root, 0700), 0);
    struct maildir *md = scan_ok(root);
    assert_int_equal(md->count, 0);
    assert_int_equal(md->total_size, 0);
    maildir_free(md);
    static const char *const sub[] = { "cur", "new", "tmp" };
    for (size_t i = 0; i < 3; i++) {
        struct stat sb;
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", root, sub[i]);
        assert_int_equal(stat(p, &sb), 0);
        assert_true(S_ISDIR(sb.st_mode));
        assert_int_equal(sb.st_mode & 0777, 0700);
    }
}

static void test_order(void **state)
{
    const char *root = *state;
    /* 1700000001.a twice: the first in name order is served, the other counted. */
    static const char *const want[] = {
        "host.no.time:2,", "zzz:2,S", "99.x:2,", "1700000000.M100000:2,",
        "1700000000.M99999:2,", "1700000001.\xc3\xa9:2,", "1700000001.a:2,",
        "1700000001.e:2,", "1700000002.a:2,",
    };
    static const char *const files[] = { /* deliberately shuffled */
        "cur/1700000002.a:2,", "cur/1700000001.e:2,", "cur/zzz:2,S", "new/1700000001.a",
        "cur/1700000000.M99999:2,", "cur/99.x:2,", "cur/1700000001.\xc3\xa9:2,",
        "cur/1700000000.M100000:2,", "new/host.no.time", "cur/1700000001.a:2,S",
    };

    for (size_t i = 0; i < 10; i++)
        put(root, files[i], "x\n");
    struct maildir *md = scan_ok(root);
    assert_int_equal(md->count, 9);
    assert_int_equal(md->duplicates, 1);
    for (size_t i = 0; i < 9; i++)
        assert_string_equal(maildir_msg_name(md, i), want[i]);
    assert_int_equal(md->msgs[0].timestamp, 0);
    assert_int_equal(md->msgs[8].timestamp, 1700000002);
    assert_int_equal(md->total_size, 9 * 3);
    maildir_free(md);
}

static void test_new_to_cur(void **state)
{
    const char *root = *state;

    put(root, "new/1.a", "a\n");
    put(root, "new/2.b:2,S", "b\n");
    put(root, "new/3.c:1,odd", "c\n");
    put(root, "cur/4.d:2,", "old\n");
    put(root, "new/4.d", "new one\n"); /* would replace cur/4.d:2, */
    struct maildir *md = scan_ok(root);
    assert_int_equal(md->count, 4);
    assert_true(tmd_exists(root, "cur/1.a:2,"));
    assert_true(tmd_exists(root, "cur/2.b:2,S"));
    assert_true(tmd_exists(root, "cur/3.c:1,odd"));
    assert_false(tmd_exists(root, "new/1.a"));
    assert_true(tmd_exists(root, "new/4.d"));
    assert_int_equal(md->msgs[3].size, 5); /* the old cur/ file, not replaced */
    assert_int_equal(tmd_count(root, "new"), 1);
    assert_int_equal(md->stuck_in_new, 1);
    maildir_free(md);
}

static void test_dot_files_skipped(void **state)
{
    const char *root = *state;
    char p[PATH_MAX];

    put(root, "cur/.hidden", "h\n");
    put(root, "new/.partial", "p\n");
    put(root, "cur/1.real:2,", "r\n");
    snprintf(p, sizeof(p), "%s/cur/2.dir", root);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/cur/3.link:2,", root);
    assert_int_equal(symlink("1.real:2,", p), 0);
    struct maildir *md = scan_ok(root);
    assert_int_equal(md->count, 1);
    assert_string_equal(maildir_msg_name(md, 0), "1.real:2,");
    assert_true(tmd_exists(root, "new/.partial"));
    maildir_free(md);
}

static void test_tmp_cleanup(void **state)
{
    const char *root = *state;
    time_t now = time(NULL);
    struct maildir *md = NULL;

    put(root, "tmp/old", "o");
    put(root, "tmp/recent", "r");
    put(root, "tmp/fresh", "f");
    put(root, "new/ancient", "a\n");
    assert_int_equal(tmd_set_mtime(root, "tmp/old", now - MAILDIR_TMP_MAX_AGE - 3600), 0);
    assert_int_equal(tmd_set_mtime(root, "tmp/recent", now - MAILDIR_TMP_MAX_AGE + 3600), 0);
    assert_int_equal(tmd_set_mtime(root, "new/ancient", now - 10 * MAILDIR_TMP_MAX_AGE), 0);
    assert_int_equal(maildir_scan(root, now, &md), 0);
    assert_false(tmd_exists(root, "tmp/old"));
    assert_true(tmd_exists(root, "tmp/recent"));
    assert_true(tmd_exists(root, "tmp/fresh"));
    assert_int_equal(md->count, 1); /* old mail is mail, whatever its age */
    maildir_free(md);
}

static void test_sizes_and_uidls(void **state)
{
    const char *root = *state;
    size_t len;

    put(root, "cur/1.a:2,", "a\nb");                 /* 3 + 1 + 2 */
    put(root, "cur/2.b,S=3,W=999:2,S", "xx\n");      /* W= trusted */
    put(root, "cur/3.c d:2,", "");                    /* empty */
    put(root, "cur/4.e\r\n,W=junk:2,", "x\r\ny\r\n"); /* bad W=: counted */
    struct maildir *md = scan_ok(root);
    assert_int_equal(md->count, 4);
    assert_int_equal(md->msgs[0].size, 6);
    assert_int_equal(md->msgs[1].size, 999);
    assert_int_equal(md->msgs[2].size, 0);
    assert_int_equal(md->msgs[3].size, 6);
    assert_int_equal(md->total_size, 6 + 999 + 0 + 6);

    const char *u = maildir_msg_uidl(md, 0, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(u, "1.a", 3);
    u = maildir_msg_uidl(md, 1, &len);
    assert_int_equal(len, strlen("2.b,S=3,W=999"));
    assert_memory_equal(u, "2.b,S=3,W=999", len);
    u = maildir_msg_uidl(md, 2, &len);
    assert_int_equal(len, strlen("3.c:20d"));
    assert_memory_equal(u, "3.c:20d", len);
    u = maildir_msg_uidl(md, 3, &len);
    assert_memory_equal(u, "4.e:0D:0A,W=junk", len);
    assert_int_equal(md->msgs[3].unique_len, strlen("4.e\r\n,W=junk"));
    assert_int_equal(md->msgs[0].deleted, 0);
    maildir_free(md);
}

static void test_vanished_skipped(void **state)
{
    const char *root = *state;

    put(root, "cur/1.a:2,", "a\n");
    put(root, "cur/2.b:2,", "b\n");
    put(root, "new/3.c", "c\n");
    vanish_name = "2.b:2,";
    struct maildir *md = scan_ok(root);
    vanish_name = NULL;
    assert_int_equal(md->count, 2);
    assert_string_equal(maildir_msg_name(md, 0), "1.a:2,");
    assert_string_equal(maildir_msg_name(md, 1), "3.c:2,");
    assert_int_equal(md->total_size, 6);
    maildir_free(md);
}

static void test_msg_rename(void **state)
{
    const char *root = *state;
    size_t len;

    put(root, "cur/1.a b:2,", "a\n");
    put(root, "cur/2.c:2,", "c\n");
    struct maildir *md = scan_ok(root);
    assert_int_equal(maildir_msg_rename(md, 0, "1.a b:2,RS"), 0);
    assert_int_equal(maildir_msg_rename(md, 1, "2.c:2,S"), 0);
    assert_string_equal(maildir_msg_name(md, 0), "1.a b:2,RS");
    assert_string_equal(maildir_msg_name(md, 1), "2.c:2,S");
    const char *u = maildir_msg_uidl(md, 1, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(u, "2.c", 3);
    u = maildir_msg_uidl(md, 0, &len);
    assert_memory_equal(u, "1.a:20b", len);
    assert_int_equal(maildir_msg_rename(md, 1, "2.d:2,S"), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(maildir_msg_rename(md, 1, "2.cc:2,S"), -1);
    maildir_free(md);
}

static void test_many_messages(void **state)
{
    const char *root = *state;
    char rel[64];

    for (int i = 0; i < 2000; i++) {
        snprintf(rel, sizeof(rel), "new/%d.M%d.host,W=%d", 1700000000 + (i * 7919) % 2000, i, i);
        put(root, rel, "");
    }
    struct maildir *md = scan_ok(root);
    assert_int_equal(md->count, 2000);
    assert_int_equal(md->total_size, 1999 * 2000 / 2);
    for (size_t i = 1; i < md->count; i++)
        assert_true(md->msgs[i - 1].timestamp <= md->msgs[i].timestamp);
    maildir_free(md);
}

/* max_messages: one message more than the limit fails the list, at the limit it is served. */
static void test_max_messages(void **state)
{
    const char *root = *state;
    char name[64];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "cur/1700000%03d.M%dP1.max:2,", i, i);
        assert_int_equal(tmd_write(root, name, "a\n", 2), 0);
    }
    struct maildir *md = NULL;
    maildir_set_max_messages(3);
    assert_int_equal(maildir_scan(root, time(NULL), &md), -1);
    assert_int_equal(errno, E2BIG);
    assert_null(md);
    maildir_set_max_messages(4);
    md = scan_ok(root);
    assert_int_equal(md->count, 4);
    maildir_free(md);
    maildir_set_max_messages(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creates_subdirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_to_cur, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dot_files_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tmp_cleanup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes_and_uidls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vanished_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msg_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_messages, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
