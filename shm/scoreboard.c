#include "scoreboard.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#define SLOT_FREE 0

struct sb_conn {
    pid_t    owner;          /* SLOT_FREE when unused */
    uint32_t next_free;      /* free list link */
    uint8_t  ip[16];         /* IPv4 as v4-mapped IPv6 */
};

struct sb_ip {
    uint8_t  ip[16];
    uint32_t count;          /* 0 = empty bucket */
};

struct scoreboard {
    pthread_mutex_t lock;
    size_t   map_size;
    uint32_t capacity;
    uint32_t ip_buckets;     /* power of two, at least 2 * capacity */
    uint32_t active;
    uint32_t free_head;      /* capacity = no free slot */
    struct sb_conn *conns;
    struct sb_ip *ips;
};

static void addr_key(const struct sockaddr *addr, uint8_t key[16])
{
    memset(key, 0, 16);
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)addr;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &in4->sin_addr, 4);
    } else if (addr->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
    }
}

static uint32_t ip_hash(const uint8_t key[16])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++) {
        h ^= key[i];
        h *= 16777619u;
    }
    return h;
}

static struct sb_ip *ip_find(struct scoreboard *sb, const uint8_t key[16], int create)
{
    uint32_t mask = sb->ip_buckets - 1;
    for (uint32_t i = ip_hash(key) & mask;; i = (i + 1) & mask) {
        struct sb_ip *b = &sb->ips[i];
        if (b->count == 0) {
            if (!create)
                return NULL;
            memcpy(b->ip, key, 16);
            return b;
        }
        if (memcmp(b->ip, key, 16) == 0)
            return b;
    }
}

/*
 * Emptying a bucket with linear probing: shift later entries of the probe
 * run back so lookups never stop early (no tombstones to pile up).
 */
static void ip_remove(struct scoreboard *sb, struct sb_ip *gone)
{
    uint32_t mask = sb->ip_buckets - 1;
    uint32_t hole = (uint32_t)(gone - sb->ips);
    sb->ips[hole].count = 0;
    for (uint32_t i = (hole + 1) & mask; sb->ips[i].count != 0; i = (i + 1) & mask) {
        uint32_t home = ip_hash(sb->ips[i].ip) & mask;
        /* Move entry i into the hole unless its home lies in (hole, i]. */
        int stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            sb->ips[hole] = sb->ips[i];
            sb->ips[i].count = 0;
            hole = i;
        }
    }
}

static void rebuild_ip_table(struct scoreboard *sb)
{
    memset(sb->ips, 0, sizeof(*sb->ips) * sb->ip_buckets);
    sb->active = 0;
    for (uint32_t i = 0; i < sb->capacity; i++) {
        if (sb->conns[i].owner != SLOT_FREE) {
            ip_find(sb, sb->conns[i].ip, 1)->count++;
            sb->active++;
        }
    }
    sb->free_head = sb->capacity;
    for (uint32_t i = sb->capacity; i-- > 0;) {
        if (sb->conns[i].owner == SLOT_FREE) {
            sb->conns[i].next_free = sb->free_head;
            sb->free_head = i;
        }
    }
}

static void sb_lock(struct scoreboard *sb)
{
    int rc = pthread_mutex_lock(&sb->lock);
    if (rc == EOWNERDEAD) {
        /* The holder died mid-update: derive everything again from the slots. */
        rebuild_ip_table(sb);
        pthread_mutex_consistent(&sb->lock);
    }
}

static void sb_unlock(struct scoreboard *sb)
{
    pthread_mutex_unlock(&sb->lock);
}

struct scoreboard *scoreboard_create(unsigned capacity)
{
    uint32_t buckets = 16;
    while (buckets < 2u * capacity)
        buckets *= 2;
    size_t size = sizeof(struct scoreboard) + sizeof(struct sb_conn) * capacity +
                  sizeof(struct sb_ip) * buckets;
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    struct scoreboard *sb = map;
    sb->map_size = size;
    sb->capacity = capacity;
    sb->ip_buckets = buckets;
    sb->conns = (struct sb_conn *)(sb + 1);
    sb->ips = (struct sb_ip *)(sb->conns + capacity);

    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&sb->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        munmap(map, size);
        errno = rc;
        return NULL;
    }
    rebuild_ip_table(sb);
    return sb;
}

void scoreboard_destroy(struct scoreboard *sb)
{
    if (sb != NULL)
        munmap(sb, sb->map_size);
}

unsigned scoreboard_capacity(const struct scoreboard *sb) { return sb->capacity; }

int scoreboard_conn_open(struct scoreboard *sb, pid_t owner, const struct sockaddr *addr,
                         unsigned max_total, unsigned max_per_ip,
                         enum scoreboard_refusal *why)
{
    uint8_t key[16];
    addr_key(addr, key);
    if (max_total > sb->capacity)
        max_total = sb->capacity;

    sb_lock(sb);
    if (sb->active >= max_total || sb->free_head == sb->capacity) {
        sb_unlock(sb);
        *why = SB_LIMIT_TOTAL;
        return -1;
    }
    struct sb_ip *ip = ip_find(sb, key, 1);
    if (ip->count >= max_per_ip) {
        sb_unlock(sb);
        *why = SB_LIMIT_PER_IP;
        return -1;
    }
    uint32_t slot = sb->free_head;
    struct sb_conn *c = &sb->conns[slot];
    sb->free_head = c->next_free;
    memcpy(c->ip, key, 16);
    c->owner = owner;
    ip->count++;
    sb->active++;
    sb_unlock(sb);
    *why = SB_OK;
    return (int)slot;
}

static void release_slot(struct scoreboard *sb, uint32_t slot)
{
    struct sb_conn *c = &sb->conns[slot];
    struct sb_ip *ip = ip_find(sb, c->ip, 0);
    if (ip != NULL && --ip->count == 0)
        ip_remove(sb, ip);
    c->owner = SLOT_FREE;
    c->next_free = sb->free_head;
    sb->free_head = slot;
    sb->active--;
}

void scoreboard_conn_close(struct scoreboard *sb, int slot)
{
    if (slot < 0 || (uint32_t)slot >= sb->capacity)
        return;
    sb_lock(sb);
    if (sb->conns[slot].owner != SLOT_FREE)
        release_slot(sb, (uint32_t)slot);
    sb_unlock(sb);
}

unsigned scoreboard_reap_owner(struct scoreboard *sb, pid_t owner)
{
    unsigned n = 0;
    /* 0 marks a free slot: "reaping" it would corrupt the free list. */
    if (owner <= 0)
        return 0;
    sb_lock(sb);
    for (uint32_t i = 0; i < sb->capacity; i++) {
        if (sb->conns[i].owner == owner) {
            release_slot(sb, i);
            n++;
        }
    }
    sb_unlock(sb);
    return n;
}

unsigned scoreboard_active(struct scoreboard *sb)
{
    sb_lock(sb);
    unsigned n = sb->active;
    sb_unlock(sb);
    return n;
}

unsigned scoreboard_count_ip(struct scoreboard *sb, const struct sockaddr *addr)
{
    uint8_t key[16];
    addr_key(addr, key);
    sb_lock(sb);
    struct sb_ip *ip = ip_find(sb, key, 0);
    unsigned n = ip ? ip->count : 0;
    sb_unlock(sb);
    return n;
}
