/*
 * The command line reader (daemon/runtime/buf.c buf_getline), fed in pieces whose
 * sizes come from the input. Invariants: a line has no LF and at most maxlen
 * octets and is NUL-terminated; a partial line is never kept past maxlen;
 * the buffer's limit holds; the reader always makes progress.
 */
#include <stdint.h>
#include <string.h>

#include "daemon/runtime/buf.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { LINE_MAX_FUZZ = 255, BUF_LIMIT_FUZZ = 1024 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    size_t piece = (size_t)data[0] % 32 + 1;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    struct buf b;
    buf_init(&b, BUF_LIMIT_FUZZ);
    size_t fed = 0, lines = 0, line_octets = 0;
    unsigned rounds = 0;
    while (fed < len) {
        size_t n = len - fed < piece ? len - fed : piece;
        if (buf_append(&b, in + fed, n) == -1) {
            /* Full: only possible if a line is being held; getline must free room. */
            n = 0;
        }
        fed += n;
        for (;;) {
            char *line;
            size_t llen;
            enum buf_line r = buf_getline(&b, LINE_MAX_FUZZ, &line, &llen);
            if (r == BUF_LINE_NONE)
                break;
            if (r == BUF_LINE_OK) {
                fuzz_check(llen <= LINE_MAX_FUZZ, "a line longer than maxlen");
                fuzz_check(memchr(line, '\n', llen) == NULL, "a line holds its LF");
                fuzz_check(line[llen] == '\0', "a line is not NUL-terminated");
                lines++;
                line_octets += llen;
            }
        }
        fuzz_check(buf_len(&b) <= BUF_LIMIT_FUZZ, "buffer passed its limit");
        fuzz_check(buf_len(&b) <= LINE_MAX_FUZZ + 2, "a partial line kept past maxlen");
        fuzz_check(++rounds <= 2 * len + 4, "the reader does not progress");
    }
    fuzz_check(line_octets <= len, "more line octets than input");
    buf_free(&b);
    return 0;
}
