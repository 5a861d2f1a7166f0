#include "maildir/shared_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/runtime/config.h"

/* What a lock file holds; longer files are not ours to judge. */
#define LOCK_TEXT_MAX 160

struct lock_owner {
    char host[CONFIG_HOST_NAME_MAX + 1];
    long pid;
    char token[17];
};

static int lock_path(const char *root, const char *name, char *out, size_t len)
{
    int n = snprintf(out, len, "%s/%s", root, name);
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static int new_token(char token[17])
{
    uint64_t v;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        return -1;
    snprintf(token, 17, "%016" PRIx64, v);
    return 0;
}

/* "fastpop-lock 1 host=H pid=P token=T\n"; -1 when it is not that. */
static int parse_owner(const char *text, struct lock_owner *o)
{
    char host[CONFIG_HOST_NAME_MAX + 2];
    char token[18];
    long pid;
    int used = 0;
    if (sscanf(text, "fastpop-lock 1 host=%65s pid=%ld token=%17s%n", host, &pid, token,
               &used) != 3 || used == 0)
        return -1;
    if (!config_host_name_valid(host) || strlen(token) != 16 || pid <= 0 || pid > INT_MAX)
        return -1;
    memcpy(o->host, host, strlen(host) + 1);
    memcpy(o->token, token, 17);
    o->pid = pid;
    return 0;
}

/*
 * Open and read the lock; open() makes an NFS client fetch fresh
 * attributes. Returns 0 with *st (and *o when the text parses, else
 * o->pid = 0), or -1 with errno (ENOENT: no lock).
 */
static int read_lock(const char *path, struct stat *st, struct lock_owner *o)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd == -1)
        return -1;
    char text[LOCK_TEXT_MAX + 1];
    ssize_t n = -1;
    if (fstat(fd, st) == 0)
        n = read(fd, text, LOCK_TEXT_MAX);
    int saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        return -1;
    }
    text[n] = '\0';
    memset(o, 0, sizeof(*o));
    if (!S_ISREG(st->st_mode) || parse_owner(text, o) == -1)
        o->pid = 0;
    return 0;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Age of the lock by the file server's clock: now is the mtime of a file just made. */
static int is_stale(const struct stat *lock, const struct lock_owner *o, const char *host,
                    const struct stat *now, int stale_seconds)
{
    if (o->pid > 0 && strcmp(o->host, host) == 0 && kill((pid_t)o->pid, 0) == -1 &&
        errno == ESRCH)
        return 1;
    return (int64_t)now->st_mtim.tv_sec - (int64_t)lock->st_mtim.tv_sec > stale_seconds;
}

/*
 * Move the stale lock aside and remove it, if the file renamed is the one
 * judged stale; a fresh lock renamed by a race is put back. Returns 0 when
 * the name is free to take.
 */
static int break_stale(const char *root, const char *path, const struct stat *judged,
                       const char *token)
{
    char aside[PATH_MAX];
    char name[64];
    snprintf(name, sizeof(name), ".%s.stale.%s", SHARED_LOCK_NAME, token);
    if (lock_path(root, name, aside, sizeof(aside)) == -1 || rename(path, aside) == -1)
        return -1;
    struct stat st;
    if (lstat(aside, &st) == 0 && !same_file(&st, judged)) {
        /* Someone took over between our look and the rename: give it back. */
        if (link(aside, path) == 0)
            unlink(aside);
        errno = EBUSY;
        return -1;
    }
    unlink(aside);
    return 0;
}

/* link(2) on NFS may succeed with a lost reply: the link count tells. */
static int link_lock(const char *mine, const char *path)
{
    if (link(mine, path) == 0)
        return 0;
    int saved = errno;
    struct stat st;
    if (saved != EEXIST && lstat(mine, &st) == 0 && st.st_nlink == 2)
        return 0;
    errno = saved;
    return -1;
}

