/* BLAKE3 through the official C implementation (hash.h). */
#include "hash.h"

#include <stdlib.h>

#include "blake3.h"

struct sl_hasher {
    blake3_hasher b3;
};

sl_hasher *sl_hasher_new(void)
{
    sl_hasher *h = malloc(sizeof *h);
    if (h)
        blake3_hasher_init(&h->b3);
    return h;
}

void sl_hasher_update(sl_hasher *h, const void *data, size_t len)
{
    blake3_hasher_update(&h->b3, data, len);
}

void sl_hasher_final(sl_hasher *h, uint8_t out[SL_HASH_LEN])
{
    blake3_hasher_finalize(&h->b3, out, SL_HASH_LEN);
    free(h);
}

void sl_hash_bytes(const void *data, size_t len, uint8_t out[SL_HASH_LEN])
{
    blake3_hasher b3;
    blake3_hasher_init(&b3);
    blake3_hasher_update(&b3, data, len);
    blake3_hasher_finalize(&b3, out, SL_HASH_LEN);
}

void sl_hash_hex(const uint8_t hash[SL_HASH_LEN], char out[2 * SL_HASH_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SL_HASH_LEN; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 15];
    }
    out[2 * SL_HASH_LEN] = 0;
}
