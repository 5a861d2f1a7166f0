/*
 * maildir/shared_lock: the mailbox lock hosts sharing maildirs see. Two
 * "hosts" are two host names in one process; the file server's clock is
 * this machine's, and a lock is aged by setting its mtime back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/runtime/config.h"
#include "maildir/shared_lock.h"
#include "t/unit/helper_maildir.h"

#define STALE 60

/* Everything in root but cur/ new/ tmp/ and the lock: no helper file may be left behind. */
static int leftovers(const char *root)
{
    DIR *d = opendir(root);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *s = de->d_name;
        if (strcmp(s, ".") && strcmp(s, "..") && strcmp(s, "cur") && strcmp(s, "new") &&
            strcmp(s, "tmp") && strcmp(s, SHARED_LOCK_NAME))
            n++;
    }
    closedir(d);
    return n;
}

static void read_text(const char *root, char *out, size_t len)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", root, SHARED_LOCK_NAME);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void test_one_holder_at_a_time(void **state)
{
    (void)state;
    char root[PATH_MAX], holder[96], text[200], want[200];
    assert_int_equal(tmd_make(root, 1), 0);
    struct shared_lock a, b;
    assert_int_equal(shared_lock_acquire(root, "hosta", 4242, STALE, &a, NULL, 0), 0);
    assert_true(a.held);
    read_text(root, text, sizeof(text));
    snprintf(want, sizeof(want), "fastpop-lock 1 host=hosta pid=4242 token=%s\n", a.token);
    assert_string_equal(text, want);
    errno = 0;
    assert_int_equal(shared_lock_acquire(root, "hostb", 77, STALE, &b, holder, sizeof(holder)),
                     -1);
    assert_int_equal(errno, EBUSY);
    assert_string_equal(holder, "hosta 4242");
    assert_false(b.held);
    assert_int_equal(leftovers(root), 0);
    assert_int_equal(shared_lock_held(root, &a), 1);
    shared_lock_release(root, &a);
    assert_false(tmd_exists(root, SHARED_LOCK_NAME));
    assert_int_equal(shared_lock_acquire(root, "hostb", 77, STALE, &b, NULL, 0), 0);
    shared_lock_release(root, &b);
    assert_int_equal(leftovers(root), 0);
    assert_int_equal(tmd_remove(root), 0);
}

static pid_t dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    return pid;
}

/* A holder on this host whose process is gone: taken over at once, however fresh. */
static void test_dead_holder_on_this_host(void **state)
{
    (void)state;
    char root[PATH_MAX];
    assert_int_equal(tmd_make(root, 1), 0);
    struct shared_lock dead, live;
    assert_int_equal(shared_lock_acquire(root, "hosta", dead_pid(), STALE, &dead, NULL, 0), 0);
    assert_int_equal(shared_lock_acquire(root, "hosta", getpid(), STALE, &live, NULL, 0), 0);
    assert_int_equal(shared_lock_held(root, &dead), 0);
    assert_int_equal(shared_lock_held(root, &live), 1);
    /* The same pid, alive, on another host name is no proof of anything: busy. */
    struct shared_lock other;
    assert_int_equal(shared_lock_acquire(root, "hostb", getpid(), STALE, &other, NULL, 0), -1);
    assert_int_equal(errno, EBUSY);
    /* A live holder on this host is busy too. */
    assert_int_equal(shared_lock_acquire(root, "hosta", getpid(), STALE, &other, NULL, 0), -1);
    assert_int_equal(errno, EBUSY);
    shared_lock_release(root, &live);
    assert_int_equal(leftovers(root), 0);
    assert_int_equal(tmd_remove(root), 0);
}

/*
 * Another host's lock is judged by its age alone: not touched for the stale
 * time, it is taken over; the old holder then finds it is no longer its own,
 * cannot refresh it, and its release leaves the new holder's lock alone.
 */
