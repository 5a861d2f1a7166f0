#include "daemon/popctl/index_tool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <lmdb.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "maildir/filename.h"
#include "maildir/legacy.h"
#include "maildir/xuidl.h"
#include "shm/index.h"
#include "shm/index_sync.h"

/* Differences printed before "... and more": enough to see a pattern. */
enum { MAX_SHOWN = 20 };

static const char *const legacy_names[] = { "none", LEGACY_COURIER_FILE, LEGACY_DOVECOT_FILE };

/* For a UIDL-only read: no message is opened or stat'ed for its size. */
static int size_unknown(void *arg, const char *name, size_t unique_len, uint64_t *size)
{
    (void)arg;
    (void)name;
    (void)unique_len;
    *size = 0;
    return 0;
}

/*
 * The list a login would build now, without changing anything: cur/ and
 * new/ (under the cur/ name a login would give), every size counted
 * (unless uidls_only: then sizes are 0), legacy UIDLs applied. *lg_out
 * (may be NULL) gets the legacy list. The maildir, cur/ and new/ are opened
 * with O_NOFOLLOW: a symlink there is refused (ELOOP), never followed.
 */
int index_tool_read_truth(const char *root, int uidls_only, struct maildir **out,
                          struct legacy_list **lg_out)
{
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int curfd = -1, newfd = -1;
    struct maildir *md = maildir_new();
    struct legacy_list *lg = NULL;
    maildir_size_lookup sizes = uidls_only ? size_unknown : NULL;
    int rc = -1;

    if (rootfd == -1 || md == NULL)
        goto done;
    curfd = openat(rootfd, "cur", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    newfd = openat(rootfd, "new", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (curfd == -1 || newfd == -1 || maildir_list_dir(curfd, md, sizes, NULL) == -1)
        goto done;
    size_t in_cur = md->count;
    if (maildir_list_dir(newfd, md, sizes, NULL) == -1)
        goto done;
    for (size_t i = in_cur; i < md->count; i++) {
        char target[NAME_MAX + 1];
        if (maildir_name_for_cur(maildir_msg_name(md, i), target, sizeof(target)) == 0 &&
            maildir_msg_rename(md, i, target) == -1)
            goto done;
    }
    maildir_sort(md);
    if (legacy_load(rootfd, &lg) == -1 || legacy_apply(lg, md) == -1)
        goto done;
    if (legacy_x_uidl_header() && xuidl_apply(curfd, lg, md, NULL, NULL) == -1)
        goto done;
    rc = 0;
done:;
    int saved = errno;
    if (newfd != -1)
        close(newfd);
    if (curfd != -1)
        close(curfd);
    if (rootfd != -1)
        close(rootfd);
    if (rc == 0) {
        *out = md;
        if (lg_out != NULL)
            *lg_out = lg;
        else
            legacy_free(lg);
    } else {
        maildir_free(md);
        legacy_free(lg);
    }
    errno = saved;
    return rc;
}

static int same_uidl(const struct maildir *a, size_t i, const struct maildir *b, size_t j)
{
    size_t la, lb;
    const char *ua = maildir_msg_uidl(a, i, &la);
    const char *ub = maildir_msg_uidl(b, j, &lb);
    return la == lb && memcmp(ua, ub, la) == 0;
}

/* Message by message, in POP3 order: what a warm login would get wrong. */
static unsigned compare(const struct maildir *idx, const struct maildir *disk, FILE *out)
{
    unsigned diffs = 0;
    size_t n = idx->count > disk->count ? idx->count : disk->count;

    if (idx->count != disk->count) {
        fprintf(out, "count: index %zu, disk %zu\n", idx->count, disk->count);
        diffs++;
    }
    for (size_t i = 0; i < n && diffs <= MAX_SHOWN; i++) {
        if (i >= idx->count || i >= disk->count) {
            const struct maildir *has = i < idx->count ? idx : disk;
            fprintf(out, "message %zu: only in the %s: %s\n", i + 1,
                    has == idx ? "index" : "maildir", maildir_msg_name(has, i));
            diffs++;
            continue;
        }
        const struct maildir_msg *a = &idx->msgs[i];
        const struct maildir_msg *b = &disk->msgs[i];
        size_t ul;
        if (a->unique_len != b->unique_len ||
            memcmp(maildir_msg_name(idx, i), maildir_msg_name(disk, i), a->unique_len) != 0) {
            fprintf(out, "message %zu: index %s, disk %s\n", i + 1, maildir_msg_name(idx, i),
                    maildir_msg_name(disk, i));
            diffs++;
        } else if (a->size != b->size) {
            fprintf(out, "message %zu: size index %llu, disk %llu: %s\n", i + 1,
                    (unsigned long long)a->size, (unsigned long long)b->size,
                    maildir_msg_name(disk, i));
            diffs++;
        } else if (!same_uidl(idx, i, disk, i)) {
            const char *u = maildir_msg_uidl(idx, i, &ul);
            fprintf(out, "message %zu: UIDL index %.*s, disk ", i + 1, (int)ul, u);
            u = maildir_msg_uidl(disk, i, &ul);
            fprintf(out, "%.*s\n", (int)ul, u);
            diffs++;
        }
    }
    if (diffs > MAX_SHOWN)
        fprintf(out, "... and more\n");
    return diffs;
}

/* What the next login makes of a directory's stamp; *clean: it would not read it. */
static const char *dir_state(const struct index_dirstamp *stamp, const char *root,
                             const char *sub, int recheck, uint64_t boot, int *clean)
{
    char path[PATH_MAX];
    struct stat st;
    *clean = 0;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, sub) >= sizeof(path) ||
        stat(path, &st) == -1)
        return "missing";
    if (strcmp(sub, "cur") == 0)
        *clean = index_cur_trusted(stamp, &st, time(NULL), recheck, boot);
    else
        *clean = index_dir_clean(stamp, &st);
    if (*clean)
        return stamp->trust == INDEX_OURS ? "unchanged but for fastpop's own changes"
                                          : "unchanged";
    if (index_same_dir(stamp, &st))
        return stamp->trust == INDEX_OURS ? "fastpop's own changes, due for a listing at the "
                                            "next login"
                                          : "unverified (read again at the next login)";
    return "changed (read again at the next login)";
}

