/* UIDLs derived from unique names: forms, invariants, stability. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "maildir/filename.h"
#include "maildir/uidl.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void uidl_of(const char *s, size_t n, char *out)
{
    size_t len = 0;

    memset(out, 0x7f, MAILDIR_UIDL_SIZE);
    assert_int_equal(maildir_uidl(s, n, out, &len), 0);
    assert_int_equal(strlen(out), len);
    assert_in_range(len, 1, MAILDIR_UIDL_MAX);
    for (size_t i = 0; i < len; i++)
        assert_in_range((unsigned char)out[i], 0x21, 0x7e);
}

static void test_verbatim(void **state)
{
    char u[MAILDIR_UIDL_SIZE];
    char name70[71];

    (void)state;
    uidl_of("1700000000.M12P34.host,S=1234,W=1260", 36, u);
    assert_string_equal(u, "1700000000.M12P34.host,S=1234,W=1260");
    uidl_of("a%b+c\\d~!'\"", 11, u);
    assert_string_equal(u, "a%b+c\\d~!'\"");
    memset(name70, 'z', 70);
    name70[70] = '\0';
    uidl_of(name70, 70, u);
    assert_string_equal(u, name70);
}

static void test_escaped(void **state)
{
    char u[MAILDIR_UIDL_SIZE];

    (void)state;
    uidl_of("a b", 3, u);
    assert_string_equal(u, "a:20b");
    uidl_of("caf\xc3\xa9.x", 7, u);
    assert_string_equal(u, "caf:C3:A9.x");
    uidl_of("t\tab%", 5, u);
    assert_string_equal(u, "t:09ab%");
    uidl_of("a/b:c", 5, u);
    assert_string_equal(u, "a:2Fb:3Ac");
    uidl_of("x\0y", 3, u);
    assert_string_equal(u, "x:00y");
    /* An escape never shares a UIDL with a verbatim name. */
    char v[MAILDIR_UIDL_SIZE];
    uidl_of("a:20b", 5, v);
    assert_string_not_equal(u, v);
}

static void test_hashed(void **state)
{
    char u[MAILDIR_UIDL_SIZE], v[MAILDIR_UIDL_SIZE];
    char long_name[200];

    (void)state;
    memset(long_name, 'q', sizeof(long_name));
    uidl_of(long_name, 71, u);
    assert_int_equal(strlen(u), 70);
    assert_memory_equal(u, long_name, 37);
    assert_int_equal(u[37], '/');
    for (size_t i = 38; i < 70; i++)
        assert_non_null(strchr("0123456789abcdef", u[i]));
    uidl_of(long_name, 72, v);
    assert_string_not_equal(u, v);
    assert_memory_equal(u, v, 38); /* same prefix, the digest tells them apart */

    /* 24 spaces escape to 72 characters: too long, hashed. */
    uidl_of("                        ", 24, u);
    assert_non_null(strchr(u, '/'));
    assert_int_equal(strncmp(u, ":20:20:20:20:20:20:20:20:20:20:20:20/", 37), 0);
    /* The prefix does not cut an escape in two. */
    memset(long_name, 'q', sizeof(long_name));
    long_name[36] = ' ';
    uidl_of(long_name, 100, u);
    assert_int_equal(u[36], '/');

    uidl_of("", 0, u);
    assert_int_equal(u[0], '/');
    assert_int_equal(strlen(u), 33);
}

static void test_stable_across_moves_and_flags(void **state)
{
    static const char *const names[] = {
        "1700000000.M1P2.host,S=10", "1700000000.M1P2.host,S=10:2,",
        "1700000000.M1P2.host,S=10:2,S", "1700000000.M1P2.host,S=10:2,FRST",
    };
    char first[MAILDIR_UIDL_SIZE], u[MAILDIR_UIDL_SIZE];

    (void)state;
    uidl_of(names[0], maildir_unique_len(names[0]), first);
    for (size_t i = 1; i < 4; i++) {
        uidl_of(names[i], maildir_unique_len(names[i]), u);
        assert_string_equal(u, first);
    }
    /* Pinned digests (checked with a Python FNV-1a + fmix64): a change
     * here would make clients download that mail again. */
    uidl_of("", 0, u);
    char again[MAILDIR_UIDL_SIZE];
    uidl_of("", 0, again);
    assert_string_equal(u, again);
    assert_string_equal(u, "/efd01f60ba992926b94678ea86d5cb1a");
    char long_name[71];
    memset(long_name, 'q', sizeof(long_name));
    uidl_of(long_name, sizeof(long_name), u);
    assert_string_equal(u, "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq/3842316bd4e793c36de4026c74b015ff");
}

static void test_random_invariants(void **state)
{
    char name[300];
    char u[MAILDIR_UIDL_SIZE], v[MAILDIR_UIDL_SIZE];

    (void)state;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = rng() % sizeof(name);
        int ascii = iter % 2;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)rng();
            name[i] = (char)(ascii ? 0x21 + c % 94 : c);
        }
        uidl_of(name, n, u);
        uidl_of(name, n, v);
        assert_string_equal(u, v);
        int verbatim = n >= 1 && n <= 70 && memchr(name, ':', n) == NULL &&
                       memchr(name, '/', n) == NULL;
        for (size_t i = 0; verbatim && i < n; i++)
            verbatim = (unsigned char)name[i] >= 0x21 && (unsigned char)name[i] <= 0x7e;
        if (verbatim) {
            assert_int_equal(strlen(u), n);
            assert_memory_equal(u, name, n);
        }
        /* One changed byte changes the UIDL. */
        if (n > 0) {
            size_t at = rng() % n;
            name[at] = (char)(name[at] ^ 1);
            uidl_of(name, n, v);
            assert_string_not_equal(u, v);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbatim),
        cmocka_unit_test(test_escaped),
        cmocka_unit_test(test_hashed),
        cmocka_unit_test(test_stable_across_moves_and_flags),
        cmocka_unit_test(test_random_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
