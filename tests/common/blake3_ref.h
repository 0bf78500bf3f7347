/* What an identity must be, by the official hasher alone: BLAKE3 of a, then
 * b (a snapshot's blob, then its region records), for the tests and the fuzz
 * target that check the page tree (src/host/hashtree.c) against it. */
#ifndef SL_TEST_BLAKE3_REF_H
#define SL_TEST_BLAKE3_REF_H

#include <stddef.h>
#include <stdint.h>

#include "blake3.h"

static inline void blake3_ref(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[32])
{
    blake3_hasher h;
    blake3_hasher_init(&h);
    blake3_hasher_update(&h, a, alen);
    blake3_hasher_update(&h, b, blen);
    blake3_hasher_finalize(&h, out, 32);
}

#endif
