/*
 * The root master and a scoreboard that workers can scribble on (issue 12
 * item 3). Every byte of the shared region is writable by every worker, so a
 * compromised one can put any value in any field, or hold the workers' lock
 * forever. The master's side (who, kick, status, reaping a dead worker,
 * drain) must stay in bounds and return at once regardless.
 *
 * The region is found the way a worker sees it: the MAP_SHARED writable
 * mapping ("rw-s" in /proc/self/maps) that scoreboard_create() added. A
 * forked child does the damage, as a worker would. The one layout fact
 * used: the workers' robust mutex is the first thing in the region.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/scoreboard.h"

#define CAP 32
#define WORKER_PID 4242

struct range {
    uintptr_t start, end;
};

/* The MAP_SHARED read-write mappings of this process. */
static int shared_mappings(struct range *out, int max)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    assert_non_null(f);
    while (n < max && fgets(line, sizeof(line), f) != NULL) {
        unsigned long a, b;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && strcmp(perms, "rw-s") == 0)
            out[n++] = (struct range){ a, b };
    }
    fclose(f);
    return n;
}

/* The scoreboard's region: the one shared mapping that was not there before. */
static struct range region;

static void find_region(const struct range *before, int nbefore)
{
    struct range now[16];
    int n = shared_mappings(now, 16), found = 0;
    for (int i = 0; i < n; i++) {
        int old = 0;
        for (int j = 0; j < nbefore; j++)
            old |= now[i].start == before[j].start;
        if (!old) {
            region = now[i];
            found++;
        }
    }
    assert_int_equal(found, 1);
}

/* In a child, like a compromised worker: fill the region from skip on with byte. */
static void scribble(unsigned char byte, size_t skip)
{
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        memset((void *)(region.start + skip), byte, region.end - region.start - skip);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    memset(&ss, 0, sizeof(ss));
    in->sin_family = AF_INET;
    in->sin_port = htons(110);
    assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static struct scoreboard *with_sessions(unsigned n, pid_t owner, const char *ip)
{
    enum scoreboard_refusal why;
    struct sockaddr_storage a = v4(ip);
    struct range before[16];
    int nbefore = shared_mappings(before, 16);
    struct scoreboard *sb = scoreboard_create(CAP);
    assert_non_null(sb);
    find_region(before, nbefore);
    for (unsigned i = 0; i < n; i++) {
        int slot = scoreboard_conn_open(sb, owner, SA(a), CAP, CAP, &why);
        assert_true(slot >= 0);
        snprintf(scoreboard_session(sb, slot)->user, SCOREBOARD_USER_MAX, "alice");
    }
    return sb;
}

/* What `popctl who` and `kick` do: every record copied out is bounded and terminated. */
static unsigned walk_like_who(struct scoreboard *sb)
{
    unsigned seen = 0;
    for (unsigned i = 0; i < scoreboard_capacity(sb); i++) {
        struct scoreboard_session s;
        uint8_t ip[16];
        pid_t owner;
        int rc = scoreboard_peek(sb, i, &s, ip, &owner);
        assert_true(rc == 0 || rc == 1);
        if (rc == 1) {
            assert_true(owner > 0);
            assert_true(strnlen(s.user, sizeof(s.user)) < sizeof(s.user));
            assert_true(strnlen(s.state, sizeof(s.state)) < sizeof(s.state));
            assert_true(strnlen(s.tls, sizeof(s.tls)) < sizeof(s.tls));
            scoreboard_kick(sb, i, SB_KICK_IDLE);
            seen++;
        }
    }
    /* Past the end is refused, whatever the region says. */
    struct scoreboard_session s;
    uint8_t ip[16];
    pid_t owner;
    assert_int_equal(scoreboard_peek(sb, scoreboard_capacity(sb), &s, ip, &owner), -1);
    scoreboard_kick(sb, scoreboard_capacity(sb) + 7, SB_KICK_NOW);
    return seen;
}

static void drain_round_trip(struct scoreboard *sb)
{
    char text[SCOREBOARD_DRAIN_MESSAGE_MAX + 1];
    scoreboard_set_drain(sb, 1, "maintenance");
    assert_int_equal(scoreboard_master_draining(sb), 1);
    assert_int_equal(scoreboard_draining(sb, text, sizeof(text)), 1);
    assert_string_equal(text, "maintenance");
    scoreboard_set_drain(sb, 0, NULL);
    assert_int_equal(scoreboard_master_draining(sb), 0);
    assert_int_equal(scoreboard_draining(sb, text, sizeof(text)), 0);
}

/* All ones: capacity, bucket counts, indices, pointers as 0xffffffff..., the mutex garbage. */
static void test_master_survives_all_ones(void **state)
{
    (void)state;
    struct scoreboard *sb = with_sessions(3, WORKER_PID, "192.0.2.1");
    scribble(0xff, 0);
    alarm(10);
    assert_int_equal(scoreboard_capacity(sb), CAP);
    assert_true(scoreboard_active(sb) <= CAP);
    assert_true(walk_like_who(sb) <= CAP);
    /* The owner fields now say -1: nothing of the dead worker's is recognisable. */
    assert_true(scoreboard_reap_owner(sb, WORKER_PID) <= CAP);
    assert_int_equal(scoreboard_reap_owner(sb, -1), 0);
    drain_round_trip(sb);
    alarm(0);
    scoreboard_destroy(sb);
}

/*
 * Text without a NUL anywhere: every owner a "live" pid 0x41414141, every
 * user name 'A' to the end of its field, every index and count 0x41414141.
 * The workers' mutex (the first bytes) is left working, so the workers'
 * side can be checked to mend itself once the master reaped that "pid".
 */
static void test_master_survives_text_garbage(void **state)
{
    (void)state;
    enum scoreboard_refusal why;
    const pid_t garbage = 0x41414141;
    struct scoreboard *sb = with_sessions(3, WORKER_PID, "192.0.2.1");
    scribble('A', sizeof(pthread_mutex_t));
    alarm(10);
    assert_int_equal(scoreboard_capacity(sb), CAP);
    assert_int_equal(scoreboard_active(sb), CAP);
    for (unsigned i = 0; i < CAP; i++) {
        struct scoreboard_session s;
        uint8_t ip[16];
        pid_t owner;
        assert_int_equal(scoreboard_peek(sb, i, &s, ip, &owner), 1);
        assert_int_equal(owner, garbage);
        assert_int_equal(strlen(s.user), SCOREBOARD_USER_MAX - 1);
        assert_int_equal(strlen(s.state), sizeof(s.state) - 1);
        assert_int_equal(ip[0], 'A');
    }
    assert_int_equal(walk_like_who(sb), CAP);
    drain_round_trip(sb);
    /* The master reaps the "dead worker" that owns everything. */
    assert_int_equal(scoreboard_reap_owner(sb, garbage), CAP);
    assert_int_equal(scoreboard_active(sb), 0);
    assert_int_equal(walk_like_who(sb), 0);

    /* Workers rebuild their tables from the slots: all CAP slots usable, counts exact. */
    struct sockaddr_storage a = v4("198.51.100.9");
    int slots[CAP];
    for (int i = 0; i < CAP; i++) {
        slots[i] = scoreboard_conn_open(sb, getpid(), SA(a), CAP, CAP, &why);
        assert_in_range(slots[i], 0, CAP - 1);
    }
    assert_int_equal(scoreboard_conn_open(sb, getpid(), SA(a), CAP, CAP, &why), -1);
    assert_int_equal(why, SB_LIMIT_TOTAL);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), CAP);
    assert_int_equal(scoreboard_mailbox_lock(sb, slots[0], "/m/a"), 0);
    assert_int_equal(scoreboard_mailbox_lock(sb, slots[1], "/m/a"), -1);
    for (int i = 0; i < CAP; i++)
        scoreboard_conn_close(sb, slots[i]);
    assert_int_equal(scoreboard_active(sb), 0);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 0);
    alarm(0);
    scoreboard_destroy(sb);
}

