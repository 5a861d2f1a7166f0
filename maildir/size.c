#include "maildir/size.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

enum { SIZE_CHUNK = 64 * 1024 };

void maildir_size_init(struct maildir_size *sz)
{
    sz->octets = 0;
    sz->last = -1;
}

void maildir_size_feed(struct maildir_size *sz, const char *p, size_t n)
{
    const char *end = p + n;
    int prev = sz->last;

    if (n == 0)
        return;
    sz->octets += n;
    for (const char *lf = memchr(p, '\n', n); lf != NULL;
         lf = memchr(lf + 1, '\n', (size_t)(end - lf - 1))) {
        int before = lf > p ? (unsigned char)lf[-1] : prev;
        if (before != '\r')
            sz->octets++;
    }
    sz->last = (unsigned char)end[-1];
}

uint64_t maildir_size_result(const struct maildir_size *sz)
{
    if (sz->last == -1 || sz->last == '\n')
        return sz->octets;
    return sz->octets + (sz->last == '\r' ? 1 : 2);
}

int maildir_size_fd(int fd, uint64_t *size)
{
    char chunk[SIZE_CHUNK];
    struct maildir_size sz;
    off_t off = 0;

    maildir_size_init(&sz);
    for (;;) {
        ssize_t n = pread(fd, chunk, sizeof(chunk), off);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return -1;
        if (n == 0)
            break;
        maildir_size_feed(&sz, chunk, (size_t)n);
        off += n;
    }
    *size = maildir_size_result(&sz);
    return 0;
}
