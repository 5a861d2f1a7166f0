/* shm/scoreboard: limits, per-IP counts, reaping, robust lock, processes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/scoreboard.h"

static uint32_t rng_state;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    memset(&ss, 0, sizeof(ss));
    in->sin_family = AF_INET;
    in->sin_port = htons(40000);
    assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof(ss));
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(40001);
    assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_create_capacity(void **state)
{
    enum scoreboard_refusal why = SB_OK;
    struct sockaddr_storage a = v4("192.0.2.1");

    (void)state;
    struct scoreboard *sb = scoreboard_create(10);
    assert_non_null(sb);
    assert_int_equal(scoreboard_capacity(sb), 10);
    assert_int_equal(scoreboard_active(sb), 0);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 0);
    scoreboard_destroy(sb);

    /* capacity 0: nothing fits, nothing breaks */
    sb = scoreboard_create(0);
    assert_non_null(sb);
    assert_int_equal(scoreboard_conn_open(sb, 100, SA(a), 10, 10, &why), -1);
    assert_int_equal(why, SB_LIMIT_TOTAL);
    assert_int_equal(scoreboard_active(sb), 0);
    scoreboard_destroy(sb);
    scoreboard_destroy(NULL); /* allowed */
}

static void test_total_limit(void **state)
{
    enum scoreboard_refusal why;
    int slots[10];
    char ip[32];

    (void)state;
    struct scoreboard *sb = scoreboard_create(10);
    assert_non_null(sb);
    for (int i = 0; i < 5; i++) {
        snprintf(ip, sizeof(ip), "10.0.0.%d", i + 1);
        struct sockaddr_storage a = v4(ip);
        why = SB_LIMIT_PER_IP;
        slots[i] = scoreboard_conn_open(sb, 100, SA(a), 5, 100, &why);
        assert_true(slots[i] >= 0 && slots[i] < 10);
        assert_int_equal(why, SB_OK);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(slots[i], slots[j]);
    }
    struct sockaddr_storage other = v4("10.0.0.99");
    assert_int_equal(scoreboard_conn_open(sb, 100, SA(other), 5, 100, &why), -1);
    assert_int_equal(why, SB_LIMIT_TOTAL);
    assert_int_equal(scoreboard_active(sb), 5);
    assert_int_equal(scoreboard_count_ip(sb, SA(other)), 0); /* refusal left no trace */

    /* closing one makes room for exactly one */
    scoreboard_conn_close(sb, slots[2]);
    assert_int_equal(scoreboard_active(sb), 4);
    int s = scoreboard_conn_open(sb, 100, SA(other), 5, 100, &why);
    assert_true(s >= 0);
    assert_int_equal(why, SB_OK);
    assert_int_equal(scoreboard_conn_open(sb, 100, SA(other), 5, 100, &why), -1);
    assert_int_equal(why, SB_LIMIT_TOTAL);

    /* a max_total above the capacity is clamped to it */
    for (int i = 5; i < 10; i++) {
        slots[i] = scoreboard_conn_open(sb, 100, SA(other), 1000, 100, &why);
        assert_true(slots[i] >= 0);
    }
    assert_int_equal(scoreboard_active(sb), 10);
    assert_int_equal(scoreboard_conn_open(sb, 100, SA(other), 1000, 100, &why), -1);
    assert_int_equal(why, SB_LIMIT_TOTAL);
    assert_int_equal(scoreboard_count_ip(sb, SA(other)), 6);
    scoreboard_destroy(sb);
}

