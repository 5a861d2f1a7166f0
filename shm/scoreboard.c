/*
 * The scoreboard's region and the tables the workers keep under their lock:
 * claiming and releasing slots, the per-address counts, the mailbox locks.
 * See shm/scoreboard_region.h for which memory is trusted.
 */
#include "shm/scoreboard_region.h"

#include "daemon/runtime/cidr.h"
#include "daemon/runtime/hash.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

pid_t sb_slot_owner(const struct sb_conn *c)
{
    pid_t owner = __atomic_load_n(&c->owner, __ATOMIC_ACQUIRE);
    return owner > 0 ? owner : SLOT_FREE;
}

void sb_slot_set_owner(struct sb_conn *c, pid_t owner)
{
    __atomic_store_n(&c->owner, owner, __ATOMIC_RELEASE);
}

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

/* The blocks an address is counted in (see struct scoreboard_limits). */
struct blocks {
    uint8_t ip[16];        /* the IPv4 address (v4-mapped), or the IPv6 /64 */
    uint8_t net48[16];     /* the IPv6 /48 */
    int     has_net48;     /* 0 for IPv4 */
};

static void address_blocks(const uint8_t addr[16], struct blocks *b)
{
    memset(b, 0, sizeof(*b));
    memcpy(b->ip, addr, 16);
    if (cidr_is_v4_mapped(addr))
        return;
    memset(b->ip + 8, 0, 8);
    memcpy(b->net48, addr, 6);
    b->has_net48 = 1;
}

static uint32_t key_hash(const uint8_t key[16])
{
    return (uint32_t)hash64(key, 16, HASH_SEED_A);
}

/*
 * The bucket of key, or with create an empty one to fill. Probes stop after
 * every bucket was seen: a table a worker filled with garbage ends in NULL,
 * never in an endless loop. (A sound table is never full: it has twice as
 * many buckets as there are slots.)
 */
static struct sb_entry *table_find(const struct sb_table *t, const uint8_t key[16], int create)
{
    uint32_t mask = t->buckets - 1;
    uint32_t i = key_hash(key) & mask;
    for (uint32_t probes = 0; probes < t->buckets; probes++, i = (i + 1) & mask) {
        struct sb_entry *b = &t->e[i];
        if (b->count == 0) {
            if (!create)
                return NULL;
            memcpy(b->key, key, 16);
            return b;
        }
        if (memcmp(b->key, key, 16) == 0)
            return b;
    }
    return NULL;
}

/*
 * Emptying a bucket with linear probing: shift later entries of the probe
 * run back so lookups never stop early (no tombstones to pile up).
 */
static void table_remove(struct sb_table *t, struct sb_entry *gone)
{
    uint32_t mask = t->buckets - 1;
    uint32_t hole = (uint32_t)(gone - t->e);
    t->e[hole].count = 0;
    uint32_t i = (hole + 1) & mask;
    for (uint32_t steps = 1; steps < t->buckets && t->e[i].count != 0;
         steps++, i = (i + 1) & mask) {
        uint32_t home = key_hash(t->e[i].key) & mask;
        /* Move entry i into the hole unless its home lies in (hole, i]. */
        int stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            t->e[hole] = t->e[i];
            t->e[i].count = 0;
            hole = i;
        }
    }
}

static void table_decrement(struct sb_table *t, const uint8_t key[16])
{
    struct sb_entry *e = table_find(t, key, 0);
    if (e != NULL && --e->count == 0)
        table_remove(t, e);
}

/* A connection from addr leaves its blocks. */
static void blocks_decrement(struct scoreboard *sb, const uint8_t addr[16])
{
    struct blocks b;
    address_blocks(addr, &b);
    table_decrement(&sb->ips, b.ip);
    if (b.has_net48)
        table_decrement(&sb->nets48, b.net48);
}

/*
 * The buckets a connection from b would be counted in, if both have room
 * under limits: SB_OK, or the limit that refuses (*ip and *net48 are then
 * not to be used). A NULL bucket means a worker scribbled the table full:
 * refused, and the next holder of the lock starts afresh.
 */
