/*
 * The RETR/TOP streamer (maildir/stream.c) against the size computation
 * (maildir/size.c). The first bytes choose the chunk sizes, the output
 * high-water mark and the TOP line count; the rest is the message.
 * Invariants: RETR's octets equal the size LIST announces, however the file
 * is cut into chunks; un-stuffing the output gives the message with CRLF
 * line ends; the output ends with ".\r\n" and no line but the last is a lone
 * "."; TOP's output is a prefix of RETR's body. With the workarounds the
 * fourth byte turns on: NULs come out as 0x80 and nothing else changes;
 * TOP may add one empty line, only where the headers never ended.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/runtime/buf.h"
#include "maildir/size.h"
#include "maildir/stream.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stream msg in chunks of chunk bytes, flushing out at high_water; returns the body. */
static struct buf stream_all(const char *msg, size_t len, enum maildir_stream_mode mode,
                             uint64_t top_lines, size_t chunk, size_t high_water,
                             unsigned flags, uint64_t *octets)
{
    struct maildir_stream st;
    struct buf out, all;
    buf_init(&out, high_water + 1);
    buf_init(&all, 16 * len + 64);
    maildir_stream_init(&st, mode, top_lines);
    maildir_stream_workarounds(&st, flags);
    size_t pos = 0;
    unsigned rounds = 0;
    while (pos < len && !maildir_stream_done(&st)) {
        size_t n = len - pos < chunk ? len - pos : chunk;
        size_t used = 0;
        fuzz_check(maildir_stream_feed(&st, msg + pos, n, &out, high_water, &used) == 0,
                   "maildir_stream_feed failed");
        fuzz_check(used <= n, "consumed more than fed");
        fuzz_check(buf_len(&out) <= high_water + 1, "output passed high_water + 1");
        pos += used;
        fuzz_check(buf_append(&all, buf_rptr(&out), buf_len(&out)) == 0, "collect");
        fuzz_check(used > 0 || buf_len(&out) > 0, "no progress with room in the buffer");
        buf_reset(&out);
        fuzz_check(++rounds < 4 * len + 16, "the streamer does not progress");
    }
    /* The end of the response needs at most 5 octets: the worker flushes before it. */
    fuzz_check(maildir_stream_finish(&st, &all) == 0, "maildir_stream_finish failed");
    *octets = maildir_stream_octets(&st);
    buf_free(&out);
    return all;
}

/* The message with every line ended by CRLF, as RETR must deliver it. */
static size_t expected_lines(const char *msg, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
            out[o++] = '\r';
        out[o++] = msg[i];
    }
    if (len > 0 && msg[len - 1] != '\n') {
        if (msg[len - 1] != '\r')
            out[o++] = '\r';
        out[o++] = '\n';
    }
    return o;
}

/* Remove dot-stuffing and the final ".\r\n"; -1 if the framing is wrong. */
static long unstuff(const char *in, size_t len, char *out)
{
    if (len < 3 || memcmp(in + len - 3, ".\r\n", 3) != 0 ||
        (len > 3 && (in[len - 5] != '\r' || in[len - 4] != '\n')))
        return -1;
    len -= 3;
    size_t o = 0;
    int bol = 1;
    for (size_t i = 0; i < len; i++) {
        if (bol && in[i] == '.') {
            if (i + 1 >= len || in[i + 1] != '.')
                return -1;   /* a lone dot line before the end */
            i++;
        }
        out[o++] = in[i];
        bol = in[i] == '\n';
    }
    return (long)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || size > 65536)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    size_t high_water = (size_t)data[1] % 96 + 1;
    uint64_t top_lines = data[2] % 8;
    int huge_top = data[3] & 1;
    unsigned flags = (data[3] >> 1) & (MAILDIR_STREAM_NO_NULS | MAILDIR_STREAM_ADD_EOH);
    const char *msg = (const char *)data + 4;
    size_t len = size - 4;

    struct maildir_size sz;
    maildir_size_init(&sz);
    for (size_t pos = 0; pos < len; pos += chunk)
        maildir_size_feed(&sz, msg + pos, len - pos < chunk ? len - pos : chunk);
    uint64_t announced = maildir_size_result(&sz);

    uint64_t octets;
    struct buf retr = stream_all(msg, len, MAILDIR_STREAM_RETR, 0, chunk, high_water, flags,
                                 &octets);
    fuzz_check(octets == announced, "RETR octets differ from the size LIST announced");

    char *plain = malloc(len * 2 + 3), *want = malloc(len * 2 + 3);
    fuzz_check(plain != NULL && want != NULL, "malloc");
    long got = unstuff(buf_rptr(&retr), buf_len(&retr), plain);
    fuzz_check(got >= 0, "RETR output is not a well-framed multi-line response");
    size_t want_len = expected_lines(msg, len, want);
    for (size_t i = 0; (flags & MAILDIR_STREAM_NO_NULS) && i < want_len; i++)
        if (want[i] == '\0')
            want[i] = (char)0x80;
    fuzz_check((size_t)got == want_len && memcmp(plain, want, want_len) == 0,
               "RETR output is not the message with CRLF line ends");
    fuzz_check((uint64_t)got == announced, "un-stuffed RETR length differs from the size");

    uint64_t top_octets;
    struct buf top = stream_all(msg, len, MAILDIR_STREAM_TOP, huge_top ? UINT64_MAX : top_lines,
                                chunk, high_water, flags, &top_octets);
    fuzz_check(buf_len(&top) >= 3, "TOP output has no end");
    size_t top_len = buf_len(&top) - 3;
    const char *t = buf_rptr(&top);
    int prefix = top_len <= buf_len(&retr) - 3 && memcmp(t, buf_rptr(&retr), top_len) == 0;
    int added_eoh = 0;
    if (!prefix && (flags & MAILDIR_STREAM_ADD_EOH) && top_len >= 2 &&
        memcmp(t + top_len - 2, "\r\n", 2) == 0) {
        /* The empty line that ends headers that never ended; before it, RETR's start. */
        top_len -= 2;
        added_eoh = top_len <= buf_len(&retr) - 3 && memcmp(t, buf_rptr(&retr), top_len) == 0 &&
                    (top_len == 0 || t[top_len - 1] == '\n');
        fuzz_check(memmem(t, top_len, "\r\n\r\n", 4) == NULL && (top_len < 2 ||
                   memcmp(t, "\r\n", 2) != 0), "an empty line was added after one");
    }
    fuzz_check(prefix || added_eoh, "TOP output is not a prefix of RETR output");
    if (huge_top)
        fuzz_check(top_len == buf_len(&retr) - 3, "TOP with every line differs from RETR");

    free(plain);
    free(want);
    buf_free(&retr);
    buf_free(&top);
    return 0;
}
