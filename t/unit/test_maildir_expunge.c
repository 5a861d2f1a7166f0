/* Locating renamed messages, expunging them and setting flags. */
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
#include <unistd.h>

#include "maildir/expunge.h"
#include "maildir/locate.h"
#include "t/unit/helper_maildir.h"

struct fixture {
    char root[PATH_MAX];
    int  curfd;
};

static int setup(void **state)
{
    static struct fixture fx;

    if (tmd_make(fx.root, 1) == -1 || maildir_open_cur(fx.root, &fx.curfd) == -1)
        return -1;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    close(fx->curfd);
    return tmd_remove(fx->root);
}

static void put(struct fixture *fx, const char *rel)
{
    assert_int_equal(tmd_write(fx->root, rel, "m\n", 2), 0);
}

/* Another program changing flags behind our back. */
static void other_rename(struct fixture *fx, const char *from, const char *to)
{
    assert_int_equal(renameat(fx->curfd, from, fx->curfd, to), 0);
}

static void test_open_cur_missing(void **state)
{
    struct fixture *fx = *state;
    char p[PATH_MAX + 8];
    int fd = -1;

    snprintf(p, sizeof(p), "%s/nope", fx->root);
    assert_int_equal(maildir_open_cur(p, &fd), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(fd, -1);
}

static void test_locate(void **state)
{
    struct fixture *fx = *state;
    char name[64];
    char tiny[8];

    put(fx, "cur/1.ab:2,");
    put(fx, "cur/1.a:2,RS");
    put(fx, "cur/.1.a:2,");
    assert_int_equal(maildir_locate(fx->curfd, "1.a", 3, name, sizeof(name)), 0);
    assert_string_equal(name, "1.a:2,RS");
    other_rename(fx, "1.a:2,RS", "1.a:2,FRS");
    assert_int_equal(maildir_locate(fx->curfd, "1.a", 3, name, sizeof(name)), 0);
    assert_string_equal(name, "1.a:2,FRS");
    assert_int_equal(maildir_locate(fx->curfd, "1.ab", 4, name, sizeof(name)), 0);
    assert_string_equal(name, "1.ab:2,");
    assert_int_equal(maildir_locate(fx->curfd, "1.", 2, name, sizeof(name)), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(maildir_locate(fx->curfd, "1.a", 3, tiny, sizeof(tiny)), -1);
    assert_int_equal(errno, ERANGE);
}

static void test_expunge(void **state)
{
    struct fixture *fx = *state;
    int removed = -1;

    put(fx, "cur/1.a:2,");
    put(fx, "cur/2.b:2,");
    put(fx, "cur/3.c:2,");
    assert_int_equal(maildir_expunge(fx->curfd, "1.a:2,", &removed), 0);
    assert_int_equal(removed, 1);
    assert_false(tmd_exists(fx->root, "cur/1.a:2,"));

    /* Renamed by someone else: found by its unique part. */
    other_rename(fx, "2.b:2,", "2.b:2,S");
    removed = -1;
    assert_int_equal(maildir_expunge(fx->curfd, "2.b:2,", &removed), 0);
    assert_int_equal(removed, 2);
    assert_false(tmd_exists(fx->root, "cur/2.b:2,S"));

    /* Already gone is success, and says so. */
    removed = -1;
    assert_int_equal(maildir_expunge(fx->curfd, "2.b:2,", &removed), 0);
    assert_int_equal(removed, 0);
    assert_true(tmd_exists(fx->root, "cur/3.c:2,"));
    assert_int_equal(tmd_count(fx->root, "cur"), 1);
}

static void test_add_flag(void **state)
{
    struct fixture *fx = *state;
    char name[NAME_MAX + 1];

    put(fx, "cur/1.a:2,R");
    assert_int_equal(maildir_add_flag(fx->curfd, "1.a:2,R", 'S', name, sizeof(name)), 0);
    assert_string_equal(name, "1.a:2,RS");
    assert_true(tmd_exists(fx->root, "cur/1.a:2,RS"));
    assert_false(tmd_exists(fx->root, "cur/1.a:2,R"));

    /* Already set: nothing renamed, same name back. */
    assert_int_equal(maildir_add_flag(fx->curfd, "1.a:2,RS", 'S', name, sizeof(name)), 0);
    assert_string_equal(name, "1.a:2,RS");

    /* Renamed by someone else since we recorded it. */
    other_rename(fx, "1.a:2,RS", "1.a:2,F");
    assert_int_equal(maildir_add_flag(fx->curfd, "1.a:2,RS", 'S', name, sizeof(name)), 0);
    assert_string_equal(name, "1.a:2,FS");
    assert_true(tmd_exists(fx->root, "cur/1.a:2,FS"));
    other_rename(fx, "1.a:2,FS", "1.a:2,FST");
    assert_int_equal(maildir_add_flag(fx->curfd, "1.a:2,FS", 'S', name, sizeof(name)), 0);
    assert_string_equal(name, "1.a:2,FST");

    /* Gone: not an error, empty name. */
    assert_int_equal(unlinkat(fx->curfd, "1.a:2,FST", 0), 0);
    name[0] = 'x';
    assert_int_equal(maildir_add_flag(fx->curfd, "1.a:2,FST", 'S', name, sizeof(name)), 0);
    assert_string_equal(name, "");
    assert_int_equal(maildir_add_flag(fx->curfd, "1.a:2,F", 'S', name, sizeof(name)), 0);
    assert_string_equal(name, "");

    put(fx, "cur/2.b");
    assert_int_equal(maildir_add_flag(fx->curfd, "2.b", '%', name, sizeof(name)), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(maildir_add_flag(fx->curfd, "2.b", 'S', name, sizeof(name)), 0);
    assert_string_equal(name, "2.b:2,S");
}

static void read_back(struct fixture *fx, const char *name, char *out, size_t outlen)
{
    int fd = openat(fx->curfd, name, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, out, outlen - 1);
    close(fd);
    assert_true(n >= 0);
    out[n] = '\0';
}

/*
 * Another file already has the name the flag would give (a link or a file
 * planted by any process of the mail user): it is never replaced. The flag
 * is skipped, the message keeps its name, both files keep their bytes.
 */
static void test_add_flag_never_replaces(void **state)
{
    struct fixture *fx = *state;
    char name[NAME_MAX + 1], text[64];

    assert_int_equal(tmd_write(fx->root, "cur/1.a:2,", "message\n", 8), 0);
    assert_int_equal(tmd_write(fx->root, "cur/1.a:2,S", "someone else's\n", 15), 0);
    assert_int_equal(maildir_add_flag(fx->curfd, "1.a:2,", 'S', name, sizeof(name)), 0);
    assert_string_equal(name, "1.a:2,");
    read_back(fx, "1.a:2,", text, sizeof(text));
    assert_string_equal(text, "message\n");
    read_back(fx, "1.a:2,S", text, sizeof(text));
    assert_string_equal(text, "someone else's\n");
    assert_int_equal(tmd_count(fx->root, "cur"), 2);

    /* The same for a message with other flags, renamed by someone else before. */
    assert_int_equal(tmd_write(fx->root, "cur/2.b:2,", "message\n", 8), 0);
    other_rename(fx, "2.b:2,", "2.b:2,F");
    assert_int_equal(tmd_write(fx->root, "cur/2.b:2,FS", "planted\n", 8), 0);
    assert_int_equal(maildir_add_flag(fx->curfd, "2.b:2,F", 'S', name, sizeof(name)), 0);
    assert_string_equal(name, "2.b:2,F");
    read_back(fx, "2.b:2,F", text, sizeof(text));
    assert_string_equal(text, "message\n");
    read_back(fx, "2.b:2,FS", text, sizeof(text));
    assert_string_equal(text, "planted\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_cur_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expunge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_flag_never_replaces, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
