#include "daemon/runtime/trusted_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *user_name(uid_t uid, char *buf, size_t len)
{
    struct passwd *pw = getpwuid(uid);
    if (pw != NULL)
        snprintf(buf, len, "%s", pw->pw_name);
    else
        snprintf(buf, len, "%u", (unsigned)uid);
    return buf;
}

int trusted_dir_open(const char *path, const char *what, uid_t owner, char *err,
                     size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        close(fd);
        return -1;
    }
    /*
     * Whoever else may write here can swap any name root uses for a
     * symlink to a file of root's; the sticky bit does not stop a planted
     * name, so it is no excuse.
     */
    if (st.st_uid != owner || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        char name[64];
        user_name(owner, name, sizeof(name));
        snprintf(err, errlen,
                 "%s %s is owned by uid %u with mode %04o; it must belong to %s and not be "
                 "writable by group or others: chown %s %s && chmod go-w %s",
                 what, path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), name, name,
                 path, path);
        close(fd);
        errno = EPERM;
        return -1;
    }
    return fd;
}

int trusted_dir_make(const char *path, const char *what, uid_t owner, char *err,
                     size_t errlen)
{
    if (mkdir(path, 0755) == -1 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    int fd = trusted_dir_open(path, what, owner, err, errlen);
    if (fd == -1)
        return -1;
    close(fd);
    return 0;
}

int trusted_dir_give(int parent_fd, const char *name, mode_t mode, uid_t uid, gid_t gid)
{
    struct stat st;
    if (mkdirat(parent_fd, name, mode & 0777) == -1 && errno != EEXIST)
        return -1;
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1)
        return -1;
    /*
     * Mode first, while the directory may still be root's: changing the
     * mode of someone else's needs CAP_FOWNER, which a hardened unit may
     * not grant. (A chown keeps a directory's setgid bit.)
     */
    int rc = fstat(fd, &st);
    if (rc == 0 && (st.st_mode & 07777) != mode)
        rc = fchmod(fd, mode);
    if (rc == 0 && geteuid() == 0 && (st.st_uid != uid || st.st_gid != gid))
        rc = fchown(fd, uid, gid);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int file_set_mode_nofollow(int dir_fd, const char *name, mode_t mode)
{
    struct stat st;
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1)
        return errno == ENOENT ? 0 : -1;
    int rc = fstat(fd, &st);
    if (rc == 0 && (!S_ISREG(st.st_mode) || st.st_uid != geteuid())) {
        errno = EPERM;
        rc = -1;
    }
    if (rc == 0 && (st.st_mode & 07777) != mode)
        rc = fchmod(fd, mode);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
