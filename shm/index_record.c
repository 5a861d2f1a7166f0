/*
 * The mailbox index's record format (shm/index.h): encoding and the checked
 * decoding, apart from the LMDB environment (shm/index.c).
 */
#include "shm/index_record.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/runtime/hash.h"

#define INDEX_MAGIC 0x31495046u /* "FPI1" in a little-endian file */
/*
 * 2: a serial per record, and each name's length (so a decode checks no bytes of it).
 * 3: a stamp's trust may be INDEX_OURS, with the time and boot of our oldest own change.
 */
#define INDEX_VERSION 3u
struct disk_head {
    uint32_t magic;
    uint32_t version;
    uint32_t path_len;
    uint32_t legacy;
    uint64_t count;
    uint64_t total_size;
    uint64_t strings_len;
    int64_t  tmp_cleaned;
    uint64_t serial;
    struct index_dirstamp new_dir;
    struct index_dirstamp cur_dir;
};

struct disk_msg {
    uint64_t size;
    uint64_t timestamp;
    uint32_t name_off;
    uint32_t uidl_off;
    uint16_t unique_len;
    uint16_t uidl_len;
    uint32_t name_len;  /* strings[name_off + name_len] is its NUL */
};

_Static_assert(sizeof(struct disk_head) % 8 == 0, "disk_head keeps messages aligned");
_Static_assert(sizeof(struct disk_msg) == 32, "disk_msg is 32 bytes");

/* ---- record encoding ------------------------------------------------- */

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

size_t index_record_len(size_t path_len, const struct maildir *md)
{
    return sizeof(struct disk_head) + pad8(path_len) + md->count * sizeof(struct disk_msg) +
           md->strings_len;
}

/* See shm/index_record.h. */
uint64_t index_record_serial(void)
{
    static uint64_t counter;
    struct timespec ts;
    uint64_t v[3];
    clock_gettime(CLOCK_REALTIME, &ts);
    v[0] = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    v[1] = (uint64_t)getpid();
    v[2] = ++counter;
    return hash64(v, sizeof(v), HASH_SEED_A);
}

void index_record_encode(char *out, const char *path, size_t path_len,
                         const struct index_entry *e, uint64_t serial)
{
    const struct maildir *md = e->md;
    struct disk_head h = {
        .magic = INDEX_MAGIC,
        .version = INDEX_VERSION,
        .path_len = (uint32_t)path_len,
        .legacy = e->legacy,
        .count = md->count,
        .total_size = md->total_size,
        .strings_len = md->strings_len,
        .tmp_cleaned = e->tmp_cleaned,
        .serial = serial,
        .new_dir = e->new_dir,
        .cur_dir = e->cur_dir,
    };
    memcpy(out, &h, sizeof(h));
    out += sizeof(h);
    memset(out, 0, pad8(path_len));
    memcpy(out, path, path_len);
    out += pad8(path_len);
    for (size_t i = 0; i < md->count; i++) {
        const struct maildir_msg *m = &md->msgs[i];
        struct disk_msg d = {
            .size = m->size,
            .timestamp = m->timestamp,
            .name_off = m->name_off,
            .uidl_off = m->uidl_off,
            .unique_len = m->unique_len,
            .uidl_len = m->uidl_len,
            .name_len = (uint32_t)strlen(md->strings + m->name_off),
        };
        memcpy(out, &d, sizeof(d));
        out += sizeof(d);
    }
    if (md->strings_len > 0)
        memcpy(out, md->strings, md->strings_len);
}

int index_encode(const char *path, const struct index_entry *e, void **buf, size_t *len)
{
    size_t path_len = strlen(path);
    if (path_len > UINT32_MAX)
        return ENAMETOOLONG;
    size_t n = index_record_len(path_len, e->md);
    char *out = malloc(n);
    if (out == NULL)
        return ENOMEM;
    index_record_encode(out, path, path_len, e, index_record_serial());
    *buf = out;
    *len = n;
    return 0;
}

/*
 * Every offset and length inside the block, every name NUL-terminated
 * exactly where its length says and no NUL inside a name or a UIDL (memchr,
 * so a 100,000-message record still decodes at memcpy speed). A record that
 * passes is one index_encode() could have written: the session's view of it
 * is consistent, and nothing is read outside the block.
 */
