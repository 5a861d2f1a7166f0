/* daemon/runtime/buf: append/consume/reserve/limit, printf, getline, fd I/O. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/buf.h"

/* A small deterministic PRNG so failures reproduce. */
static uint32_t rng_state;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* ---- basics ------------------------------------------------------------ */

static void test_init_allocates_nothing(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 1000);
    assert_null(b.data);
    assert_int_equal(b.size, 0);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(b.limit, 1000);
    /* Appending nothing allocates nothing. */
    assert_int_equal(buf_append(&b, "x", 0), 0);
    assert_null(b.data);
    buf_free(&b);
}

static void test_append_consume(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 1 << 20);
    assert_int_equal(buf_append(&b, "hello", 5), 0);
    assert_int_equal(buf_puts(&b, " world"), 0);
    assert_int_equal(buf_len(&b), 11);
    assert_memory_equal(buf_rptr(&b), "hello world", 11);

    buf_consume(&b, 6);
    assert_int_equal(buf_len(&b), 5);
    assert_memory_equal(buf_rptr(&b), "world", 5);

    /* Over-consuming clamps and resets the positions. */
    buf_consume(&b, 100);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(b.rpos, 0);
    assert_int_equal(b.wpos, 0);
    assert_non_null(b.data); /* allocation kept */

    buf_reset(&b);
    assert_int_equal(buf_len(&b), 0);
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.size, 0);
}

static void test_reserve_commit(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(buf_reserve(&b, 10), 0);
    assert_true(buf_avail(&b) >= 10);
    memcpy(buf_wptr(&b), "0123456789", 10);
    buf_commit(&b, 4);
    assert_int_equal(buf_len(&b), 4);
    assert_memory_equal(buf_rptr(&b), "0123", 4);

    /* commit is clamped to what is available */
    size_t avail = buf_avail(&b);
    buf_commit(&b, avail + 1000);
    assert_int_equal(buf_len(&b), 4 + avail);
    assert_int_equal(buf_avail(&b), 0);
    buf_free(&b);
}

static void test_limit_enobufs(void **state)
{
    struct buf b;
    char chunk[100];

    (void)state;
    memset(chunk, 'q', sizeof(chunk));
    buf_init(&b, 1000);
    for (int i = 0; i < 10; i++)
        assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(buf_len(&b), 1000);
    assert_true(b.size <= 1000);

    errno = 0;
    assert_int_equal(buf_append(&b, "x", 1), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(buf_len(&b), 1000); /* unchanged */

    errno = 0;
    assert_int_equal(buf_reserve(&b, 1), -1);
    assert_int_equal(errno, ENOBUFS);

    /* After consuming, the room comes back (by compaction, no growth). */
    buf_consume(&b, 300);
    assert_int_equal(buf_append(&b, chunk, 100), 0);
    assert_int_equal(buf_append(&b, chunk, 100), 0);
    assert_int_equal(buf_append(&b, chunk, 100), 0);
    assert_int_equal(buf_len(&b), 1000);
    assert_true(b.size <= 1000);
    errno = 0;
    assert_int_equal(buf_append(&b, "x", 1), -1);
    assert_int_equal(errno, ENOBUFS);

    /* A single request larger than the limit fails on an empty buffer too. */
    struct buf e;
    buf_init(&e, 50);
    errno = 0;
    assert_int_equal(buf_reserve(&e, 51), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_null(e.data);
    assert_int_equal(buf_reserve(&e, 50), 0);
    assert_int_equal(e.size, 50);
    buf_free(&e);
    buf_free(&b);
}

static void test_limit_below_min_alloc(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.size, 10);
    assert_int_equal(buf_append(&b, "a", 1), -1);
    assert_int_equal(errno, ENOBUFS);
    buf_free(&b);
}

static void test_compaction(void **state)
{
    struct buf b;
    char data[256];

    (void)state;
    for (int i = 0; i < 256; i++)
        data[i] = (char)i;
    buf_init(&b, 256);
    assert_int_equal(buf_append(&b, data, 200), 0);
    char *before = b.data;
    size_t size_before = b.size;
    buf_consume(&b, 150); /* 50 left at offset 150 */
    assert_int_equal(b.rpos, 150);
    /* 56 free at the end is < 100, but 206 overall: slide, do not grow. */
    assert_int_equal(buf_reserve(&b, 100), 0);
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.size, size_before);
    assert_int_equal(b.rpos, 0);
    assert_int_equal(buf_len(&b), 50);
    assert_memory_equal(buf_rptr(&b), data + 150, 50);
    assert_true(buf_avail(&b) >= 100);
    buf_free(&b);
}

