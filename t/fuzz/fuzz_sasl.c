/*
 * The worker's SASL decoding: base64 (daemon/runtime/base64.c, RFC 4648, as RFC 5034
 * carries it) and the PLAIN message (RFC 4616, worker/sasl.c). The first
 * byte picks the part and base64's padding rule. Invariants: decoding never writes past its output; what decodes
 * re-encodes to the same text and back; a PLAIN message yields three
 * strings inside the message, authcid and password non-empty.
 */
#include <stdint.h>
#include <string.h>

#include "daemon/runtime/base64.h"
#include "t/fuzz/fuzz_check.h"
#include "worker/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { SASL_FUZZ_MAX = 4096 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > SASL_FUZZ_MAX)
        return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    unsigned char raw[SASL_FUZZ_MAX];
    char text[SASL_FUZZ_MAX * 2];

    if (data[0] & 1) {
        enum base64_padding rule = data[0] & 2 ? BASE64_PAD_OPTIONAL : BASE64_STRICT;
        long got = base64_decode(in, n, raw, sizeof(raw), rule);
        if (got < 0)
            return 0;
        fuzz_check((size_t)got <= n, "decoded more bytes than the text holds");
        fuzz_check(base64_encode(raw, (size_t)got, text, sizeof(text)) == 0,
                   "decoded bytes do not encode");
        unsigned char again[SASL_FUZZ_MAX];
        long got2 = base64_decode(text, strlen(text), again, sizeof(again), BASE64_STRICT);
        fuzz_check(got2 == got && memcmp(raw, again, (size_t)got) == 0,
                   "base64 round trip changed the bytes");
        return 0;
    }
    /* Encode arbitrary bytes, decode them back. */
    fuzz_check(base64_encode(in, n, text, sizeof(text)) == 0, "encode failed with room");
    long got = base64_decode(text, strlen(text), raw, sizeof(raw), BASE64_STRICT);
    fuzz_check(got == (long)n && memcmp(raw, in, n) == 0, "base64 round trip lost bytes");

    /* The same bytes as a PLAIN message (the worker parses it in place). */
    char msg[SASL_FUZZ_MAX];
    memcpy(msg, in, n);
    msg[n] = '\0';
    const char *authzid, *authcid, *passwd;
    if (sasl_plain_parse(msg, n, &authzid, &authcid, &passwd) == 0) {
        fuzz_check(authzid >= msg && authcid > authzid && passwd > authcid &&
                   passwd + strlen(passwd) <= msg + n, "PLAIN fields outside the message");
        fuzz_check(authcid[0] != '\0' && passwd[0] != '\0', "an empty PLAIN name or password");
    }
    return 0;
}
