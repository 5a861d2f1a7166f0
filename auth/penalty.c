#include "auth/penalty.h"

#include "daemon/runtime/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define NIL UINT32_MAX

enum { KIND_IP = 1, KIND_USER = 2 };

void penalty_config_from(struct penalty_config *pc, const struct config *cfg)
{
    memset(pc, 0, sizeof(*pc));
    pc->enabled = cfg->auth_penalty;
    pc->delay = cfg->auth_penalty_delay;
    pc->max_delay = cfg->auth_penalty_max_delay;
    pc->forget = cfg->auth_penalty_forget;
    pc->block_after = cfg->auth_penalty_block_after;
    pc->block_time = cfg->auth_penalty_block_time;
    pc->ipv4_prefix = cfg->auth_penalty_ipv4_prefix;
    pc->ipv6_prefix = cfg->auth_penalty_ipv6_prefix;
    pc->entries = (uint32_t)cfg->auth_penalty_entries;
    pc->trusted = cfg->auth_penalty_trusted;
}

static int alloc_table(struct penalty *p)
{
    uint32_t n = p->cfg.entries < 16 ? 16 : p->cfg.entries;
    uint32_t nb = 16;

    while (nb < n && nb < (1u << 30))
        nb <<= 1;
    p->e = calloc(n, sizeof(*p->e));
    p->bucket = malloc(nb * sizeof(*p->bucket));
    if (p->e == NULL || p->bucket == NULL) {
        free(p->e);
        free(p->bucket);
        p->e = NULL;
        p->bucket = NULL;
        errno = ENOMEM;
        return -1;
    }
    p->cfg.entries = n;
    p->nbuckets = nb;
    for (uint32_t i = 0; i < nb; i++)
        p->bucket[i] = NIL;
    p->used = p->fresh = 0;
    p->free_list = p->head = p->tail = NIL;
    return 0;
}

int penalty_init(struct penalty *p, const struct penalty_config *pc)
{
    memset(p, 0, sizeof(*p));
    p->cfg = *pc;
    /* A fixed seed would let a client pick names that share one hash chain. */
    if (getrandom(p->seed, sizeof(p->seed), 0) != (ssize_t)sizeof(p->seed)) {
        for (size_t i = 0; i < sizeof(p->seed); i++)
            p->seed[i] = (unsigned char)random();
    }
    return alloc_table(p);
}

int penalty_reconfigure(struct penalty *p, const struct penalty_config *pc)
{
    uint32_t old = p->cfg.entries;
    uint32_t want = pc->entries < 16 ? 16 : pc->entries;

    p->cfg = *pc;
    p->cfg.entries = old;
    if (want == old)
        return 0;
    free(p->e);
    free(p->bucket);
    p->cfg.entries = want;
    return alloc_table(p);
}

void penalty_free(struct penalty *p)
{
    free(p->e);
    free(p->bucket);
    p->e = NULL;
    p->bucket = NULL;
}

static void make_key(const struct penalty *p, int kind, const void *data, size_t len,
                     unsigned char key[16])
{
    unsigned char buf[16 + 1 + 512], md[SHA256_DIGEST_LENGTH];

    if (len > sizeof(buf) - 17)
        len = sizeof(buf) - 17;
    memcpy(buf, p->seed, 16);
    buf[16] = (unsigned char)kind;
    memcpy(buf + 17, data, len);
    SHA256(buf, 17 + len, md);
    memcpy(key, md, 16);
}

/* The key of ip's group; -1 if ip is not an address. */
static int ip_key(const struct penalty *p, const char *ip, unsigned char key[16])
{
    uint8_t a[16];

    if (cidr_client_prefix(ip, p->cfg.ipv4_prefix, p->cfg.ipv6_prefix, a) == -1)
        return -1;
    make_key(p, KIND_IP, a, sizeof(a), key);
    return 0;
}

/* Until when e counts for the workers: its score decays to zero, its block ends. */
static int64_t listed_until_ms(const struct penalty *p, const struct penalty_entry *e)
{
    double until = e->blocked_until;

    if (e->score > 0) {
        if (p->cfg.forget <= 0)
            return INT64_MAX;   /* nothing is ever forgiven */
        double zero = e->updated + e->score * p->cfg.forget;
        if (zero > until)
            until = zero;
    }
    return (int64_t)(until * 1000.0);
}

