#include "maildir/legacy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir/filename.h"
#include "maildir/open_file.h"
#include "maildir/uidl.h"
#include "maildir/uidl_format.h"

/* 64 bytes hold any format a site used; the config's limit is smaller. */
static char dovecot_uidl_format[64] = UIDL_FORMAT_DEFAULT;
static int x_uidl_header;

int legacy_configure(const char *format, int use_x_uidl)
{
    x_uidl_header = use_x_uidl != 0;
    if (format == NULL)
        return 0;
    if (strlen(format) >= sizeof(dovecot_uidl_format)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(dovecot_uidl_format, format);
    return 0;
}

const char *legacy_dovecot_uidl_format(void)
{
    return dovecot_uidl_format;
}

int legacy_x_uidl_header(void)
{
    return x_uidl_header;
}

struct legacy_list *legacy_new(enum legacy_kind kind, int version)
{
    struct legacy_list *lg = calloc(1, sizeof(*lg));
    if (lg != NULL) {
        lg->kind = kind;
        lg->version = version;
    }
    return lg;
}

void legacy_free(struct legacy_list *lg)
{
    if (lg == NULL)
        return;
    int saved = errno;
    free(lg->recs);
    free(lg->strings);
    free(lg);
    errno = saved;
}

static int add_string(struct legacy_list *lg, const char *s, size_t len, uint32_t *off)
{
    size_t need = lg->strings_len + len + 1;
    if (need > UINT32_MAX) {
        errno = EOVERFLOW;
        return -1;
    }
    if (need > lg->strings_cap) {
        size_t cap = lg->strings_cap ? lg->strings_cap : 4096;
        while (cap < need)
            cap *= 2;
        char *p = realloc(lg->strings, cap);
        if (p == NULL)
            return -1;
        lg->strings = p;
        lg->strings_cap = cap;
    }
    memcpy(lg->strings + lg->strings_len, s, len);
    lg->strings[lg->strings_len + len] = '\0';
    *off = (uint32_t)lg->strings_len;
    lg->strings_len = need;
    return 0;
}

int legacy_add(struct legacy_list *lg, const char *name, size_t name_len, const char *uidl,
               size_t uidl_len, uint64_t uid, int has_order, uint64_t order)
{
    if (name_len == 0 || name_len > UINT16_MAX || uidl_len == 0 || uidl_len > UINT16_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (lg->count == lg->cap) {
        size_t cap = lg->cap ? lg->cap * 2 : 64;
        struct legacy_rec *p = realloc(lg->recs, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        lg->recs = p;
        lg->cap = cap;
    }
    struct legacy_rec *r = &lg->recs[lg->count];
    memset(r, 0, sizeof(*r));
    if (add_string(lg, name, name_len, &r->name_off) == -1 ||
        add_string(lg, uidl, uidl_len, &r->uidl_off) == -1)
        return -1;
    r->name_len = (uint16_t)name_len;
    r->uidl_len = (uint16_t)uidl_len;
    r->uid = uid;
    r->has_order = has_order != 0;
    r->order = order;
    lg->count++;
    return 0;
}

static int compare_names(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int compare_recs(const void *pa, const void *pb, void *arg)
{
    const struct legacy_rec *a = pa;
    const struct legacy_rec *b = pb;
    const char *strings = arg;
    int c = compare_names(strings + a->name_off, a->name_len, strings + b->name_off,
                          b->name_len);
    if (c != 0)
        return c;
    /* Strings are appended in file order: the earlier record sorts first. */
    return a->name_off < b->name_off ? -1 : a->name_off > b->name_off;
}

static int compare_uidls(const void *pa, const void *pb, void *arg)
{
    const struct legacy_rec *a = *(const struct legacy_rec *const *)pa;
    const struct legacy_rec *b = *(const struct legacy_rec *const *)pb;
    const char *strings = arg;
    int c = compare_names(strings + a->uidl_off, a->uidl_len, strings + b->uidl_off,
                          b->uidl_len);
    if (c != 0)
        return c;
    return a->uidl_off < b->uidl_off ? -1 : a->uidl_off > b->uidl_off;
}

/* Of records sharing a UIDL, the first one in the file keeps it; the others go. */
static int drop_repeated_uidls(struct legacy_list *lg)
{
    struct legacy_rec **by_uidl = malloc(lg->count * sizeof(*by_uidl));
    if (by_uidl == NULL)
        return -1;
    for (size_t i = 0; i < lg->count; i++)
        by_uidl[i] = &lg->recs[i];
    qsort_r(by_uidl, lg->count, sizeof(*by_uidl), compare_uidls, lg->strings);
    for (size_t i = 1; i < lg->count; i++) {
        const struct legacy_rec *prev = by_uidl[i - 1];
        if (compare_names(lg->strings + prev->uidl_off, prev->uidl_len,
                          lg->strings + by_uidl[i]->uidl_off, by_uidl[i]->uidl_len) == 0)
            by_uidl[i]->uidl_len = 0;   /* marked: removed below */
    }
    free(by_uidl);
    size_t out = 0;
    for (size_t i = 0; i < lg->count; i++) {
        if (lg->recs[i].uidl_len != 0)
            lg->recs[out++] = lg->recs[i];
    }
    lg->count = out;
    return 0;
}

int legacy_finish(struct legacy_list *lg)
{
    if (lg->count < 2)
        return 0;
    qsort_r(lg->recs, lg->count, sizeof(lg->recs[0]), compare_recs, lg->strings);
    /* A name listed twice: the old servers' readers keep the first line. */
    size_t out = 1;
    for (size_t i = 1; i < lg->count; i++) {
        const struct legacy_rec *prev = &lg->recs[out - 1];
        const struct legacy_rec *r = &lg->recs[i];
        if (compare_names(lg->strings + prev->name_off, prev->name_len,
                          lg->strings + r->name_off, r->name_len) != 0)
            lg->recs[out++] = *r;
    }
    lg->count = out;
    return drop_repeated_uidls(lg);
}

const struct legacy_rec *legacy_find(const struct legacy_list *lg, const char *name,
                                     size_t len)
{
    size_t lo = 0, hi = lg->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct legacy_rec *r = &lg->recs[mid];
        int c = compare_names(name, len, lg->strings + r->name_off, r->name_len);
        if (c == 0)
            return r;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *legacy_rec_name(const struct legacy_list *lg, const struct legacy_rec *r)
{
    return lg->strings + r->name_off;
}

const char *legacy_rec_uidl(const struct legacy_list *lg, const struct legacy_rec *r)
{
    return lg->strings + r->uidl_off;
}

/* Order key of one message: Dovecot's O first, then uid, then the rest. */
struct order_key {
    uint8_t  rank;   /* 0: has O, 1: listed without O, 2: not listed */
    uint64_t key;
    size_t   index;  /* scan order, the last tie-break */
};

static int compare_keys(const void *pa, const void *pb)
{
    const struct order_key *a = pa;
    const struct order_key *b = pb;
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

static int reorder(struct maildir *md, struct order_key *keys)
{
    qsort(keys, md->count, sizeof(keys[0]), compare_keys);
    struct maildir_msg *sorted = malloc(md->count * sizeof(*sorted));
    if (sorted == NULL)
        return -1;
    for (size_t i = 0; i < md->count; i++)
        sorted[i] = md->msgs[keys[i].index];
    memcpy(md->msgs, sorted, md->count * sizeof(*sorted));
    free(sorted);
    return 0;
}

/* Every record's UIDL, sorted, to ask whether a UIDL is the legacy one of some message. */
static const struct legacy_rec **legacy_uidls(const struct legacy_list *lg)
{
    const struct legacy_rec **by_uidl = malloc(lg->count * sizeof(*by_uidl));
    if (by_uidl == NULL)
        return NULL;
    for (size_t i = 0; i < lg->count; i++)
        by_uidl[i] = &lg->recs[i];
    qsort_r(by_uidl, lg->count, sizeof(*by_uidl), compare_uidls, lg->strings);
    return by_uidl;
}

static int uidl_taken(const struct legacy_list *lg, const struct legacy_rec **by_uidl,
                      const char *uidl, size_t len)
{
    size_t lo = 0, hi = lg->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct legacy_rec *r = by_uidl[mid];
        int c = compare_names(uidl, len, lg->strings + r->uidl_off, r->uidl_len);
        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

/*
 * A message the list does not know keeps its own UIDL unless a record uses
 * it (a P value equal to this message's name): then the old server's
 * clients hold that UIDL for another message and would never fetch this
 * one. It gets its hashed form; each record blocks at most one round, so
 * count + 1 rounds always find a free one.
 */
static int avoid_legacy_uidl(const struct legacy_list *lg, const struct legacy_rec **by_uidl,
                             struct maildir *md, size_t i)
{
    size_t len;
    const char *own = maildir_msg_uidl(md, i, &len);
    if (!uidl_taken(lg, by_uidl, own, len))
        return 0;
    const char *name = maildir_msg_name(md, i);
    char uidl[MAILDIR_UIDL_SIZE];
    for (size_t round = 0; round <= lg->count; round++) {
        maildir_uidl_hashed(name, md->msgs[i].unique_len, (unsigned)round, uidl, &len);
        if (!uidl_taken(lg, by_uidl, uidl, len))
            return maildir_set_uidl(md, i, uidl, len);
    }
    return 0; /* not reached: see above */
}

int legacy_apply(const struct legacy_list *lg, struct maildir *md)
{
    struct order_key *keys = NULL;
    int reordered = 0;

    if (lg == NULL || lg->count == 0 || md->count == 0)
        return 0;
    const struct legacy_rec **by_uidl = legacy_uidls(lg);
    if (by_uidl == NULL)
        return -1;
    if (lg->kind == LEGACY_DOVECOT) {
        keys = calloc(md->count, sizeof(*keys));
        if (keys == NULL) {
            free(by_uidl);
            return -1;
        }
    }
    int rc = 0;
    for (size_t i = 0; i < md->count && rc == 0; i++) {
        const char *name = maildir_msg_name(md, i);
        const struct legacy_rec *r = legacy_find(lg, name, md->msgs[i].unique_len);
        if (r != NULL)
            rc = maildir_set_uidl(md, i, legacy_rec_uidl(lg, r), r->uidl_len);
        else
            rc = avoid_legacy_uidl(lg, by_uidl, md, i);
        if (keys == NULL)
            continue;
        keys[i].index = i;
        if (r == NULL) {
            keys[i].rank = 2;
        } else {
            keys[i].rank = r->has_order ? 0 : 1;
            keys[i].key = r->has_order ? r->order : r->uid;
            reordered = 1;
        }
    }
    if (rc == 0 && reordered)
        rc = reorder(md, keys);
    free(keys);
    free(by_uidl);
    return rc;
}

/* Read a whole small file; *buf is NUL-terminated for the parsers' sake. */
static int read_file(int fd, char **buf, size_t *len)
{
    struct stat sb;
    if (fstat(fd, &sb) == -1)
        return -1;
    if (sb.st_size > LEGACY_MAX_FILE) {
        errno = EFBIG;
        return -1;
    }
    size_t cap = (size_t)sb.st_size + 1;
    char *p = malloc(cap);
    size_t have = 0;
    if (p == NULL)
        return -1;
    for (;;) {
        if (have + 1 == cap) {
            /* Grew while we read it (the old server rewrote it): keep going. */
            if (cap > LEGACY_MAX_FILE) {
                free(p);
                errno = EFBIG;
                return -1;
            }
            char *q = realloc(p, cap * 2);
            if (q == NULL) {
                free(p);
                return -1;
            }
            p = q;
            cap *= 2;
        }
        ssize_t n = read(fd, p + have, cap - 1 - have);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            int saved = errno;
            free(p);
            errno = saved;
            return -1;
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    p[have] = '\0';
    *buf = p;
    *len = have;
    return 0;
}

static int mtime_after(const struct stat *a, const struct stat *b)
{
    if (a->st_mtim.tv_sec != b->st_mtim.tv_sec)
        return a->st_mtim.tv_sec > b->st_mtim.tv_sec;
    return a->st_mtim.tv_nsec > b->st_mtim.tv_nsec;
}

int legacy_load(int rootfd, struct legacy_list **out)
{
    struct stat cs, ds;
    int has_c, has_d;

    *out = NULL;
    has_c = fstatat(rootfd, LEGACY_COURIER_FILE, &cs, 0) == 0 && S_ISREG(cs.st_mode);
    has_d = fstatat(rootfd, LEGACY_DOVECOT_FILE, &ds, 0) == 0 && S_ISREG(ds.st_mode);
    if (!has_c && !has_d)
        return 0;
    int courier = has_c && (!has_d || !mtime_after(&ds, &cs));
    const char *file = courier ? LEGACY_COURIER_FILE : LEGACY_DOVECOT_FILE;
    /*
     * The stat above may be of another file than the one opened now: a FIFO
     * renamed in meanwhile must not block the worker, so the opened file is
     * checked again (maildir/open_file.h).
     */
    int fd = maildir_open_file(rootfd, file, NULL);
    if (fd == -1) /* removed meanwhile, or not a regular file now: there is none */
        return errno == ENOENT || errno == ENOTSUP || errno == ELOOP ? 0 : -1;
    char *buf;
    size_t len;
    int rc = read_file(fd, &buf, &len);
    int saved = errno;
    close(fd);
    if (rc == -1) {
        errno = saved;
        return -1;
    }
    rc = courier ? legacy_courier_parse(buf, len, out) : legacy_dovecot_parse(buf, len, out);
    saved = errno;
    free(buf);
    errno = saved;
    return rc;
}

int legacy_parse_lines(struct legacy_list *lg, const char *p, const char *end,
                       legacy_line_fn *parse, const void *arg, struct legacy_list **out)
{
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        if (line_end > p && parse(lg, arg, p, line_end) == -1) {
            legacy_free(lg);
            return -1;
        }
        p = nl ? nl + 1 : end;
    }
    if (legacy_finish(lg) == -1) {
        legacy_free(lg);
        return -1;
    }
    *out = lg;
    return 0;
}
