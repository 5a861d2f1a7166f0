/*
 * The penalty view (see penalty_view.h): the helper's writer and the
 * workers' reader of one sealed memfd.
 */
#include "shm/penalty_view.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/runtime/cidr.h"
#include "daemon/runtime/hash.h"

#define VIEW_MAGIC 0x56506670u   /* "pfPV" */
#define VIEW_VERSION 1

struct view_header {
    uint32_t magic, version;
    uint32_t nslots;               /* a power of two */
    _Atomic uint32_t seq;          /* odd while the helper writes */
    _Atomic uint32_t overflow;     /* 1: not everything fits; readers say "listed" */
    _Atomic int32_t ipv4_prefix, ipv6_prefix;
    uint32_t reserved;
    _Atomic uint64_t seed;
};

struct view_slot {
    _Atomic uint64_t tag;          /* 0: never used */
    _Atomic int64_t until_ms;      /* <= now: expired (a tombstone) */
};

_Static_assert(sizeof(struct view_slot) == 16, "slots are 16 bytes (documented)");

struct penalty_view {
    int fd;                        /* the helper's read-write memfd; -1 in a worker */
    size_t size;
    struct view_header *h;
    struct view_slot *slot;
    uint32_t mask;                 /* nslots - 1 */
    uint32_t used;                 /* helper only: slots with a tag */
    int rebuilding;                /* helper only: inside one write section */
};

static size_t view_size(uint32_t nslots)
{
    return sizeof(struct view_header) + (size_t)nslots * sizeof(struct view_slot);
}

/* Lengths first, so no two inputs hash alike; never 0 (0 marks an empty slot). */
static uint64_t make_tag(uint64_t seed, int kind, const void *data, size_t len)
{
    unsigned char buf[1 + 2 + 512];

    if (len > 512)
        len = 512;
    buf[0] = (unsigned char)kind;
    buf[1] = (unsigned char)len;
    buf[2] = (unsigned char)(len >> 8);
    memcpy(buf + 3, data, len);
    uint64_t t = hash64(buf, 3 + len, seed);
    return t != 0 ? t : 1;
}

static int ip_tag(const struct view_header *h, uint64_t seed, const char *ip, uint64_t *tag)
{
    uint8_t net[16];

    if (cidr_client_prefix(ip, atomic_load_explicit(&h->ipv4_prefix, memory_order_relaxed),
                           atomic_load_explicit(&h->ipv6_prefix, memory_order_relaxed),
                           net) == -1)
        return -1;
    *tag = make_tag(seed, PENALTY_VIEW_IP, net, sizeof(net));
    return 0;
}

int penalty_view_ip_tag(const struct penalty_view *v, const char *ip, uint64_t *tag)
{
    return ip_tag(v->h, atomic_load_explicit(&v->h->seed, memory_order_relaxed), ip, tag);
}

uint64_t penalty_view_user_tag(const struct penalty_view *v, const char *user)
{
    return make_tag(atomic_load_explicit(&v->h->seed, memory_order_relaxed), PENALTY_VIEW_USER,
                    user, strlen(user));
}

int penalty_view_create(uint32_t entries, int ipv4_prefix, int ipv6_prefix,
                        struct penalty_view **out)
{
    uint32_t nslots = PENALTY_VIEW_MIN_SLOTS;
    uint64_t seed;

