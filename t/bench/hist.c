/*
 * Latency histogram: exact below 64 us, then 32 buckets per power of two
 * (about 3% resolution) up to 2^40 us. Mergeable by adding counts.
 */
#include "popload.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 5;
    unsigned idx = 64 + (msb - 6) * 32 + (unsigned)((v >> shift) - 32);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The middle of a bucket's range. */
static uint64_t value_of(unsigned idx)
{
    if (idx < 64)
        return idx;
    unsigned octave = (idx - 64) / 32, sub = (idx - 64) % 32;
    unsigned shift = octave + 1;
    uint64_t low = (uint64_t)(32 + sub) << shift;
    return low + (((uint64_t)1 << shift) >> 1);
}

void hist_add(struct hist *h, uint64_t us)
{
    h->count[bucket_of(us)]++;
    h->n++;
    if (us > h->max_us)
        h->max_us = us;
}

void hist_merge(struct hist *into, const struct hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->count[i] += from->count[i];
    into->n += from->n;
    if (from->max_us > into->max_us)
        into->max_us = from->max_us;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if (rank >= h->n)
        rank = h->n - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen > rank) {
            uint64_t v = value_of(i);
            return v > h->max_us ? h->max_us : v;
        }
    }
    return h->max_us;
}
