/*
 * The helper's private directory and the secrets in it (see private_dir.h).
 */
#include "auth/private_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/credcache.h"

/* Ours, and nobody else's to read or write. */
static int private_enough(int fd, mode_t type)
{
    struct stat st;

    if (fstat(fd, &st) == -1)
        return -1;
    if ((st.st_mode & S_IFMT) != type || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

int private_dir_open(const char *state_dir)
{
    char path[PATH_MAX];

    if (snprintf(path, sizeof(path), "%s/%s/%s", state_dir, CREDCACHE_DIR, PRIVATE_DIR) >=
        (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (mkdir(path, 0700) == -1 && errno != EEXIST)
        return -1;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1)
        return -1;
    if (private_enough(fd, S_IFDIR) == -1) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int read_secret(int fd, unsigned char *out, size_t len)
{
    struct stat st;

    if (private_enough(fd, S_IFREG) == -1 || fstat(fd, &st) == -1)
        return -1;
    if (st.st_size != (off_t)len || pread(fd, out, len, 0) != (ssize_t)len) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static int write_secret(int dirfd, const char *name, const unsigned char *data, size_t len)
{
    char tmp[NAME_MAX];

    if (snprintf(tmp, sizeof(tmp), ".%s.new", name) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    (void)unlinkat(dirfd, tmp, 0);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd == -1)
        return -1;
    int rc = write(fd, data, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -1;
    int saved = errno;
    close(fd);
    /* In place only once complete: a crash leaves the old state, never half a key. */
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) == -1) {
        saved = errno;
        rc = -1;
    }
    if (rc == -1)
        (void)unlinkat(dirfd, tmp, 0);
    errno = saved;
    return rc;
}

int private_secret(int dirfd, const char *name, unsigned char *out, size_t len)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    if (fd >= 0) {
        int rc = read_secret(fd, out, len);
        int saved = errno;
        close(fd);
        errno = saved;
        return rc;
    }
    if (errno != ENOENT)
        return -1;
    if (getrandom(out, len, 0) != (ssize_t)len) {
        errno = EIO;
        return -1;
    }
    if (write_secret(dirfd, name, out, len) == -1) {
        explicit_bzero(out, len);
        return -1;
    }
    return fsync(dirfd) == 0 || errno == EINVAL ? 0 : -1;
}