static enum scoreboard_refusal blocks_room(struct scoreboard *sb, const struct blocks *b,
                                           const struct scoreboard_limits *limits,
                                           struct sb_entry **ip, struct sb_entry **net48)
{
    *ip = table_find(&sb->ips, b->ip, 1);
    *net48 = b->has_net48 ? table_find(&sb->nets48, b->net48, 1) : NULL;
    if (*ip == NULL || (b->has_net48 && *net48 == NULL)) {
        sb->shared->stale = 1;
        return SB_LIMIT_PER_IP;
    }
    if ((*ip)->count >= limits->per_ip)
        return SB_LIMIT_PER_IP;
    if (*net48 != NULL && (*net48)->count >= limits->per_ipv6_48)
        return SB_LIMIT_PER_IPV6_48;
    return SB_OK;
}

/*
 * Derive the tables, the free list and the count again from the slots
 * alone: after a holder of the lock died, after the master freed slots
 * without the lock, and whenever a shared index is out of range.
 */
static void rebuild_tables(struct scoreboard *sb)
{
    struct sb_shared *sh = sb->shared;
    memset(sb->ips.e, 0, sizeof(*sb->ips.e) * sb->ips.buckets);
    memset(sb->nets48.e, 0, sizeof(*sb->nets48.e) * sb->nets48.buckets);
    memset(sb->mailboxes.e, 0, sizeof(*sb->mailboxes.e) * sb->mailboxes.buckets);
    sh->active = 0;
    sh->free_head = sb->capacity;
    for (uint32_t i = sb->capacity; i-- > 0;) {
        struct sb_conn *c = &sb->conns[i];
        if (sb_slot_owner(c) == SLOT_FREE) {
            sb_slot_set_owner(c, SLOT_FREE);
            c->has_mailbox = 0;
            c->next_free = sh->free_head;
            sh->free_head = i;
            continue;
        }
        /* Never NULL: at most capacity keys in 2 * capacity buckets. */
        struct blocks b;
        address_blocks(c->ip, &b);
        struct sb_entry *e = table_find(&sb->ips, b.ip, 1);
        if (e != NULL)
            e->count++;
        e = b.has_net48 ? table_find(&sb->nets48, b.net48, 1) : NULL;
        if (e != NULL)
            e->count++;
        if (c->has_mailbox) {
            e = table_find(&sb->mailboxes, c->mailbox, 1);
            if (e != NULL)
                e->count = 1;
        }
        sh->active++;
    }
}

/* 0 with the lock held and the tables sound, or -1 (the lock is broken: refuse). */
static int sb_lock(struct scoreboard *sb)
{
    struct sb_shared *sh = sb->shared;
    int rc = pthread_mutex_lock(&sh->lock);
    if (rc == EOWNERDEAD) {
        /* The holder died mid-update: derive everything again from the slots. */
        __atomic_store_n(&sh->stale, 1, __ATOMIC_RELAXED);
        pthread_mutex_consistent(&sh->lock);
    } else if (rc != 0) {
        errno = rc;
        return -1;
    }
    if (__atomic_exchange_n(&sh->stale, 0, __ATOMIC_ACQUIRE) != 0 ||
        sh->free_head > sb->capacity || sh->active > sb->capacity)
        rebuild_tables(sb);
    return 0;
}

static void sb_unlock(struct scoreboard *sb)
{
    pthread_mutex_unlock(&sb->shared->lock);
}

struct scoreboard *scoreboard_create(unsigned capacity)
{
    uint32_t buckets = 16;
    while (buckets < 2u * capacity)
        buckets *= 2;
    struct scoreboard *sb = calloc(1, sizeof(*sb));
    if (sb == NULL)
        return NULL;
    sb->capacity = capacity;
    sb->map_size = sizeof(struct sb_shared) + sizeof(struct sb_conn) * capacity +
                   3 * sizeof(struct sb_entry) * buckets;
    sb->map = mmap(NULL, sb->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                   0);
    if (sb->map == MAP_FAILED) {
        free(sb);
        return NULL;
    }
    sb->shared = sb->map;
    sb->conns = (struct sb_conn *)(sb->shared + 1);
    sb->ips.buckets = sb->nets48.buckets = sb->mailboxes.buckets = buckets;
    sb->ips.e = (struct sb_entry *)(sb->conns + capacity);
    sb->nets48.e = sb->ips.e + buckets;
    sb->mailboxes.e = sb->nets48.e + buckets;

    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&sb->shared->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        munmap(sb->map, sb->map_size);
        free(sb);
        errno = rc;
        return NULL;
    }
    rebuild_tables(sb);
    return sb;
}