static void test_growth_keeps_content(void **state)
{
    struct buf b;
    unsigned char ref[20000];

    (void)state;
    rng_state = 12345;
    buf_init(&b, sizeof(ref));
    size_t total = 0, consumed = 0;
    for (int iter = 0; iter < 1000 && total < sizeof(ref); iter++) {
        size_t n = rng() % 300;
        if (n > sizeof(ref) - total)
            n = sizeof(ref) - total;
        for (size_t i = 0; i < n; i++)
            ref[total + i] = (unsigned char)rng();
        assert_int_equal(buf_append(&b, ref + total, n), 0);
        total += n;
        size_t c = rng() % 200;
        if (c > total - consumed)
            c = total - consumed;
        assert_memory_equal(buf_rptr(&b), ref + consumed, total - consumed);
        buf_consume(&b, c);
        consumed += c;
        assert_int_equal(buf_len(&b), total - consumed);
    }
    assert_true(total > 5000);
    buf_free(&b);
}

static void test_shrink_if_empty(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(buf_puts(&b, "abc"), 0);
    buf_shrink_if_empty(&b);
    assert_non_null(b.data); /* not empty: kept */
    assert_int_equal(buf_len(&b), 3);
    assert_memory_equal(buf_rptr(&b), "abc", 3);

    buf_consume(&b, 3);
    buf_shrink_if_empty(&b);
    assert_null(b.data);
    assert_int_equal(b.size, 0);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(b.limit, 4096); /* the limit survives */

    /* usable again afterwards */
    assert_int_equal(buf_puts(&b, "xyz"), 0);
    assert_memory_equal(buf_rptr(&b), "xyz", 3);
    buf_shrink_if_empty(&b); /* not empty: no-op */
    assert_non_null(b.data);
    buf_free(&b);

    /* on a never-allocated buffer: harmless */
    buf_init(&b, 10);
    buf_shrink_if_empty(&b);
    assert_null(b.data);
}

/* ---- printf -------------------------------------------------------------- */

static void test_printf_short(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(buf_printf(&b, "+OK %d messages (%u octets)\r\n", 3, 4567u), 0);
    const char *want = "+OK 3 messages (4567 octets)\r\n";
    assert_int_equal(buf_len(&b), strlen(want));
    assert_memory_equal(buf_rptr(&b), want, strlen(want));
    /* empty format appends nothing */
    assert_int_equal(buf_printf(&b, "%s", ""), 0);
    assert_int_equal(buf_len(&b), strlen(want));
    buf_free(&b);
}

static void test_printf_long(void **state)
{
    struct buf b;
    char big[5000];

    (void)state;
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = (char)('a' + i % 26);
    big[sizeof(big) - 1] = '\0';

    buf_init(&b, 1 << 16);
    assert_int_equal(buf_puts(&b, "pre:"), 0);
    /* exactly 255, 256 and 257 characters around the small-buffer edge */
    for (int len = 255; len <= 257; len++) {
        buf_reset(&b);
        assert_int_equal(buf_printf(&b, "%.*s", len, big), 0);
        assert_int_equal(buf_len(&b), (size_t)len);
        assert_memory_equal(buf_rptr(&b), big, (size_t)len);
    }
    buf_reset(&b);
    assert_int_equal(buf_puts(&b, "pre:"), 0);
    assert_int_equal(buf_printf(&b, "[%s]/%d", big, 42), 0);
    size_t want = 4 + 1 + strlen(big) + 1 + 3;
    assert_int_equal(buf_len(&b), want);
    assert_memory_equal(buf_rptr(&b), "pre:[", 5);
    assert_memory_equal(buf_rptr(&b) + 5, big, strlen(big));
    assert_memory_equal(buf_rptr(&b) + 5 + strlen(big), "]/42", 4);
    /* a later append follows the text exactly (no stray NUL counted) */
    assert_int_equal(buf_puts(&b, "!"), 0);
    assert_int_equal(buf_rptr(&b)[want], '!');
    buf_free(&b);
}

