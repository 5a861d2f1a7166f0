/*
 * shm/penalty_view: what the helper publishes is what a worker reads
 * (addresses by prefix, names, expiry), a reader fails closed (no view, a
 * rewrite in progress, an overflowing table), the table is rebuilt from the
 * penalty without losing a listed key, and a worker's descriptor cannot be
 * used to change the view for the others (seals, mode 0400).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/penalty.h"
#include "daemon/runtime/config.h"
#include "shm/penalty_view.h"

/* A worker's mapping of the helper's view v. */
static struct penalty_view *reader_of(const struct penalty_view *v)
{
    struct penalty_view *r;
    assert_int_equal(penalty_view_map(penalty_view_reader_fd(v), &r), 0);
    return r;
}

static void test_listed_by_prefix_name_and_time(void **state)
{
    struct penalty_view *v, *r;
    uint64_t tag;
    (void)state;

    assert_int_equal(penalty_view_create(100, 32, 64, &v), 0);
    r = reader_of(v);
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", "alice", NULL, 1000), 0);

    assert_int_equal(penalty_view_ip_tag(v, "2001:db8:1:2::1", &tag), 0);
    assert_int_equal(penalty_view_set(v, tag, 5000, 1000), 0);
    assert_int_equal(penalty_view_set(v, penalty_view_user_tag(v, "bob"), 3000, 1000), 0);
    /* the same /64, another /64 */
    assert_int_equal(penalty_view_listed(r, "2001:db8:1:2:ffff::9", NULL, NULL, 1000), 1);
    assert_int_equal(penalty_view_listed(r, "2001:db8:1:3::1", NULL, NULL, 1000), 0);
    /* a name, either of the two */
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", "bob", NULL, 1000), 1);
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", "alice", "bob", 1000), 1);
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", "alice", "Bob", 1000), 0);
    /* until is exclusive: bob is free at 3000, the prefix at 5000 */
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", "bob", NULL, 3000), 0);
    assert_int_equal(penalty_view_listed(r, "2001:db8:1:2::7", NULL, NULL, 4999), 1);
    /* unlisting */
    assert_int_equal(penalty_view_set(v, tag, 0, 1000), 0);
    assert_int_equal(penalty_view_listed(r, "2001:db8:1:2::7", NULL, NULL, 1000), 0);
    /* an address the view cannot parse is the helper's to decide */
    assert_int_equal(penalty_view_listed(r, "not-an-ip", NULL, NULL, 1000), 1);
    /* v4-mapped is the IPv4 client */
    assert_int_equal(penalty_view_ip_tag(v, "198.51.100.7", &tag), 0);
    assert_int_equal(penalty_view_set(v, tag, 5000, 1000), 0);
    assert_int_equal(penalty_view_listed(r, "::ffff:198.51.100.7", NULL, NULL, 1000), 1);
    penalty_view_free(r);
    penalty_view_free(v);
}

static void test_fails_closed(void **state)
{
    struct penalty_view *v, *r;
    (void)state;

    assert_int_equal(penalty_view_listed(NULL, "192.0.2.1", "alice", NULL, 1000), 1);
    assert_int_equal(penalty_view_create(10, 32, 64, &v), 0);
    r = reader_of(v);
    /* while the helper rewrites the table, every login is "listed" */
    penalty_view_rebuild_begin(v, 32, 64);
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", "alice", NULL, 1000), 1);
    penalty_view_rebuild_end(v);
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", "alice", NULL, 1000), 0);
    /* a table too full for a key: overflowing until rebuilt */
    int failed = 0;
    for (uint64_t t = 1; t < 10000 && !failed; t++)
        failed = penalty_view_set(v, t << 20, 9999, 1000) == -1;
    assert_true(failed);
    assert_true(penalty_view_needs_rebuild(v));
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", "alice", NULL, 1000), 1);
    penalty_view_rebuild_begin(v, 32, 64);
    penalty_view_rebuild_end(v);
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", "alice", NULL, 1000), 0);
    penalty_view_free(r);
    penalty_view_free(v);

    /* something that is not a view is refused */
    int fd = memfd_create("not-a-view", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 16), 0);
    assert_int_equal(penalty_view_map(fd, &r), -1);
}

