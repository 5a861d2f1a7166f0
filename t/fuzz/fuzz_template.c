/*
 * Maildir template expansion (auth/template.c) with a user name and home
 * from outside. Invariants: a result is absolute and fits; expanding a
 * template with a fixed root can never give a path outside that root, nor
 * one with a "." or ".." component (a name like "../../etc" or "a/../b"
 * must not climb out of the mail root).
 */
#include <stdint.h>
#include <string.h>

#include "auth/template.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const rooted[] = {
    "/var/mail/%u",
    "/var/mail/%d/%n",
    "/var/mail/%d/%n/Maildir",
    "/srv/%%/%u",
    /* Dovecot's substring and hash forms (daemon/runtime/template_escape.h) */
    "/var/vmail/%d/%1n/%2.1n/%n",
    "/var/vmail/%2Mn/%4.256Nu/%-2.2Ln/%05Rn/%Hd",
};

/* 1 if path has an empty, "." or ".." component after its first byte. */
static int has_dot_component(const char *path)
{
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 1;
        p += len;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0;
    char user[1025];
    memcpy(user, data, size);
    user[size] = '\0';
    for (size_t t = 0; t < sizeof(rooted) / sizeof(rooted[0]); t++) {
        char out[4096];
        if (template_expand(rooted[t], user, "/home/x", out, sizeof(out)) == -1)
            continue;
        fuzz_check(out[0] == '/', "a relative result");
        size_t root = strcspn(rooted[t], "%");
        fuzz_check(strncmp(out, rooted[t], root) == 0, "the result left the template's root");
        fuzz_check(!has_dot_component(out), "a . or .. component in a maildir path");
    }
    /* The template itself, as a config could hold it: any escape parses or is refused. */
    char tmpl_out[4096];
    if (template_expand(user, "alice@example.org", "/home/x", tmpl_out, sizeof(tmpl_out)) == 0) {
        fuzz_check(tmpl_out[0] == '/', "a relative result from a template");
        fuzz_check(!has_dot_component(tmpl_out), "a . or .. component from a template");
    }
    /* The home directory comes from the password file: any absolute value works. */
    char out[4096];
    if (template_expand("%h/Maildir", "u", user, out, sizeof(out)) == 0)
        fuzz_check(out[0] == '/', "a relative result from a home");
    return 0;
}
