/* The open-addressing u64 -> u64 map (u64map.h). */
#include "u64map.h"

#include <stdlib.h>

void sl_u64map_init(sl_u64map *m)
{
    m->keys = m->vals = NULL;
    m->cap = m->len = 0;
}

void sl_u64map_free(sl_u64map *m)
{
    free(m->keys);
    free(m->vals);
    sl_u64map_init(m);
}

static size_t slot_of(uint64_t key, size_t cap)
{
    /* Page addresses share their low bits: mix before masking. */
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

uint64_t *sl_u64map_get(const sl_u64map *m, uint64_t key)
{
    if (!m->cap || key == UINT64_MAX)
        return NULL;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == 0)
            return NULL;
        if (m->keys[i] == key + 1)
            return &m->vals[i];
    }
}

static bool grow(sl_u64map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    uint64_t *nk = calloc(ncap, sizeof *nk), *nv = calloc(ncap, sizeof *nv);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = slot_of(m->keys[i] - 1, ncap);
        while (nk[j])
            j = (j + 1) & (ncap - 1);
        nk[j] = m->keys[i];
        nv[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
    return true;
}

bool sl_u64map_put(sl_u64map *m, uint64_t key, uint64_t val)
{
    if (key == UINT64_MAX)
        return false;
    uint64_t *v = sl_u64map_get(m, key);
    if (v) {
        *v = val;
        return true;
    }
    if ((m->len + 1) * 4 > m->cap * 3 && !grow(m))
        return false;
    size_t i = slot_of(key, m->cap);
    while (m->keys[i])
        i = (i + 1) & (m->cap - 1);
    m->keys[i] = key + 1;
    m->vals[i] = val;
    m->len++;
    return true;
}