static void test_printf_long_over_limit(void **state)
{
    struct buf b;
    char big[600];

    (void)state;
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_init(&b, 500);
    errno = 0;
    assert_int_equal(buf_printf(&b, "%s", big), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(buf_len(&b), 0);
    buf_free(&b);
}

/*
 * A long text that exactly fills the remaining room must fit, as it does
 * with buf_append and with the short (< 256) path of buf_printf.
 */
static void test_printf_long_exactly_fills_limit(void **state)
{
    struct buf b;
    char big[301];

    (void)state;
    memset(big, 'y', 300);
    big[300] = '\0';

    /* buf_append: fits */
    buf_init(&b, 300);
    assert_int_equal(buf_append(&b, big, 300), 0);
    buf_free(&b);

    /* short path: 100 chars into a 100-byte limit fits */
    buf_init(&b, 100);
    assert_int_equal(buf_printf(&b, "%.100s", big), 0);
    assert_int_equal(buf_len(&b), 100);
    buf_free(&b);

    /* long path: 300 chars into a 300-byte limit must fit too */
    buf_init(&b, 300);
    assert_int_equal(buf_printf(&b, "%s", big), 0);
    assert_int_equal(buf_len(&b), 300);
    assert_memory_equal(buf_rptr(&b), big, 300);
    buf_free(&b);
}

/* ---- getline ----------------------------------------------------------- */

/*
 * Feed `in` to a buffer in chunks (chunk = 0: random sizes 1..17, else that
 * size) and call buf_getline after each chunk until it returns NONE.
 * Each result (kind, and for OK the exact bytes and length) goes into res.
 */
struct gl_result {
    int kind[64];
    size_t len[64];
    char line[64][128];
    int n;
};

static void feed_lines(const char *in, size_t inlen, size_t maxlen, size_t chunk,
                       struct gl_result *res)
{
    struct buf b;
    size_t pos = 0;

    memset(res, 0, sizeof(*res));
    buf_init(&b, 1 << 16);
    for (int iter = 0; iter < 100000 && pos < inlen; iter++) {
        size_t n = chunk ? chunk : 1 + rng() % 17;
        if (n > inlen - pos)
            n = inlen - pos;
        assert_int_equal(buf_append(&b, in + pos, n), 0);
        pos += n;
        for (int k = 0; k < 1000; k++) {
            char *line = NULL;
            size_t len = 0;
            enum buf_line r = buf_getline(&b, maxlen, &line, &len);
            if (r == BUF_LINE_NONE)
                break;
            assert_true(res->n < 64);
            res->kind[res->n] = r;
            if (r == BUF_LINE_OK) {
                assert_non_null(line);
                assert_true(len < sizeof(res->line[0]));
                assert_int_equal(line[len], '\0');
                memcpy(res->line[res->n], line, len);
                res->len[res->n] = len;
            } else {
                assert_int_equal(r, BUF_LINE_TOOLONG);
            }
            res->n++;
        }
        /* After NONE: no LF is left and at most maxlen + CR is buffered. */
        assert_true(buf_len(&b) <= maxlen + 1);
        assert_null(memchr(buf_rptr(&b), '\n', buf_len(&b)));
    }
    assert_int_equal(pos, inlen);
    buf_free(&b);
}

static void expect_ok(const struct gl_result *r, int i, const char *s, size_t len)
{
    assert_true(i < r->n);
    assert_int_equal(r->kind[i], BUF_LINE_OK);
    assert_int_equal(r->len[i], len);
    assert_memory_equal(r->line[i], s, len);
}

static void expect_toolong(const struct gl_result *r, int i)
{
    assert_true(i < r->n);
    assert_int_equal(r->kind[i], BUF_LINE_TOOLONG);
}

/* Every chunking of the same input gives the same lines. */
static void check_all_chunkings(const char *in, size_t inlen, size_t maxlen,
                                void (*check)(const struct gl_result *))
{
    struct gl_result res;
    static const size_t sizes[] = { 1, 2, 3, 5, 7, 64, 4096 };

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        feed_lines(in, inlen, maxlen, sizes[i], &res);
        check(&res);
    }
    rng_state = 987654321;
    for (int seed = 0; seed < 50; seed++) {
        feed_lines(in, inlen, maxlen, 0, &res);
        check(&res);
    }
}