static void test_per_ip_limit_v4_v6_mapped(void **state)
{
    enum scoreboard_refusal why;
    struct sockaddr_storage a4 = v4("198.51.100.7");
    struct sockaddr_storage a4_other_port = v4("198.51.100.7");
    struct sockaddr_storage mapped = v6("::ffff:198.51.100.7");
    struct sockaddr_storage b4 = v4("198.51.100.8");
    struct sockaddr_storage a6 = v6("2001:db8::7");
    struct sockaddr_storage b6 = v6("2001:db8:0:1::8");   /* another /64 */
    int s[8];

    (void)state;
    ((struct sockaddr_in *)&a4_other_port)->sin_port = htons(1);
    struct scoreboard *sb = scoreboard_create(100);
    assert_non_null(sb);

    /* IPv4: 3 allowed, the port does not matter, the v4-mapped form is the same IP */
    s[0] = scoreboard_conn_open(sb, 1, SA(a4), 100, 3, &why);
    s[1] = scoreboard_conn_open(sb, 1, SA(a4_other_port), 100, 3, &why);
    s[2] = scoreboard_conn_open(sb, 2, SA(mapped), 100, 3, &why);
    assert_true(s[0] >= 0 && s[1] >= 0 && s[2] >= 0);
    assert_int_equal(scoreboard_count_ip(sb, SA(a4)), 3);
    assert_int_equal(scoreboard_count_ip(sb, SA(mapped)), 3);
    assert_int_equal(scoreboard_conn_open(sb, 1, SA(a4), 100, 3, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IP);
    assert_int_equal(scoreboard_conn_open(sb, 1, SA(mapped), 100, 3, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IP);
    /* another IPv4 is unaffected */
    s[3] = scoreboard_conn_open(sb, 1, SA(b4), 100, 3, &why);
    assert_true(s[3] >= 0);
    assert_int_equal(scoreboard_count_ip(sb, SA(b4)), 1);

    /* IPv6 */
    s[4] = scoreboard_conn_open(sb, 1, SA(a6), 100, 2, &why);
    s[5] = scoreboard_conn_open(sb, 1, SA(a6), 100, 2, &why);
    assert_true(s[4] >= 0 && s[5] >= 0);
    assert_int_equal(scoreboard_conn_open(sb, 1, SA(a6), 100, 2, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IP);
    assert_int_equal(scoreboard_count_ip(sb, SA(a6)), 2);
    assert_int_equal(scoreboard_count_ip(sb, SA(b6)), 0);
    s[6] = scoreboard_conn_open(sb, 1, SA(b6), 100, 2, &why);
    assert_true(s[6] >= 0);

    assert_int_equal(scoreboard_active(sb), 7);

    /* closing one through either form frees the shared count */
    scoreboard_conn_close(sb, s[2]);
    assert_int_equal(scoreboard_count_ip(sb, SA(a4)), 2);
    s[2] = scoreboard_conn_open(sb, 1, SA(a4), 100, 3, &why);
    assert_true(s[2] >= 0);
    assert_int_equal(why, SB_OK);
    assert_int_equal(scoreboard_count_ip(sb, SA(mapped)), 3);

    /* a lower limit applies at once to new connections */
    assert_int_equal(scoreboard_conn_open(sb, 1, SA(b4), 100, 1, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IP);
    scoreboard_destroy(sb);
}

static void test_close_frees(void **state)
{
    enum scoreboard_refusal why;
    struct sockaddr_storage a = v6("2001:db8::1");

    (void)state;
    struct scoreboard *sb = scoreboard_create(4);
    assert_non_null(sb);
    int s1 = scoreboard_conn_open(sb, 5, SA(a), 4, 4, &why);
    int s2 = scoreboard_conn_open(sb, 5, SA(a), 4, 4, &why);
    assert_true(s1 >= 0 && s2 >= 0 && s1 != s2);
    scoreboard_conn_close(sb, s1);
    assert_int_equal(scoreboard_active(sb), 1);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 1);
    /* closing again, or a slot out of range, changes nothing */
    scoreboard_conn_close(sb, s1);
    scoreboard_conn_close(sb, -1);
    scoreboard_conn_close(sb, 4);
    scoreboard_conn_close(sb, 1 << 30);
    assert_int_equal(scoreboard_active(sb), 1);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 1);
    scoreboard_conn_close(sb, s2);
    assert_int_equal(scoreboard_active(sb), 0);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 0);

    /* all four slots can be used again */
    int got[4];
    for (int i = 0; i < 4; i++) {
        got[i] = scoreboard_conn_open(sb, 5, SA(a), 4, 4, &why);
        assert_true(got[i] >= 0 && got[i] < 4);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(got[i], got[j]);
    }
    assert_int_equal(scoreboard_conn_open(sb, 5, SA(a), 4, 4, &why), -1);
    assert_int_equal(why, SB_LIMIT_TOTAL);
    scoreboard_destroy(sb);
}

static void test_capacity_exhaustion(void **state)
{
    enum scoreboard_refusal why;
    char ip[64];

    (void)state;
    struct scoreboard *sb = scoreboard_create(50);
    assert_non_null(sb);
    for (int i = 0; i < 50; i++) {
        snprintf(ip, sizeof(ip), "2001:db8::%x", i + 1);
        struct sockaddr_storage a = v6(ip);
        assert_true(scoreboard_conn_open(sb, 9, SA(a), 1000000, 1000000, &why) >= 0);
    }
    struct sockaddr_storage a = v6("2001:db8::ffff");
    assert_int_equal(scoreboard_conn_open(sb, 9, SA(a), 1000000, 1000000, &why), -1);
    assert_int_equal(why, SB_LIMIT_TOTAL);
    assert_int_equal(scoreboard_active(sb), 50);
    assert_int_equal(scoreboard_reap_owner(sb, 9), 50);
    assert_int_equal(scoreboard_active(sb), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(ip, sizeof(ip), "2001:db8::%x", i + 1);
        struct sockaddr_storage b = v6(ip);
        assert_int_equal(scoreboard_count_ip(sb, SA(b)), 0);
    }
    scoreboard_destroy(sb);
}

static void test_reap_owner(void **state)
{
    enum scoreboard_refusal why;
    struct sockaddr_storage a = v4("203.0.113.1");
    struct sockaddr_storage b = v4("203.0.113.2");
    struct sockaddr_storage c = v6("2001:db8::c");

    (void)state;
    struct scoreboard *sb = scoreboard_create(20);
    assert_non_null(sb);
    /* owner 111: a a b c ; owner 222: a b */
    assert_true(scoreboard_conn_open(sb, 111, SA(a), 20, 10, &why) >= 0);
    assert_true(scoreboard_conn_open(sb, 111, SA(a), 20, 10, &why) >= 0);
    assert_true(scoreboard_conn_open(sb, 111, SA(b), 20, 10, &why) >= 0);
    assert_true(scoreboard_conn_open(sb, 111, SA(c), 20, 10, &why) >= 0);
    int s_a = scoreboard_conn_open(sb, 222, SA(a), 20, 10, &why);
    int s_b = scoreboard_conn_open(sb, 222, SA(b), 20, 10, &why);
    assert_true(s_a >= 0 && s_b >= 0);
    assert_int_equal(scoreboard_active(sb), 6);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 3);

    assert_int_equal(scoreboard_reap_owner(sb, 333), 0);
    assert_int_equal(scoreboard_active(sb), 6);

    assert_int_equal(scoreboard_reap_owner(sb, 111), 4);
    assert_int_equal(scoreboard_active(sb), 2);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 1);
    assert_int_equal(scoreboard_count_ip(sb, SA(b)), 1);
    assert_int_equal(scoreboard_count_ip(sb, SA(c)), 0);
    assert_int_equal(scoreboard_reap_owner(sb, 111), 0); /* idempotent */

    /* the survivor's slots still close normally */
    scoreboard_conn_close(sb, s_a);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 0);
    assert_int_equal(scoreboard_active(sb), 1);
    assert_int_equal(scoreboard_reap_owner(sb, 222), 1);
    assert_int_equal(scoreboard_active(sb), 0);
    assert_int_equal(scoreboard_count_ip(sb, SA(b)), 0);
    scoreboard_destroy(sb);
}

