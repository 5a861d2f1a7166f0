/* daemon/runtime/ipc: typed builders/getters, strict decoding, SEQPACKET transport. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/ipc.h"

static void test_roundtrip(void **state)
{
    struct buf b;
    struct ipc_reader r;
    uint32_t type = 0, id = 0;
    char s1[64], s2[8], s3[300];
    char longstr[256];

    (void)state;
    memset(longstr, 'L', 255);
    longstr[255] = '\0';
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, 7, 0xdeadbeef), 0);
    assert_int_equal(ipc_put_u32(&b, 0), 0);
    assert_int_equal(ipc_put_str(&b, "alice@example.org"), 0);
    assert_int_equal(ipc_put_u32(&b, UINT32_MAX), 0);
    assert_int_equal(ipc_put_str(&b, ""), 0);
    assert_int_equal(ipc_put_str(&b, longstr), 0);
    assert_int_equal(ipc_put_u32(&b, 12345), 0);
    /* header 8 + 4 + (2+17) + 4 + 2 + (2+255) + 4 */
    assert_int_equal(buf_len(&b), 8 + 4 + 19 + 4 + 2 + 257 + 4);

    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    assert_int_equal(type, 7);
    assert_int_equal(id, 0xdeadbeef);
    assert_int_equal(ipc_get_u32(&r), 0);
    ipc_get_str(&r, s1, sizeof(s1));
    assert_string_equal(s1, "alice@example.org");
    assert_int_equal(ipc_get_u32(&r), UINT32_MAX);
    ipc_get_str(&r, s2, sizeof(s2));
    assert_string_equal(s2, "");
    ipc_get_str(&r, s3, sizeof(s3));
    assert_string_equal(s3, longstr);
    assert_int_equal(ipc_reader_end(&r), -1); /* one u32 still unread */
    assert_int_equal(ipc_get_u32(&r), 12345);
    assert_int_equal(ipc_reader_end(&r), 0);
    buf_free(&b);
}

/* u64 fields (the /metrics counters): every bit survives, a short one is refused. */
static void test_u64(void **state)
{
    struct buf b;
    struct ipc_reader r;
    uint32_t type, id;

    (void)state;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    assert_int_equal(ipc_put_u64(&b, UINT64_MAX - 1), 0);
    assert_int_equal(ipc_put_u64(&b, 0x0123456789abcdefULL), 0);
    assert_int_equal(buf_len(&b), 8 + 16);
    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    assert_true(ipc_get_u64(&r) == UINT64_MAX - 1);
    assert_true(ipc_get_u64(&r) == 0x0123456789abcdefULL);
    assert_int_equal(ipc_reader_end(&r), 0);
    /* Seven bytes are not a u64. */
    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), 8 + 8 + 7, &type, &id), 0);
    ipc_get_u64(&r);
    assert_true(ipc_get_u64(&r) == 0);
    assert_int_equal(ipc_reader_end(&r), -1);
    buf_free(&b);
}

static void test_begin_resets(void **state)
{
    struct buf b;
    struct ipc_reader r;
    uint32_t type, id;

    (void)state;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, 1, 1), 0);
    assert_int_equal(ipc_put_str(&b, "old content"), 0);
    assert_int_equal(ipc_begin(&b, 2, 3), 0);
    assert_int_equal(buf_len(&b), 8);
    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    assert_int_equal(type, 2);
    assert_int_equal(id, 3);
    assert_int_equal(ipc_reader_end(&r), 0);
    buf_free(&b);
}

static void test_short_header(void **state)
{
    struct ipc_reader r;
    uint32_t type = 99, id = 99;
    unsigned char msg[8] = { 1, 0, 0, 0, 2, 0, 0, 0 };

    (void)state;
    for (size_t len = 0; len < 8; len++) {
        assert_int_equal(ipc_reader_init(&r, msg, len, &type, &id), -1);
        assert_int_equal(ipc_reader_end(&r), -1);
    }
    assert_int_equal(ipc_reader_init(&r, msg, 8, &type, &id), 0);
    assert_int_equal(type, 1);
    assert_int_equal(id, 2);
    assert_int_equal(ipc_reader_end(&r), 0);
}

static void test_read_past_end(void **state)
{
    struct buf b;
    struct ipc_reader r;
    uint32_t type, id;
    char s[16] = "junk";

    (void)state;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    assert_int_equal(ipc_put_u32(&b, 5), 0);

    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    assert_int_equal(ipc_get_u32(&r), 5);
    assert_int_equal(ipc_get_u32(&r), 0); /* nothing left */
    assert_int_equal(ipc_reader_end(&r), -1);

    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    assert_int_equal(ipc_get_u32(&r), 5);
    ipc_get_str(&r, s, sizeof(s));
    assert_string_equal(s, ""); /* cleared even on failure */
    assert_int_equal(ipc_reader_end(&r), -1);

    /* A u32 cut short: 3 of 4 bytes. */
    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b) - 1, &type, &id), 0);
    assert_int_equal(ipc_get_u32(&r), 0);
    assert_int_equal(ipc_reader_end(&r), -1);
    buf_free(&b);
}

