#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

struct stats_block {
    _Atomic uint64_t v[STATS_VALUES];
};

/* The master's view; children inherit a copy but use only `blocks`. */
struct stats_region {
    int fd;
    unsigned count;
    struct stats_block *blocks;   /* shared */
    unsigned char *in_use;        /* private */
    uint64_t *retired;            /* private: exited processes' totals */
    uint64_t *baseline;           /* private: totals at the last reset */
    time_t started;
    time_t since;                 /* the last reset */
};

const uint64_t stats_bucket_us[STATS_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000,
};

const char *const stats_refusal_names[STATS_REFUSALS] = {
    "max_connections", "max_connections_per_ip", "descriptors", "draining", "proxy_untrusted",
};
const char *const stats_mech_names[STATS_MECHS] = { "USER", "PLAIN", "LOGIN", "SCRAM-SHA-256" };
const char *const stats_login_names[STATS_LOGIN_RESULTS] = { "ok", "failed", "tempfail",
                                                             "in_use" };
const char *const stats_cache_names[STATS_CACHE_RESULTS] = { "hit", "miss", "negative",
                                                             "stale" };
const char *const stats_store_names[STATS_STORES] = { "index", "auth_cache", "policy" };
const char *const stats_login_delay_names[STATS_LOGIN_DELAYS] = { "refused", "logged" };
const char *const stats_role_names[STATS_ROLES] = { "auth", "worker", "metrics" };
const char *const stats_dir_names[STATS_DIRS] = { "new", "cur" };
const char *const stats_tls_names[STATS_TLS_RESULTS] = { "TLSv1.2", "TLSv1.3", "other",
                                                         "failed" };
const char *const stats_command_names[STATS_COMMANDS] = {
    "USER", "PASS", "AUTH", "CAPA", "STLS", "STAT", "LIST", "UIDL",
    "RETR", "TOP", "DELE", "RSET", "NOOP", "QUIT", "other",
};
const char *const stats_end_reasons[STATS_END_REASONS] = {
    "quit", "disconnected", "idle-timeout", "proxy-timeout", "tls-timeout", "kicked",
    "drain", "drain-idle", "drain-deadline", "shutdown", "auth-failures", "too-many-errors",
    "write-error", "read-error", "input-overflow", "output-overflow", "epoll-error", "job-failed",
    "proxy-invalid", "tls-error", "tls-handshake-failed", "refused", "login-timeout",
    "too-many-commands", "evicted", "other",
};

/* This process's block; NULL (nothing counted) until attached. */
static struct stats_block *self;

static size_t region_bytes(unsigned count)
{
    return sizeof(struct stats_block) * count;
}

int stats_attach(struct stats_region *region, int slot)
{
    if (region == NULL || slot < 0 || (unsigned)slot >= region->count)
        return -1;
    self = &region->blocks[slot];
    return 0;
}

int stats_attach_fd(int fd, int slot)
{
    off_t end = lseek(fd, 0, SEEK_END);
    if (end <= 0 || slot < 0 || (size_t)end < region_bytes((unsigned)slot + 1)) {
        errno = EINVAL;
        return -1;
    }
    void *map = mmap(NULL, (size_t)end, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return -1;
    self = (struct stats_block *)map + slot;
    return 0;
}

void stats_add(enum stats_value v, uint64_t n)
{
    if (self != NULL && (unsigned)v < STATS_VALUES)
        atomic_fetch_add_explicit(&self->v[v], n, memory_order_relaxed);
}

void stats_refused(enum stats_refusal why)
{
    if ((unsigned)why < STATS_REFUSALS)
        stats_add(SV_REFUSED + why, 1);
}

void stats_login(const char *mech, enum stats_login result)
{
    unsigned m = 0;   /* USER/PASS unless named otherwise */
    for (unsigned i = 0; mech != NULL && i < STATS_MECHS; i++) {
        if (strcasecmp(mech, stats_mech_names[i]) == 0)
            m = i;
    }
    if ((unsigned)result < STATS_LOGIN_RESULTS)
        stats_add(SV_LOGIN + m * STATS_LOGIN_RESULTS + result, 1);
}

void stats_cache(enum stats_cache what)
{
    if ((unsigned)what < STATS_CACHE_RESULTS)
        stats_add(SV_CACHE + what, 1);
}

void stats_store_error(enum stats_store which)
{
    if ((unsigned)which < STATS_STORES)
        stats_add(SV_STORE_ERRORS + which, 1);
}

void stats_session_end(const char *reason)
{
    unsigned i = 0;
    while (i + 1 < STATS_END_REASONS && (reason == NULL || strcmp(reason, stats_end_reasons[i])))
        i++;
    stats_add(SV_ENDED + i, 1);
}

void stats_tls_handshake(const char *version)
{
    enum stats_tls t = version == NULL                 ? STATS_TLS_FAILED
                       : strcmp(version, "TLSv1.3") == 0 ? STATS_TLS_1_3
                       : strcmp(version, "TLSv1.2") == 0 ? STATS_TLS_1_2
                                                         : STATS_TLS_OTHER;
    stats_add(SV_TLS + t, 1);
}

enum stats_command stats_command_id(const char *name)
{
    for (unsigned i = 0; i < STATS_CMD_OTHER; i++) {
        if (strcasecmp(name, stats_command_names[i]) == 0)
            return (enum stats_command)i;
    }
    return STATS_CMD_OTHER;
}

static void observe(unsigned base, uint64_t usec)
{
    unsigned b = 0;
    while (b < STATS_BUCKETS - 1 && usec > stats_bucket_us[b])
        b++;
    stats_add(base + b, 1);
    stats_add(base + STATS_BUCKETS, usec);
}

void stats_command_time(enum stats_command cmd, uint64_t usec)
{
    if ((unsigned)cmd < STATS_COMMANDS)
        observe(SV_COMMAND_HIST + cmd * STATS_HIST_VALUES, usec);
}

void stats_timing(enum stats_timing which, uint64_t usec)
{
    if ((unsigned)which < STATS_TIMINGS)
        observe(SV_TIMING_HIST + which * STATS_HIST_VALUES, usec);
}

uint64_t stats_hist_count(const uint64_t *hist)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < STATS_BUCKETS; b++)
        n += hist[b];
    return n;
}

