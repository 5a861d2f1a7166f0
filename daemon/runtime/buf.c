#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_MIN_ALLOC 256

void buf_init(struct buf *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->size = b->rpos = b->wpos = 0;
    b->discarding = 0;
}

void buf_reset(struct buf *b)
{
    b->rpos = b->wpos = 0;
    b->discarding = 0;
}

void buf_shrink_if_empty(struct buf *b)
{
    if (b->rpos == b->wpos && b->data != NULL) {
        free(b->data);
        b->data = NULL;
        b->size = b->rpos = b->wpos = 0;
    }
}

size_t buf_len(const struct buf *b) { return b->wpos - b->rpos; }
/*
 * An empty buffer may own no memory at all (idle connections give theirs
 * back); NULL + 0 is undefined in C, so such a buffer points at a shared
 * empty string instead. Nothing is ever written there: its avail is 0.
 */
static char no_data[1];
char *buf_rptr(const struct buf *b) { return b->data ? b->data + b->rpos : no_data; }
char *buf_wptr(const struct buf *b) { return b->data ? b->data + b->wpos : no_data; }
size_t buf_avail(const struct buf *b) { return b->size - b->wpos; }

void buf_consume(struct buf *b, size_t n)
{
    if (n > buf_len(b))
        n = buf_len(b);
    b->rpos += n;
    if (b->rpos == b->wpos)
        b->rpos = b->wpos = 0;
}

void buf_truncate(struct buf *b, size_t len)
{
    if (len < buf_len(b))
        b->wpos = b->rpos + len;
}

void buf_commit(struct buf *b, size_t n)
{
    if (n > buf_avail(b))
        n = buf_avail(b);
    b->wpos += n;
}

int buf_reserve(struct buf *b, size_t n)
{
    size_t used = buf_len(b);

    if (buf_avail(b) >= n)
        return 0;
    if (used > b->limit || n > b->limit - used) {
        errno = ENOBUFS;
        return -1;
    }
    /* Sliding the unread bytes to the front is cheaper than growing. */
    if (b->rpos > 0 && b->size - used >= n) {
        memmove(b->data, b->data + b->rpos, used);
        b->rpos = 0;
        b->wpos = used;
        return 0;
    }
    size_t want = b->size ? b->size : BUF_MIN_ALLOC;
    while (want < used + n)
        want *= 2;
    if (want > b->limit)
        want = b->limit;
    char *p = malloc(want);
    if (p == NULL)
        return -1;
    if (used)
        memcpy(p, b->data + b->rpos, used);
    free(b->data);
    b->data = p;
    b->size = want;
    b->rpos = 0;
    b->wpos = used;
    return 0;
}

int buf_append(struct buf *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;
    if (buf_reserve(b, n) == -1)
        return -1;
    memcpy(b->data + b->wpos, src, n);
    b->wpos += n;
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list copy;
    char small[256];

    va_copy(copy, ap);
    int n = vsnprintf(small, sizeof(small), fmt, copy);
    va_end(copy);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(small))
        return buf_append(b, small, (size_t)n);
    /* vsnprintf needs room for a NUL the buffer must not count against its limit. */
    char *big = malloc((size_t)n + 1);
    if (big == NULL)
        return -1;
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    int rc = buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

enum buf_line buf_getline(struct buf *b, size_t maxlen, char **line, size_t *len)
{
    for (;;) {
        char *start = buf_rptr(b);
        size_t have = buf_len(b);
        char *lf = have ? memchr(start, '\n', have) : NULL;

        if (b->discarding) {
            if (lf == NULL) {
                buf_consume(b, have);
                return BUF_LINE_NONE;
            }
            buf_consume(b, (size_t)(lf - start) + 1);
            b->discarding = 0;
            continue;
        }
        if (lf == NULL) {
            /* Over maxlen is too long at once, unless the one extra byte is a CR
             * whose LF has not arrived yet. */
            if (have > maxlen && (have - maxlen > 1 || start[have - 1] != '\r')) {
                buf_consume(b, have);
                b->discarding = 1;
                return BUF_LINE_TOOLONG;
            }
            return BUF_LINE_NONE;
        }
        size_t n = (size_t)(lf - start);
        buf_consume(b, n + 1);
        if (n > 0 && start[n - 1] == '\r')
            n--;
        if (n > maxlen)
            return BUF_LINE_TOOLONG;
        start[n] = '\0';
        *line = start;
        *len = n;
        return BUF_LINE_OK;
    }
}

ssize_t buf_read_fd(struct buf *b, int fd, size_t max)
{
    if (buf_reserve(b, max) == -1) {
        /* Near the limit: read what still fits, if anything. */
        size_t room = b->limit - buf_len(b);
        if (room == 0 || buf_reserve(b, room) == -1)
            return -1;
        max = room;
    }
    ssize_t n = read(fd, buf_wptr(b), max);
    if (n > 0)
        b->wpos += (size_t)n;
    return n;
}

ssize_t buf_write_fd(struct buf *b, int fd)
{
    size_t n = buf_len(b);
    if (n == 0)
        return 0;
    ssize_t w = write(fd, buf_rptr(b), n);
    if (w > 0)
        buf_consume(b, (size_t)w);
    return w;
}
