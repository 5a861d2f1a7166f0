/*
 * shm/credcache_memo: a remembered match spares the PBKDF2, anything else
 * (another record, another password, another name, an expired part) takes
 * the slow path, verdicts always equal credcache_judge's, and the table
 * never holds more than its capacity.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "shm/credcache.h"
#include "shm/credcache_memo.h"

static const struct credcache_ttl TTL = { 3600, 300, 86400 };
static const time_t NOW = 1700000000;

static void make_ok(struct credcache_record *rec, const char *pw, time_t when)
{
    assert_int_equal(credcache_record_init(rec), 0);
    assert_int_equal(credcache_record_ok(rec, pw, "alice", "/var/mail/alice", when), 0);
}

static struct credmemo_stats stats(const struct credmemo *m)
{
    struct credmemo_stats s;
    credmemo_get_stats(m, &s);
    return s;
}

/* credmemo_judge, checked against credcache_judge on the same input. */
static enum credcache_verdict judge(struct credmemo *m, const char *name,
                                    const struct credcache_record *rec, const char *pw,
                                    time_t now, const struct credcache_ttl *ttl)
{
    enum credcache_verdict v = credmemo_judge(m, name, rec, pw, now, ttl);
    assert_int_equal(v, credcache_judge(rec, pw, now, ttl));
    return v;
}

