/* Hashes that decide where a user's key lives. Pure functions, unit-tested against
 * published vectors. */
#ifndef USTATUS_HASH_H
#define USTATUS_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3). */
uint64_t us_fnv1a64(const void *data, size_t len);

/* Jump Consistent Hash (Lamping & Veach 2014): a bucket in [0, buckets) for key.
 * buckets must be >= 1. */
int32_t us_jump_hash(uint64_t key, int32_t buckets);

/* The shard index client-side sharding uses for a user ID (SPEC §3.2). */
size_t us_shard_index(const char *user, size_t user_len, size_t shards);

/* CRC16-CCITT (XMODEM) as Redis Cluster uses it; crc16("123456789") == 0x31C3. */
uint16_t us_crc16(const char *buf, size_t len);

/* Redis Cluster slot of a key, honouring the first non-empty {hash tag}. */
unsigned us_cluster_slot(const char *key, size_t len);

#endif
