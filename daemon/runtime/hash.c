#include "hash.h"

#include <string.h>

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

uint64_t hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return fmix64(h);
}

void hash128(const void *data, size_t len, uint8_t out[16])
{
    uint64_t a = hash64(data, len, HASH_SEED_A);
    uint64_t b = hash64(data, len, HASH_SEED_B);
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
}