int index_tool_check(const char *index_dir, const char *maildir, int recheck, FILE *out)
{
    char root[PATH_MAX], data[PATH_MAX + 16];
    struct mbindex *ix;
    struct index_entry e = { 0 };

    if (snprintf(root, sizeof(root), "%s", maildir) >= (int)sizeof(root)) {
        fprintf(out, "%s: path too long\n", maildir);
        return 2;
    }
    index_path_normalize(root);
    /* Never create an index here: an absent one is simply empty. */
    snprintf(data, sizeof(data), "%s/data.mdb", index_dir);
    if (access(data, F_OK) == -1) {
        fprintf(out, "%s: no index at %s; the next login scans the maildir\n", root, index_dir);
        return 0;
    }
    uint64_t boot = 0;
    int rc = mbindex_open(index_dir, 0, &ix);
    if (rc == 0) {
        boot = mbindex_boot(ix);
        rc = mbindex_get(ix, root, &e);
        mbindex_close(ix);
    }
    if (rc == MDB_NOTFOUND || rc == ESTALE || rc == EINVAL) {
        fprintf(out, "%s: %s; the next login scans the maildir\n", root,
                rc == MDB_NOTFOUND ? "no record" : "unusable record (rebuilt at next login)");
        return 0;
    }
    if (rc != 0) {
        fprintf(out, "%s: index %s: %s\n", root, index_dir, mdb_strerror(rc));
        return 2;
    }
    struct maildir *disk;
    if (index_tool_read_truth(root, 0, &disk, NULL) == -1) {
        fprintf(out, "%s: cannot read the maildir: %s\n", root, strerror(errno));
        maildir_free(e.md);
        return 2;
    }
    int new_clean, cur_clean;
    fprintf(out, "maildir %s\n", root);
    fprintf(out, "index: %zu messages, %llu octets, UIDLs from %s\n", e.md->count,
            (unsigned long long)e.md->total_size,
            (e.legacy & LEGACY_KIND_MASK) < 3 ? legacy_names[e.legacy & LEGACY_KIND_MASK] : "?");
    fprintf(out, "new/: %s\n", dir_state(&e.new_dir, root, "new", recheck, boot, &new_clean));
    fprintf(out, "cur/: %s\n", dir_state(&e.cur_dir, root, "cur", recheck, boot, &cur_clean));
    unsigned diffs = compare(e.md, disk, out);
    int warm = new_clean && cur_clean;
    int status = 0;
    if (diffs == 0)
        fprintf(out, "ok: the index agrees with the maildir\n");
    else if (!warm)
        fprintf(out, "stale: %u difference(s), already due for a re-read at the next login\n",
                diffs);
    else {
        fprintf(out, "WRONG: %u difference(s) a warm login would serve; remove the record "
                     "or the index (it is a cache)\n", diffs);
        status = 1;
    }
    maildir_free(e.md);
    maildir_free(disk);
    return status;
}

int index_tool_uidl_diff(const char *maildir, FILE *out)
{
    char root[PATH_MAX];
    struct maildir *md;
    struct legacy_list *lg;

    if (snprintf(root, sizeof(root), "%s", maildir) >= (int)sizeof(root)) {
        fprintf(out, "%s: path too long\n", maildir);
        return 2;
    }
    index_path_normalize(root);
    if (index_tool_read_truth(root, 0, &md, &lg) == -1) {
        fprintf(out, "%s: cannot read the maildir: %s\n", root, strerror(errno));
        return 2;
    }
    if (lg == NULL)
        fprintf(out, "# %s: no legacy UIDL file; every UIDL is fastpop's own\n", root);
    else
        fprintf(out, "# %s: %s version %d, %zu records\n", root,
                legacy_names[lg->kind], lg->version, lg->count);
    /* Which legacy records still have their message: the rest are gone. */
    unsigned char *seen = lg ? calloc(lg->count + 1, 1) : NULL;
    if (lg != NULL && seen == NULL) {
        fprintf(out, "out of memory\n");
        legacy_free(lg);
        maildir_free(md);
        return 2;
    }
    fprintf(out, "# msg\tfastpop-uidl\tlegacy-uidl\tfile\n");
    for (size_t i = 0; i < md->count; i++) {
        size_t len;
        const char *u = maildir_msg_uidl(md, i, &len);
        const char *name = maildir_msg_name(md, i);
        const struct legacy_rec *r = lg ? legacy_find(lg, name, md->msgs[i].unique_len) : NULL;
        if (r != NULL)
            seen[r - lg->recs] = 1;
        fprintf(out, "%zu\t%.*s\t%s\t%s\n", i + 1, (int)len, u,
                r ? legacy_rec_uidl(lg, r) : "-", name);
    }
    for (size_t i = 0; lg != NULL && i < lg->count; i++) {
        if (!seen[i])
            fprintf(out, "gone\t-\t%s\t%s\n", legacy_rec_uidl(lg, &lg->recs[i]),
                    legacy_rec_name(lg, &lg->recs[i]));
    }
    free(seen);
    legacy_free(lg);
    maildir_free(md);
    return 0;
}
