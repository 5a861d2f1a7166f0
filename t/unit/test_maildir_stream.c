/* The RETR/TOP streamer and the POP3 size counter, which must agree. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/runtime/buf.h"
#include "maildir/size.h"
#include "maildir/stream.h"
#include "t/unit/helper_maildir.h"

enum { OUT_LIMIT = 1 << 22, NO_TOP = -1 };

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/*
 * Independent reference: split into lines, encode each whole. top < 0 is
 * RETR. *octets gets the size without stuffing dots and terminator.
 */
static size_t reference(const char *in, size_t n, long top, char *out, uint64_t *octets)
{
    size_t o = 0, i = 0;
    int in_body = 0;
    long body = 0;
    uint64_t dots = 0;

    while (i < n) {
        const char *lf = memchr(in + i, '\n', n - i);
        size_t len = lf ? (size_t)(lf - (in + i)) : n - i;
        const char *line = in + i;
        int cr = len > 0 && line[len - 1] == '\r';
        if (top >= 0 && in_body && body >= top)
            break;
        if (len > 0 && line[0] == '.') {
            out[o++] = '.';
            dots++;
        }
        memcpy(out + o, line, len);
        o += len;
        if (!cr)
            out[o++] = '\r';
        out[o++] = '\n';
        if (in_body)
            body++;
        else if (len == 0 || (len == 1 && cr))
            in_body = 1;
        i += len + (lf != NULL);
    }
    *octets = o - dots;
    memcpy(out + o, ".\r\n", 3);
    return o + 3;
}

/* Feed in chunks from sizes[] (cycled; 0 means all), draining out when full. */
static size_t run_stream(const char *in, size_t n, long top, const size_t *sizes,
                         size_t nsizes, size_t high_water, char *res, uint64_t *octets)
{
    struct maildir_stream st;
    struct buf out;
    size_t r = 0, i = 0, k = 0;

    buf_init(&out, OUT_LIMIT);
    maildir_stream_init(&st, top < 0 ? MAILDIR_STREAM_RETR : MAILDIR_STREAM_TOP,
                        top < 0 ? 0 : (uint64_t)top);
    while (i < n && !maildir_stream_done(&st)) {
        size_t want = sizes[k++ % nsizes];
        size_t chunk = want == 0 || want > n - i ? n - i : want;
        size_t used = 0;
        while (used < chunk) {
            size_t c;
            assert_int_equal(maildir_stream_feed(&st, in + i + used, chunk - used, &out,
                                                 high_water, &c), 0);
            assert_true(buf_len(&out) <= high_water + 1);
            if (used + c < chunk && !maildir_stream_done(&st))
                assert_true(buf_len(&out) >= high_water);
            used += c;
            memcpy(res + r, buf_rptr(&out), buf_len(&out));
            r += buf_len(&out);
            buf_consume(&out, buf_len(&out));
        }
        i += chunk;
    }
    assert_int_equal(maildir_stream_finish(&st, &out), 0);
    memcpy(res + r, buf_rptr(&out), buf_len(&out));
    r += buf_len(&out);
    *octets = maildir_stream_octets(&st);
    buf_free(&out);
    return r;
}

static uint64_t size_of(const char *in, size_t n, size_t step)
{
    struct maildir_size sz;

    maildir_size_init(&sz);
    for (size_t i = 0; i < n; i += step)
        maildir_size_feed(&sz, in + i, n - i < step ? n - i : step);
    return maildir_size_result(&sz);
}