    while (nslots < 2 * (uint64_t)entries && nslots < (1u << 30))
        nslots <<= 1;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
        return -1;
    struct penalty_view *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return -1;
    v->size = view_size(nslots);
    v->fd = memfd_create("fastpop-penalty-view", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (v->fd == -1 || ftruncate(v->fd, (off_t)v->size) == -1)
        goto fail;
    void *base = mmap(NULL, v->size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (base == MAP_FAILED)
        goto fail;
    v->h = base;
    v->slot = (struct view_slot *)(v->h + 1);
    v->mask = nslots - 1;
    v->h->magic = VIEW_MAGIC;
    v->h->version = VIEW_VERSION;
    v->h->nslots = nslots;
    atomic_store(&v->h->ipv4_prefix, ipv4_prefix);
    atomic_store(&v->h->ipv6_prefix, ipv6_prefix);
    atomic_store(&v->h->seed, seed);
    /* Our mapping stays writable; from now on nobody gets another writable one. */
    if (fcntl(v->fd, F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) == -1 ||
        fchmod(v->fd, 0400) == -1)
        goto fail;
    *out = v;
    return 0;
fail:;
    int saved = errno;
    penalty_view_free(v);
    errno = saved;
    return -1;
}

void penalty_view_free(struct penalty_view *v)
{
    if (v == NULL)
        return;
    if (v->h != NULL)
        munmap(v->h, v->size);
    if (v->fd >= 0)
        close(v->fd);
    free(v);
}

int penalty_view_reader_fd(const struct penalty_view *v)
{
    char path[64];

    /* A read-only open file of its own; the seals would refuse writes through ours too. */
    snprintf(path, sizeof(path), "/proc/self/fd/%d", v->fd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? fd : fcntl(v->fd, F_DUPFD_CLOEXEC, 0);
}

static void write_begin(struct penalty_view *v)
{
    if (v->rebuilding)
        return;
    atomic_fetch_add_explicit(&v->h->seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(struct penalty_view *v)
{
    if (v->rebuilding)
        return;
    atomic_fetch_add_explicit(&v->h->seq, 1, memory_order_release);
}

int penalty_view_set(struct penalty_view *v, uint64_t tag, int64_t until_ms, int64_t now)
{
    struct view_slot *reuse = NULL, *found = NULL;
    uint32_t i = (uint32_t)tag & v->mask;

    for (int n = 0; n < PENALTY_VIEW_MAX_PROBES; n++, i = (i + 1) & v->mask) {
        struct view_slot *s = &v->slot[i];
        uint64_t t = atomic_load_explicit(&s->tag, memory_order_relaxed);
        if (t == tag) {
            found = s;
            break;
        }
        if (t == 0) {
            if (reuse == NULL)
                reuse = s;
            break;
        }
        /* An expired slot keeps its chain intact when a new tag moves in. */
        if (reuse == NULL && atomic_load_explicit(&s->until_ms, memory_order_relaxed) <= now)
            reuse = s;
    }
    if (found == NULL && until_ms <= now)
        return 0;   /* unlisting what is not listed */
    if (found == NULL && reuse == NULL) {
        atomic_store_explicit(&v->h->overflow, 1, memory_order_release);
        errno = ENOSPC;
        return -1;
    }
    write_begin(v);
    if (found != NULL) {
        atomic_store_explicit(&found->until_ms, until_ms, memory_order_relaxed);
    } else {
        if (atomic_load_explicit(&reuse->tag, memory_order_relaxed) == 0)
            v->used++;
        atomic_store_explicit(&reuse->until_ms, until_ms, memory_order_relaxed);
        atomic_store_explicit(&reuse->tag, tag, memory_order_relaxed);
    }
    write_end(v);
    return 0;
}

void penalty_view_rebuild_begin(struct penalty_view *v, int ipv4_prefix, int ipv6_prefix)
{
    write_begin(v);
    for (uint32_t i = 0; i <= v->mask; i++) {
        atomic_store_explicit(&v->slot[i].tag, 0, memory_order_relaxed);
        atomic_store_explicit(&v->slot[i].until_ms, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&v->h->ipv4_prefix, ipv4_prefix, memory_order_relaxed);
    atomic_store_explicit(&v->h->ipv6_prefix, ipv6_prefix, memory_order_relaxed);
    atomic_store_explicit(&v->h->overflow, 0, memory_order_relaxed);
    v->used = 0;
    /* The sets that follow belong to this write section: no reader sees a half table. */
    v->rebuilding = 1;
}

void penalty_view_rebuild_end(struct penalty_view *v)
{
    v->rebuilding = 0;
    write_end(v);
}

int penalty_view_needs_rebuild(const struct penalty_view *v)
{
    return v->used > (v->mask + 1) / 4 * 3 ||
           atomic_load_explicit(&v->h->overflow, memory_order_relaxed) != 0;
}

/* --- reader --------------------------------------------------------------- */

int penalty_view_map(int fd, struct penalty_view **out)
{
    struct stat st;
    struct penalty_view *v = NULL;
    void *base = MAP_FAILED;

    if (fstat(fd, &st) == -1)
        goto fail;
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)view_size(PENALTY_VIEW_MIN_SLOTS) ||
        st.st_size > (off_t)view_size(1u << 30)) {
        errno = EINVAL;
        goto fail;
    }
    base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        goto fail;
    const struct view_header *h = base;
    uint32_t n = h->nslots;
    /* Geometry from the mapping we made, checked against what the header claims. */
    if (h->magic != VIEW_MAGIC || h->version != VIEW_VERSION || n < PENALTY_VIEW_MIN_SLOTS ||
        (n & (n - 1)) != 0 || view_size(n) != (size_t)st.st_size) {
        errno = EINVAL;
        goto fail;
    }
    if ((v = calloc(1, sizeof(*v))) == NULL)
        goto fail;
    v->fd = -1;
    v->size = (size_t)st.st_size;
    v->h = base;
    v->slot = (struct view_slot *)(v->h + 1);
    v->mask = n - 1;
    close(fd);
    *out = v;
    return 0;
fail:;
    int saved = errno;
    if (base != MAP_FAILED)
        munmap(base, (size_t)st.st_size);
    close(fd);
    errno = saved;
    return -1;
}

/* 1 listed, 0 not, -1 cannot tell (chain too long). */
static int probe(const struct penalty_view *v, uint64_t tag, int64_t now_ms)
{
    uint32_t i = (uint32_t)tag & v->mask;

    for (int n = 0; n < PENALTY_VIEW_MAX_PROBES; n++, i = (i + 1) & v->mask) {
        uint64_t t = atomic_load_explicit(&v->slot[i].tag, memory_order_relaxed);
        if (t == 0)
            return 0;
        if (t == tag)
            return atomic_load_explicit(&v->slot[i].until_ms, memory_order_relaxed) > now_ms;
    }
    return -1;
}

int penalty_view_listed(const struct penalty_view *v, const char *ip, const char *user,
                        const char *user2, int64_t now_ms)
{
    if (v == NULL)
        return 1;
    for (int attempt = 0; attempt < PENALTY_VIEW_READ_TRIES; attempt++) {
        uint32_t seq = atomic_load_explicit(&v->h->seq, memory_order_acquire);
        if (seq & 1)
            continue;
        uint64_t seed = atomic_load_explicit(&v->h->seed, memory_order_relaxed), tag;
        int listed = atomic_load_explicit(&v->h->overflow, memory_order_relaxed) != 0;
        /* An unparsable address cannot be looked up: the helper decides those. */
        if (!listed)
            listed = ip_tag(v->h, seed, ip, &tag) == -1 ? 1 : probe(v, tag, now_ms);
        const char *names[2] = { user, user2 };
        for (int k = 0; k < 2 && listed == 0; k++) {
            if (names[k] != NULL && names[k][0] != '\0')
                listed = probe(v, make_tag(seed, PENALTY_VIEW_USER, names[k],
                                           strlen(names[k])), now_ms);
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&v->h->seq, memory_order_relaxed) == seq)
            return listed != 0;   /* -1 (cannot tell) counts as listed */
    }
    return 1;
}