static void rebuild_view(struct penalty *p, double now);

/* Tell the workers what e says now (a no-op without a view). */
static void publish(struct penalty *p, const struct penalty_entry *e, double now)
{
    if (p->view == NULL || e->view_tag == 0)
        return;
    int64_t now_ms = (int64_t)(now * 1000.0);
    int64_t until = e->used ? listed_until_ms(p, e) : 0;
    if (penalty_view_set(p->view, e->view_tag, until, now_ms) == -1 ||
        penalty_view_needs_rebuild(p->view))
        rebuild_view(p, now);
}

static void rebuild_view(struct penalty *p, double now)
{
    int64_t now_ms = (int64_t)(now * 1000.0);

    penalty_view_rebuild_begin(p->view, p->cfg.ipv4_prefix, p->cfg.ipv6_prefix);
    for (uint32_t i = p->head; i != NIL; i = p->e[i].next) {
        const struct penalty_entry *e = &p->e[i];
        if (e->view_tag != 0)
            (void)penalty_view_set(p->view, e->view_tag, listed_until_ms(p, e), now_ms);
    }
    penalty_view_rebuild_end(p->view);
}

void penalty_set_view(struct penalty *p, struct penalty_view *view, double now)
{
    p->view = view;
    if (view != NULL)
        rebuild_view(p, now);
}

static uint32_t bucket_of(const struct penalty *p, const unsigned char key[16])
{
    uint32_t h;
    memcpy(&h, key, sizeof(h));
    return h & (p->nbuckets - 1);
}

static void lru_unlink(struct penalty *p, uint32_t i)
{
    struct penalty_entry *e = &p->e[i];
    if (e->prev != NIL)
        p->e[e->prev].next = e->next;
    else
        p->head = e->next;
    if (e->next != NIL)
        p->e[e->next].prev = e->prev;
    else
        p->tail = e->prev;
}

static void lru_push(struct penalty *p, uint32_t i)
{
    struct penalty_entry *e = &p->e[i];
    e->prev = NIL;
    e->next = p->head;
    if (p->head != NIL)
        p->e[p->head].prev = i;
    p->head = i;
    if (p->tail == NIL)
        p->tail = i;
}

static void remove_entry(struct penalty *p, uint32_t i)
{
    uint32_t *link = &p->bucket[bucket_of(p, p->e[i].key)];
    while (*link != i)
        link = &p->e[*link].hnext;
    *link = p->e[i].hnext;
    lru_unlink(p, i);
    p->e[i].used = 0;
    publish(p, &p->e[i], p->e[i].updated);
    p->e[i].hnext = p->free_list;
    p->free_list = i;
    p->used--;
}

static uint32_t find(struct penalty *p, const unsigned char key[16])
{
    for (uint32_t i = p->bucket[bucket_of(p, key)]; i != NIL; i = p->e[i].hnext) {
        if (memcmp(p->e[i].key, key, 16) == 0)
            return i;
    }
    return NIL;
}

/* Decay e's score up to now. */
static void bring_up_to_date(const struct penalty *p, struct penalty_entry *e, double now)
{
    if (now > e->updated && p->cfg.forget > 0) {
        e->score -= (now - e->updated) / p->cfg.forget;
        if (e->score < 0)
            e->score = 0;
    }
    e->updated = now;
}

/* The entry for key, made (evicting the least recently used) if create. */
static struct penalty_entry *get(struct penalty *p, const unsigned char key[16], int create,
                                 double now)
{
    uint32_t i = find(p, key);

    if (i == NIL) {
        if (!create)
            return NULL;
        if (p->free_list != NIL) {
            i = p->free_list;
            p->free_list = p->e[i].hnext;
        } else if (p->fresh < p->cfg.entries) {
            i = p->fresh++;
        } else {
            remove_entry(p, p->tail);
            i = p->free_list;
            p->free_list = p->e[i].hnext;
        }
        struct penalty_entry *e = &p->e[i];
        memset(e, 0, sizeof(*e));
        memcpy(e->key, key, 16);
        e->used = 1;
        e->updated = now;
        uint32_t b = bucket_of(p, key);
        e->hnext = p->bucket[b];
        p->bucket[b] = i;
        p->used++;
    } else {
        lru_unlink(p, i);
    }
    lru_push(p, i);
    bring_up_to_date(p, &p->e[i], now);
    return &p->e[i];
}