struct stats_region *stats_region_create(unsigned blocks)
{
    struct stats_region *r = calloc(1, sizeof(*r));
    if (r == NULL || blocks == 0)
        goto fail;
    r->count = blocks;
    r->started = r->since = time(NULL);
    r->in_use = calloc(blocks, 1);
    r->retired = calloc(STATS_VALUES, sizeof(uint64_t));
    r->baseline = calloc(STATS_VALUES, sizeof(uint64_t));
    if (r->in_use == NULL || r->retired == NULL || r->baseline == NULL)
        goto fail;
    r->fd = memfd_create("fastpop-stats", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (r->fd == -1)
        goto fail;
    /* Sealed at its size: a child holding the fd cannot shrink it under the master. */
    if (ftruncate(r->fd, (off_t)region_bytes(blocks)) == -1 ||
        fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == -1) {
        close(r->fd);
        goto fail;
    }
    r->blocks = mmap(NULL, region_bytes(blocks), PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (r->blocks == MAP_FAILED) {
        close(r->fd);
        goto fail;
    }
    return r;
fail:
    if (r != NULL) {
        int e = errno;
        free(r->in_use);
        free(r->retired);
        free(r->baseline);
        free(r);
        errno = e;
    }
    return NULL;
}

void stats_region_destroy(struct stats_region *r)
{
    if (r == NULL)
        return;
    munmap(r->blocks, region_bytes(r->count));
    close(r->fd);
    free(r->in_use);
    free(r->retired);
    free(r->baseline);
    free(r);
}

int stats_region_fd(const struct stats_region *r)
{
    return r->fd;
}

int stats_region_claim(struct stats_region *r)
{
    for (unsigned i = 0; i < r->count; i++) {
        if (!r->in_use[i]) {
            for (unsigned v = 0; v < STATS_VALUES; v++)
                atomic_store_explicit(&r->blocks[i].v[v], 0, memory_order_relaxed);
            r->in_use[i] = 1;
            return (int)i;
        }
    }
    return -1;
}

void stats_region_release(struct stats_region *r, int slot)
{
    if (r == NULL || slot < 0 || (unsigned)slot >= r->count || !r->in_use[slot])
        return;
    /* Its process is gone: nobody writes this block while it is folded. */
    for (unsigned v = 0; v < STATS_VALUES; v++)
        r->retired[v] += atomic_load_explicit(&r->blocks[slot].v[v], memory_order_relaxed);
    r->in_use[slot] = 0;
}

void stats_region_count_respawn(struct stats_region *r, const char *role)
{
    for (unsigned i = 0; r != NULL && role != NULL && i < STATS_ROLES; i++) {
        if (strcmp(role, stats_role_names[i]) == 0)
            r->retired[SV_RESPAWNS + i]++;
    }
}

void stats_region_read(struct stats_region *r, struct stats_snapshot *out, enum stats_read how)
{
    memcpy(out->v, r->retired, sizeof(out->v));
    for (unsigned i = 0; i < r->count; i++) {
        if (!r->in_use[i])
            continue;
        for (unsigned v = 0; v < STATS_VALUES; v++)
            out->v[v] += atomic_load_explicit(&r->blocks[i].v[v], memory_order_relaxed);
    }
    if (how == STATS_SINCE_START) {
        out->since = r->started;
        return;
    }
    for (unsigned v = 0; v < STATS_VALUES; v++) {
        /* A child may scribble its block smaller; never report a wrapped count. */
        out->v[v] = out->v[v] >= r->baseline[v] ? out->v[v] - r->baseline[v] : 0;
    }
    out->since = r->since;
}

void stats_region_reset(struct stats_region *r, const struct stats_snapshot *shown)
{
    /* baseline + what was shown = the totals at the moment they were read */
    for (unsigned v = 0; v < STATS_VALUES; v++)
        r->baseline[v] += shown->v[v];
    r->since = time(NULL);
}
