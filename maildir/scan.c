#include "maildir/scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir/filename.h"
#include "maildir/open_file.h"
#include "maildir/size.h"
#include "maildir/uidl.h"

/* Close without letting close() clobber the errno being returned. */
static void close_keep_errno(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
}

/* A DIR on a fresh fd for directory fd, which stays the caller's. */
/*
 * The end of a readdir loop: readdir's NULL with errno set is a failure
 * too (ended says the loop ran to that NULL). closedir keeps errno.
 */
static int close_listing(DIR *dir, int rc, int ended)
{
    if (rc == 0 && ended && errno != 0)
        rc = -1;
    int saved = errno;
    closedir(dir);
    errno = saved;
    return rc;
}

static DIR *open_dir_at(int dirfd, const char *path)
{
    int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1)
        return NULL;
    DIR *dir = fdopendir(fd);
    if (dir == NULL)
        close_keep_errno(fd);
    return dir;
}

int maildir_make_dirs(int rootfd)
{
    static const char *const sub[] = { "cur", "new", "tmp" };

    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        if (mkdirat(rootfd, sub[i], 0700) == -1 && errno != EEXIST)
            return -1;
    }
    return 0;
}

void maildir_clean_tmp(int rootfd, time_t now)
{
    DIR *dir = open_dir_at(rootfd, "tmp");
    struct dirent *de;
    struct stat sb;

    if (dir == NULL)
        return;
    int fd = dirfd(dir);
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == -1)
            continue;
        if (S_ISREG(sb.st_mode) && sb.st_mtime < now - MAILDIR_TMP_MAX_AGE)
            unlinkat(fd, de->d_name, 0);
    }
    closedir(dir);
}

