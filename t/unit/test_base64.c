/*
 * The one base64 (daemon/runtime/base64.c): RFC 4648's test vectors, every byte
 * value at every length, and what each padding rule refuses. BASE64_STRICT
 * is SASL's and SCRAM's rule, BASE64_PAD_OPTIONAL stored password hashes'.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "daemon/runtime/base64.h"

static long strict(const char *in, unsigned char *out, size_t outlen)
{
    return base64_decode(in, strlen(in), out, outlen, BASE64_STRICT);
}

static long lenient(const char *in, unsigned char *out, size_t outlen)
{
    return base64_decode(in, strlen(in), out, outlen, BASE64_PAD_OPTIONAL);
}

/* RFC 4648 section 10, both ways, under both rules. */
static void test_rfc4648_vectors(void **state)
{
    static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                         "Zm9vYmFy" };
    unsigned char out[64];
    char enc[64];
    (void)state;

    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        size_t n = strlen(plain[i]);
        assert_int_equal(base64_encode(plain[i], n, enc, sizeof(enc)), 0);
        assert_string_equal(enc, coded[i]);
        assert_int_equal(strict(coded[i], out, sizeof(out)), (long)n);
        assert_memory_equal(out, plain[i], n);
        assert_int_equal(lenient(coded[i], out, sizeof(out)), (long)n);
        assert_memory_equal(out, plain[i], n);
    }
    assert_string_equal((char *)out, "foobar");   /* NUL-terminated when there is room */
    assert_int_equal(strict("AAEC/+8=", out, sizeof(out)), 5);
    assert_int_equal(out[3], 0xff);
    assert_int_equal(lenient("+/+/", out, sizeof(out)), 3);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);
}

static void test_round_trips(void **state)
{
    unsigned char raw[40], out[64];
    char enc[64];
    (void)state;

    for (size_t n = 0; n <= sizeof(raw); n++) {
        for (size_t i = 0; i < n; i++)
            raw[i] = (unsigned char)(i * 37 + n);
        assert_int_equal(base64_encode(raw, n, enc, sizeof(enc)), 0);
        assert_int_equal(strlen(enc), (n + 2) / 3 * 4);
        assert_int_equal(strict(enc, out, sizeof(out)), (long)n);
        assert_memory_equal(out, raw, n);
    }
}

static void test_encode_room(void **state)
{
    char enc[16];
    (void)state;

    errno = 0;
    assert_int_equal(base64_encode("abcd", 4, enc, 8), -1);   /* 8 characters, no NUL */
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(base64_encode("abcd", 4, enc, 9), 0);
    assert_string_equal(enc, "YWJjZA==");
}

/* Strict: no missing padding, no whitespace, no padding inside, no junk. */
static void test_strict_refuses(void **state)
{
    static const char *const bad[] = { "Zg", "Zg=", "Zg===", "Z===", "====", "Zm9v\r\n", " Zm9v",
                                       "Zm 9v", "Zg==Zg==", "Z=g=", "Zm9v!A==", "Zm9-", "Zm9_",
                                       "=Zm9" };
    unsigned char out[64];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_int_equal(strict(bad[i], out, sizeof(out)), -1);
        assert_int_equal(errno, EINVAL);
    }
    assert_int_equal(strict("Zm9vYmFy", out, 5), -1);
    assert_int_equal(errno, ENOBUFS);
}

/* Optional padding: a missing "=" is fine, anything else the strict rule refuses is not. */
static void test_pad_optional(void **state)
{
    static const char *const bad[] = { "Q", "QQ=", "Q===", "=QQ=", "QU-D", "Zm9v\r\n", " Zm9v",
                                       "Zg==Zg==", "Z=g=" };
    unsigned char out[16];
    (void)state;

    assert_int_equal(lenient("QQ", out, sizeof(out)), 1);
    assert_int_equal(out[0], 'A');
    assert_int_equal(lenient("QUI", out, sizeof(out)), 2);
    assert_memory_equal(out, "AB", 2);
    assert_int_equal(strict("QQ", out, sizeof(out)), -1);   /* the one difference */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_int_equal(lenient(bad[i], out, sizeof(out)), -1);
        assert_int_equal(errno, EINVAL);
    }
    assert_int_equal(lenient("QUJD", out, 2), -1);
    assert_int_equal(errno, ENOBUFS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_encode_room),
        cmocka_unit_test(test_strict_refuses),
        cmocka_unit_test(test_pad_optional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
