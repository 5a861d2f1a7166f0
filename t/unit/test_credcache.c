/* shm/credcache: record layout, verifier, TTL decisions, the LMDB env, sweep, flush. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/credcache.h"

static const struct credcache_ttl TTL = { 3600, 300, 86400 };
static const time_t NOW = 1700000000;

static void make_ok(struct credcache_record *rec, const char *pw, time_t when)
{
    assert_int_equal(credcache_record_init(rec), 0);
    assert_int_equal(credcache_record_ok(rec, pw, "alice", "/var/mail/alice", when), 0);
}

static void test_encode_decode_roundtrip(void **state)
{
    struct credcache_record a, b;
    unsigned char buf[2048];
    (void)state;

    make_ok(&a, "secret", NOW);
    assert_int_equal(credcache_record_fail(&a, "wrong", NOW + 5), 0);
    long n = credcache_encode(&a, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(credcache_decode(buf, (size_t)n, &b), 0);
    assert_int_equal(b.iterations, CREDCACHE_ITERATIONS);
    assert_memory_equal(a.salt, b.salt, sizeof(a.salt));
    assert_true(b.has_positive && b.has_negative);
    assert_int_equal(b.verified_at, NOW);
    assert_int_equal(b.failed_at, NOW + 5);
    assert_memory_equal(a.dk, b.dk, sizeof(a.dk));
    assert_memory_equal(a.neg_dk, b.neg_dk, sizeof(a.neg_dk));
    assert_string_equal(b.user, "alice");
    assert_string_equal(b.maildir, "/var/mail/alice");

    /* Every truncation and one extra byte are refused. */
    for (long cut = 0; cut < n; cut++)
        assert_int_equal(credcache_decode(buf, (size_t)cut, &b), -1);
    buf[n] = 0;
    assert_int_equal(credcache_decode(buf, (size_t)n + 1, &b), -1);
    /* Unknown version, unknown flag, zero iterations. */
    unsigned char bad[2048];
    memcpy(bad, buf, (size_t)n);
    bad[0] = 2;
    assert_int_equal(credcache_decode(bad, (size_t)n, &b), -1);
    memcpy(bad, buf, (size_t)n);
    bad[1] |= 4;
    assert_int_equal(credcache_decode(bad, (size_t)n, &b), -1);
    memcpy(bad, buf, (size_t)n);
    memset(bad + 4, 0, 4);
    assert_int_equal(credcache_decode(bad, (size_t)n, &b), -1);
    /* Too small an output buffer. */
    assert_int_equal(credcache_encode(&a, buf, 20), -1);
    assert_int_equal(errno, ENOBUFS);
}

static void test_no_plaintext_in_record(void **state)
{
    struct credcache_record a;
    unsigned char buf[2048];
    (void)state;

    make_ok(&a, "PlainTextPassword", NOW);
    long n = credcache_encode(&a, buf, sizeof(buf));
    assert_true(n > 0);
    assert_null(memmem(buf, (size_t)n, "PlainTextPassword", 17));
    /* A second record for the same password has another salt, so another verifier. */
    struct credcache_record b;
    make_ok(&b, "PlainTextPassword", NOW);
    assert_memory_not_equal(a.salt, b.salt, sizeof(a.salt));
    assert_memory_not_equal(a.dk, b.dk, sizeof(a.dk));
}