/*
 * Another process takes the workers' lock and never lets go (a stopped or
 * hostile worker). Everything the master does still returns at once; once
 * that process dies, the workers' side recovers (robust mutex) and reflects
 * what the master reaped meanwhile.
 */
static void test_master_never_waits_for_the_lock(void **state)
{
    (void)state;
    enum scoreboard_refusal why;
    struct sockaddr_storage mine = v4("192.0.2.2"), theirs = v4("192.0.2.1");
    struct scoreboard *sb = with_sessions(2, WORKER_PID, "192.0.2.1");
    int slot = scoreboard_conn_open(sb, getpid(), SA(mine), CAP, CAP, &why);
    assert_true(slot >= 0);
    assert_int_equal(scoreboard_mailbox_lock(sb, slot, "/m/held"), 0);

    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t holder = fork();
    assert_true(holder >= 0);
    if (holder == 0) {
        close(p[0]);
        if (pthread_mutex_lock((pthread_mutex_t *)region.start) != 0)
            _exit(1);
        if (write(p[1], "L", 1) != 1)
            _exit(2);
        alarm(60); /* never outlive a parent that died of its own alarm */
        for (;;)
            pause();
    }
    close(p[1]);
    char c;
    alarm(10);
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);

    assert_int_equal(scoreboard_active(sb), 3);
    assert_int_equal(walk_like_who(sb), 3);
    assert_int_equal(scoreboard_reap_owner(sb, WORKER_PID), 2);
    assert_int_equal(scoreboard_active(sb), 1);
    drain_round_trip(sb);
    assert_true(scoreboard_changes(sb) > 0);
    alarm(0);

    assert_int_equal(kill(holder, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(holder, &status, 0), holder);
    alarm(10);
    assert_int_equal(scoreboard_count_ip(sb, SA(theirs)), 0);
    assert_int_equal(scoreboard_count_ip(sb, SA(mine)), 1);
    int other = scoreboard_conn_open(sb, getpid(), SA(theirs), CAP, CAP, &why);
    assert_true(other >= 0);
    assert_int_equal(scoreboard_mailbox_lock(sb, other, "/m/held"), -1);
    assert_int_equal(errno, EBUSY);
    scoreboard_conn_close(sb, slot);
    assert_int_equal(scoreboard_mailbox_lock(sb, other, "/m/held"), 0);
    scoreboard_conn_close(sb, other);
    assert_int_equal(scoreboard_active(sb), 0);
    alarm(0);
    scoreboard_destroy(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_master_survives_all_ones),
        cmocka_unit_test(test_master_survives_text_garbage),
        cmocka_unit_test(test_master_never_waits_for_the_lock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
