#include "scoreboard.h"

#include "daemon/hash.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define SLOT_FREE 0

struct sb_conn {
    pid_t    owner;          /* SLOT_FREE when unused */
    uint32_t next_free;      /* free list link */
    uint8_t  ip[16];         /* IPv4 as v4-mapped IPv6 */
    uint8_t  mailbox[16];    /* hash of the locked maildir's path */
    uint8_t  has_mailbox;
    uint8_t  kick;           /* enum scoreboard_kick, written by the master */
    struct scoreboard_session session;
};

/* A bucket of an open-addressing table keyed by 16 bytes: IPs, mailboxes. */
struct sb_entry {
    uint8_t  key[16];
    uint32_t count;          /* 0 = empty bucket */
};

struct sb_table {
    uint32_t buckets;        /* power of two, at least 2 * capacity */
    struct sb_entry *e;
};

struct scoreboard {
    pthread_mutex_t lock;
    size_t   map_size;
    uint32_t capacity;
    uint32_t active;
    uint32_t free_head;      /* capacity = no free slot */
    struct sb_conn *conns;
    struct sb_table ips;       /* connections per client address */
    struct sb_table mailboxes; /* the POP3 exclusive lock: count is 0 or 1 */
    uint32_t draining;         /* the global drain flag */
    uint32_t changes;          /* bumped on drain, undrain and kicks */
    char drain_message[SCOREBOARD_DRAIN_MESSAGE_MAX + 1];
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

static uint32_t key_hash(const uint8_t key[16])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++) {
        h ^= key[i];
        h *= 16777619u;
    }
    return h;
}