static void test_judge_ttls(void **state)
{
    struct credcache_record r;
    (void)state;

    make_ok(&r, "secret", NOW);
    assert_int_equal(credcache_judge(&r, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(credcache_judge(&r, "secret", NOW + 3599, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(credcache_judge(&r, "Secret", NOW, &TTL), CREDCACHE_MISS);
    assert_int_equal(credcache_judge(&r, "", NOW, &TTL), CREDCACHE_MISS);
    /* Expired: stale inside stale_ttl, nothing after it. */
    assert_int_equal(credcache_judge(&r, "secret", NOW + 3600, &TTL), CREDCACHE_STALE_OK);
    assert_int_equal(credcache_judge(&r, "secret", NOW + 86399, &TTL), CREDCACHE_STALE_OK);
    assert_int_equal(credcache_judge(&r, "secret", NOW + 86400, &TTL), CREDCACHE_MISS);
    /* A clock stepped far back: the entry is from the future, not trusted. */
    assert_int_equal(credcache_judge(&r, "secret", NOW - 3600, &TTL), CREDCACHE_MISS);
    assert_int_equal(credcache_judge(&r, "secret", NOW - 10, &TTL), CREDCACHE_HIT_OK);
    /* TTL 0 turns the positive part off. */
    struct credcache_ttl off = { 0, 300, 0 };
    assert_int_equal(credcache_judge(&r, "secret", NOW, &off), CREDCACHE_MISS);
}

static void test_negative_and_transitions(void **state)
{
    struct credcache_record r;
    (void)state;

    assert_int_equal(credcache_record_init(&r), 0);
    assert_int_equal(credcache_record_fail(&r, "old-password", NOW), 0);
    assert_int_equal(credcache_judge(&r, "old-password", NOW + 10, &TTL), CREDCACHE_HIT_FAIL);
    /* Only the same wrong password is remembered. */
    assert_int_equal(credcache_judge(&r, "other", NOW + 10, &TTL), CREDCACHE_MISS);
    assert_int_equal(credcache_judge(&r, "old-password", NOW + 300, &TTL), CREDCACHE_MISS);

    /* The backend now accepts the password that failed: the failure is forgotten. */
    assert_int_equal(credcache_record_ok(&r, "old-password", "u", "/m", NOW + 20), 0);
    assert_false(r.has_negative);
    assert_int_equal(credcache_judge(&r, "old-password", NOW + 21, &TTL), CREDCACHE_HIT_OK);

    /* And refuses it again (password changed): the positive part goes too. */
    assert_int_equal(credcache_record_fail(&r, "old-password", NOW + 30), 0);
    assert_false(r.has_positive);
    assert_int_equal(credcache_judge(&r, "old-password", NOW + 31, &TTL), CREDCACHE_HIT_FAIL);

    /* A failure for another password keeps the positive part. */
    make_ok(&r, "good", NOW);
    assert_int_equal(credcache_record_fail(&r, "bad", NOW + 1), 0);
    assert_true(r.has_positive);
    assert_int_equal(credcache_judge(&r, "good", NOW + 2, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(credcache_judge(&r, "bad", NOW + 2, &TTL), CREDCACHE_HIT_FAIL);

    /* Bad input to record_ok. */
    assert_int_equal(credcache_record_ok(&r, "x", "", "/m", NOW), -1);
    assert_int_equal(credcache_record_ok(&r, "x", "u", "relative", NOW), -1);
}

/* A fresh state_dir per test. */
static char *make_state_dir(void)
{
    char *dir = strdup("/tmp/fastpop-credcache-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void remove_state_dir(char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

static void test_env_put_get_flush(void **state)
{
    char *dir = make_state_dir();
    struct credcache *w, *r;
    struct credcache_record rec, got;
    int found;
    size_t removed;
    (void)state;

    /* Readers never create anything: no env yet is ENOENT. */
    assert_int_equal(credcache_open(dir, 0, &r), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(credcache_prepare_dir(dir, getuid(), getgid()), 0);
    assert_int_equal(credcache_open(dir, 1, &w), 0);
    assert_int_equal(credcache_open(dir, 0, &r), 0);
    assert_int_equal(credcache_get(r, "alice", &got, &found), 0);
    assert_false(found);

    make_ok(&rec, "secret", NOW);
    assert_int_equal(credcache_put(w, "alice", &rec), 0);
    assert_int_equal(credcache_put(w, "bob", &rec), 0);
    /* The reader sees the writer's commit at its next lookup. */
    assert_int_equal(credcache_get(r, "alice", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_judge(&got, "secret", NOW + 1, &TTL), CREDCACHE_HIT_OK);

    /* Readers cannot write; names must fit. */
    assert_int_equal(credcache_put(r, "carol", &rec), -1);
    assert_int_equal(credcache_get(r, "", &got, &found), -1);
    char longname[CREDCACHE_KEY_MAX + 1];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(credcache_put(w, longname, &rec), -1);

    assert_int_equal(credcache_flush(w, "alice", &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(credcache_flush(w, "alice", &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(credcache_get(r, "alice", &got, &found), 0);
    assert_false(found);
    assert_int_equal(credcache_get(r, "bob", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_flush(w, NULL, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(credcache_get(r, "bob", &got, &found), 0);
    assert_false(found);

    /* Unprivileged, nothing is open to the group or others. */
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s/data.mdb", dir, CREDCACHE_DIR);
    assert_int_equal(stat(path, &st), 0);
    if (geteuid() != 0)
        assert_int_equal(st.st_mode & 077, 0);
    else
        assert_int_equal(st.st_mode & 007, 0);

    credcache_close(r);
    credcache_close(w);
    remove_state_dir(dir);
}

static void test_survives_reopen_and_sweep(void **state)
{
    char *dir = make_state_dir();
    struct credcache *w;
    struct credcache_record rec, got;
    int found;
    size_t removed;
    (void)state;

    assert_int_equal(credcache_open(dir, 1, &w), 0);
    /* Consecutive dead entries check that the sweep's cursor deletes each one. */
    const char *names[] = { "a1", "a2", "a3", "live", "a4", "neg", "negold" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        make_ok(&rec, "pw", NOW - 100000);
        if (strcmp(names[i], "live") == 0)
            make_ok(&rec, "pw", NOW - 10);
        if (strncmp(names[i], "neg", 3) == 0) {
            assert_int_equal(credcache_record_init(&rec), 0);
            assert_int_equal(credcache_record_fail(&rec, "x", names[i][3] ? NOW - 1000 : NOW - 5),
                             0);
        }
        assert_int_equal(credcache_put(w, names[i], &rec), 0);
    }
    credcache_close(w);

    /* A restart keeps everything. */
    assert_int_equal(credcache_open(dir, 1, &w), 0);
    assert_int_equal(credcache_get(w, "a3", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_sweep(w, NOW, &TTL, &removed), 0);
    assert_int_equal(removed, 5);
    assert_int_equal(credcache_get(w, "live", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_get(w, "neg", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_get(w, "a4", &got, &found), 0);
    assert_false(found);
    credcache_close(w);
    remove_state_dir(dir);
}

/*
 * A refused account: every positive part naming it goes, under every login
 * name it was cached as; remembered failures stay; other users are untouched.
 */
static void test_forget_user(void **state)
{
    char *dir = make_state_dir();
    struct credcache *w;
    struct credcache_record rec, got;
    int found;
    size_t forgotten;
    (void)state;

    assert_int_equal(credcache_open(dir, 1, &w), 0);
    make_ok(&rec, "pw", NOW);
    assert_int_equal(credcache_put(w, "alice", &rec), 0);
    /* "ALICE" also remembers a failed password: that part is kept */
    assert_int_equal(credcache_record_fail(&rec, "wrong", NOW), 0);
    assert_int_equal(credcache_put(w, "ALICE", &rec), 0);
    assert_int_equal(credcache_record_init(&rec), 0);
    assert_int_equal(credcache_record_ok(&rec, "pw", "bob", "/var/mail/bob", NOW), 0);
    assert_int_equal(credcache_put(w, "bob", &rec), 0);
    /* "alicia" only remembers a failure: no positive part to forget */
    assert_int_equal(credcache_record_init(&rec), 0);
    assert_int_equal(credcache_record_fail(&rec, "x", NOW), 0);
    assert_int_equal(credcache_put(w, "alicia", &rec), 0);

    assert_int_equal(credcache_forget_user(w, "alice", &forgotten), 0);
    assert_int_equal(forgotten, 2);
    assert_int_equal(credcache_get(w, "alice", &got, &found), 0);
    assert_false(found);
    assert_int_equal(credcache_get(w, "ALICE", &got, &found), 0);
    assert_true(found);
    assert_false(got.has_positive);
    assert_string_equal(got.user, "");
    assert_int_equal(credcache_judge(&got, "pw", NOW + 1, &TTL), CREDCACHE_MISS);
    assert_int_equal(credcache_judge(&got, "wrong", NOW + 1, &TTL), CREDCACHE_HIT_FAIL);
    assert_int_equal(credcache_get(w, "bob", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_judge(&got, "pw", NOW + 1, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(credcache_get(w, "alicia", &got, &found), 0);
    assert_true(found);
    /* nothing left: a second call finds nothing */
    assert_int_equal(credcache_forget_user(w, "alice", &forgotten), 0);
    assert_int_equal(forgotten, 0);
    assert_int_equal(credcache_forget_user(w, "", &forgotten), -1);
    credcache_close(w);
    remove_state_dir(dir);
}

/* A reader in another process sees writes, and many writes grow the map. */
static void test_many_entries_other_process(void **state)
{
    char *dir = make_state_dir();
    struct credcache *w;
    struct credcache_record rec;
    (void)state;

    assert_int_equal(credcache_open(dir, 1, &w), 0);
    make_ok(&rec, "pw", NOW);
    char name[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "user%04d", i);
        assert_int_equal(credcache_put(w, name, &rec), 0);
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct credcache *r;
        struct credcache_record got;
        int found = 0;
        if (credcache_open(dir, 0, &r) != 0 || credcache_get(r, "user1999", &got, &found) != 0 ||
            !found || credcache_judge(&got, "pw", NOW, &TTL) != CREDCACHE_HIT_OK)
            _exit(1);
        credcache_close(r);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    credcache_close(w);
    remove_state_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_decode_roundtrip),
        cmocka_unit_test(test_no_plaintext_in_record),
        cmocka_unit_test(test_judge_ttls),
        cmocka_unit_test(test_negative_and_transitions),
        cmocka_unit_test(test_env_put_get_flush),
        cmocka_unit_test(test_survives_reopen_and_sweep),
        cmocka_unit_test(test_forget_user),
        cmocka_unit_test(test_many_entries_other_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