static void test_worker_cannot_write(void **state)
{
    struct penalty_view *v;
    struct stat st;
    char zero[8] = { 0 };
    (void)state;

    assert_int_equal(penalty_view_create(10, 32, 64, &v), 0);
    int fd = penalty_view_reader_fd(v);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0400);
    assert_int_equal(pwrite(fd, zero, sizeof(zero), 0), -1);
    assert_int_equal(ftruncate(fd, 0), -1);
    assert_int_equal(ftruncate(fd, st.st_size * 2), -1);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    assert_true(mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) ==
                MAP_FAILED);
    void *ro = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(ro != MAP_FAILED);
    assert_int_equal(mprotect(ro, (size_t)st.st_size, PROT_READ | PROT_WRITE), -1);
    munmap(ro, (size_t)st.st_size);
    /* the open file a worker gets is read-only too */
    assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);

    /* another uid (a worker's) cannot reopen it for writing through /proc */
    if (geteuid() == 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), fd);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (setresgid(65534, 65534, 65534) == -1 || setresuid(65534, 65534, 65534) == -1)
                _exit(10);
            int w = open(path, O_RDWR);
            _exit(w == -1 ? 0 : 11);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    close(fd);
    penalty_view_free(v);
}

/* The penalty publishes its scores: failures list, success and eviction unlist. */
static void test_penalty_publishes(void **state)
{
    struct config cfg;
    struct penalty_config pc;
    struct penalty p;
    struct penalty_view *v, *r;
    int blocked;
    (void)state;

    config_defaults(&cfg);
    penalty_config_from(&pc, &cfg);
    pc.entries = 16;
    assert_int_equal(cidr_list_parse("203.0.113.0/24", &pc.trusted, NULL, 0), 0);
    assert_int_equal(penalty_init(&p, &pc), 0);
    assert_int_equal(penalty_view_create(pc.entries, 32, 64, &v), 0);
    r = reader_of(v);
    penalty_set_view(&p, v, 100.0);

    (void)penalty_failure(&p, "192.0.2.1", "alice", 100.0, &blocked);
    /* both listed until the score (1) has decayed: 60 s later */
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", NULL, NULL, 100000), 1);
    assert_int_equal(penalty_view_listed(r, "192.0.2.9", "alice", NULL, 100000), 1);
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", NULL, NULL, 160000), 0);
    assert_int_equal(penalty_view_listed(r, "192.0.2.9", "bob", NULL, 100000), 0);
    /* a trusted address is never listed; the name it tried is */
    (void)penalty_failure(&p, "203.0.113.5", "carol", 100.0, &blocked);
    assert_int_equal(penalty_view_listed(r, "203.0.113.5", NULL, NULL, 100000), 0);
    assert_int_equal(penalty_view_listed(r, "192.0.2.9", "carol", NULL, 100000), 1);
    /* success clears the name, not the address */
    (void)penalty_success(&p, "192.0.2.1", "alice", 101.0);
    assert_int_equal(penalty_view_listed(r, "192.0.2.9", "alice", NULL, 101000), 0);
    assert_int_equal(penalty_view_listed(r, "192.0.2.1", NULL, NULL, 101000), 1);
    /* a block lasts past the score: 20 failures, blocked for 600 s */
    for (int i = 0; i < 20; i++)
        (void)penalty_failure(&p, "198.51.100.1", "x", 200.0, &blocked);
    assert_int_equal(penalty_view_listed(r, "198.51.100.1", NULL, NULL, 799000), 1);
    assert_int_equal(penalty_view_listed(r, "198.51.100.1", NULL, NULL, 1300000), 1);
    assert_int_equal(penalty_view_listed(r, "198.51.100.1", NULL, NULL, 1401000), 0);
    /* many more keys than the table holds: the evicted are unlisted, the rest stay */
    for (int i = 0; i < 200; i++) {
        char name[16];
        snprintf(name, sizeof(name), "u%d", i);
        (void)penalty_failure(&p, "198.51.100.1", name, 300.0, &blocked);
    }
    assert_int_equal(penalty_view_listed(r, "192.0.2.9", "u199", NULL, 300000), 1);
    assert_int_equal(penalty_view_listed(r, "192.0.2.9", "u0", NULL, 300000), 0);
    assert_int_equal(penalty_view_listed(r, "198.51.100.1", NULL, NULL, 300000), 1);
    penalty_set_view(&p, NULL, 300.0);
    penalty_free(&p);
    penalty_view_free(r);
    penalty_view_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listed_by_prefix_name_and_time),
        cmocka_unit_test(test_fails_closed),
        cmocka_unit_test(test_worker_cannot_write),
        cmocka_unit_test(test_penalty_publishes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
