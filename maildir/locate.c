#include "maildir/locate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "maildir/filename.h"

int maildir_open_cur(const char *root, int *curfd)
{
    char path[PATH_MAX];

    if ((size_t)snprintf(path, sizeof(path), "%s/cur", root) >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    *curfd = fd;
    return 0;
}

int maildir_locate(int curfd, const char *unique, size_t unique_len, char *name,
                   size_t namesz)
{
    /* fdopendir() owns its fd and shares the offset: give it a fresh one. */
    int fd = openat(curfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }

    int rc = -1;
    int err = ENOENT;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(dir)) != NULL) {
        const char *d = de->d_name;
        if (d[0] == '.' || maildir_unique_len(d) != unique_len ||
            memcmp(d, unique, unique_len) != 0)
            continue;
        size_t len = strlen(d);
        if (len >= namesz) {
            err = ERANGE;
        } else {
            memcpy(name, d, len + 1);
            rc = 0;
        }
        break;
    }
    if (de == NULL && errno != 0)
        err = errno;
    closedir(dir);
    if (rc == -1)
        errno = err;
    return rc;
}
