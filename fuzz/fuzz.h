/* Shared by the libFuzzer targets in fuzz/. */
#ifndef SL_FUZZ_H
#define SL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A fuzz input, read front to back; past its end every byte reads as 0,
 * so any input, however short, drives a whole run. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
} fuzz_in;

static inline uint8_t fuzz_u8(fuzz_in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

/* The next `bytes` bytes (at most 8) as a little-endian number. */
static inline uint64_t fuzz_le(fuzz_in *in, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)fuzz_u8(in) << (8 * i);
    return v;
}

/* An invariant the target checks: a violation aborts, which libFuzzer
 * reports as a crash with the input that caused it. */
#define FUZZ_ASSERT(c)                                                                \
    do {                                                                              \
        if (!(c)) {                                                                   \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

#endif
