/* The POP3 exclusive lock kept in the scoreboard (shm/scoreboard.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/scoreboard.h"

static struct sockaddr_in addr(uint32_t ip)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(ip);
    return a;
}

static int open_slot(struct scoreboard *sb, pid_t owner, uint32_t ip)
{
    enum scoreboard_refusal why;
    struct sockaddr_in a = addr(ip);
    return scoreboard_conn_open(sb, owner, (struct sockaddr *)&a, 100000, 100000, &why);
}

static void test_second_holder_is_refused_until_unlock(void **state)
{
    (void)state;
    struct scoreboard *sb = scoreboard_create(8);
    assert_non_null(sb);
    int a = open_slot(sb, 100, 0x7f000001);
    int b = open_slot(sb, 200, 0x7f000002);
    assert_int_equal(scoreboard_mailbox_lock(sb, a, "/var/mail/alice"), 0);
    errno = 0;
    assert_int_equal(scoreboard_mailbox_lock(sb, b, "/var/mail/alice"), -1);
    assert_int_equal(errno, EBUSY);
    /* Another mailbox is independent. */
    assert_int_equal(scoreboard_mailbox_lock(sb, b, "/var/mail/alicf"), 0);
    /* A slot holds one mailbox at a time. */
    assert_int_equal(scoreboard_mailbox_lock(sb, a, "/var/mail/carol"), -1);
    assert_int_equal(errno, EINVAL);
    scoreboard_mailbox_unlock(sb, a);
    scoreboard_mailbox_unlock(sb, b);
    assert_int_equal(scoreboard_mailbox_lock(sb, b, "/var/mail/alice"), 0);
    scoreboard_destroy(sb);
}

static void test_closing_the_slot_releases(void **state)
{
    (void)state;
    struct scoreboard *sb = scoreboard_create(8);
    int a = open_slot(sb, 100, 0x7f000001);
    int b = open_slot(sb, 100, 0x7f000001);
    assert_int_equal(scoreboard_mailbox_lock(sb, a, "/m/x"), 0);
    scoreboard_conn_close(sb, a);
    assert_int_equal(scoreboard_mailbox_lock(sb, b, "/m/x"), 0);
    /* The freed slot, reused by a new connection, starts without a lock. */
    int c = open_slot(sb, 300, 0x7f000003);
    assert_int_equal(c, a);
    assert_int_equal(scoreboard_mailbox_lock(sb, c, "/m/y"), 0);
    scoreboard_destroy(sb);
}

static void test_dead_owner_is_reaped(void **state)
{
    (void)state;
    struct scoreboard *sb = scoreboard_create(64);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int slot = open_slot(sb, getpid(), 0x7f000001);
        if (slot < 0 || scoreboard_mailbox_lock(sb, slot, "/m/shared") != 0)
            _exit(1);
        raise(SIGKILL);
        _exit(2);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    int mine = open_slot(sb, 100, 0x7f000002);
    assert_int_equal(scoreboard_mailbox_lock(sb, mine, "/m/shared"), -1);
    assert_int_equal(scoreboard_reap_owner(sb, child), 1);
    assert_int_equal(scoreboard_mailbox_lock(sb, mine, "/m/shared"), 0);
    scoreboard_destroy(sb);
}

static void test_many_mailboxes_lock_and_unlock(void **state)
{
    (void)state;
    enum { N = 200 };
    struct scoreboard *sb = scoreboard_create(2 * N);
    int slots[N], probes[N];
    char path[64];
    for (int i = 0; i < N; i++) {
        slots[i] = open_slot(sb, 100, 0x7f000001 + (uint32_t)i);
        probes[i] = open_slot(sb, 200, 0x7f100001 + (uint32_t)i);
        snprintf(path, sizeof(path), "/mail/u%d/Maildir", i);
        assert_int_equal(scoreboard_mailbox_lock(sb, slots[i], path), 0);
    }
    /* Release every other one: deletions in the middle of probe runs. */
    for (int i = 0; i < N; i += 2)
        scoreboard_mailbox_unlock(sb, slots[i]);
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof(path), "/mail/u%d/Maildir", i);
        int rc = scoreboard_mailbox_lock(sb, probes[i], path);
        if (i % 2 == 0) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -1);
            assert_int_equal(errno, EBUSY);
        }
    }
    scoreboard_destroy(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_holder_is_refused_until_unlock),
        cmocka_unit_test(test_closing_the_slot_releases),
        cmocka_unit_test(test_dead_owner_is_reaped),
        cmocka_unit_test(test_many_mailboxes_lock_and_unlock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