/*
 * pid 0 is the "free slot" marker inside the scoreboard. Reaping owner 0
 * (e.g. a waitpid(WNOHANG) result of 0 passed on by mistake) must not
 * "release" the free slots again.
 */
static void test_reap_owner_zero_is_harmless(void **state)
{
    enum scoreboard_refusal why;
    struct sockaddr_storage a = v4("192.0.2.50");

    (void)state;
    struct scoreboard *sb = scoreboard_create(8);
    assert_non_null(sb);
    int s1 = scoreboard_conn_open(sb, 100, SA(a), 8, 8, &why);
    int s2 = scoreboard_conn_open(sb, 100, SA(a), 8, 8, &why);
    assert_true(s1 >= 0 && s2 >= 0);
    scoreboard_conn_close(sb, s1); /* a free slot that still remembers IP a */

    assert_int_equal(scoreboard_reap_owner(sb, 0), 0);
    assert_int_equal(scoreboard_active(sb), 1);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 1);
    scoreboard_destroy(sb);
}

/* ---- random operations against a reference model ------------------------ */

#define MODEL_IPS 300
#define MODEL_MAX_CAP 128

struct model {
    struct sockaddr_storage addr[MODEL_IPS];
    int key[MODEL_IPS];            /* same key = same block (v4 vs v4-mapped, one IPv6 /64) */
    unsigned count[MODEL_IPS];     /* by key */
    int slot_ip[MODEL_MAX_CAP];    /* -1 = free */
    pid_t slot_owner[MODEL_MAX_CAP];
    unsigned active;
};

