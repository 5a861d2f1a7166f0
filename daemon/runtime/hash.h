/*
 * The one non-cryptographic hash of fastpop: 64-bit FNV-1a finished with
 * MurmurHash3's fmix64, and a 128-bit form made of two seeds. Used where a
 * name must map to a fixed-size key: hashed UIDLs (which clients keep, so
 * this function must never change), the mailbox index key and the mailbox
 * lock key; and for hash tables: the scoreboard's buckets, the index sync's
 * table of known sizes. Not for secrets: anyone can make collisions on
 * purpose; a table keyed by it stays at most half full, so a probe ends.
 */
#ifndef FASTPOP_HASH_H
#define FASTPOP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_SEED_A 0xcbf29ce484222325ULL
#define HASH_SEED_B 0x84222325cbf29ce4ULL

uint64_t hash64(const void *data, size_t len, uint64_t seed);
/* hash64 with HASH_SEED_A then HASH_SEED_B, 16 bytes in host order. */
void hash128(const void *data, size_t len, uint8_t out[16]);

#endif