int penalty_trusted(const struct penalty *p, const char *ip)
{
    struct sockaddr_in6 sa;

    /* cidr_list_match() takes v4-mapped IPv6 for IPv4 networks too. */
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    if (cidr_client_prefix(ip, 32, 128, sa.sin6_addr.s6_addr) == -1)
        return 0;
    return cidr_list_match(&p->cfg.trusted, (const struct sockaddr *)&sa);
}

double penalty_delay_for(const struct penalty_config *pc, double score)
{
    double d = pc->delay;

    if (score <= 0 || d <= 0)
        return 0;
    /* doubling per failure after the first; the loop stops at the cap */
    for (double s = 1; s < score && d < pc->max_delay; s++)
        d *= 2;
    return d < pc->max_delay ? d : pc->max_delay;
}

int penalty_blocked(struct penalty *p, const char *ip, double now, double *left)
{
    unsigned char key[16];
    struct penalty_entry *e;

    *left = 0;
    if (!p->cfg.enabled || p->cfg.block_after <= 0 || penalty_trusted(p, ip) ||
        ip_key(p, ip, key) == -1 || (e = get(p, key, 0, now)) == NULL)
        return 0;
    if (e->blocked_until <= now)
        return 0;
    *left = e->blocked_until - now;
    return 1;
}

double penalty_failure(struct penalty *p, const char *ip, const char *user, double now,
                       int *blocked)
{
    unsigned char key[16];
    double ip_score = 0, user_score = 0;

    *blocked = 0;
    if (!p->cfg.enabled)
        return 0;
    if (user != NULL && user[0] != '\0') {
        make_key(p, KIND_USER, user, strlen(user), key);
        struct penalty_entry *e = get(p, key, 1, now);
        user_score = e->score += 1;
        if (p->view != NULL && e->view_tag == 0)
            e->view_tag = penalty_view_user_tag(p->view, user);
        publish(p, e, now);
    }
    if (!penalty_trusted(p, ip) && ip_key(p, ip, key) == 0) {
        struct penalty_entry *e = get(p, key, 1, now);
        ip_score = e->score += 1;
        if (p->view != NULL && e->view_tag == 0 &&
            penalty_view_ip_tag(p->view, ip, &e->view_tag) == -1)
            e->view_tag = 0;
        /* Counted like the delay: a failure decayed by a few seconds still counts whole. */
        int whole = (int)ip_score;
        if (whole < ip_score)
            whole++;
        if (p->cfg.block_after > 0 && whole >= p->cfg.block_after && e->blocked_until <= now) {
            e->blocked_until = now + p->cfg.block_time;
            *blocked = 1;
        }
        publish(p, e, now);
    } else if (penalty_trusted(p, ip)) {
        /* A trusted network is never kept waiting, whoever it names. */
        return 0;
    }
    double s = ip_score > user_score ? ip_score : user_score;
    return penalty_delay_for(&p->cfg, s);
}

double penalty_success(struct penalty *p, const char *ip, const char *user, double now)
{
    unsigned char key[16];
    uint32_t i;

    if (!p->cfg.enabled)
        return 0;
    if (user != NULL && user[0] != '\0') {
        make_key(p, KIND_USER, user, strlen(user), key);
        if ((i = find(p, key)) != NIL)
            remove_entry(p, i);
    }
    if (penalty_trusted(p, ip) || ip_key(p, ip, key) == -1)
        return 0;
    struct penalty_entry *e = get(p, key, 0, now);
    return e ? penalty_delay_for(&p->cfg, e->score) : 0;
}

double penalty_ip_score(struct penalty *p, const char *ip, double now)
{
    unsigned char key[16];
    struct penalty_entry *e;

    if (ip_key(p, ip, key) == -1 || (e = get(p, key, 0, now)) == NULL)
        return 0;
    return e->score;
}

double penalty_user_score(struct penalty *p, const char *user, double now)
{
    unsigned char key[16];
    struct penalty_entry *e;

    make_key(p, KIND_USER, user, strlen(user), key);
    e = get(p, key, 0, now);
    return e ? e->score : 0;
}
