/*
 * The exact POP3 size of a message: the octets RETR sends for it, before
 * dot-stuffing and without the terminating ".CRLF" (RFC 1939 LIST/STAT).
 * The rules are the streamer's (maildir/stream.h), byte for byte:
 *  - a LF not preceded by CR becomes CRLF (2 octets); CRLF stays 2 octets;
 *  - a CR not followed by LF is sent as is (1 octet);
 *  - a file not ending in LF gets an end of line: CRLF after an ordinary
 *    byte (+2), a lone LF after a final CR, which is taken as a CRLF cut
 *    short (+1);
 *  - an empty file is 0 octets.
 */
#ifndef FASTPOP_MAILDIR_SIZE_H
#define FASTPOP_MAILDIR_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Incremental counter; feed the file in chunks of any size. */
struct maildir_size {
    uint64_t octets; /* so far, without the end-of-file adjustment */
    int      last;   /* last byte fed, -1 before any */
};

void     maildir_size_init(struct maildir_size *sz);
void     maildir_size_feed(struct maildir_size *sz, const char *p, size_t n);
/* The size of everything fed so far, as if the file ended there. */
uint64_t maildir_size_result(const struct maildir_size *sz);

/*
 * Size of the whole file open on fd, read with pread() from offset 0 in
 * 64 KiB chunks (the file offset is left alone). Goes to *size.
 *
 * Returns 0, or -1 with errno from pread().
 * Caveats: a file being written concurrently gives whatever was read; the
 * 64 KiB buffer is on the stack.
 */
int maildir_size_fd(int fd, uint64_t *size);

#endif
