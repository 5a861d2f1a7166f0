/*
 * daemon/runtime/trusted_dir and privdrop_run_as: directories others may write are
 * refused, symlinks are never followed when a directory is handed out or a
 * mode is changed, and a child does the work as another user.
 */
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
#include <unistd.h>

#include "daemon/runtime/privdrop.h"
#include "daemon/runtime/trusted_dir.h"
#include "helper_maildir.h"

/* Not root's and not ours: what a less privileged user would own. */
#define OTHER_UID 65534
#define OTHER_GID 65534

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

static void test_refuses_writable_or_foreign_dirs(void **state)
{
    (void)state;
    char root[PATH_MAX], sub[PATH_MAX + 16], err[1024];
    assert_int_equal(tmd_make(root, 0), 0);
    snprintf(sub, sizeof(sub), "%s/state", root);

    assert_int_equal(trusted_dir_make(sub, "state_dir", geteuid(), err, sizeof(err)), 0);
    assert_int_equal(mode_of(sub) & 022, 0);
    int fd = trusted_dir_open(sub, "state_dir", geteuid(), err, sizeof(err));
    assert_true(fd >= 0);
    close(fd);

    /* Writable by the group, or by everyone even with the sticky bit: refused, with the fix. */
    static const mode_t bad[] = { 0775, 0777, 01777, 0757 };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(chmod(sub, bad[i]), 0);
        assert_int_equal(trusted_dir_open(sub, "state_dir", geteuid(), err, sizeof(err)), -1);
        assert_int_equal(errno, EPERM);
        assert_non_null(strstr(err, "state_dir "));
        assert_non_null(strstr(err, sub));
        assert_non_null(strstr(err, "chmod go-w"));
    }
    assert_int_equal(chmod(sub, 0755), 0);

    /* Someone else's directory. */
    assert_int_equal(trusted_dir_open(sub, "run_dir", geteuid() + 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "owned by uid"));
    assert_non_null(strstr(err, "chown "));

    /* A missing directory the caller could not make says so. */
    snprintf(sub, sizeof(sub), "%s/no/such", root);
    assert_int_equal(trusted_dir_make(sub, "run_dir", geteuid(), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot create run_dir"));
    assert_int_equal(tmd_remove(root), 0);
}

static void test_give_refuses_symlinks(void **state)
{
    (void)state;
    char root[PATH_MAX], target[PATH_MAX + 16], link[PATH_MAX + 16], made[PATH_MAX + 16];
    assert_int_equal(tmd_make(root, 0), 0);
    snprintf(target, sizeof(target), "%s/target", root);
    snprintf(link, sizeof(link), "%s/index", root);
    snprintf(made, sizeof(made), "%s/authcache", root);
    assert_int_equal(mkdir(target, 0755), 0);
    assert_int_equal(symlink(target, link), 0);
    int root_fd = open(root, O_RDONLY | O_DIRECTORY);
    assert_true(root_fd >= 0);

    uid_t uid = geteuid() == 0 ? OTHER_UID : geteuid();
    gid_t gid = geteuid() == 0 ? OTHER_GID : getegid();
    assert_int_equal(trusted_dir_give(root_fd, "index", 0700, uid, gid), -1);
    assert_true(errno == ENOTDIR || errno == ELOOP);
    assert_int_equal(mode_of(target), 0755);     /* what the link points to is untouched */

    assert_int_equal(trusted_dir_give(root_fd, "authcache", 02750, uid, gid), 0);
    struct stat st;
    assert_int_equal(stat(made, &st), 0);
    assert_int_equal(st.st_mode & 07777, 02750);
    assert_int_equal(st.st_uid, uid);
    assert_int_equal(st.st_gid, gid);
    /* Again: idempotent, and a mode someone changed is repaired. */
    assert_int_equal(chmod(made, 0777), 0);
    assert_int_equal(trusted_dir_give(root_fd, "authcache", 02750, uid, gid), 0);
    assert_int_equal(mode_of(made), 02750);

    assert_int_equal(tmd_write(root, "file", "x", 1), 0);
    assert_int_equal(trusted_dir_give(root_fd, "file", 0700, uid, gid), -1);
    assert_int_equal(errno, ENOTDIR);
    close(root_fd);
    assert_int_equal(tmd_remove(root), 0);
}

static void test_set_mode_never_follows(void **state)
{
    (void)state;
    char root[PATH_MAX], path[PATH_MAX + 16], victim[PATH_MAX + 16];
    assert_int_equal(tmd_make(root, 0), 0);
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);

    assert_int_equal(tmd_write(root, "data.mdb", "d", 1), 0);
    snprintf(path, sizeof(path), "%s/data.mdb", root);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(file_set_mode_nofollow(fd, "data.mdb", 0640), 0);
    assert_int_equal(mode_of(path), 0640);
    assert_int_equal(file_set_mode_nofollow(fd, "missing.mdb", 0640), 0);

    /* A symlink to someone's file: refused, the file keeps its mode. */
    assert_int_equal(tmd_write(root, "victim", "v", 1), 0);
    snprintf(victim, sizeof(victim), "%s/victim", root);
    assert_int_equal(chmod(victim, 0600), 0);
    snprintf(path, sizeof(path), "%s/lock.mdb", root);
    assert_int_equal(symlink(victim, path), 0);
    assert_int_equal(file_set_mode_nofollow(fd, "lock.mdb", 0660), -1);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(mode_of(victim), 0600);

    /* A FIFO: refused at once, never waited on. */
    snprintf(path, sizeof(path), "%s/fifo", root);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(file_set_mode_nofollow(fd, "fifo", 0660), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(mode_of(path), 0600);

    /* A file of someone else (root only can make one). */
    if (geteuid() == 0) {
        snprintf(path, sizeof(path), "%s/data.mdb", root);
        assert_int_equal(chown(path, OTHER_UID, OTHER_GID), 0);
        assert_int_equal(file_set_mode_nofollow(fd, "data.mdb", 0600), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(mode_of(path), 0640);
    }
    close(fd);
    assert_int_equal(tmd_remove(root), 0);
}

static int report_uid(void *arg)
{
    /* Runs in the child: answer through the exit status. */
    return geteuid() == *(uid_t *)arg && getegid() != 0 ? 0 : -1;
}

static int refuse(void *arg)
{
    (void)arg;
    return -1;
}

static void test_run_as(void **state)
{
    (void)state;
    uid_t before = geteuid();
    uid_t want = before == 0 ? OTHER_UID : before;
    gid_t gid = geteuid() == 0 ? OTHER_GID : getegid();
    if (geteuid() != 0 && getegid() == 0)
        skip();
    assert_int_equal(privdrop_run_as(want, gid, report_uid, &want), 0);
    assert_int_equal(privdrop_run_as(want, gid, refuse, NULL), 1);
    /* The drop happened in the child only. */
    assert_int_equal(geteuid(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_writable_or_foreign_dirs),
        cmocka_unit_test(test_give_refuses_symlinks),
        cmocka_unit_test(test_set_mode_never_follows),
        cmocka_unit_test(test_run_as),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
