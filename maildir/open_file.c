#include "maildir/open_file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int maildir_open_file(int dirfd, const char *name, struct stat *st)
{
    struct stat own;
    struct stat *sb = st != NULL ? st : &own;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    if (fstat(fd, sb) == -1 || !S_ISREG(sb->st_mode)) {
        int saved = S_ISREG(sb->st_mode) ? errno : ENOTSUP;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}
