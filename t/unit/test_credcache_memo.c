/*
 * worker/credcache_memo: a worker vouches for a login only if the helper
 * accepted that very name and password under the login list's current
 * generation; another password, name, generation (a new password, a
 * flushed and re-created record) or another worker's key never matches;
 * the table is bounded and evicts the least recently used.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "shm/credcache.h"
#include "worker/credcache_memo.h"

static const time_t NOW = 1700000000;

static struct credmemo_stats stats(const struct credmemo *m)
{
    struct credmemo_stats s;
    credmemo_get_stats(m, &s);
    return s;
}

/* What the worker does at a login: pre-tag, then ask under generation. */
static int vouches(struct credmemo *m, const char *name, const char *pw, uint64_t generation)
{
    unsigned char pretag[CREDMEMO_PRETAG_LEN];
    assert_int_equal(credmemo_pretag(m, name, pw, pretag), 0);
    return credmemo_check(m, name, pretag, generation);
}

/* What the worker does on the helper's AUTH_OK. */
static void accepted(struct credmemo *m, const char *name, const char *pw, uint64_t generation)
{
    unsigned char pretag[CREDMEMO_PRETAG_LEN];
    assert_int_equal(credmemo_pretag(m, name, pw, pretag), 0);
    assert_int_equal(credmemo_remember(m, name, pretag, generation), 0);
}

static void test_remembered_login_only(void **state)
{
    struct credmemo *m;
    (void)state;

    assert_int_equal(credmemo_new(64, &m), 0);
    assert_false(vouches(m, "alice", "secret", 42));   /* nothing remembered yet */
    accepted(m, "alice", "secret", 42);
    assert_true(vouches(m, "alice", "secret", 42));
    assert_true(vouches(m, "alice", "secret", 42));
    assert_false(vouches(m, "alice", "Secret", 42));   /* another password */
    assert_false(vouches(m, "alice", "", 42));
    assert_false(vouches(m, "ALICE", "secret", 42));   /* another name */
    assert_false(vouches(m, "alice", "secret", 43));   /* another generation */
    assert_false(vouches(m, "alice", "secret", 0));    /* no record */
    /* The pre-tag binds name and password together: no splicing across the boundary. */
    accepted(m, "ab", "c", 7);
    assert_false(vouches(m, "a", "bc", 7));
    /* Generation 0 is never remembered. */
    unsigned char pretag[CREDMEMO_PRETAG_LEN];
    assert_int_equal(credmemo_pretag(m, "bob", "pw", pretag), 0);
    assert_int_equal(credmemo_remember(m, "bob", pretag, 0), -1);
    struct credmemo_stats s = stats(m);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 7);
    credmemo_free(m);
}

/*
 * A flushed and re-created record (or a new password) has a new generation
 * (shm/credcache.h): the old memory does not answer for it, even for the
 * same password, until the helper accepts the login again.
 */
static void test_flushed_and_recreated_record_does_not_hit(void **state)
{
    struct credmemo *m;
    struct credcache_record rec;
    (void)state;

    assert_int_equal(credmemo_new(64, &m), 0);
    assert_int_equal(credcache_record_init(&rec), 0);
    assert_int_equal(credcache_record_ok(&rec, "secret", "alice", "/var/mail/alice", NULL, NOW), 0);
    uint64_t old = rec.generation;
    accepted(m, "alice", "secret", old);
    assert_true(vouches(m, "alice", "secret", old));
    /* A refresh of the same password keeps the generation: still answered. */
    assert_int_equal(credcache_record_ok(&rec, "secret", "alice", "/var/mail/alice", NULL, NOW + 60),
                     0);
    assert_true(vouches(m, "alice", "secret", rec.generation));
    /* popctl auth flush alice, then the same password accepted again. */
    assert_int_equal(credcache_record_init(&rec), 0);
    assert_int_equal(credcache_record_ok(&rec, "secret", "alice", "/var/mail/alice", NULL, NOW + 120),
                     0);
    assert_true(rec.generation != old);
    assert_false(vouches(m, "alice", "secret", rec.generation));
    /* The helper's next answer teaches the new generation. */
    accepted(m, "alice", "secret", rec.generation);
    assert_true(vouches(m, "alice", "secret", rec.generation));
    assert_false(vouches(m, "alice", "secret", old));
    /* A password change: the old password is not vouched for under the new generation. */
    assert_int_equal(credcache_record_ok(&rec, "new-secret", "alice", "/var/mail/alice",
                                         NULL, NOW + 180), 0);
    assert_false(vouches(m, "alice", "secret", rec.generation));
    credmemo_free(m);
}

/* Each worker draws its own key: one's memory and pre-tags mean nothing to another. */
static void test_keys_are_per_memo(void **state)
{
    struct credmemo *a, *b;
    unsigned char pa[CREDMEMO_PRETAG_LEN], pb[CREDMEMO_PRETAG_LEN];
    (void)state;

    assert_int_equal(credmemo_new(64, &a), 0);
    assert_int_equal(credmemo_new(64, &b), 0);
    assert_int_equal(credmemo_pretag(a, "alice", "secret", pa), 0);
    assert_int_equal(credmemo_pretag(b, "alice", "secret", pb), 0);
    assert_memory_not_equal(pa, pb, sizeof(pa));
    accepted(a, "alice", "secret", 9);
    assert_false(vouches(b, "alice", "secret", 9));
    /* b's own pre-tag handed to a (a forged one) does not match either. */
    assert_false(credmemo_check(a, "alice", pb, 9));
    assert_true(credmemo_check(a, "alice", pa, 9));
    credmemo_free(a);
    credmemo_free(b);
}

static void test_eviction_bound(void **state)
{
    struct credmemo *m;
    char name[32];
    (void)state;

    assert_int_equal(credmemo_new(3, &m), -1);   /* fewer than one set */
    assert_int_equal(credmemo_new(12, &m), 0);   /* rounded down to 2 sets x 4 */
    assert_int_equal(stats(m).capacity, 8);
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        accepted(m, name, "pw", 5);
        assert_true(stats(m).entries <= 8);
        /* The name just stored is there. */
        assert_true(vouches(m, name, "pw", 5));
    }
    struct credmemo_stats s = stats(m);
    assert_int_equal(s.entries, 8);
    assert_int_equal(s.evictions, 200 - 8);
    assert_int_equal(s.hits, 200);

    /* Least recently used goes first: keep user199 busy, it survives 3 more in its set. */
    uint64_t hits = s.hits;
    for (int i = 200; i < 260; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        accepted(m, name, "pw", 5);
        assert_true(vouches(m, "user199", "pw", 5));
        assert_int_equal(stats(m).hits, ++hits);
    }
    credmemo_free(m);
    credmemo_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remembered_login_only),
        cmocka_unit_test(test_flushed_and_recreated_record_does_not_hit),
        cmocka_unit_test(test_keys_are_per_memo),
        cmocka_unit_test(test_eviction_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
