#include "maildir/expunge.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir/filename.h"
#include "maildir/locate.h"
#include "maildir/scan.h"

/* Each retry follows a rename by someone else; 4 in a row means churn. */
enum { RENAME_TRIES = 4 };

int maildir_expunge(int curfd, const char *name, int *removed)
{
    char cur[NAME_MAX + 1];
    size_t ulen = maildir_unique_len(name);
    const char *try = name;

    *removed = 0;
    for (int i = 0; i < RENAME_TRIES; i++) {
        if (unlinkat(curfd, try, 0) == 0) {
            *removed = try == name ? 1 : 2;
            return 0;
        }
        if (errno != ENOENT)
            return -1;
        if (maildir_locate(curfd, name, ulen, cur, sizeof(cur)) == -1)
            return errno == ENOENT ? 0 : -1;
        try = cur;
    }
    errno = EAGAIN;
    return -1;
}

int maildir_add_flag(int curfd, const char *name, char flag, char *newname,
                     size_t newsz)
{
    char cur[NAME_MAX + 1];
    size_t ulen = maildir_unique_len(name);
    const char *try = name;

    for (int i = 0; i < RENAME_TRIES; i++) {
        if (maildir_name_with_flag(try, flag, newname, newsz) == -1)
            return -1;
        if (strcmp(try, newname) == 0) {
            /* Nothing to rename, but the file must still be there. */
            struct stat sb;
            if (fstatat(curfd, try, &sb, AT_SYMLINK_NOFOLLOW) == 0)
                return 0;
        } else if (maildir_rename_noreplace(curfd, try, curfd, newname) == 0) {
            return 0;
        } else if (errno == EEXIST) {
            /*
             * Some other file has that name: the flag is not worth its loss.
             * The message stays unflagged under the name it has now.
             */
            if (strlen(try) >= newsz) {
                errno = ERANGE;
                return -1;
            }
            memmove(newname, try, strlen(try) + 1);
            return 0;
        }
        if (errno != ENOENT)
            return -1;
        if (maildir_locate(curfd, name, ulen, cur, sizeof(cur)) == -1) {
            if (errno != ENOENT)
                return -1;
            newname[0] = '\0';
            return 0;
        }
        try = cur;
    }
    errno = EAGAIN;
    return -1;
}