static int make_own_file(const char *path, const char *host, pid_t pid, const char *token,
                         struct stat *st)
{
    char text[LOCK_TEXT_MAX];
    int len = snprintf(text, sizeof(text), "fastpop-lock 1 host=%s pid=%ld token=%s\n", host,
                       (long)pid, token);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd == -1)
        return -1;
    int rc = write(fd, text, (size_t)len) == len && fstat(fd, st) == 0 ? 0 : -1;
    int saved = errno;
    if (close(fd) == -1 && rc == 0) {
        saved = errno;
        rc = -1;
    }
    errno = saved;
    return rc;
}

static void describe(const struct lock_owner *o, char *holder, size_t len)
{
    if (holder == NULL || len == 0)
        return;
    if (o->pid > 0)
        snprintf(holder, len, "%s %ld", o->host, o->pid);
    else
        snprintf(holder, len, "unknown");
}

int shared_lock_acquire(const char *root, const char *host, pid_t pid, int stale_seconds,
                        struct shared_lock *lk, char *holder, size_t holder_len)
{
    char path[PATH_MAX], mine[PATH_MAX], name[128];
    struct stat own, st;
    memset(lk, 0, sizeof(*lk));
    if (!config_host_name_valid(host)) {
        errno = EINVAL;
        return -1;
    }
    if (new_token(lk->token) == -1)
        return -1;
    snprintf(name, sizeof(name), ".%s.%s.%ld.%s", SHARED_LOCK_NAME, host, (long)pid, lk->token);
    if (lock_path(root, SHARED_LOCK_NAME, path, sizeof(path)) == -1 ||
        lock_path(root, name, mine, sizeof(mine)) == -1)
        return -1;
    if (make_own_file(mine, host, pid, lk->token, &own) == -1) {
        int saved = errno;
        unlink(mine);
        errno = saved;
        return -1;
    }
    /* Two tries: the second after breaking a stale lock. */
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (link_lock(mine, path) == 0) {
            rc = 0;
            break;
        }
        if (errno != EEXIST)
            break;
        struct lock_owner o;
        if (read_lock(path, &st, &o) == -1) {
            if (errno == ENOENT)
                continue;   /* released meanwhile */
            break;
        }
        if (attempt == 1 || !is_stale(&st, &o, host, &own, stale_seconds)) {
            describe(&o, holder, holder_len);
            errno = EBUSY;
            break;
        }
        if (break_stale(root, path, &st, lk->token) == -1) {
            describe(&o, holder, holder_len);
            errno = EBUSY;
            break;
        }
    }
    int saved = errno;
    unlink(mine);
    if (rc == 0) {
        lk->dev = own.st_dev;
        lk->ino = own.st_ino;
        lk->held = 1;
    }
    errno = saved;
    return rc;
}

int shared_lock_held(const char *root, struct shared_lock *lk)
{
    char path[PATH_MAX];
    struct stat st;
    struct lock_owner o;
    if (!lk->held)
        return 0;
    if (lock_path(root, SHARED_LOCK_NAME, path, sizeof(path)) == -1)
        return 0;
    if (read_lock(path, &st, &o) == -1 || st.st_dev != lk->dev || st.st_ino != lk->ino ||
        o.pid == 0 || strcmp(o.token, lk->token) != 0) {
        lk->held = 0;
        return 0;
    }
    return 1;
}

int shared_lock_refresh(const char *root, struct shared_lock *lk)
{
    char path[PATH_MAX];
    if (!shared_lock_held(root, lk)) {
        errno = ENOLCK;
        return -1;
    }
    if (lock_path(root, SHARED_LOCK_NAME, path, sizeof(path)) == -1)
        return -1;
    return utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW);
}

void shared_lock_release(const char *root, struct shared_lock *lk)
{
    char path[PATH_MAX];
    if (!shared_lock_held(root, lk))
        return;
    if (lock_path(root, SHARED_LOCK_NAME, path, sizeof(path)) == 0)
        unlink(path);
    lk->held = 0;
}