static const char basic_in[] = "USER bob\r\nPASS x y\n\r\n\nLIST 1\r\na\rb\r\n";

static void check_basic(const struct gl_result *r)
{
    assert_int_equal(r->n, 6);
    expect_ok(r, 0, "USER bob", 8);
    expect_ok(r, 1, "PASS x y", 8); /* bare LF */
    expect_ok(r, 2, "", 0);         /* empty CRLF line */
    expect_ok(r, 3, "", 0);         /* empty LF line */
    expect_ok(r, 4, "LIST 1", 6);
    expect_ok(r, 5, "a\rb", 3);     /* a CR in the middle stays */
}

static void test_getline_basic(void **state)
{
    (void)state;
    check_all_chunkings(basic_in, sizeof(basic_in) - 1, 40, check_basic);
}

static void test_getline_none_until_lf(void **state)
{
    struct buf b;
    char *line;
    size_t len;

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(buf_getline(&b, 10, &line, &len), BUF_LINE_NONE); /* empty, unallocated */
    assert_int_equal(buf_puts(&b, "QUIT\r"), 0);
    assert_int_equal(buf_getline(&b, 10, &line, &len), BUF_LINE_NONE);
    assert_int_equal(buf_len(&b), 5); /* partial line kept */
    assert_int_equal(buf_puts(&b, "\n"), 0);
    assert_int_equal(buf_getline(&b, 10, &line, &len), BUF_LINE_OK);
    assert_int_equal(len, 4);
    assert_string_equal(line, "QUIT");
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(buf_getline(&b, 10, &line, &len), BUF_LINE_NONE);
    buf_free(&b);
}

/* maxlen = 8: "12345678" fits, "123456789" does not; CR does not count. */
static const char maxlen_in[] = "12345678\r\n123456789\r\n12345678\nABCDEFGHI\nok\n";

static void check_maxlen(const struct gl_result *r)
{
    assert_int_equal(r->n, 5);
    expect_ok(r, 0, "12345678", 8);
    expect_toolong(r, 1);
    expect_ok(r, 2, "12345678", 8);
    expect_toolong(r, 3);
    expect_ok(r, 4, "ok", 2);
}

static void test_getline_maxlen_edges(void **state)
{
    (void)state;
    check_all_chunkings(maxlen_in, sizeof(maxlen_in) - 1, 8, check_maxlen);
}

/* A long line split over many chunks, then normal lines. */
static char longline_in[3000];
static size_t longline_len;

static void check_longline(const struct gl_result *r)
{
    assert_int_equal(r->n, 3);
    expect_ok(r, 0, "first", 5);
    expect_toolong(r, 1); /* exactly once for the 2500-byte line */
    expect_ok(r, 2, "after", 5);
}

