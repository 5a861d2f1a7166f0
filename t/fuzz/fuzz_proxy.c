/*
 * PROXY protocol v1/v2 header parser (worker/proxy.c), as bytes arrive in
 * pieces: the header is parsed on every prefix of the input, the way the
 * worker calls it as data trickles in. Invariants: once a prefix gives a
 * verdict (complete or invalid), every longer prefix gives the same one with
 * the same result; `used` never passes the bytes given; a real client
 * address is IPv4 or IPv6.
 */
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "t/fuzz/fuzz_check.h"
#include "worker/proxy.h"

/* Past this the worker has given up on the header anyway (v2: 16 + 65535). */
enum { PROXY_FUZZ_MAX = 16 + 65535 + 64 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > PROXY_FUZZ_MAX)
        return 0;
    struct proxy_info first;
    size_t first_used = 0;
    int verdict = PROXY_INCOMPLETE;
    /* Every prefix would be quadratic: step so long inputs stay fast. */
    size_t step = size / 64 + 1;
    for (size_t len = 0;; len += step) {
        if (len > size)
            len = size;
        struct proxy_info info;
        size_t used = 0;
        memset(&info, 0xA5, sizeof(info));
        enum proxy_result r = proxy_parse(data, len, &info, &used);
        fuzz_check(r == PROXY_INVALID || r == PROXY_INCOMPLETE || r == PROXY_COMPLETE,
                   "proxy_parse returned an unknown result");
        if (r == PROXY_COMPLETE) {
            fuzz_check(used > 0 && used <= len, "used outside the bytes given");
            fuzz_check(info.version == 1 || info.version == 2, "version neither 1 nor 2");
            if (!info.local)
                fuzz_check(info.src.ss_family == AF_INET || info.src.ss_family == AF_INET6,
                           "client address neither IPv4 nor IPv6");
        }
        if (verdict == PROXY_COMPLETE) {
            fuzz_check(r == PROXY_COMPLETE && used == first_used,
                       "a longer prefix changed a complete header");
            fuzz_check(info.local == first.local && info.version == first.version &&
                       info.tls == first.tls &&
                       (info.local || memcmp(&info.src, &first.src, sizeof(info.src)) == 0),
                       "a longer prefix changed the parsed header");
        } else if (verdict == PROXY_INVALID) {
            fuzz_check(r == PROXY_INVALID, "a longer prefix made an invalid header valid");
        } else if (r != PROXY_INCOMPLETE) {
            verdict = r;
            first = info;
            first_used = used;
        }
        if (len == size)
            break;
    }
    return 0;
}