static struct sb_entry *table_find(struct sb_table *t, const uint8_t key[16], int create)
{
    uint32_t mask = t->buckets - 1;
    for (uint32_t i = key_hash(key) & mask;; i = (i + 1) & mask) {
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
    for (uint32_t i = (hole + 1) & mask; t->e[i].count != 0; i = (i + 1) & mask) {
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

static void rebuild_tables(struct scoreboard *sb)
{
    memset(sb->ips.e, 0, sizeof(*sb->ips.e) * sb->ips.buckets);
    memset(sb->mailboxes.e, 0, sizeof(*sb->mailboxes.e) * sb->mailboxes.buckets);
    sb->active = 0;
    for (uint32_t i = 0; i < sb->capacity; i++) {
        struct sb_conn *c = &sb->conns[i];
        if (c->owner == SLOT_FREE)
            continue;
        table_find(&sb->ips, c->ip, 1)->count++;
        if (c->has_mailbox)
            table_find(&sb->mailboxes, c->mailbox, 1)->count = 1;
        sb->active++;
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
        rebuild_tables(sb);
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
                  2 * sizeof(struct sb_entry) * buckets;
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    struct scoreboard *sb = map;
    sb->map_size = size;
    sb->capacity = capacity;
    sb->conns = (struct sb_conn *)(sb + 1);
    sb->ips.buckets = sb->mailboxes.buckets = buckets;
    sb->ips.e = (struct sb_entry *)(sb->conns + capacity);
    sb->mailboxes.e = sb->ips.e + buckets;

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
    rebuild_tables(sb);
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
    struct sb_entry *ip = table_find(&sb->ips, key, 1);
    if (ip->count >= max_per_ip) {
        sb_unlock(sb);
        *why = SB_LIMIT_PER_IP;
        return -1;
    }
    uint32_t slot = sb->free_head;
    struct sb_conn *c = &sb->conns[slot];
    sb->free_head = c->next_free;
    memcpy(c->ip, key, 16);
    c->has_mailbox = 0;
    c->kick = SB_KICK_NONE;
    memset(&c->session, 0, sizeof(c->session));
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
    table_decrement(&sb->ips, c->ip);
    if (c->has_mailbox)
        table_decrement(&sb->mailboxes, c->mailbox);
    c->has_mailbox = 0;
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
    struct sb_entry *ip = table_find(&sb->ips, key, 0);
    unsigned n = ip ? ip->count : 0;
    sb_unlock(sb);
    return n;
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
    sb_lock(sb);
    struct sb_conn *c = &sb->conns[slot];
    if (c->owner == SLOT_FREE || c->has_mailbox) {
        sb_unlock(sb);
        errno = EINVAL;
        return -1;
    }
    struct sb_entry *e = table_find(&sb->mailboxes, key, 1);
    if (e->count != 0) {
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
    if (slot < 0 || (uint32_t)slot >= sb->capacity)
        return;
    sb_lock(sb);
    struct sb_conn *c = &sb->conns[slot];
    if (c->owner != SLOT_FREE && c->has_mailbox) {
        table_decrement(&sb->mailboxes, c->mailbox);
        c->has_mailbox = 0;
    }
    sb_unlock(sb);
}

int scoreboard_conn_move(struct scoreboard *sb, int slot, const struct sockaddr *addr,
                         unsigned max_per_ip, enum scoreboard_refusal *why)
{
    uint8_t key[16];
    addr_key(addr, key);
    if (slot < 0 || (uint32_t)slot >= sb->capacity) {
        errno = EINVAL;
        return -1;
    }
    sb_lock(sb);
    struct sb_conn *c = &sb->conns[slot];
    if (memcmp(c->ip, key, 16) != 0) {
        struct sb_entry *to = table_find(&sb->ips, key, 1);
        if (to->count >= max_per_ip) {
            sb_unlock(sb);
            *why = SB_LIMIT_PER_IP;
            return -1;
        }
        to->count++;
        table_decrement(&sb->ips, c->ip);
        memcpy(c->ip, key, 16);
    }
    sb_unlock(sb);
    *why = SB_OK;
    return 0;
}

unsigned scoreboard_active_hint(const struct scoreboard *sb)
{
    return __atomic_load_n(&sb->active, __ATOMIC_RELAXED);
}

struct scoreboard_session *scoreboard_session(struct scoreboard *sb, int slot)
{
    if (slot < 0 || (uint32_t)slot >= sb->capacity)
        return NULL;
    return &sb->conns[slot].session;
}

int scoreboard_peek(struct scoreboard *sb, unsigned slot, struct scoreboard_session *out,
                    uint8_t ip[16], pid_t *owner)
{
    if (slot >= sb->capacity)
        return -1;
    sb_lock(sb);
    const struct sb_conn *c = &sb->conns[slot];
    *owner = c->owner;
    if (c->owner != SLOT_FREE) {
        memcpy(ip, c->ip, 16);
        *out = c->session;
        out->user[sizeof(out->user) - 1] = '\0';
        out->state[sizeof(out->state) - 1] = '\0';
        out->tls[sizeof(out->tls) - 1] = '\0';
    }
    sb_unlock(sb);
    return *owner != SLOT_FREE;
}

void scoreboard_kick(struct scoreboard *sb, unsigned slot, enum scoreboard_kick how)
{
    if (slot >= sb->capacity)
        return;
    __atomic_store_n(&sb->conns[slot].kick, (uint8_t)how, __ATOMIC_RELAXED);
    __atomic_add_fetch(&sb->changes, 1, __ATOMIC_RELEASE);
}

enum scoreboard_kick scoreboard_kicked(const struct scoreboard *sb, int slot)
{
    if (slot < 0 || (uint32_t)slot >= sb->capacity)
        return SB_KICK_NONE;
    return (enum scoreboard_kick)__atomic_load_n(&sb->conns[slot].kick, __ATOMIC_RELAXED);
}

void scoreboard_set_drain(struct scoreboard *sb, int on, const char *message)
{
    sb_lock(sb);
    snprintf(sb->drain_message, sizeof(sb->drain_message), "%s", message ? message : "");
    sb->drain_message[strcspn(sb->drain_message, "\r\n")] = '\0';
    __atomic_store_n(&sb->draining, on ? 1u : 0u, __ATOMIC_RELEASE);
    sb_unlock(sb);
    __atomic_add_fetch(&sb->changes, 1, __ATOMIC_RELEASE);
}

int scoreboard_draining(struct scoreboard *sb, char *message, size_t len)
{
    /* The common case, not draining, must not take the lock on every accept. */
    if (!__atomic_load_n(&sb->draining, __ATOMIC_ACQUIRE))
        return 0;
    sb_lock(sb);
    int on = (int)sb->draining;
    if (message != NULL && len > 0)
        snprintf(message, len, "%s", sb->drain_message);
    sb_unlock(sb);
    return on;
}

uint32_t scoreboard_changes(const struct scoreboard *sb)
{
    return __atomic_load_n(&sb->changes, __ATOMIC_ACQUIRE);
}