static void test_getline_long_partial_discard(void **state)
{
    (void)state;
    longline_len = 0;
    memcpy(longline_in, "first\r\n", 7);
    longline_len = 7;
    for (int i = 0; i < 2500; i++)
        longline_in[longline_len++] = (char)('A' + i % 26);
    memcpy(longline_in + longline_len, "\r\nafter\r\n", 9);
    longline_len += 9;
    check_all_chunkings(longline_in, longline_len, 100, check_longline);
}

/*
 * TOOLONG comes as soon as the partial line is certainly over maxlen, before
 * its LF arrives, and nothing of it is kept; the rest is dropped up to and
 * including the LF even across many later chunks.
 */
static void test_getline_toolong_before_lf(void **state)
{
    struct buf b;
    char *line;
    size_t len;
    const size_t maxlen = 10;

    (void)state;
    buf_init(&b, 1 << 16);
    /* maxlen + 2 bytes, no CR at the end: certainly too long. */
    assert_int_equal(buf_puts(&b, "abcdefghijkl"), 0);
    assert_int_equal(buf_getline(&b, maxlen, &line, &len), BUF_LINE_TOOLONG);
    assert_int_equal(buf_len(&b), 0); /* dropped, not buffered */
    /* TOOLONG only once */
    assert_int_equal(buf_getline(&b, maxlen, &line, &len), BUF_LINE_NONE);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(buf_puts(&b, "more junk without a line end "), 0);
        assert_int_equal(buf_getline(&b, maxlen, &line, &len), BUF_LINE_NONE);
        assert_int_equal(buf_len(&b), 0);
    }
    /* A CR LF inside the junk ends it; the next line comes out normally. */
    assert_int_equal(buf_puts(&b, "tail\r"), 0);
    assert_int_equal(buf_getline(&b, maxlen, &line, &len), BUF_LINE_NONE);
    assert_int_equal(buf_puts(&b, "\nNOOP\r\nST"), 0);
    assert_int_equal(buf_getline(&b, maxlen, &line, &len), BUF_LINE_OK);
    assert_int_equal(len, 4);
    assert_string_equal(line, "NOOP");
    assert_int_equal(buf_getline(&b, maxlen, &line, &len), BUF_LINE_NONE);
    assert_int_equal(buf_puts(&b, "AT\r\n"), 0);
    assert_int_equal(buf_getline(&b, maxlen, &line, &len), BUF_LINE_OK);
    assert_string_equal(line, "STAT");
    buf_free(&b);
}

/* A line of exactly maxlen plus its CR, waiting for the LF, is not too long. */
static void test_getline_maxlen_with_pending_cr(void **state)
{
    struct buf b;
    char *line;
    size_t len;

    (void)state;
    buf_init(&b, 1 << 16);
    assert_int_equal(buf_puts(&b, "0123456789\r"), 0);
    assert_int_equal(buf_getline(&b, 10, &line, &len), BUF_LINE_NONE);
    assert_int_equal(buf_puts(&b, "\n"), 0);
    assert_int_equal(buf_getline(&b, 10, &line, &len), BUF_LINE_OK);
    assert_int_equal(len, 10);
    assert_string_equal(line, "0123456789");
    /* maxlen + CR + CR: the first CR is content, so it is too long */
    assert_int_equal(buf_puts(&b, "0123456789\r\r\n"), 0);
    assert_int_equal(buf_getline(&b, 10, &line, &len), BUF_LINE_TOOLONG);
    assert_int_equal(buf_puts(&b, "x\n"), 0);
    assert_int_equal(buf_getline(&b, 10, &line, &len), BUF_LINE_OK);
    assert_string_equal(line, "x");
    buf_free(&b);
}

static const char nul_in[] = "a\0b\r\n\0\n\0\0\0\r\nend\n";

static void check_nul(const struct gl_result *r)
{
    assert_int_equal(r->n, 4);
    expect_ok(r, 0, "a\0b", 3);
    expect_ok(r, 1, "\0", 1);
    expect_ok(r, 2, "\0\0\0", 3);
    expect_ok(r, 3, "end", 3);
}

static void test_getline_nul_bytes(void **state)
{
    (void)state;
    check_all_chunkings(nul_in, sizeof(nul_in) - 1, 10, check_nul);
}

