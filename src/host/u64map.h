/* Open-addressing map from u64 keys to u64 values: page addresses to
 * whatever a walk keeps about them (pt_owners.h's table owners, compaction's
 * "page already copied" map). */
#ifndef SL_U64MAP_H
#define SL_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_u64map {
    uint64_t *keys; /* key + 1, so that 0 marks an empty slot */
    uint64_t *vals;
    size_t cap;     /* power of two */
    size_t len;
} sl_u64map;

void sl_u64map_init(sl_u64map *m);
void sl_u64map_free(sl_u64map *m);
/* Returns a pointer to the value of key, or NULL. */
uint64_t *sl_u64map_get(const sl_u64map *m, uint64_t key);
/* Inserts or overwrites; false when out of memory or key == UINT64_MAX. */
bool sl_u64map_put(sl_u64map *m, uint64_t key, uint64_t val);

#endif