static void model_init(struct model *m)
{
    char ip[64];

    memset(m, 0, sizeof(*m));
    for (int i = 0; i < MODEL_IPS; i++) {
        int kind = i % 3;
        if (kind == 0) {
            snprintf(ip, sizeof(ip), "10.%u.%u.%u", (unsigned)(i / 3) % 7, (unsigned)i % 251,
                     (unsigned)(i * 37) % 256);
            m->addr[i] = v4(ip);
            m->key[i] = i;
        } else if (kind == 1) {
            /* the v4-mapped form of the IPv4 just before */
            const struct sockaddr_in *in = (const struct sockaddr_in *)&m->addr[i - 1];
            char tmp[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &in->sin_addr, tmp, sizeof(tmp));
            snprintf(ip, sizeof(ip), "::ffff:%s", tmp);
            m->addr[i] = v6(ip);
            m->key[i] = i - 1;
        } else {
            snprintf(ip, sizeof(ip), "2001:db8:%x::%x", (unsigned)i % 5, (unsigned)i);
            m->addr[i] = v6(ip);
            /* Counted per /64: the first address of the same 2001:db8:N::/64 is the key. */
            m->key[i] = i;
            for (int j = 2; j < i; j += 3) {
                if (j % 5 == i % 5) {
                    m->key[i] = m->key[j];
                    break;
                }
            }
        }
    }
    for (int i = 0; i < MODEL_MAX_CAP; i++)
        m->slot_ip[i] = -1;
}

static void model_check_all(struct scoreboard *sb, const struct model *m)
{
    assert_int_equal(scoreboard_active(sb), m->active);
    for (int i = 0; i < MODEL_IPS; i++)
        assert_int_equal(scoreboard_count_ip(sb, SA(m->addr[i])), m->count[m->key[i]]);
}

static void run_model(unsigned cap, unsigned max_total, unsigned max_per_ip, int ips_used,
                      int ops, uint32_t seed)
{
    static struct model m;
    enum scoreboard_refusal why;

    assert_true(cap <= MODEL_MAX_CAP && ips_used <= MODEL_IPS);
    model_init(&m);
    rng_state = seed;
    struct scoreboard *sb = scoreboard_create(cap);
    assert_non_null(sb);
    unsigned eff_total = max_total < cap ? max_total : cap;

    for (int op = 0; op < ops; op++) {
        uint32_t r = rng() % 100;
        if (r < 55) {
            int ip = (int)(rng() % (uint32_t)ips_used);
            pid_t owner = 1000 + (pid_t)(rng() % 4);
            int s = scoreboard_conn_open(sb, owner, SA(m.addr[ip]), max_total, max_per_ip,
                                         &why);
            if (m.active >= eff_total) {
                assert_int_equal(s, -1);
                assert_int_equal(why, SB_LIMIT_TOTAL);
            } else if (m.count[m.key[ip]] >= max_per_ip) {
                assert_int_equal(s, -1);
                assert_int_equal(why, SB_LIMIT_PER_IP);
            } else {
                assert_int_equal(why, SB_OK);
                assert_true(s >= 0 && (unsigned)s < cap);
                assert_int_equal(m.slot_ip[s], -1); /* never hand out a used slot */
                m.slot_ip[s] = ip;
                m.slot_owner[s] = owner;
                m.count[m.key[ip]]++;
                m.active++;
            }
        } else if (r < 98) {
            int s = (int)(rng() % cap);
            scoreboard_conn_close(sb, s);
            if (m.slot_ip[s] >= 0) {
                m.count[m.key[m.slot_ip[s]]]--;
                m.active--;
                m.slot_ip[s] = -1;
            }
        } else {
            pid_t owner = 1000 + (pid_t)(rng() % 5); /* 1004 owns nothing */
            unsigned want = 0;
            for (unsigned s = 0; s < cap; s++) {
                if (m.slot_ip[s] >= 0 && m.slot_owner[s] == owner) {
                    m.count[m.key[m.slot_ip[s]]]--;
                    m.active--;
                    m.slot_ip[s] = -1;
                    want++;
                }
            }
            assert_int_equal(scoreboard_reap_owner(sb, owner), want);
        }
        assert_int_equal(scoreboard_active(sb), m.active);
        if (op % 97 == 0)
            model_check_all(sb, &m);
    }
    model_check_all(sb, &m);
    /* drain: everything goes back to zero */
    for (pid_t o = 1000; o < 1004; o++)
        scoreboard_reap_owner(sb, o);
    for (int i = 0; i < MODEL_IPS; i++)
        m.count[i] = 0;
    m.active = 0;
    model_check_all(sb, &m);
    scoreboard_destroy(sb);
}