/* Random lines against a reference splitter, random chunking. */
static void test_getline_random_model(void **state)
{
    static char in[20000];
    static size_t want_len[1000];
    static int want_kind[1000];
    static size_t want_off[1000];
    const size_t maxlen = 40;

    (void)state;
    rng_state = 4242;
    for (int round = 0; round < 20; round++) {
        size_t inlen = 0;
        int nlines = 0;
        while (nlines < 300) {
            size_t l = rng() % 3 == 0 ? rng() % 120 : rng() % 45;
            int crlf = rng() % 2;
            if (inlen + l + 2 > sizeof(in))
                break;
            want_off[nlines] = inlen;
            for (size_t i = 0; i < l; i++) {
                char c = (char)(rng() % 256);
                if (c == '\n')
                    c = 'n';
                if (i == l - 1 && c == '\r')
                    c = 'r'; /* a trailing CR would merge with the line end */
                in[inlen++] = c;
            }
            want_len[nlines] = l;
            want_kind[nlines] = l > maxlen ? BUF_LINE_TOOLONG : BUF_LINE_OK;
            if (crlf)
                in[inlen++] = '\r';
            in[inlen++] = '\n';
            nlines++;
        }

        struct buf b;
        buf_init(&b, 1 << 16);
        size_t pos = 0;
        int got = 0;
        for (int iter = 0; iter < 100000 && pos < inlen; iter++) {
            size_t n = 1 + rng() % (round < 5 ? 1 : 200);
            if (n > inlen - pos)
                n = inlen - pos;
            assert_int_equal(buf_append(&b, in + pos, n), 0);
            pos += n;
            for (int k = 0; k < 1000; k++) {
                char *line;
                size_t len;
                enum buf_line r = buf_getline(&b, maxlen, &line, &len);
                if (r == BUF_LINE_NONE)
                    break;
                assert_true(got < nlines);
                assert_int_equal(r, want_kind[got]);
                if (r == BUF_LINE_OK) {
                    assert_int_equal(len, want_len[got]);
                    assert_memory_equal(line, in + want_off[got], len);
                }
                got++;
            }
        }
        assert_int_equal(got, nlines);
        assert_int_equal(buf_len(&b), 0);
        buf_free(&b);
    }
}

/* ---- fd I/O ---------------------------------------------------------- */

static void test_read_write_pipe(void **state)
{
    int p[2];
    struct buf in, out;
    char data[10000];

    (void)state;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);

    buf_init(&in, 1 << 20);
    buf_init(&out, 1 << 20);

    /* empty non-blocking pipe: -1 / EAGAIN, buffer unchanged */
    errno = 0;
    assert_int_equal(buf_read_fd(&in, p[0], 4096), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    assert_int_equal(buf_len(&in), 0);

    /* writing an empty buffer writes nothing */
    assert_int_equal(buf_write_fd(&out, p[1]), 0);

    assert_int_equal(buf_append(&out, data, sizeof(data)), 0);
    ssize_t w = buf_write_fd(&out, p[1]);
    assert_int_equal(w, (ssize_t)sizeof(data));
    assert_int_equal(buf_len(&out), 0);

    size_t total = 0;
    for (int i = 0; i < 100 && total < sizeof(data); i++) {
        ssize_t r = buf_read_fd(&in, p[0], 777);
        assert_true(r > 0 && r <= 777);
        total += (size_t)r;
        assert_int_equal(buf_len(&in), total);
    }
    assert_int_equal(total, sizeof(data));
    assert_memory_equal(buf_rptr(&in), data, sizeof(data));

    errno = 0;
    assert_int_equal(buf_read_fd(&in, p[0], 100), -1);
    assert_int_equal(errno, EAGAIN);

    /* EOF */
    close(p[1]);
    assert_int_equal(buf_read_fd(&in, p[0], 100), 0);
    assert_int_equal(buf_len(&in), sizeof(data));
    close(p[0]);
    buf_free(&in);
    buf_free(&out);
}

