/*
 * The LDAP search filter built from a login name (auth/passdb_ldap_filter.c).
 * Invariants: an escaped value holds none of ( ) * \ NUL, control bytes or
 * bytes >= 0x80 except as "\XX", and unescapes to the input; expanding a
 * checked template gives a filter whose parentheses have the template's
 * structure whatever the user name (a name can never add or close a
 * parenthesis or introduce a wildcard).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passdb_ldap_filter.h"
#include "daemon/runtime/hex.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The byte of the escape "\XX" at s (two hex digits after the backslash), or -1. */
static int escaped_byte(const char *s, size_t left)
{
    unsigned char byte;
    if (left < 3 || hex_decode(s + 1, 2, &byte, 1) != 1)
        return -1;
    return byte;
}

/* The parentheses and '*' of a filter, with escapes skipped: its skeleton. */
static size_t skeleton(const char *f, char *out)
{
    size_t o = 0;
    for (size_t i = 0; f[i]; i++) {
        if (f[i] == '\\') {
            fuzz_check(escaped_byte(f + i, strlen(f + i)) >= 0, "a bad escape");
            i += 2;
        } else if (f[i] == '(' || f[i] == ')' || f[i] == '*') {
            out[o++] = f[i];
        }
    }
    out[o] = '\0';
    return o;
}

static const char *const templates[] = {
    "(uid=%u)",
    "(&(objectClass=posixAccount)(uid=%u))",
    "(|(mail=%u)(&(uid=%n)(domain=%d)))",
    "(cn=100%%*%u)",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0;
    char *escaped = malloc(size * 3 + 1);
    fuzz_check(escaped != NULL, "malloc");
    long n = passdb_ldap_filter_escape((const char *)data, size, escaped, size * 3 + 1);
    fuzz_check(n >= 0 && (size_t)n == strlen(escaped), "escape failed with room enough");
    size_t back = 0;
    for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)escaped[i];
        fuzz_check(c != '(' && c != ')' && c != '*' && c >= 0x20 && c < 0x7F,
                   "an unescaped special byte in the value");
        int v = c;
        if (c == '\\') {
            v = escaped_byte(escaped + i, (size_t)(n - i));
            fuzz_check(v >= 0, "a backslash that is not an escape");
            i += 2;
        }
        fuzz_check(back < size && data[back] == (uint8_t)v, "the escape does not round-trip");
        back++;
    }
    fuzz_check(back == size, "the escape lost bytes");
    char tiny[4];
    if ((size_t)n + 1 > sizeof(tiny))
        fuzz_check(passdb_ldap_filter_escape((const char *)data, size, tiny, sizeof(tiny)) == -1 &&
                   tiny[0] == '\0', "too small an output was not refused");
    free(escaped);

    /* A user name is a C string: up to the first NUL. */
    char user[1025];
    memcpy(user, data, size);
    user[size] = '\0';
    for (size_t t = 0; t < sizeof(templates) / sizeof(templates[0]); t++) {
        fuzz_check(passdb_ldap_filter_check(templates[t]) == 0, "a sample template is refused");
        char filter[4096], want[64], got[4096];
        if (passdb_ldap_filter_expand(templates[t], user, filter, sizeof(filter)) == -1)
            continue;
        /* The template with the user left out has the skeleton every expansion must have. */
        char bare[128];
        fuzz_check(passdb_ldap_filter_expand(templates[t], "", bare, sizeof(bare)) == 0, "bare");
        skeleton(bare, want);
        skeleton(filter, got);
        fuzz_check(strcmp(want, got) == 0, "a user name changed the filter's structure");
    }
    return 0;
}