/* Checks one input every way: reference, one shot, byte by byte, random, backpressure. */
static void check_all(const char *in, size_t n, long top)
{
    size_t cap = 2 * n + 8;
    char *want = malloc(cap), *got = malloc(cap);
    uint64_t want_oct, got_oct;
    size_t one = 1, all = 0;
    size_t rnd[7];

    assert_non_null(want);
    assert_non_null(got);
    size_t wlen = reference(in, n, top, want, &want_oct);
    if (top < 0) {
        assert_int_equal(size_of(in, n, n ? n : 1), want_oct);
        assert_int_equal(size_of(in, n, 1), want_oct);
        assert_int_equal(size_of(in, n, 3), want_oct);
    }

    size_t glen = run_stream(in, n, top, &all, 1, OUT_LIMIT / 2, got, &got_oct);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen);
    assert_int_equal(got_oct, want_oct);

    glen = run_stream(in, n, top, &one, 1, OUT_LIMIT / 2, got, &got_oct);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen);

    for (size_t j = 0; j < 7; j++)
        rnd[j] = 1 + rng() % 9;
    glen = run_stream(in, n, top, rnd, 7, OUT_LIMIT / 2, got, &got_oct);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen);

    for (size_t hw = 1; hw <= 4; hw++) {
        glen = run_stream(in, n, top, rnd, 7, hw, got, &got_oct);
        assert_int_equal(glen, wlen);
        assert_memory_equal(got, want, wlen);
        assert_int_equal(got_oct, want_oct);
    }
    free(want);
    free(got);
}

static void expect_output(const char *in, long top, const char *want)
{
    size_t all = 0;
    uint64_t oct;
    char got[512];

    size_t n = run_stream(in, strlen(in), top, &all, 1, 4096, got, &oct);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(got, want, n);
    check_all(in, strlen(in), top);
}

static void test_retr_literals(void **state)
{
    (void)state;
    expect_output("", NO_TOP, ".\r\n");
    expect_output("a\n", NO_TOP, "a\r\n.\r\n");
    expect_output("a\r\nb\r\n", NO_TOP, "a\r\nb\r\n.\r\n");
    expect_output("no newline", NO_TOP, "no newline\r\n.\r\n");
    expect_output("lone\rCR\n", NO_TOP, "lone\rCR\r\n.\r\n");
    expect_output("final CR\r", NO_TOP, "final CR\r\n.\r\n");
    expect_output("\r\r\n", NO_TOP, "\r\r\n.\r\n");
    expect_output(".\n..\n.foo\nx.\n", NO_TOP, "..\r\n...\r\n..foo\r\nx.\r\n.\r\n");
    expect_output(".first", NO_TOP, "..first\r\n.\r\n");
    expect_output("\n\n", NO_TOP, "\r\n\r\n.\r\n");
}

static void test_size_literals(void **state)
{
    (void)state;
    assert_int_equal(size_of("", 0, 1), 0);
    assert_int_equal(size_of("a\n", 2, 1), 3);
    assert_int_equal(size_of("a\r\n", 3, 2), 3);
    assert_int_equal(size_of("abc", 3, 3), 5);
    assert_int_equal(size_of("abc\r", 4, 4), 5);
    assert_int_equal(size_of("a\rb", 3, 1), 5);
    assert_int_equal(size_of(".\n", 2, 1), 3); /* dot-stuffing not counted */
}

static void test_top_literals(void **state)
{
    (void)state;
    const char *msg = "From: a\nSubject: b\n\nline1\n.dot\nline3\n";
    expect_output(msg, 0, "From: a\r\nSubject: b\r\n\r\n.\r\n");
    expect_output(msg, 1, "From: a\r\nSubject: b\r\n\r\nline1\r\n.\r\n");
    expect_output(msg, 2, "From: a\r\nSubject: b\r\n\r\nline1\r\n..dot\r\n.\r\n");
    expect_output(msg, 99, "From: a\r\nSubject: b\r\n\r\nline1\r\n..dot\r\nline3\r\n.\r\n");
    /* Headers only: sent whole, no blank line made up. */
    expect_output("From: a\nTo: b", 0, "From: a\r\nTo: b\r\n.\r\n");
    expect_output("From: a\r\n\r\nbody", 5, "From: a\r\n\r\nbody\r\n.\r\n");
    /* A line holding only CR is not the separator; "\r\r\n" is not empty either. */
    expect_output("H: 1\n\r\r\nX\n\r\nB\nC\n", 1, "H: 1\r\n\r\r\nX\r\n\r\nB\r\n.\r\n");
    /* Empty first line: no headers at all. */
    expect_output("\nbody\nmore\n", 1, "\r\nbody\r\n.\r\n");
}