static void test_string_truncated_in_message(void **state)
{
    struct buf b;
    struct ipc_reader r;
    uint32_t type, id;
    char s[64];

    (void)state;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    assert_int_equal(ipc_put_str(&b, "abcdef"), 0);
    /* every cut inside the string field (length or bytes) is invalid */
    for (size_t cut = 1; cut <= 8; cut++) {
        assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b) - cut, &type, &id), 0);
        strcpy(s, "junk");
        ipc_get_str(&r, s, sizeof(s));
        assert_string_equal(s, "");
        assert_int_equal(ipc_reader_end(&r), -1);
    }
    buf_free(&b);
}

static void test_string_too_long_for_caller(void **state)
{
    struct buf b;
    struct ipc_reader r;
    uint32_t type, id;
    char s[8];

    (void)state;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    assert_int_equal(ipc_put_str(&b, "1234567"), 0); /* 7: fits in 8 */
    assert_int_equal(ipc_put_str(&b, "12345678"), 0); /* 8: needs 9 */
    assert_int_equal(ipc_put_u32(&b, 77), 0);

    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    ipc_get_str(&r, s, sizeof(s));
    assert_string_equal(s, "1234567");
    assert_int_equal(ipc_reader_end(&r), -1);
    memset(s, 'x', sizeof(s));
    ipc_get_str(&r, s, sizeof(s));
    assert_int_equal(s[0], '\0');
    assert_int_equal(ipc_reader_end(&r), -1);
    /* once bad, stays bad: the following u32 is not read */
    assert_int_equal(ipc_get_u32(&r), 0);
    assert_int_equal(ipc_reader_end(&r), -1);

    /* outlen 0: nothing written, invalid */
    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    char guard = 'G';
    ipc_get_str(&r, &guard, 0);
    assert_int_equal(guard, 'G');
    assert_int_equal(ipc_reader_end(&r), -1);
    buf_free(&b);
}

static void test_nul_inside_string(void **state)
{
    struct buf b;
    struct ipc_reader r;
    uint32_t type, id;
    char s[32];

    (void)state;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    assert_int_equal(ipc_put_bytes(&b, "user\0root", 9), 0);
    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    ipc_get_str(&r, s, sizeof(s));
    assert_string_equal(s, "");
    assert_int_equal(ipc_reader_end(&r), -1);

    /* a NUL as the last byte of the string is just as bad */
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    assert_int_equal(ipc_put_bytes(&b, "abc\0", 4), 0);
    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    ipc_get_str(&r, s, sizeof(s));
    assert_int_equal(ipc_reader_end(&r), -1);

    /* put_bytes without NUL reads back as a string */
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    assert_int_equal(ipc_put_bytes(&b, "abcXYZ", 3), 0);
    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    ipc_get_str(&r, s, sizeof(s));
    assert_string_equal(s, "abc");
    assert_int_equal(ipc_reader_end(&r), 0);
    buf_free(&b);
}

static void test_trailing_bytes(void **state)
{
    struct buf b;
    struct ipc_reader r;
    uint32_t type, id;

    (void)state;
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    assert_int_equal(ipc_put_u32(&b, 10), 0);
    assert_int_equal(buf_append(&b, "x", 1), 0); /* one stray byte */
    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    assert_int_equal(ipc_get_u32(&r), 10);
    assert_int_equal(ipc_reader_end(&r), -1);

    /* a header-only message with a trailing byte */
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    assert_int_equal(buf_append(&b, "\0", 1), 0);
    assert_int_equal(ipc_reader_init(&r, buf_rptr(&b), buf_len(&b), &type, &id), 0);
    assert_int_equal(ipc_reader_end(&r), -1);
    buf_free(&b);
}