static void test_write_fd_partial_and_eagain(void **state)
{
    int sv[2];
    struct buf out, in;
    static char data[1 << 20];

    (void)state;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i % 251);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);

    buf_init(&out, sizeof(data));
    buf_init(&in, sizeof(data));
    assert_int_equal(buf_append(&out, data, sizeof(data)), 0);
    ssize_t w = buf_write_fd(&out, sv[0]);
    assert_true(w > 0 && (size_t)w < sizeof(data)); /* partial */
    assert_int_equal(buf_len(&out), sizeof(data) - (size_t)w);
    /* the socket is full now */
    errno = 0;
    assert_int_equal(buf_write_fd(&out, sv[0]), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    assert_int_equal(buf_len(&out), sizeof(data) - (size_t)w);

    /* drain and keep writing until everything arrived in order */
    for (int i = 0; i < 100000 && buf_len(&in) < sizeof(data); i++) {
        if (buf_len(&out))
            (void)buf_write_fd(&out, sv[0]);
        ssize_t r = buf_read_fd(&in, sv[1], 65536);
        assert_true(r > 0 || (r == -1 && errno == EAGAIN));
    }
    assert_int_equal(buf_len(&in), sizeof(data));
    assert_memory_equal(buf_rptr(&in), data, sizeof(data));
    close(sv[0]);
    close(sv[1]);
    buf_free(&out);
    buf_free(&in);
}

static void test_read_fd_near_limit(void **state)
{
    int p[2];
    struct buf b;
    char data[300];

    (void)state;
    memset(data, 'r', sizeof(data));
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));

    buf_init(&b, 100);
    assert_int_equal(buf_append(&b, data, 60), 0);
    /* asks for 4096, only 40 fit: reads 40 */
    assert_int_equal(buf_read_fd(&b, p[0], 4096), 40);
    assert_int_equal(buf_len(&b), 100);
    /* full: -1, ENOBUFS, nothing read */
    errno = 0;
    assert_int_equal(buf_read_fd(&b, p[0], 10), -1);
    assert_int_equal(errno, ENOBUFS);
    buf_consume(&b, 100);
    assert_int_equal(buf_read_fd(&b, p[0], 4096), 100);
    close(p[0]);
    close(p[1]);
    buf_free(&b);
}

static void test_write_fd_error(void **state)
{
    int p[2];
    struct buf b;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    buf_init(&b, 100);
    assert_int_equal(buf_puts(&b, "lost"), 0);
    errno = 0;
    assert_int_equal(buf_write_fd(&b, p[1]), -1);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(buf_len(&b), 4); /* nothing consumed */
    close(p[1]);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_allocates_nothing),
        cmocka_unit_test(test_append_consume),
        cmocka_unit_test(test_reserve_commit),
        cmocka_unit_test(test_limit_enobufs),
        cmocka_unit_test(test_limit_below_min_alloc),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_growth_keeps_content),
        cmocka_unit_test(test_shrink_if_empty),
        cmocka_unit_test(test_printf_short),
        cmocka_unit_test(test_printf_long),
        cmocka_unit_test(test_printf_long_over_limit),
        cmocka_unit_test(test_printf_long_exactly_fills_limit),
        cmocka_unit_test(test_getline_basic),
        cmocka_unit_test(test_getline_none_until_lf),
        cmocka_unit_test(test_getline_maxlen_edges),
        cmocka_unit_test(test_getline_long_partial_discard),
        cmocka_unit_test(test_getline_toolong_before_lf),
        cmocka_unit_test(test_getline_maxlen_with_pending_cr),
        cmocka_unit_test(test_getline_nul_bytes),
        cmocka_unit_test(test_getline_random_model),
        cmocka_unit_test(test_read_write_pipe),
        cmocka_unit_test(test_write_fd_partial_and_eagain),
        cmocka_unit_test(test_read_fd_near_limit),
        cmocka_unit_test(test_write_fd_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