static void test_top_done_stops_reading(void **state)
{
    struct maildir_stream st;
    struct buf out;
    size_t c;
    const char *msg = "H: 1\r\n\r\nbody1\r\nbody2\r\n";

    (void)state;
    buf_init(&out, 4096);
    maildir_stream_init(&st, MAILDIR_STREAM_TOP, 1);
    assert_int_equal(maildir_stream_feed(&st, msg, 10, &out, 4096, &c), 0);
    assert_int_equal(c, 10);
    assert_false(maildir_stream_done(&st));
    assert_int_equal(maildir_stream_feed(&st, msg + 10, strlen(msg) - 10, &out, 4096, &c), 0);
    assert_int_equal(c, strlen(msg) - 10); /* the rest is swallowed */
    assert_true(maildir_stream_done(&st));
    assert_int_equal(maildir_stream_feed(&st, "more\n", 5, &out, 4096, &c), 0);
    assert_int_equal(c, 5);
    assert_int_equal(maildir_stream_finish(&st, &out), 0);
    assert_int_equal(buf_len(&out), strlen("H: 1\r\n\r\nbody1\r\n.\r\n"));
    assert_memory_equal(buf_rptr(&out), "H: 1\r\n\r\nbody1\r\n.\r\n", buf_len(&out));
    buf_free(&out);
}

/* Feed msg whole with workarounds; the result (with ".\r\n") goes to out. */
static void stream_with(const char *msg, size_t n, long top, unsigned flags, struct buf *out,
                        uint64_t *octets)
{
    struct maildir_stream st;
    size_t c;
    maildir_stream_init(&st, top < 0 ? MAILDIR_STREAM_RETR : MAILDIR_STREAM_TOP,
                        top < 0 ? 0 : (uint64_t)top);
    maildir_stream_workarounds(&st, flags);
    assert_int_equal(maildir_stream_feed(&st, msg, n, out, 4096, &c), 0);
    assert_int_equal(c, n);
    assert_int_equal(maildir_stream_finish(&st, out), 0);
    *octets = maildir_stream_octets(&st);
}

/* outlook-no-nuls: every NUL becomes 0x80, one for one, so LIST's size still holds. */
static void test_workaround_no_nuls(void **state)
{
    static const char msg[] = "H: a\0b\r\n\r\n\0\0body\n";
    static const char want[] = "H: a\x80" "b\r\n\r\n\x80\x80" "body\r\n.\r\n";
    struct buf out;
    uint64_t octets;
    (void)state;
    buf_init(&out, 4096);
    stream_with(msg, sizeof(msg) - 1, NO_TOP, MAILDIR_STREAM_NO_NULS, &out, &octets);
    assert_int_equal(buf_len(&out), sizeof(want) - 1);
    assert_memory_equal(buf_rptr(&out), want, sizeof(want) - 1);
    assert_int_equal(octets, size_of(msg, sizeof(msg) - 1, 3));
    buf_consume(&out, buf_len(&out));
    /* Off (the default): NULs go out as they are. */
    stream_with(msg, sizeof(msg) - 1, NO_TOP, 0, &out, &octets);
    assert_int_equal(buf_rptr(&out)[4], '\0');
    buf_free(&out);
}

