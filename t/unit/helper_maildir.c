#include "t/unit/helper_maildir.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int join(char *out, const char *root, const char *rel)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", root, rel);
    return n < 0 || n >= PATH_MAX ? -1 : 0;
}

int tmd_make(char *path, int with_subdirs)
{
    static const char *const sub[] = { "cur", "new", "tmp" };
    char p[PATH_MAX];

    strcpy(path, "/tmp/fp-maildir-XXXXXX");
    if (mkdtemp(path) == NULL)
        return -1;
    for (size_t i = 0; with_subdirs && i < 3; i++) {
        if (join(p, path, sub[i]) == -1 || mkdir(p, 0700) == -1)
            return -1;
    }
    return 0;
}

int tmd_write(const char *root, const char *rel, const char *data, size_t len)
{
    char p[PATH_MAX];

    if (join(p, root, rel) == -1)
        return -1;
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1)
        return -1;
    ssize_t w = write(fd, data, len);
    close(fd);
    return w == (ssize_t)len ? 0 : -1;
}

int tmd_exists(const char *root, const char *rel)
{
    char p[PATH_MAX];
    struct stat sb;

    return join(p, root, rel) == 0 && lstat(p, &sb) == 0;
}

int tmd_set_mtime(const char *root, const char *rel, time_t t)
{
    char p[PATH_MAX];
    struct timespec ts[2] = { { t, 0 }, { t, 0 } };

    if (join(p, root, rel) == -1)
        return -1;
    return utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
}

int tmd_count(const char *root, const char *rel)
{
    char p[PATH_MAX];
    int n = 0;

    if (join(p, root, rel) == -1)
        return -1;
    DIR *dir = opendir(p);
    if (dir == NULL)
        return -1;
    for (struct dirent *de; (de = readdir(dir)) != NULL;)
        n += de->d_name[0] != '.';
    closedir(dir);
    return n;
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

int tmd_remove(const char *path)
{
    return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}
