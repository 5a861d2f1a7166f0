#include "maildir/xuidl.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "daemon/runtime/hash.h"
#include "maildir/open_file.h"
#include "maildir/uidl.h"

/* Headers are read this much at a time: most header blocks fit in one read. */
enum { XUIDL_READ_CHUNK = 4096 };

/*
 * Look through the complete lines of buf[0..len) (from *pos on) for X-UIDL.
 * 1 found, 0 end of headers (an empty line), 2 need more.
 */
static int scan_lines(const char *buf, size_t len, size_t *pos, char *out, size_t *outlen)
{
    static const char key[] = "X-UIDL:";
    while (*pos < len) {
        const char *line = buf + *pos;
        const char *nl = memchr(line, '\n', len - *pos);
        if (nl == NULL)
            return 2;
        size_t n = (size_t)(nl - line);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        *pos += (size_t)(nl - line) + 1;
        if (n == 0)
            return 0;
        if (n < sizeof(key) - 1 || strncasecmp(line, key, sizeof(key) - 1) != 0)
            continue;
        const char *v = line + sizeof(key) - 1;
        const char *end = line + n;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        /* The first X-UIDL counts: a second one is not the server's. */
        if (!maildir_uidl_valid(v, (size_t)(end - v)))
            return 0;
        memcpy(out, v, (size_t)(end - v));
        out[end - v] = '\0';
        *outlen = (size_t)(end - v);
        return 1;
    }
    return 2;
}

int xuidl_read(int curfd, const char *name, char *out, size_t cap, size_t *len)
{
    if (cap < MAILDIR_UIDL_SIZE) {
        errno = EINVAL;
        return -1;
    }
    int fd = maildir_open_file(curfd, name, NULL);
    if (fd == -1)
        return -1;
    char *buf = malloc(XUIDL_HEADER_MAX);
    if (buf == NULL) {
        close(fd);
        return -1;
    }
    size_t have = 0, pos = 0;
    int rc = 2;
    while (rc == 2 && have < XUIDL_HEADER_MAX) {
        size_t want = XUIDL_HEADER_MAX - have < XUIDL_READ_CHUNK ? XUIDL_HEADER_MAX - have
                                                                 : XUIDL_READ_CHUNK;
        ssize_t n = read(fd, buf + have, want);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        have += (size_t)n;
        rc = scan_lines(buf, have, &pos, out, len);
    }
    int saved = errno;
    free(buf);
    close(fd);
    errno = saved;
    return rc == 2 ? 0 : rc;
}

/* ---- UIDLs in use, so none names two messages ------------------------ */

struct taken {
    const struct maildir *md;
    uint32_t *slots; /* message index + 1; 0 = empty */
    size_t mask;
};

static size_t slot_of(const struct taken *t, const char *uidl, size_t len)
{
    return hash64(uidl, len, HASH_SEED_A) & t->mask;
}

/* 1 if a message other than self holds this UIDL now. */
static int is_taken(const struct taken *t, const char *uidl, size_t len, size_t self)
{
    for (size_t s = slot_of(t, uidl, len); t->slots[s] != 0; s = (s + 1) & t->mask) {
        size_t i = t->slots[s] - 1;
        size_t ulen;
        const char *u = maildir_msg_uidl(t->md, i, &ulen);
        if (i != self && ulen == len && memcmp(u, uidl, len) == 0)
            return 1;
    }
    return 0;
}

static void mark_taken(struct taken *t, size_t i)
{
    size_t len;
    const char *u = maildir_msg_uidl(t->md, i, &len);
    size_t s = slot_of(t, u, len);
    while (t->slots[s] != 0)
        s = (s + 1) & t->mask;
    t->slots[s] = (uint32_t)i + 1;
}

/* Skipped, not an error: the file is gone or is not a message this user may read. */
static int skippable(int err)
{
    return err == ENOENT || err == ELOOP || err == ENOTSUP || err == EACCES || err == EPERM;
}

int xuidl_apply(int curfd, const struct legacy_list *lg, struct maildir *md, xuidl_known_fn known,
                void *arg)
{
    if (md->count == 0)
        return 0;
    if (md->count >= UINT32_MAX / 8) {
        errno = EOVERFLOW;
        return -1;
    }
    /* Each message at most twice (own UIDL, then X-UIDL), at most half full. */
    struct taken t = { md, NULL, 0 };
    size_t cap = 16;
    while (cap < md->count * 4)
        cap *= 2;
    t.slots = calloc(cap, sizeof(*t.slots));
    if (t.slots == NULL)
        return -1;
    t.mask = cap - 1;
    for (size_t i = 0; i < md->count; i++)
        mark_taken(&t, i);

    int rc = 0;
    for (size_t i = 0; i < md->count && rc == 0; i++) {
        const char *name = maildir_msg_name(md, i);
        size_t unique_len = md->msgs[i].unique_len;
        if (lg != NULL && legacy_find(lg, name, unique_len) != NULL)
            continue;
        char value[MAILDIR_UIDL_SIZE];
        const char *v = value;
        size_t vlen = 0;
        int found;
        if (known != NULL && known(arg, name, unique_len, &v, &vlen) == 1) {
            found = 1;
        } else {
            v = value;
            found = xuidl_read(curfd, name, value, sizeof(value), &vlen);
            if (found == -1 && skippable(errno))
                found = 0;
        }
        if (found == -1) {
            rc = -1;
            break;
        }
        if (found == 0 || is_taken(&t, v, vlen, i))
            continue;
        size_t own_len;
        const char *own = maildir_msg_uidl(md, i, &own_len);
        if (own_len == vlen && memcmp(own, v, vlen) == 0)
            continue;
        /* v may point into the index's list: copy before the string block grows. */
        if (v != value) {
            memcpy(value, v, vlen);
            value[vlen] = '\0';
        }
        rc = maildir_set_uidl(md, i, value, vlen);
        if (rc == 0)
            mark_taken(&t, i);
    }
    int saved = errno;
    free(t.slots);
    errno = saved;
    return rc;
}
