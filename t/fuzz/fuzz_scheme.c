/*
 * Password schemes (auth/scheme.c): the stored value comes from a password
 * file or directory, the password from a client. Input: stored value, NUL,
 * password. Invariants: every answer is one of the four results; a value
 * scheme_check() calls malformed never matches; the scheme's name fits.
 * Costly values (crypt rounds=, bcrypt cost, SCRAM iterations) are skipped:
 * their cost is the administrator's choice, not an attacker's.
 */
#include <stdint.h>
#include <string.h>

#include "auth/scheme.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int costly(const char *stored)
{
    return strstr(stored, "rounds=") != NULL || strstr(stored, "$2") != NULL ||
           strstr(stored, "SCRAM") != NULL || strstr(stored, "$y$") != NULL ||
           strstr(stored, "$7$") != NULL || strstr(stored, "$gy$") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0;
    char text[1026];
    memcpy(text, data, size);
    text[size] = '\0';
    text[size + 1] = '\0';
    const char *stored = text;
    const char *password = text + strlen(text) + 1;
    if (costly(stored))
        return 0;
    enum scheme_result check = scheme_check(stored);
    fuzz_check(check <= SCHEME_MALFORMED, "scheme_check: unknown result");
    enum scheme_result verify = scheme_verify(stored, password);
    fuzz_check(verify <= SCHEME_MALFORMED, "scheme_verify: unknown result");
    if (check == SCHEME_MALFORMED || check == SCHEME_UNKNOWN)
        fuzz_check(verify != SCHEME_MATCH, "a value scheme_check refuses matched a password");
    fuzz_check(scheme_verify(stored, password) == verify, "two verdicts for one pair");
    char name[32];
    memset(name, 'x', sizeof(name));
    scheme_name(stored, name, sizeof(name));
    fuzz_check(memchr(name, '\0', sizeof(name)) != NULL, "the scheme name is not terminated");
    fuzz_check(scheme_result_str(verify) != NULL, "no text for a result");
    const char *plain = scheme_plaintext(stored);
    if (plain != NULL)
        fuzz_check(plain >= stored && plain <= stored + strlen(stored), "plaintext outside");
    return 0;
}