static int check_msg(const struct disk_msg *d, const char *strings, size_t strings_len)
{
    if ((uint64_t)d->name_off + d->name_len >= strings_len || d->uidl_len == 0 ||
        d->unique_len > d->name_len || (uint64_t)d->uidl_off + d->uidl_len > strings_len ||
        strings[d->name_off + d->name_len] != '\0' ||
        memchr(strings + d->name_off, '\0', d->name_len) != NULL ||
        memchr(strings + d->uidl_off, '\0', d->uidl_len) != NULL)
        return -1;
    return 0;
}

/* The head of a record for path, checked: the lengths add up and the path is ours. */
static int decode_head(const void *buf, size_t len, const char *path, struct disk_head *h)
{
    const char *p = buf;
    size_t path_len = strlen(path);

    if (len < sizeof(*h))
        return EINVAL;
    memcpy(h, p, sizeof(*h));
    if (h->magic != INDEX_MAGIC)
        return EINVAL;
    /* Another version's record (an upgrade): absent for us, rebuilt without a warning. */
    if (h->version != INDEX_VERSION)
        return MDB_NOTFOUND;
    size_t fixed = sizeof(*h) + pad8(h->path_len);
    if (h->path_len > len || fixed > len ||
        h->count > (len - fixed) / sizeof(struct disk_msg) ||
        h->strings_len != len - fixed - h->count * sizeof(struct disk_msg) ||
        h->strings_len > UINT32_MAX)
        return EINVAL;
    if (h->path_len != path_len || memcmp(p + sizeof(*h), path, path_len) != 0)
        return ESTALE;
    return 0;
}

static void head_out(const struct disk_head *h, struct index_head *out)
{
    out->new_dir = h->new_dir;
    out->cur_dir = h->cur_dir;
    out->tmp_cleaned = h->tmp_cleaned;
    out->legacy = h->legacy;
    out->count = h->count;
    out->total_size = h->total_size;
    out->serial = h->serial;
}

int index_decode_head(const void *buf, size_t len, const char *path, struct index_head *out)
{
    struct disk_head h;
    int rc = decode_head(buf, len, path, &h);
    if (rc == 0)
        head_out(&h, out);
    return rc;
}

int index_decode(const void *buf, size_t len, const char *path, struct index_entry *e)
{
    struct disk_head h;
    const char *p = buf;
    int rc = decode_head(buf, len, path, &h);
    if (rc != 0)
        return rc;
    size_t fixed = sizeof(h) + pad8(h.path_len);

    struct maildir *md = calloc(1, sizeof(*md));
    if (md == NULL)
        return ENOMEM;
    md->strings_len = md->strings_cap = h.strings_len;
    md->msgs_cap = md->count = h.count;
    md->strings = malloc(h.strings_len ? h.strings_len : 1);
    md->msgs = malloc(h.count ? h.count * sizeof(*md->msgs) : 1);
    if (md->strings == NULL || md->msgs == NULL) {
        maildir_free(md);
        return ENOMEM;
    }
    const char *strings = p + fixed + h.count * sizeof(struct disk_msg);
    memcpy(md->strings, strings, h.strings_len);
    uint64_t total = 0;
    for (size_t i = 0; i < h.count; i++) {
        struct disk_msg d;
        memcpy(&d, p + fixed + i * sizeof(d), sizeof(d));
        if (check_msg(&d, md->strings, h.strings_len) == -1 || total + d.size < total) {
            maildir_free(md);
            return EINVAL;
        }
        total += d.size;
        md->msgs[i] = (struct maildir_msg){
            .size = d.size,
            .timestamp = d.timestamp,
            .name_off = d.name_off,
            .uidl_off = d.uidl_off,
            .unique_len = d.unique_len,
            .uidl_len = d.uidl_len,
        };
    }
    if (total != h.total_size) {
        maildir_free(md);
        return EINVAL;
    }
    md->total_size = total;
    e->new_dir = h.new_dir;
    e->cur_dir = h.cur_dir;
    e->tmp_cleaned = h.tmp_cleaned;
    e->legacy = h.legacy;
    e->serial = h.serial;
    e->md = md;
    return 0;
}