/* rename() without replacing: a file already in cur/ is never lost. */
int maildir_rename_noreplace(int from, const char *old, int to, const char *new)
{
    if (renameat2(from, old, to, new, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* The file system cannot refuse to replace (old NFS): check, then rename. */
    struct stat sb;
    if (fstatat(to, new, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
        errno = EEXIST;
        return -1;
    }
    return renameat(from, old, to, new);
}

static int strings_add(struct maildir *md, const char *s, size_t len, uint32_t *off)
{
    size_t need = md->strings_len + len + 1;

    if (need > UINT32_MAX) {
        errno = EOVERFLOW;
        return -1;
    }
    if (need > md->strings_cap) {
        size_t cap = md->strings_cap ? md->strings_cap : 4096;
        while (cap < need)
            cap *= 2;
        char *p = realloc(md->strings, cap);
        if (p == NULL)
            return -1;
        md->strings = p;
        md->strings_cap = cap;
    }
    memcpy(md->strings + md->strings_len, s, len);
    md->strings[md->strings_len + len] = '\0';
    *off = (uint32_t)md->strings_len;
    md->strings_len = need;
    return 0;
}

/* Store name and, unless it is verbatim (the unique part), the UIDL. */
static int set_strings(struct maildir *md, struct maildir_msg *m, const char *name)
{
    char uidl[MAILDIR_UIDL_SIZE];
    size_t ulen = maildir_unique_len(name);
    size_t len;

    if (strings_add(md, name, strlen(name), &m->name_off) == -1)
        return -1;
    maildir_uidl(name, ulen, uidl, &len);
    m->unique_len = (uint16_t)ulen;
    m->uidl_len = (uint8_t)len;
    if (len == ulen && memcmp(uidl, name, len) == 0) {
        m->uidl_off = m->name_off;
        return 0;
    }
    return strings_add(md, uidl, len, &m->uidl_off);
}

/*
 * Size of a listed file, checking it is a regular file when readdir could
 * not tell. Returns 0, 1 when it is to be skipped (vanished, not a regular
 * file), 2 when it may not be opened (EACCES, EPERM), -1 on error.
 */
static int file_size(int curfd, const char *name, const struct maildir_name *pn,
                     uint64_t *size)
{
    int fd = maildir_open_file(curfd, name, NULL);
    if (fd == -1) {
        if (errno == EACCES || errno == EPERM)
            return 2;
        return errno == ENOENT || errno == ELOOP || errno == ENOTSUP ? 1 : -1;
    }
    int rc = 0;
    if (pn->has_size_w)
        *size = pn->size_w;
    else
        rc = maildir_size_fd(fd, size);
    if (rc == -1)
        close_keep_errno(fd);
    else
        close(fd);
    return rc;
}

/* maildir_set_max_messages(); 0 until set: no limit. */
static size_t max_messages;

void maildir_set_max_messages(size_t max)
{
    max_messages = max;
}

/* Room for one more message in md->msgs. */
static int grow_msgs(struct maildir *md)
{
    if (md->count < md->msgs_cap)
        return 0;
    size_t cap = md->msgs_cap ? md->msgs_cap * 2 : 64;
    struct maildir_msg *p = realloc(md->msgs, cap * sizeof(*p));
    if (p == NULL)
        return -1;
    md->msgs = p;
    md->msgs_cap = cap;
    return 0;
}

static int append_msg(struct maildir *md, const char *name, uint64_t size,
                      uint64_t timestamp)
{
    if (max_messages != 0 && md->count >= max_messages) {
        errno = E2BIG;
        return -1;
    }
    if (grow_msgs(md) == -1)
        return -1;
    struct maildir_msg *m = &md->msgs[md->count];
    memset(m, 0, sizeof(*m));
    m->size = size;
    m->timestamp = timestamp;
    if (set_strings(md, m, name) == -1)
        return -1;
    md->count++;
    md->total_size += size;
    return 0;
}

int maildir_add(struct maildir *md, const char *name, uint64_t size)
{
    struct maildir_name pn;

    if (maildir_unique_len(name) > UINT16_MAX) {
        errno = EOVERFLOW;
        return -1;
    }
    maildir_name_parse(name, &pn);
    return append_msg(md, name, size, pn.timestamp);
}

static int add_message(struct maildir *md, int dirfd, const char *name, unsigned char type,
                       maildir_size_lookup lookup, void *arg)
{
    struct maildir_name pn;
    uint64_t size;

    if (name[0] == '.' || (type != DT_REG && type != DT_UNKNOWN))
        return 0;
    maildir_name_parse(name, &pn);
    if (lookup != NULL && lookup(arg, name, pn.unique_len, &size) == 0) {
        /* Known from an earlier scan: no syscall at all. */
    } else if (pn.has_size_w && type == DT_REG) {
        size = pn.size_w; /* no syscall at all for Dovecot-style names */
    } else {
        int rc = file_size(dirfd, name, &pn, &size);
        if (rc == 2)
            md->unreadable++;
        if (rc != 0)
            return rc == -1 ? -1 : 0;
    }
    return append_msg(md, name, size, pn.timestamp);
}

/* d_type when the filesystem gives it, else an lstat (a vanished file is not one). */
static int is_regular(int dirfd, const struct dirent *de)
{
    if (de->d_type != DT_UNKNOWN)
        return de->d_type == DT_REG;
    struct stat sb;
    return fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode);
}

int maildir_move_new(int rootfd, int curfd, struct maildir *added, unsigned *moved,
                     unsigned *left, unsigned *vanished)
{
    DIR *dir = open_dir_at(rootfd, "new");
    struct dirent *de;
    char target[NAME_MAX + 1];
    unsigned gone = 0;
    int rc = 0;

    *moved = *left = 0;
    if (dir == NULL)
        return -1;
    errno = 0;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.' || !is_regular(dirfd(dir), de))
            continue; /* not a message: a directory, FIFO, socket or symlink stays */
        /* A name too long for ":2," moves as it is (cur/ names need no info). */
        if (maildir_name_for_cur(de->d_name, target, sizeof(target)) == -1)
            snprintf(target, sizeof(target), "%s", de->d_name);
        if (maildir_rename_noreplace(dirfd(dir), de->d_name, curfd, target) == -1) {
            /* Taken in cur/, or not ours to move (another owner's file): left. */
            if (errno == EEXIST || errno == EACCES || errno == EPERM)
                (*left)++;
            else if (errno == ENOENT)
                gone++;
            else {
                rc = -1;
                break;
            }
        } else {
            (*moved)++;
            /* The rename kept the file's type: d_type still describes it. */
            if (added != NULL &&
                add_message(added, curfd, target, de->d_type, NULL, NULL) == -1) {
                rc = -1;
                break;
            }
        }
        errno = 0;
    }
    if (vanished != NULL)
        *vanished = gone;
    return close_listing(dir, rc, de == NULL);
}

int maildir_list_dir(int dirfd, struct maildir *md, maildir_size_lookup lookup, void *arg)
{
    DIR *dir = open_dir_at(dirfd, ".");
    struct dirent *de;
    int rc = 0;

    if (dir == NULL)
        return -1;
    errno = 0;
    while ((de = readdir(dir)) != NULL) {
        if (add_message(md, dirfd, de->d_name, de->d_type, lookup, arg) == -1) {
            rc = -1;
            break;
        }
        errno = 0;
    }
    return close_listing(dir, rc, de == NULL);
}

/* courierpop3d compares names as (signed) char strings up to ':'. */
static int compare_signed(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;

    for (size_t i = 0; i < n; i++) {
        signed char ca = (signed char)a[i];
        signed char cb = (signed char)b[i];
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    return alen < blen ? -1 : alen > blen;
}

static int compare_msgs(const void *pa, const void *pb, void *arg)
{
    const struct maildir_msg *a = pa;
    const struct maildir_msg *b = pb;
    const char *strings = arg;
    const char *na = strings + a->name_off;
    const char *nb = strings + b->name_off;

    if (a->timestamp != b->timestamp)
        return a->timestamp < b->timestamp ? -1 : 1;
    int c = compare_signed(na, a->unique_len, nb, b->unique_len);
    return c != 0 ? c : strcmp(na, nb);
}

struct maildir *maildir_new(void)
{
    return calloc(1, sizeof(struct maildir));
}

/* Append message i of md to out as it is: name, size, order key and UIDL, none derived again. */
static int copy_msg(struct maildir *out, const struct maildir *md, size_t i)
{
    const struct maildir_msg *src = &md->msgs[i];
    const char *name = maildir_msg_name(md, i);
    if (grow_msgs(out) == -1)
        return -1;
    struct maildir_msg *m = &out->msgs[out->count];
    *m = *src;
    m->deleted = 0;
    m->seen_due = 0;
    if (strings_add(out, name, strlen(name), &m->name_off) == -1)
        return -1;
    /* A verbatim UIDL is the start of the name; a legacy or escaped one has its own bytes. */
    if (src->uidl_off == src->name_off)
        m->uidl_off = m->name_off;
    else if (strings_add(out, md->strings + src->uidl_off, src->uidl_len, &m->uidl_off) == -1)
        return -1;
    out->count++;
    out->total_size += m->size;
    return 0;
}

struct maildir *maildir_copy(const struct maildir *md, int skip_deleted)
{
    struct maildir *out = maildir_new();
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < md->count; i++) {
        if (skip_deleted && md->msgs[i].deleted)
            continue;
        if (copy_msg(out, md, i) == -1) {
            maildir_free(out);
            return NULL;
        }
    }
    maildir_trim(out);
    return out;
}

void maildir_trim(struct maildir *md)
{
    /* A logged-in session keeps its list for hours: keep no growth slack. */
    if (md->strings_cap > md->strings_len && md->strings_len > 0) {
        char *p = realloc(md->strings, md->strings_len);
        if (p != NULL) {
            md->strings = p;
            md->strings_cap = md->strings_len;
        }
    }
    if (md->msgs_cap > md->count && md->count > 0) {
        struct maildir_msg *p = realloc(md->msgs, md->count * sizeof(*p));
        if (p != NULL) {
            md->msgs = p;
            md->msgs_cap = md->count;
        }
    }
    if (md->count == 0) {
        free(md->strings);
        free(md->msgs);
        md->strings = NULL;
        md->msgs = NULL;
        md->strings_cap = md->strings_len = md->msgs_cap = 0;
    }
}

/* Sorted, files with one unique part are neighbours: keep the first of each run. */
static void drop_duplicates(struct maildir *md)
{
    size_t kept = 0;
    for (size_t i = 0; i < md->count; i++) {
        const struct maildir_msg *m = &md->msgs[i];
        if (kept > 0) {
            const struct maildir_msg *prev = &md->msgs[kept - 1];
            if (prev->unique_len == m->unique_len &&
                memcmp(md->strings + prev->name_off, md->strings + m->name_off,
                       m->unique_len) == 0) {
                md->total_size -= m->size;
                md->duplicates++;
                continue;
            }
        }
        md->msgs[kept++] = *m;
    }
    md->count = kept;
}

/* A list built from an index record plus a few new messages usually is in order already. */
static int is_sorted(const struct maildir *md)
{
    for (size_t i = 1; i < md->count; i++) {
        if (compare_msgs(&md->msgs[i - 1], &md->msgs[i], md->strings) > 0)
            return 0;
    }
    return 1;
}

void maildir_sort(struct maildir *md)
{
    if (md->count > 1) {
        if (!is_sorted(md))
            qsort_r(md->msgs, md->count, sizeof(md->msgs[0]), compare_msgs, md->strings);
        drop_duplicates(md);
    }
}

int maildir_scan(const char *root, time_t now, struct maildir **mdp)
{
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int curfd = -1;
    struct maildir *md = NULL;
    unsigned moved, left;

    if (rootfd == -1)
        return -1;
    if (maildir_make_dirs(rootfd) == -1)
        goto fail;
    curfd = openat(rootfd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (curfd == -1)
        goto fail;
    maildir_clean_tmp(rootfd, now);
    if (maildir_move_new(rootfd, curfd, NULL, &moved, &left, NULL) == -1)
        goto fail;
    md = maildir_new();
    if (md == NULL || maildir_list_dir(curfd, md, NULL, NULL) == -1)
        goto fail;
    md->stuck_in_new = left;
    maildir_sort(md);
    maildir_trim(md);
    close(curfd);
    close(rootfd);
    *mdp = md;
    return 0;

fail:
    maildir_free(md);
    if (curfd != -1)
        close_keep_errno(curfd);
    close_keep_errno(rootfd);
    return -1;
}

void maildir_free(struct maildir *md)
{
    if (md == NULL)
        return;
    int saved = errno;
    free(md->msgs);
    free(md->strings);
    free(md);
    errno = saved;
}

const char *maildir_msg_name(const struct maildir *md, size_t i)
{
    return md->strings + md->msgs[i].name_off;
}

const char *maildir_msg_uidl(const struct maildir *md, size_t i, size_t *len)
{
    *len = md->msgs[i].uidl_len;
    return md->strings + md->msgs[i].uidl_off;
}

int maildir_msg_rename(struct maildir *md, size_t i, const char *name)
{
    struct maildir_msg *m = &md->msgs[i];

    if (maildir_unique_len(name) != m->unique_len ||
        memcmp(name, maildir_msg_name(md, i), m->unique_len) != 0) {
        errno = EINVAL;
        return -1;
    }
    /* The old copy stays in the block: renames are rare within a session. */
    int verbatim = m->uidl_off == m->name_off;
    if (strings_add(md, name, strlen(name), &m->name_off) == -1)
        return -1;
    /* A verbatim UIDL is the start of the name: the new copy starts the same. */
    if (verbatim)
        m->uidl_off = m->name_off;
    return 0;
}

int maildir_set_uidl(struct maildir *md, size_t i, const char *uidl, size_t len)
{
    if (len == 0 || len > UINT16_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (strings_add(md, uidl, len, &md->msgs[i].uidl_off) == -1)
        return -1;
    md->msgs[i].uidl_len = (uint16_t)len;
    return 0;
}