static void test_put_limits(void **state)
{
    struct buf b;
    static char big[70000];

    (void)state;
    memset(big, 'b', sizeof(big));
    buf_init(&b, 1 << 20);
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    errno = 0;
    assert_int_equal(ipc_put_bytes(&b, big, (size_t)UINT16_MAX + 1), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(buf_len(&b), 8); /* nothing half-written */
    assert_int_equal(ipc_put_bytes(&b, big, UINT16_MAX), 0);
    assert_int_equal(buf_len(&b), 8 + 2 + UINT16_MAX);
    buf_free(&b);

    /* the buffer's limit bounds a message */
    buf_init(&b, 16);
    assert_int_equal(ipc_begin(&b, 1, 2), 0);
    assert_int_equal(ipc_put_u32(&b, 1), 0);
    errno = 0;
    assert_int_equal(ipc_put_str(&b, "0123456789"), -1);
    assert_int_equal(errno, ENOBUFS);
    buf_free(&b);
}

static void test_send_recv(void **state)
{
    int sv[2];
    struct buf b;
    unsigned char msg[IPC_MAX_MESSAGE];
    struct ipc_reader r;
    uint32_t type, id;
    char s[64];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    buf_init(&b, IPC_MAX_MESSAGE);

    /* nothing queued: -1/EAGAIN (recv is non-blocking) */
    errno = 0;
    assert_int_equal(ipc_recv(sv[1], msg, sizeof(msg)), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);

    /* two messages stay two messages */
    assert_int_equal(ipc_begin(&b, 10, 1), 0);
    assert_int_equal(ipc_put_str(&b, "bob"), 0);
    assert_int_equal(ipc_send(sv[0], &b), 0);
    assert_int_equal(ipc_begin(&b, 11, 2), 0);
    assert_int_equal(ipc_put_u32(&b, 4242), 0);
    assert_int_equal(ipc_send(sv[0], &b), 0);

    ssize_t n = ipc_recv(sv[1], msg, sizeof(msg));
    assert_int_equal(n, 8 + 2 + 3);
    assert_int_equal(ipc_reader_init(&r, msg, (size_t)n, &type, &id), 0);
    assert_int_equal(type, 10);
    assert_int_equal(id, 1);
    ipc_get_str(&r, s, sizeof(s));
    assert_string_equal(s, "bob");
    assert_int_equal(ipc_reader_end(&r), 0);

    n = ipc_recv(sv[1], msg, sizeof(msg));
    assert_int_equal(n, 12);
    assert_int_equal(ipc_reader_init(&r, msg, (size_t)n, &type, &id), 0);
    assert_int_equal(type, 11);
    assert_int_equal(id, 2);
    assert_int_equal(ipc_get_u32(&r), 4242);
    assert_int_equal(ipc_reader_end(&r), 0);

    /* EOF */
    close(sv[0]);
    assert_int_equal(ipc_recv(sv[1], msg, sizeof(msg)), 0);
    close(sv[1]);
    buf_free(&b);
}

static void test_recv_truncation(void **state)
{
    int sv[2];
    struct buf b;
    unsigned char msg[64];
    char s[64];

    (void)state;
    memset(s, 'T', 40);
    s[40] = '\0';
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, 1, 1), 0);
    assert_int_equal(ipc_put_str(&b, s), 0); /* 50 bytes */
    assert_int_equal(ipc_send(sv[0], &b), 0);
    assert_int_equal(ipc_begin(&b, 2, 2), 0);
    assert_int_equal(ipc_send(sv[0], &b), 0); /* 8 bytes */

    errno = 0;
    assert_int_equal(ipc_recv(sv[1], msg, 49), -1);
    assert_int_equal(errno, EMSGSIZE);
    /* the truncated message is gone; the next one arrives whole */
    ssize_t n = ipc_recv(sv[1], msg, sizeof(msg));
    assert_int_equal(n, 8);
    struct ipc_reader r;
    uint32_t type, id;
    assert_int_equal(ipc_reader_init(&r, msg, (size_t)n, &type, &id), 0);
    assert_int_equal(type, 2);

    /* exactly the message's size is not truncation */
    assert_int_equal(ipc_begin(&b, 3, 3), 0);
    assert_int_equal(ipc_put_str(&b, s), 0);
    assert_int_equal(ipc_send(sv[0], &b), 0);
    assert_int_equal(ipc_recv(sv[1], msg, 50), 50);

    close(sv[0]);
    close(sv[1]);
    buf_free(&b);
}

static void test_send_errors(void **state)
{
    int sv[2];
    struct buf b;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    buf_init(&b, IPC_MAX_MESSAGE);
    assert_int_equal(ipc_begin(&b, 1, 1), 0);
    close(sv[1]);
    /* peer gone: EPIPE, and no SIGPIPE kills us (MSG_NOSIGNAL) */
    errno = 0;
    assert_int_equal(ipc_send(sv[0], &b), -1);
    assert_int_equal(errno, EPIPE);
    close(sv[0]);

    /* a full socket: EAGAIN, not blocking */
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    int rc = 0;
    int i;
    for (i = 0; i < 100000; i++) {
        rc = ipc_send(sv[0], &b);
        if (rc == -1)
            break;
    }
    assert_int_equal(rc, -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    assert_true(i > 0);
    close(sv[0]);
    close(sv[1]);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_begin_resets),
        cmocka_unit_test(test_short_header),
        cmocka_unit_test(test_read_past_end),
        cmocka_unit_test(test_string_truncated_in_message),
        cmocka_unit_test(test_string_too_long_for_caller),
        cmocka_unit_test(test_nul_inside_string),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_put_limits),
        cmocka_unit_test(test_send_recv),
        cmocka_unit_test(test_recv_truncation),
        cmocka_unit_test(test_send_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