static void test_stale_lock_of_another_host(void **state)
{
    (void)state;
    char root[PATH_MAX];
    assert_int_equal(tmd_make(root, 1), 0);
    struct shared_lock old, fresh;
    assert_int_equal(shared_lock_acquire(root, "hosta", 1, STALE, &old, NULL, 0), 0);
    assert_int_equal(tmd_set_mtime(root, SHARED_LOCK_NAME, time(NULL) - STALE + 5), 0);
    assert_int_equal(shared_lock_acquire(root, "hostb", 2, STALE, &fresh, NULL, 0), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(tmd_set_mtime(root, SHARED_LOCK_NAME, time(NULL) - STALE - 5), 0);
    assert_int_equal(shared_lock_acquire(root, "hostb", 2, STALE, &fresh, NULL, 0), 0);
    assert_int_equal(shared_lock_held(root, &old), 0);
    errno = 0;
    assert_int_equal(shared_lock_refresh(root, &old), -1);
    assert_int_equal(errno, ENOLCK);
    shared_lock_release(root, &old);
    assert_int_equal(shared_lock_held(root, &fresh), 1);
    assert_int_equal(leftovers(root), 0);
    shared_lock_release(root, &fresh);
    assert_int_equal(tmd_remove(root), 0);
}

/* The heartbeat keeps a lock young. */
static void test_refresh_keeps_it(void **state)
{
    (void)state;
    char root[PATH_MAX];
    assert_int_equal(tmd_make(root, 1), 0);
    struct shared_lock a, b;
    assert_int_equal(shared_lock_acquire(root, "hosta", 1, STALE, &a, NULL, 0), 0);
    assert_int_equal(tmd_set_mtime(root, SHARED_LOCK_NAME, time(NULL) - STALE - 5), 0);
    assert_int_equal(shared_lock_refresh(root, &a), 0);
    struct stat st;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", root, SHARED_LOCK_NAME);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_mtime >= time(NULL) - 2);
    assert_int_equal(shared_lock_acquire(root, "hostb", 2, STALE, &b, NULL, 0), -1);
    assert_int_equal(errno, EBUSY);
    shared_lock_release(root, &a);
    assert_int_equal(tmd_remove(root), 0);
}

/* A file that is not a lock of ours: respected while young, taken over when old. */
static void test_foreign_file(void **state)
{
    (void)state;
    char root[PATH_MAX], holder[96];
    assert_int_equal(tmd_make(root, 1), 0);
    assert_int_equal(tmd_write(root, SHARED_LOCK_NAME, "garbage\n", 8), 0);
    struct shared_lock a;
    assert_int_equal(shared_lock_acquire(root, "hosta", 1, STALE, &a, holder, sizeof(holder)),
                     -1);
    assert_int_equal(errno, EBUSY);
    assert_string_equal(holder, "unknown");
    assert_int_equal(tmd_set_mtime(root, SHARED_LOCK_NAME, time(NULL) - STALE - 5), 0);
    assert_int_equal(shared_lock_acquire(root, "hosta", 1, STALE, &a, NULL, 0), 0);
    shared_lock_release(root, &a);
    assert_int_equal(leftovers(root), 0);
    assert_int_equal(tmd_remove(root), 0);
}

/* Someone removed our lock (an operator): no longer held, nothing to release. */
static void test_lock_removed_under_us(void **state)
{
    (void)state;
    char root[PATH_MAX], path[PATH_MAX + 32];
    assert_int_equal(tmd_make(root, 1), 0);
    struct shared_lock a;
    assert_int_equal(shared_lock_acquire(root, "hosta", 1, STALE, &a, NULL, 0), 0);
    snprintf(path, sizeof(path), "%s/%s", root, SHARED_LOCK_NAME);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(shared_lock_refresh(root, &a), -1);
    assert_int_equal(errno, ENOLCK);
    assert_int_equal(tmd_remove(root), 0);
}

static void test_errors(void **state)
{
    (void)state;
    struct shared_lock a;
    assert_false(config_host_name_valid(""));
    assert_false(config_host_name_valid("a b"));
    assert_false(config_host_name_valid("a/b"));
    char longname[CONFIG_HOST_NAME_MAX + 2];
    memset(longname, 'h', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(config_host_name_valid(longname));
    longname[CONFIG_HOST_NAME_MAX] = '\0';
    assert_true(config_host_name_valid(longname));
    assert_true(config_host_name_valid("pop-3.example_org"));
    assert_int_equal(shared_lock_acquire("/tmp", "bad host", 1, STALE, &a, NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shared_lock_acquire("/nonexistent/maildir", "h", 1, STALE, &a, NULL, 0),
                     -1);
    assert_int_equal(errno, ENOENT);
    assert_false(a.held);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_holder_at_a_time),
        cmocka_unit_test(test_dead_holder_on_this_host),
        cmocka_unit_test(test_stale_lock_of_another_host),
        cmocka_unit_test(test_refresh_keeps_it),
        cmocka_unit_test(test_foreign_file),
        cmocka_unit_test(test_lock_removed_under_us),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