static void test_random_model_small_table(void **state)
{
    (void)state;
    /* capacity 8: 16 buckets, so probe runs wrap around the table end */
    run_model(8, 8, 2, 60, 20000, 1);
    run_model(8, 8, 100, 300, 20000, 2);
}

static void test_random_model_many_ips(void **state)
{
    (void)state;
    /* capacity 100: 256 buckets, up to 100 distinct live IPs */
    run_model(100, 100, 3, 300, 30000, 3);
    run_model(100, 60, 1, 300, 30000, 4);
    run_model(128, 1000, 5, 150, 30000, 5);
}

/* ---- across processes -------------------------------------------------- */

static void test_cross_process(void **state)
{
    enum scoreboard_refusal why;
    struct sockaddr_storage a = v4("192.0.2.77");
    struct sockaddr_storage b = v6("2001:db8::77");

    (void)state;
    struct scoreboard *sb = scoreboard_create(16);
    assert_non_null(sb);
    int mine = scoreboard_conn_open(sb, getpid(), SA(a), 16, 16, &why);
    assert_true(mine >= 0);

    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int ok = 1;
        for (int i = 0; i < 3; i++)
            ok &= scoreboard_conn_open(sb, getpid(), SA(a), 16, 16, &why) >= 0;
        ok &= scoreboard_conn_open(sb, getpid(), SA(b), 16, 16, &why) >= 0;
        /* the child sees the parent's slot */
        ok &= scoreboard_count_ip(sb, SA(a)) == 4;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    assert_int_equal(scoreboard_active(sb), 5);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 4);
    assert_int_equal(scoreboard_count_ip(sb, SA(b)), 1);
    /* the limit counts the child's connections */
    assert_int_equal(scoreboard_conn_open(sb, getpid(), SA(a), 16, 4, &why), -1);
    assert_int_equal(why, SB_LIMIT_PER_IP);

    assert_int_equal(scoreboard_reap_owner(sb, child), 4);
    assert_int_equal(scoreboard_active(sb), 1);
    assert_int_equal(scoreboard_count_ip(sb, SA(a)), 1);
    assert_int_equal(scoreboard_count_ip(sb, SA(b)), 0);
    scoreboard_conn_close(sb, mine);
    assert_int_equal(scoreboard_active(sb), 0);
    scoreboard_destroy(sb);
}

/*
 * A worker killed with SIGKILL while it holds the scoreboard lock. The lock
 * is internal, so the child spends most of its time inside it, asking for
 * counts (t/unit/test_scoreboard_untrusted.c kills a holder for certain).
 * If the robust-mutex path were broken, the parent would hang here; alarm()
 * turns that into a failure instead of a ctest timeout.
 */
static void test_owner_killed_holding_lock(void **state)
{
    enum scoreboard_refusal why;
    struct sockaddr_storage a = v4("198.51.100.200");
    struct sockaddr_storage b = v6("2001:db8::200");
    const unsigned cap = 200000;

    (void)state;
    struct scoreboard *sb = scoreboard_create(cap);
    assert_non_null(sb);
    int mine = scoreboard_conn_open(sb, getpid(), SA(a), cap, 100, &why);
    assert_true(mine >= 0);

    for (int round = 0; round < 3; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            close(p[0]);
            for (int i = 0; i < 5; i++)
                if (scoreboard_conn_open(sb, getpid(), (i % 2 ? SA(a) : SA(b)), cap, 100, &why) < 0)
                    _exit(2);
            /* a slot opened and closed again must not come back */
            int s = scoreboard_conn_open(sb, getpid(), SA(b), cap, 100, &why);
            scoreboard_conn_close(sb, s);
            if (write(p[1], "r", 1) != 1)
                _exit(3);
            for (long i = 0; i < 1000000000L; i++)
                (void)scoreboard_count_ip(sb, SA(a));
            _exit(4);
        }
        close(p[1]);
        char c;
        assert_int_equal(read(p[0], &c, 1), 1);
        close(p[0]);
        struct timespec ts = { 0, 30 * 1000 * 1000 + round * 7 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        assert_int_equal(kill(child, SIGKILL), 0);
        int status = 0;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);

        alarm(30);
        /* the lock is usable and the counts are right before reaping... */
        assert_int_equal(scoreboard_active(sb), 1 + 5);
        assert_int_equal(scoreboard_count_ip(sb, SA(a)), 1 + 2);
        assert_int_equal(scoreboard_count_ip(sb, SA(b)), 3);
        /* ...and after */
        assert_int_equal(scoreboard_reap_owner(sb, child), 5);
        assert_int_equal(scoreboard_active(sb), 1);
        assert_int_equal(scoreboard_count_ip(sb, SA(a)), 1);
        assert_int_equal(scoreboard_count_ip(sb, SA(b)), 0);
        /* open/close keep working */
        int s = scoreboard_conn_open(sb, getpid(), SA(b), cap, 100, &why);
        assert_true(s >= 0);
        assert_int_equal(scoreboard_count_ip(sb, SA(b)), 1);
        scoreboard_conn_close(sb, s);
        assert_int_equal(scoreboard_count_ip(sb, SA(b)), 0);
        alarm(0);
    }
    scoreboard_conn_close(sb, mine);
    assert_int_equal(scoreboard_active(sb), 0);
    scoreboard_destroy(sb);
}