static void test_hit_spares_pbkdf2(void **state)
{
    struct credmemo *m;
    struct credcache_record rec;
    (void)state;

    assert_int_equal(credmemo_new(64, &m), 0);
    make_ok(&rec, "secret", NOW);
    assert_int_equal(judge(m, "alice", &rec, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(stats(m).misses, 1);
    assert_int_equal(stats(m).hits, 0);
    assert_int_equal(stats(m).entries, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(judge(m, "alice", &rec, "secret", NOW + 10, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(stats(m).hits, 3);
    assert_int_equal(stats(m).misses, 1);

    /* The helper refreshing the entry (same salt, same verifier) keeps the memo good. */
    assert_int_equal(credcache_record_ok(&rec, "secret", "alice", "/var/mail/alice", NOW + 50),
                     0);
    assert_int_equal(judge(m, "alice", &rec, "secret", NOW + 60, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(stats(m).hits, 4);

    /* A remembered match does not outlive the TTL: expired is a miss, stale stays stale. */
    assert_int_equal(judge(m, "alice", &rec, "secret", NOW + 50 + 3600, &TTL),
                     CREDCACHE_STALE_OK);
    assert_int_equal(judge(m, "alice", &rec, "secret", NOW + 50 + 86400, &TTL),
                     CREDCACHE_MISS);
    struct credcache_ttl no_stale = { 3600, 300, 0 };
    assert_int_equal(judge(m, "alice", &rec, "secret", NOW + 50 + 3600, &no_stale),
                     CREDCACHE_MISS);
    credmemo_free(m);
}

static void test_changed_record_takes_slow_path(void **state)
{
    struct credmemo *m;
    struct credcache_record rec, again;
    (void)state;

    assert_int_equal(credmemo_new(64, &m), 0);
    make_ok(&rec, "secret", NOW);
    assert_int_equal(judge(m, "alice", &rec, "secret", NOW, &TTL), CREDCACHE_HIT_OK);

    /* Same password, a record written anew (other salt, so other verifier). */
    make_ok(&again, "secret", NOW);
    assert_int_equal(judge(m, "alice", &again, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(stats(m).hits, 0);
    assert_int_equal(stats(m).misses, 2);
    /* That match replaced the old one: the new record hits, the old one no more. */
    assert_int_equal(judge(m, "alice", &again, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(stats(m).hits, 1);
    assert_int_equal(judge(m, "alice", &rec, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(stats(m).misses, 3);
    assert_int_equal(stats(m).entries, 1);

    /* One bit of the verifier or of the iteration count changed: slow path, no match. */
    struct credcache_record bent = rec;
    assert_int_equal(judge(m, "alice", &bent, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    bent.dk[5] ^= 1;
    uint64_t misses = stats(m).misses;
    assert_int_equal(judge(m, "alice", &bent, "secret", NOW, &TTL), CREDCACHE_MISS);
    assert_int_equal(stats(m).misses, misses + 1);
    bent = rec;
    bent.iterations++;
    assert_int_equal(judge(m, "alice", &bent, "secret", NOW, &TTL), CREDCACHE_MISS);
    assert_int_equal(stats(m).misses, misses + 2);

    /* The password changed at the backend: the old one never hits again. */
    struct credcache_record changed = rec;
    assert_int_equal(credcache_record_ok(&changed, "new-secret", "alice", "/var/mail/alice",
                                         NOW + 5), 0);
    assert_int_equal(judge(m, "alice", &changed, "secret", NOW + 6, &TTL), CREDCACHE_MISS);
    assert_int_equal(judge(m, "alice", &changed, "new-secret", NOW + 6, &TTL),
                     CREDCACHE_HIT_OK);

    /* Another name with a byte-identical record: the tag binds the name. */
    misses = stats(m).misses;
    assert_int_equal(judge(m, "bob", &rec, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(stats(m).misses, misses + 1);
    credmemo_free(m);
}

static void test_wrong_password(void **state)
{
    struct credmemo *m;
    struct credcache_record rec;
    (void)state;

    assert_int_equal(credmemo_new(64, &m), 0);
    make_ok(&rec, "secret", NOW);
    assert_int_equal(judge(m, "alice", &rec, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    /* Never answered from the memo, whatever is remembered. */
    const char *wrong[] = { "Secret", "secret ", "secre", "", "secret\n" };
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
        assert_int_equal(judge(m, "alice", &rec, wrong[i], NOW, &TTL), CREDCACHE_MISS);
    assert_int_equal(stats(m).hits, 0);
    assert_int_equal(stats(m).misses, 6);
    /* And the right one still hits. */
    assert_int_equal(judge(m, "alice", &rec, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(stats(m).hits, 1);

    /* A remembered failure is answered as before (the negative part). */
    assert_int_equal(credcache_record_fail(&rec, "guess", NOW + 1), 0);
    assert_int_equal(judge(m, "alice", &rec, "guess", NOW + 2, &TTL), CREDCACHE_HIT_FAIL);
    assert_int_equal(judge(m, "alice", &rec, "secret", NOW + 2, &TTL), CREDCACHE_HIT_OK);
    /* Positive part gone (the backend refused this password since): never a hit. */
    struct credcache_record refused = rec;
    assert_int_equal(credcache_record_fail(&refused, "secret", NOW + 3), 0);
    assert_int_equal(judge(m, "alice", &refused, "secret", NOW + 4, &TTL), CREDCACHE_HIT_FAIL);
    credmemo_free(m);
}

/*
 * A wrong password costs one verifier whatever the name's entry: missing,
 * expired or live (issue 12: no timing list of recently active accounts).
 * misses counts the PBKDF2 runs.
 */
static void test_wrong_password_same_work_with_or_without_entry(void **state)
{
    struct credmemo *m;
    struct credcache_record rec;
    (void)state;

    assert_int_equal(credmemo_new(64, &m), 0);
    make_ok(&rec, "secret", NOW);
    assert_int_equal(credmemo_judge(m, "alice", &rec, "guess", NOW, &TTL), CREDCACHE_MISS);
    assert_int_equal(stats(m).misses, 1);
    /* no entry at all */
    assert_int_equal(credmemo_judge(m, "nobody", NULL, "guess", NOW, &TTL), CREDCACHE_MISS);
    assert_int_equal(stats(m).misses, 2);
    /* an entry past every TTL */
    assert_int_equal(credmemo_judge(m, "alice", &rec, "guess", NOW + 10 * 86400, &TTL),
                     CREDCACHE_MISS);
    assert_int_equal(stats(m).misses, 3);
    /* even the right password of an expired entry is only a miss */
    assert_int_equal(credmemo_judge(m, "alice", &rec, "secret", NOW + 10 * 86400, &TTL),
                     CREDCACHE_MISS);
    assert_int_equal(stats(m).entries, 0);
    credmemo_free(m);

    /* Without a memo: the same verdicts from the even judge. */
    assert_int_equal(credcache_judge_even(NULL, "guess", NOW, &TTL), CREDCACHE_MISS);
    assert_int_equal(credcache_judge_even(&rec, "guess", NOW, &TTL), CREDCACHE_MISS);
    assert_int_equal(credcache_judge_even(&rec, "secret", NOW, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(credcache_judge_even(&rec, "secret", NOW + 10 * 86400, &TTL),
                     CREDCACHE_MISS);
}

static void test_eviction_bound(void **state)
{
    struct credmemo *m;
    struct credcache_record rec;
    char name[32];
    (void)state;

    assert_int_equal(credmemo_new(3, &m), -1);   /* fewer than one set */
    assert_int_equal(credmemo_new(12, &m), 0);   /* rounded down to 2 sets x 4 */
    assert_int_equal(stats(m).capacity, 8);
    make_ok(&rec, "pw", NOW);
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        assert_int_equal(judge(m, name, &rec, "pw", NOW, &TTL), CREDCACHE_HIT_OK);
        assert_true(stats(m).entries <= 8);
        /* The name just stored is there. */
        assert_int_equal(judge(m, name, &rec, "pw", NOW, &TTL), CREDCACHE_HIT_OK);
    }
    struct credmemo_stats s = stats(m);
    assert_int_equal(s.entries, 8);
    assert_int_equal(s.evictions, 200 - 8);
    assert_int_equal(s.hits, 200);
    assert_int_equal(s.misses, 200);

    /* Least recently used goes first: keep user199 busy, it survives 3 more in its set. */
    uint64_t hits = s.hits;
    for (int i = 200; i < 260; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        assert_int_equal(judge(m, name, &rec, "pw", NOW, &TTL), CREDCACHE_HIT_OK);
        assert_int_equal(judge(m, "user199", &rec, "pw", NOW, &TTL), CREDCACHE_HIT_OK);
        assert_int_equal(stats(m).hits, ++hits);
    }
    credmemo_free(m);
    credmemo_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_spares_pbkdf2),
        cmocka_unit_test(test_changed_record_takes_slow_path),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_wrong_password_same_work_with_or_without_entry),
        cmocka_unit_test(test_eviction_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
