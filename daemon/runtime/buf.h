/*
 * The one buffer type of fastpop: a byte region with a read and a write
 * position. Sockets, TLS, the RETR streamer and IPC all fill and drain it.
 *
 * All functions return 0 (or a count) on success and -1 on failure with
 * errno set; none of them log.
 *
 * Caveats:
 *  - Pointers from buf_rptr(), buf_wptr() and buf_getline() stay valid only
 *    until the next call that may move data (buf_reserve, buf_append,
 *    buf_printf, buf_compact, buf_read_fd).
 *  - A buffer never grows past its limit; buf_reserve() fails with ENOBUFS.
 */
#ifndef FASTPOP_BUF_H
#define FASTPOP_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

struct buf {
    char  *data;
    size_t size;       /* bytes allocated */
    size_t rpos;       /* first unread byte */
    size_t wpos;       /* first free byte */
    size_t limit;      /* size never exceeds this */
    int    discarding; /* getline: dropping the rest of an over-long line */
};

/* Results of buf_getline(). */
enum buf_line {
    BUF_LINE_NONE = 0,    /* no complete line yet */
    BUF_LINE_OK = 1,      /* line and len set, NUL-terminated, CR and LF removed */
    BUF_LINE_TOOLONG = 2, /* a line exceeded maxlen; it is (being) discarded */
};

/* No memory is allocated until the first write. */
void   buf_init(struct buf *b, size_t limit);
void   buf_free(struct buf *b);
/* Drop all content but keep the allocation. */
void   buf_reset(struct buf *b);
/* Release the allocation if the buffer is empty: idle connections hold nothing. */
void   buf_shrink_if_empty(struct buf *b);

size_t buf_len(const struct buf *b);
char  *buf_rptr(const struct buf *b);
void   buf_consume(struct buf *b, size_t n);
/* Keep only the first len unread bytes (drop what was appended after them). */
void   buf_truncate(struct buf *b, size_t len);

/* Make at least n contiguous bytes writable at buf_wptr(); -1/ENOBUFS over limit. */
int    buf_reserve(struct buf *b, size_t n);
char  *buf_wptr(const struct buf *b);
size_t buf_avail(const struct buf *b);   /* writable bytes at buf_wptr() now */
void   buf_commit(struct buf *b, size_t n);

int    buf_append(struct buf *b, const void *src, size_t n);
int    buf_puts(struct buf *b, const char *s);
int    buf_printf(struct buf *b, const char *fmt, ...)
           __attribute__((format(printf, 2, 3)));
int    buf_vprintf(struct buf *b, const char *fmt, va_list ap);

/*
 * Take the next line ending in LF (a preceding CR is removed). A line longer
 * than maxlen octets (without its line end) yields BUF_LINE_TOOLONG once and
 * is discarded up to and including its LF, even when the LF has not arrived
 * yet: the limit holds for partial lines too. The returned line may contain
 * NUL bytes; *len is exact.
 */
enum buf_line buf_getline(struct buf *b, size_t maxlen, char **line, size_t *len);

/* read(2) up to max bytes into the buffer: >0 bytes, 0 EOF, -1 error (EAGAIN too). */
ssize_t buf_read_fd(struct buf *b, int fd, size_t max);
/* write(2) buffered bytes: bytes written (maybe 0), -1 on error (EAGAIN too). */
ssize_t buf_write_fd(struct buf *b, int fd);

#endif