/* Children killed at random points of open/close loops: counts stay exact. */
static void test_owner_killed_during_churn(void **state)
{
    enum scoreboard_refusal why;
    struct sockaddr_storage addrs[4];

    (void)state;
    addrs[0] = v4("192.0.2.1");
    addrs[1] = v4("192.0.2.2");
    addrs[2] = v6("2001:db8::1");
    addrs[3] = v6("::ffff:192.0.2.1"); /* same IP as addrs[0] */
    struct scoreboard *sb = scoreboard_create(64);
    assert_non_null(sb);
    int mine = scoreboard_conn_open(sb, getpid(), SA(addrs[1]), 64, 64, &why);
    assert_true(mine >= 0);

    for (int round = 0; round < 10; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            int held[16];
            close(p[0]);
            for (int i = 0; i < 16; i++)
                held[i] = -1;
            if (write(p[1], "r", 1) != 1)
                _exit(3);
            for (long i = 0; i < 200000000L; i++) {
                int k = (int)(i % 16);
                if (held[k] >= 0) {
                    scoreboard_conn_close(sb, held[k]);
                    held[k] = -1;
                } else {
                    held[k] = scoreboard_conn_open(sb, getpid(), SA(addrs[i % 4]), 64, 64, &why);
                }
            }
            _exit(4);
        }
        close(p[1]);
        char c;
        assert_int_equal(read(p[0], &c, 1), 1);
        close(p[0]);
        struct timespec ts = { 0, (long)(1 + round * 3) * 1000 * 1000 };
        nanosleep(&ts, NULL);
        assert_int_equal(kill(child, SIGKILL), 0);
        int status = 0;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFSIGNALED(status));

        alarm(30);
        unsigned freed = scoreboard_reap_owner(sb, child);
        assert_true(freed <= 16);
        assert_int_equal(scoreboard_active(sb), 1);
        assert_int_equal(scoreboard_count_ip(sb, SA(addrs[0])), 0);
        assert_int_equal(scoreboard_count_ip(sb, SA(addrs[1])), 1);
        assert_int_equal(scoreboard_count_ip(sb, SA(addrs[2])), 0);
        /* every other slot is free again: 63 more fit, then the limit */
        int slots[63];
        for (int i = 0; i < 63; i++) {
            slots[i] = scoreboard_conn_open(sb, getpid(), SA(addrs[i % 3]), 64, 64, &why);
            assert_true(slots[i] >= 0);
        }
        assert_int_equal(scoreboard_conn_open(sb, getpid(), SA(addrs[0]), 64, 64, &why), -1);
        assert_int_equal(why, SB_LIMIT_TOTAL);
        for (int i = 0; i < 63; i++)
            scoreboard_conn_close(sb, slots[i]);
        assert_int_equal(scoreboard_active(sb), 1);
        alarm(0);
    }
    scoreboard_conn_close(sb, mine);
    scoreboard_destroy(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_capacity),
        cmocka_unit_test(test_total_limit),
        cmocka_unit_test(test_per_ip_limit_v4_v6_mapped),
        cmocka_unit_test(test_close_frees),
        cmocka_unit_test(test_capacity_exhaustion),
        cmocka_unit_test(test_reap_owner),
        cmocka_unit_test(test_reap_owner_zero_is_harmless),
        cmocka_unit_test(test_random_model_small_table),
        cmocka_unit_test(test_random_model_many_ips),
        cmocka_unit_test(test_cross_process),
        cmocka_unit_test(test_owner_killed_holding_lock),
        cmocka_unit_test(test_owner_killed_during_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