/* oe-ns-eoh: TOP of a headers-only message ends the headers with an empty line. */
static void test_workaround_add_eoh(void **state)
{
    struct buf out;
    uint64_t octets;
    (void)state;
    buf_init(&out, 4096);
    stream_with("H: 1\r\nI: 2", 10, 0, MAILDIR_STREAM_ADD_EOH, &out, &octets);
    assert_int_equal(buf_len(&out), strlen("H: 1\r\nI: 2\r\n\r\n.\r\n"));
    assert_memory_equal(buf_rptr(&out), "H: 1\r\nI: 2\r\n\r\n.\r\n", buf_len(&out));
    buf_consume(&out, buf_len(&out));
    /* A message that has its empty line gets nothing more. */
    stream_with("H: 1\n\nbody\n", 11, 0, MAILDIR_STREAM_ADD_EOH, &out, &octets);
    assert_memory_equal(buf_rptr(&out), "H: 1\r\n\r\n.\r\n", buf_len(&out));
    assert_int_equal(buf_len(&out), strlen("H: 1\r\n\r\n.\r\n"));
    buf_consume(&out, buf_len(&out));
    /* RETR is never changed by it: its size is what LIST said. */
    stream_with("H: 1\r\n", 6, NO_TOP, MAILDIR_STREAM_ADD_EOH, &out, &octets);
    assert_memory_equal(buf_rptr(&out), "H: 1\r\n.\r\n", buf_len(&out));
    assert_int_equal(octets, 6);
    buf_consume(&out, buf_len(&out));
    /* A last line that is a lone CR is an empty line: the headers ended there. */
    stream_with("H: 1\n\r", 6, 0, MAILDIR_STREAM_ADD_EOH, &out, &octets);
    assert_memory_equal(buf_rptr(&out), "H: 1\r\n\r\n.\r\n", buf_len(&out));
    assert_int_equal(buf_len(&out), strlen("H: 1\r\n\r\n.\r\n"));
    buf_consume(&out, buf_len(&out));
    /* Off: TOP stays a prefix of RETR. */
    stream_with("H: 1\r\n", 6, 0, 0, &out, &octets);
    assert_memory_equal(buf_rptr(&out), "H: 1\r\n.\r\n", buf_len(&out));
    buf_free(&out);
}

static void test_backpressure_stops(void **state)
{
    struct maildir_stream st;
    struct buf out;
    size_t c;
    char big[1000];

    (void)state;
    memset(big, 'x', sizeof(big));
    buf_init(&out, 4096);
    maildir_stream_init(&st, MAILDIR_STREAM_RETR, 0);
    assert_int_equal(maildir_stream_feed(&st, big, sizeof(big), &out, 100, &c), 0);
    assert_int_equal(c, 100);
    assert_int_equal(buf_len(&out), 100);
    /* Full: nothing more until the caller flushes. */
    assert_int_equal(maildir_stream_feed(&st, big + c, sizeof(big) - c, &out, 100, &c), 0);
    assert_int_equal(c, 0);
    assert_int_equal(maildir_stream_feed(&st, big, 1, &out, 0, &c), -1);
    buf_free(&out);
}

static void test_random_inputs(void **state)
{
    static const char alphabet[] = "ab.\r\n\n. ";
    char in[300];

    (void)state;
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = rng() % sizeof(in);
        for (size_t i = 0; i < n; i++)
            in[i] = alphabet[rng() % (sizeof(alphabet) - 1)];
        long top = iter % 3 == 0 ? NO_TOP : (long)(rng() % 5);
        check_all(in, n, top);
    }
}

static void test_size_fd_across_chunks(void **state)
{
    char root[4096], path[4200];
    size_t n = 3 * 65536 + 7;
    char *data = malloc(n);
    uint64_t size;

    (void)state;
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = i % 50 == 49 ? '\n' : 'a';
    data[65535] = '\r'; /* CRLF split across the 64 KiB read boundary */
    data[65536] = '\n';
    data[131071] = 'a'; /* lone LF right after the boundary */
    data[131072] = '\n';
    data[n - 1] = '\r'; /* final lone CR */
    assert_int_equal(tmd_make(root, 0), 0);
    snprintf(path, sizeof(path), "%s/msg", root);
    assert_int_equal(tmd_write(root, "msg", data, n), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(lseek(fileno(f), 100, SEEK_SET), 100); /* offset ignored */
    assert_int_equal(maildir_size_fd(fileno(f), &size), 0);
    assert_int_equal(size, size_of(data, n, n));
    assert_int_equal(lseek(fileno(f), 0, SEEK_CUR), 100);
    fclose(f);
    assert_int_equal(maildir_size_fd(-1, &size), -1);
    assert_int_equal(tmd_remove(root), 0);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retr_literals),
        cmocka_unit_test(test_size_literals),
        cmocka_unit_test(test_top_literals),
        cmocka_unit_test(test_top_done_stops_reading),
        cmocka_unit_test(test_backpressure_stops),
        cmocka_unit_test(test_workaround_no_nuls),
        cmocka_unit_test(test_workaround_add_eoh),
        cmocka_unit_test(test_random_inputs),
        cmocka_unit_test(test_size_fd_across_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
