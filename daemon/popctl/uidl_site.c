#include "daemon/popctl/uidl_site.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/popctl/index_tool.h"
#include "daemon/popctl/popctl_client.h"
#include "daemon/runtime/clock.h"
#include "daemon/runtime/escape.h"
#include "shm/index.h"
#include "shm/index_sync.h"

enum user_status { USER_IDENTICAL, USER_DIFFERENT, USER_UNREADABLE };
static const char *const status_names[] = { "identical", "different", "unreadable" };
static const char *const legacy_names[] = { "none", LEGACY_COURIER_FILE, LEGACY_DOVECOT_FILE };

struct user_report {
    enum user_status status;
    int legacy;              /* enum legacy_kind */
    size_t messages;         /* in the maildir */
    size_t matched;          /* known to the legacy list */
    size_t differ;           /* served with another UIDL than the list's */
    size_t unmatched;        /* older than the list, not in it */
    size_t index_differ;     /* a warm login's record serves another UIDL */
    char error[160];
};

static int uidl_is(const char *u, size_t len, const struct legacy_list *lg,
                   const struct legacy_rec *r)
{
    return len == r->uidl_len && memcmp(u, legacy_rec_uidl(lg, r), len) == 0;
}

/* The mtime of the legacy file lg was read from, in seconds; 0 if unknown. */
static time_t legacy_mtime(const char *root, const struct legacy_list *lg)
{
    char path[PATH_MAX];
    struct stat st;
    const char *name = lg->kind == LEGACY_COURIER ? LEGACY_COURIER_FILE : LEGACY_DOVECOT_FILE;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, name) >= sizeof(path) ||
        fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == -1)
        return 0;
    return st.st_mtime;
}

/* What a warm login would serve: the index record, if it is warm now. */
static void check_index(struct mbindex *ix, const char *root, int recheck,
                        const struct legacy_list *lg, struct user_report *r)
{
    struct index_entry e = { 0 };
    char path[PATH_MAX + 8];
    struct stat new_st, cur_st;

    if (ix == NULL || mbindex_get(ix, root, &e) != 0)
        return;
    snprintf(path, sizeof(path), "%s/new", root);
    int warm = lstat(path, &new_st) == 0 && index_dir_clean(&e.new_dir, &new_st);
    snprintf(path, sizeof(path), "%s/cur", root);
    warm = warm && lstat(path, &cur_st) == 0 &&
           index_cur_trusted(&e.cur_dir, &cur_st, time(NULL), recheck, mbindex_boot(ix));
    for (size_t i = 0; warm && lg != NULL && i < e.md->count; i++) {
        const struct legacy_rec *rec =
            legacy_find(lg, maildir_msg_name(e.md, i), e.md->msgs[i].unique_len);
        size_t len;
        const char *u = maildir_msg_uidl(e.md, i, &len);
        if (rec != NULL && !uidl_is(u, len, lg, rec))
            r->index_differ++;
    }
    maildir_free(e.md);
}

static void check_user(const struct site_user *u, struct mbindex *ix, int recheck,
                       struct user_report *r)
{
    char root[PATH_MAX];
    struct maildir *md;
    struct legacy_list *lg;

    memset(r, 0, sizeof(*r));
    if (u->maildir == NULL) {
        r->status = USER_UNREADABLE;
        snprintf(r->error, sizeof(r->error), "%s", u->error ? u->error : "no maildir");
        return;
    }
    snprintf(root, sizeof(root), "%s", u->maildir);
    index_path_normalize(root);
    if (index_tool_read_truth(root, 1, &md, &lg) == -1) {
        if (errno == ENOENT) {
            /* No maildir yet: the old server served this user nothing. */
            snprintf(r->error, sizeof(r->error), "no maildir yet");
            return;
        }
        /* O_NOFOLLOW with O_DIRECTORY says ENOTDIR for a symlink, without it ELOOP. */
        int err = errno;
        struct stat st;
        int link = (err == ELOOP || err == ENOTDIR) && lstat(root, &st) == 0 && S_ISLNK(st.st_mode);
        r->status = USER_UNREADABLE;
        snprintf(r->error, sizeof(r->error), "%s",
                 link || err == ELOOP ? "a symlink (not followed)" : strerror(err));
        return;
    }
    r->legacy = lg ? (int)lg->kind : LEGACY_NONE;
    r->messages = md->count;
    time_t listed = lg ? legacy_mtime(root, lg) : 0;
    for (size_t i = 0; lg != NULL && i < md->count; i++) {
        const struct legacy_rec *rec =
            legacy_find(lg, maildir_msg_name(md, i), md->msgs[i].unique_len);
        size_t len;
        const char *uidl = maildir_msg_uidl(md, i, &len);
        if (rec != NULL) {
            r->matched++;
            if (!uidl_is(uidl, len, lg, rec))
                r->differ++;
        } else if (md->msgs[i].timestamp > 0 && (time_t)md->msgs[i].timestamp < listed) {
            r->unmatched++;
        }
    }
    check_index(ix, root, recheck, lg, r);
    r->status = r->differ + r->unmatched + r->index_differ > 0 ? USER_DIFFERENT : USER_IDENTICAL;
    legacy_free(lg);
    maildir_free(md);
}