void scoreboard_destroy(struct scoreboard *sb)
{
    if (sb == NULL)
        return;
    munmap(sb->map, sb->map_size);
    free(sb);
}

unsigned scoreboard_capacity(const struct scoreboard *sb) { return sb->capacity; }

/* The head of the free list is a free slot whose link is in range (or there is none). */
static int free_list_sound(const struct scoreboard *sb)
{
    uint32_t slot = sb->shared->free_head;
    return slot == sb->capacity ||
           (slot < sb->capacity && sb_slot_owner(&sb->conns[slot]) == SLOT_FREE &&
            sb->conns[slot].next_free <= sb->capacity);
}

int scoreboard_conn_open_within(struct scoreboard *sb, pid_t owner, const struct sockaddr *addr,
                                const struct scoreboard_limits *limits,
                                enum scoreboard_refusal *why)
{
    uint8_t key[16];
    struct blocks b;
    addr_key(addr, key);
    address_blocks(key, &b);
    unsigned max_total = limits->total < sb->capacity ? limits->total : sb->capacity;

    *why = SB_LIMIT_TOTAL;
    if (owner <= 0 || sb_lock(sb) == -1)
        return -1;
    struct sb_shared *sh = sb->shared;
    if (!free_list_sound(sb))
        rebuild_tables(sb);
    if (sh->active >= max_total || sh->free_head == sb->capacity) {
        sb_unlock(sb);
        return -1;
    }
    struct sb_entry *ip, *net48;
    *why = blocks_room(sb, &b, limits, &ip, &net48);
    if (*why != SB_OK) {
        sb_unlock(sb);
        return -1;
    }
    uint32_t slot = sh->free_head;
    struct sb_conn *c = &sb->conns[slot];
    sh->free_head = c->next_free;
    memcpy(c->ip, key, 16);
    c->has_mailbox = 0;
    c->kick = SB_KICK_NONE;
    memset(&c->session, 0, sizeof(c->session));
    sb_slot_set_owner(c, owner);
    ip->count++;
    if (net48 != NULL)
        net48->count++;
    sh->active++;
    sb_unlock(sb);
    return (int)slot;
}

int scoreboard_conn_open(struct scoreboard *sb, pid_t owner, const struct sockaddr *addr,
                         unsigned max_total, unsigned max_per_ip,
                         enum scoreboard_refusal *why)
{
    const struct scoreboard_limits limits = { max_total, max_per_ip, UINT_MAX };
    return scoreboard_conn_open_within(sb, owner, addr, &limits, why);
}

static void release_slot(struct scoreboard *sb, uint32_t slot)
{
    struct sb_shared *sh = sb->shared;
    struct sb_conn *c = &sb->conns[slot];
    blocks_decrement(sb, c->ip);
    if (c->has_mailbox)
        table_decrement(&sb->mailboxes, c->mailbox);
    c->has_mailbox = 0;
    sb_slot_set_owner(c, SLOT_FREE);
    c->next_free = sh->free_head;
    sh->free_head = slot;
    if (sh->active > 0)
        sh->active--;
}

void scoreboard_conn_close(struct scoreboard *sb, int slot)
{
    if (slot < 0 || (uint32_t)slot >= sb->capacity)
        return;
    if (sb_lock(sb) == -1) {
        /* Free it the way the master reaps: the next holder of a sound lock rebuilds. */
        sb_slot_set_owner(&sb->conns[slot], SLOT_FREE);
        __atomic_store_n(&sb->shared->stale, 1, __ATOMIC_RELEASE);
        return;
    }
    if (sb_slot_owner(&sb->conns[slot]) != SLOT_FREE)
        release_slot(sb, (uint32_t)slot);
    sb_unlock(sb);
}

