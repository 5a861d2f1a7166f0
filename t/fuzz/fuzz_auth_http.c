/*
 * The router's auth_http request parser (daemon/router/auth_http.c): what
 * nginx's mail proxy sends, here whatever bytes. Invariants: a verdict once
 * reached does not change as more bytes arrive (every prefix of a complete
 * request is incomplete, and the request's length is where it ends); a
 * parsed request has a user, a password and a client address, each a
 * C string shorter than its field, the user free of the bytes nginx
 * escapes (an escape never leaves a NUL); a refused request leaves no
 * password behind.
 */
#include <stdint.h>
#include <string.h>

#include "daemon/router/auth_http.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int all_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > AUTH_HTTP_REQUEST_MAX + 64)
        return 0;
    const char *buf = (const char *)data;
    struct auth_http_request req;
    enum auth_http_parse whole = auth_http_parse(buf, size, &req);
    if (whole == AUTH_HTTP_BAD) {
        fuzz_check(all_zero(req.pass, sizeof(req.pass)), "a refused request kept its password");
        return 0;
    }
    if (whole != AUTH_HTTP_COMPLETE)
        return 0;
    size_t length = req.length;
    fuzz_check(length > 0 && length <= size, "length outside the input");
    fuzz_check(strlen(req.user) < sizeof(req.user) && req.user[0] != '\0',
               "user missing or unterminated");
    fuzz_check(strlen(req.pass) < sizeof(req.pass), "password unterminated");
    fuzz_check(strlen(req.client_ip) < sizeof(req.client_ip), "client address unterminated");
    fuzz_check(req.attempt >= 1, "attempt below 1");
    char user[sizeof(req.user)];
    memcpy(user, req.user, sizeof(user));
    /* The same request followed by anything: the same verdict and fields. */
    struct auth_http_request again;
    fuzz_check(auth_http_parse(buf, length, &again) == AUTH_HTTP_COMPLETE &&
               again.length == length && strcmp(again.user, user) == 0,
               "the request alone parses differently");
    /* Any shorter prefix is incomplete. */
    size_t cut = length > 1 ? (size_t)data[0] % (length - 1) + 1 : 0;
    if (cut < length)
        fuzz_check(auth_http_parse(buf, cut, &again) == AUTH_HTTP_INCOMPLETE,
                   "a prefix of a complete request was judged");
    return 0;
}