static void print_text(const struct site_user *u, const struct user_report *r)
{
    char name[TEXT_LOG_ESCAPE_SIZE(256)], dir[TEXT_LOG_ESCAPE_SIZE(512)];
    text_log_escape(u->name, name, sizeof(name));
    text_log_escape(u->maildir ? u->maildir : "-", dir, sizeof(dir));
    printf("%s\t%s\t%s\tlegacy=%s messages=%zu matched=%zu differ=%zu unmatched=%zu "
           "index_differ=%zu%s%s\n", status_names[r->status], name, dir, legacy_names[r->legacy],
           r->messages, r->matched, r->differ, r->unmatched, r->index_differ,
           r->error[0] ? "\t" : "", r->error);
}

static void print_json(const struct site_user *u, const struct user_report *r, int first)
{
    printf("%s\n    {\"user\": ", first ? "" : ",");
    popctl_json_string(u->name);
    printf(", \"maildir\": ");
    if (u->maildir)
        popctl_json_string(u->maildir);
    else
        printf("null");
    printf(", \"status\": \"%s\", \"legacy\": \"%s\", \"messages\": %zu, \"matched\": %zu, "
           "\"differ\": %zu, \"unmatched\": %zu, \"index_differ\": %zu, \"error\": ",
           status_names[r->status], legacy_names[r->legacy], r->messages, r->matched, r->differ,
           r->unmatched, r->index_differ);
    if (r->error[0])
        popctl_json_string(r->error);
    else
        printf("null");
    printf("}");
}

/* Sleep until the pace allows maildir n (counted from 0) to start. */
static void pace(double start, size_t n, double rate)
{
    if (rate <= 0)
        return;
    double wait = start + (double)n / rate - clock_mono();
    if (wait <= 0)
        return;
    struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int uidl_site_run(const struct site_users *users, const struct uidl_site_opts *o)
{
    size_t counts[3] = { 0, 0, 0 };
    struct mbindex *ix = NULL;
    char data[PATH_MAX];

    /* Never create an index here: an absent one serves nothing yet. */
    if (o->index_dir != NULL &&
        (size_t)snprintf(data, sizeof(data), "%s/data.mdb", o->index_dir) < sizeof(data) &&
        access(data, F_OK) == 0 && mbindex_open(o->index_dir, 0, &ix) != 0)
        ix = NULL;
    if (o->json)
        printf("{\n  \"users\": [");
    double start = clock_mono();
    for (size_t i = 0; i < users->count; i++) {
        pace(start, i, o->rate);
        struct user_report r;
        check_user(&users->v[i], ix, o->recheck, &r);
        counts[r.status]++;
        if (o->progress)
            printf("\r\033[K");
        if (o->json)
            print_json(&users->v[i], &r, i == 0);
        else
            print_text(&users->v[i], &r);
        if (o->progress)
            printf("checked %zu of %zu: %zu different, %zu unreadable", i + 1, users->count,
                   counts[USER_DIFFERENT], counts[USER_UNREADABLE]);
        fflush(stdout);
    }
    if (o->progress)
        printf("\r\033[K");
    if (ix != NULL)
        mbindex_close(ix);
    if (o->json)
        printf("\n  ],\n  \"summary\": {\"checked\": %zu, \"identical\": %zu, \"different\": %zu, "
               "\"unreadable\": %zu}\n}\n", users->count, counts[USER_IDENTICAL],
               counts[USER_DIFFERENT], counts[USER_UNREADABLE]);
    else
        printf("users checked %zu: identical %zu, different %zu, unreadable %zu\n", users->count,
               counts[USER_IDENTICAL], counts[USER_DIFFERENT], counts[USER_UNREADABLE]);
    fflush(stdout);
    if (counts[USER_DIFFERENT] > 0)
        return 1;
    return counts[USER_UNREADABLE] > 0 ? 3 : 0;
}