static unsigned count_block(struct scoreboard *sb, const struct sockaddr *addr, int net48)
{
    uint8_t key[16];
    struct blocks b;
    addr_key(addr, key);
    address_blocks(key, &b);
    if ((net48 && !b.has_net48) || sb_lock(sb) == -1)
        return 0;
    struct sb_entry *e = net48 ? table_find(&sb->nets48, b.net48, 0) : table_find(&sb->ips, b.ip, 0);
    unsigned n = e ? e->count : 0;
    sb_unlock(sb);
    return n;
}

unsigned scoreboard_count_ip(struct scoreboard *sb, const struct sockaddr *addr)
{
    return count_block(sb, addr, 0);
}

unsigned scoreboard_count_ipv6_48(struct scoreboard *sb, const struct sockaddr *addr)
{
    return count_block(sb, addr, 1);
}

int scoreboard_mailbox_lock(struct scoreboard *sb, int slot, const char *path)
{
    uint8_t key[16];
    if (slot < 0 || (uint32_t)slot >= sb->capacity) {
        errno = EINVAL;
        return -1;
    }
    /* The same key as the mailbox index: a false IN-USE must never happen. */
    hash128(path, strlen(path), key);
    if (sb_lock(sb) == -1)
        return -1;
    struct sb_conn *c = &sb->conns[slot];
    if (sb_slot_owner(c) == SLOT_FREE || c->has_mailbox) {
        sb_unlock(sb);
        errno = EINVAL;
        return -1;
    }
    struct sb_entry *e = table_find(&sb->mailboxes, key, 1);
    if (e == NULL || e->count != 0) {
        if (e == NULL)
            sb->shared->stale = 1;
        sb_unlock(sb);
        errno = EBUSY;
        return -1;
    }
    e->count = 1;
    memcpy(c->mailbox, key, 16);
    c->has_mailbox = 1;
    sb_unlock(sb);
    return 0;
}

void scoreboard_mailbox_unlock(struct scoreboard *sb, int slot)
{
    if (slot < 0 || (uint32_t)slot >= sb->capacity || sb_lock(sb) == -1)
        return;
    struct sb_conn *c = &sb->conns[slot];
    if (sb_slot_owner(c) != SLOT_FREE && c->has_mailbox) {
        table_decrement(&sb->mailboxes, c->mailbox);
        c->has_mailbox = 0;
    }
    sb_unlock(sb);
}

int scoreboard_conn_move_within(struct scoreboard *sb, int slot, const struct sockaddr *addr,
                                const struct scoreboard_limits *limits,
                                enum scoreboard_refusal *why)
{
    uint8_t key[16];
    struct blocks to, from;
    addr_key(addr, key);
    address_blocks(key, &to);
    if (slot < 0 || (uint32_t)slot >= sb->capacity) {
        errno = EINVAL;
        return -1;
    }
    *why = SB_LIMIT_PER_IP;
    if (sb_lock(sb) == -1)
        return -1;
    struct sb_conn *c = &sb->conns[slot];
    address_blocks(c->ip, &from);
    int new_ip = memcmp(from.ip, to.ip, 16) != 0;
    int new_net48 = to.has_net48 && (!from.has_net48 || memcmp(from.net48, to.net48, 16) != 0);
    /* A block the connection is already counted in has room for it by definition. */
    struct scoreboard_limits room = *limits;
    if (!new_ip)
        room.per_ip = UINT_MAX;
    if (!new_net48)
        room.per_ipv6_48 = UINT_MAX;
    struct sb_entry *ip, *net48;
    *why = blocks_room(sb, &to, &room, &ip, &net48);
    if (*why != SB_OK) {
        sb_unlock(sb);
        return -1;
    }
    /* Count in the new blocks before leaving the old: removal may move entries. */
    if (new_ip)
        ip->count++;
    if (new_net48)
        net48->count++;
    if (new_ip)
        table_decrement(&sb->ips, from.ip);
    if (from.has_net48 && (!to.has_net48 || memcmp(from.net48, to.net48, 16) != 0))
        table_decrement(&sb->nets48, from.net48);
    memcpy(c->ip, key, 16);
    sb_unlock(sb);
    return 0;
}
