/*
 * shm/credcache records: layouts (the verifier record and the login-list
 * record, which has no verifier), verifier, generations, TTL decisions.
 * The LMDB envs are in test_credcache_env.c.
 */
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
    assert_int_equal(credcache_record_ok(rec, pw, "alice", "/var/mail/alice", NULL, when), 0);
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
    bad[0] = 1;   /* the previous format: never misread */
    assert_int_equal(credcache_decode(bad, (size_t)n, &b), -1);
    bad[0] = 3;   /* a login-list record */
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
    /* The helper's even-cost form: same verdicts, and no entry is a miss. */
    assert_int_equal(credcache_judge_even(NULL, "secret", NOW, &TTL), CREDCACHE_MISS);
    assert_int_equal(credcache_judge_even(&r, "guess", NOW, &TTL), CREDCACHE_MISS);
    assert_int_equal(credcache_judge_even(&r, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(credcache_judge_even(&r, "secret", NOW + 10 * 86400, &TTL),
                     CREDCACHE_MISS);
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
    assert_int_equal(credcache_record_ok(&r, "old-password", "u", "/m", NULL, NOW + 20), 0);
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
    assert_int_equal(credcache_record_ok(&r, "x", "", "/m", NULL, NOW), -1);
    assert_int_equal(credcache_record_ok(&r, "x", "u", "relative", NULL, NOW), -1);
}

/*
 * The login-list record: exactly time, generation and the two strings; no
 * salt, no iteration count, no verifier. It does not decode as a verifier
 * record, nor a verifier record as it.
 */
static void test_login_record_has_no_verifier(void **state)
{
    struct credcache_record rec, back;
    struct credcache_login login, got;
    unsigned char buf[2048], full[2048];
    (void)state;

    make_ok(&rec, "secret", NOW);
    assert_int_equal(credcache_record_fail(&rec, "wrong", NOW + 1), 0);
    assert_int_equal(credcache_login_of(&rec, &login), 0);
    long n = credcache_login_encode(&login, buf, sizeof(buf));
    /* version + 3 zero bytes, verified_at, generation, 2 + "alice", 2 + "/var/mail/alice",
     * policy (3 x u32) */
    assert_int_equal(n, 4 + 8 + 8 + 2 + 5 + 2 + 15 + 12);
    assert_null(memmem(buf, (size_t)n, rec.salt, sizeof(rec.salt)));
    assert_null(memmem(buf, (size_t)n, rec.dk, sizeof(rec.dk)));
    assert_null(memmem(buf, (size_t)n, rec.neg_dk, sizeof(rec.neg_dk)));
    assert_int_equal(credcache_login_decode(buf, (size_t)n, &got), 0);
    assert_int_equal(got.verified_at, NOW);
    assert_true(got.generation == rec.generation && got.generation != 0);
    assert_string_equal(got.user, "alice");
    assert_string_equal(got.maildir, "/var/mail/alice");
    for (long cut = 0; cut < n; cut++)
        assert_int_equal(credcache_login_decode(buf, (size_t)cut, &got), -1);
    assert_int_equal(credcache_decode(buf, (size_t)n, &back), -1);
    long m = credcache_encode(&rec, full, sizeof(full));
    assert_true(m > 0);
    assert_int_equal(credcache_login_decode(full, (size_t)m, &got), -1);
    /* Only a positive part has a login-list record. */
    assert_int_equal(credcache_record_init(&rec), 0);
    assert_int_equal(credcache_record_fail(&rec, "x", NOW), 0);
    assert_int_equal(credcache_login_of(&rec, &login), -1);
    /* Freshness is the positive TTL's. */
    assert_int_equal(credcache_login_decode(buf, (size_t)n, &got), 0);
    assert_true(credcache_login_fresh(&got, NOW + 3599, 3600));
    assert_false(credcache_login_fresh(&got, NOW + 3600, 3600));
    assert_false(credcache_login_fresh(&got, NOW, 0));
    assert_false(credcache_login_fresh(&got, NOW - 3600, 3600));
}

/*
 * The generation changes exactly when the accepted password's verifier does:
 * refreshes keep it, another password or a re-created record gets a new one.
 */
static void test_generation(void **state)
{
    struct credcache_record rec, again;
    (void)state;

    make_ok(&rec, "secret", NOW);
    uint64_t first = rec.generation;
    assert_true(first != 0);
    assert_int_equal(credcache_record_ok(&rec, "secret", "alice", "/var/mail/alice", NULL, NOW + 5),
                     0);
    assert_true(rec.generation == first);
    assert_int_equal(credcache_record_fail(&rec, "guess", NOW + 6), 0);
    assert_true(rec.generation == first);   /* another password failed: the login stands */
    assert_int_equal(credcache_record_ok(&rec, "new-secret", "alice", "/var/mail/alice",
                                         NULL, NOW + 7), 0);
    assert_true(rec.generation != first && rec.generation != 0);
    uint64_t second = rec.generation;
    assert_int_equal(credcache_record_fail(&rec, "new-secret", NOW + 8), 0);
    assert_false(rec.has_positive);
    assert_int_equal(credcache_record_ok(&rec, "new-secret", "alice", "/var/mail/alice",
                                         NULL, NOW + 9), 0);
    assert_true(rec.generation != second && rec.generation != first);
    /* Flushed and made again for the same password: not the old generation. */
    make_ok(&again, "secret", NOW + 10);
    assert_true(again.generation != first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_decode_roundtrip),
        cmocka_unit_test(test_no_plaintext_in_record),
        cmocka_unit_test(test_judge_ttls),
        cmocka_unit_test(test_negative_and_transitions),
        cmocka_unit_test(test_login_record_has_no_verifier),
        cmocka_unit_test(test_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
