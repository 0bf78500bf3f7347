/* Snapshot identity: BLAKE3 (official C implementation) over the memory blob
 * followed by the region records. */
#ifndef SL_HASH_H
#define SL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define SL_HASH_LEN 32

typedef struct sl_hasher sl_hasher;

sl_hasher *sl_hasher_new(void);
void sl_hasher_update(sl_hasher *h, const void *data, size_t len);
void sl_hasher_final(sl_hasher *h, uint8_t out[SL_HASH_LEN]); /* also frees h */
/* BLAKE3 of len bytes at data, in one call (no allocation). */
void sl_hash_bytes(const void *data, size_t len, uint8_t out[SL_HASH_LEN]);
void sl_hash_hex(const uint8_t hash[SL_HASH_LEN], char out[2 * SL_HASH_LEN + 1]);

#endif
