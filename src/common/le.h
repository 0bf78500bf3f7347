/* Little-endian fields in guest memory, snapshot files, records, the PEB and
 * the CPU-state encoding: byte by byte, so alignment and host byte order never
 * matter. Freestanding (the guest kernel uses it too); the one definition. */
#ifndef SL_LE_H
#define SL_LE_H

#include <stdint.h>

static inline uint16_t sl_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t sl_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t sl_get64(const uint8_t *p)
{
    return (uint64_t)sl_get32(p) | (uint64_t)sl_get32(p + 4) << 32;
}

static inline void sl_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void sl_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void sl_put64(uint8_t *p, uint64_t v)
{
    sl_put32(p, (uint32_t)v);
    sl_put32(p + 4, (uint32_t)(v >> 32));
}

/* A field 1, 2, 4 or 8 bytes wide (any other width reads and writes 8):
 * for formats whose field width follows the architecture or a type tag. */
static inline uint64_t sl_get_le(const uint8_t *p, unsigned n)
{
    switch (n) {
    case 1: return p[0];
    case 2: return sl_get16(p);
    case 4: return sl_get32(p);
    default: return sl_get64(p);
    }
}

static inline void sl_put_le(uint8_t *p, uint64_t v, unsigned n)
{
    switch (n) {
    case 1: p[0] = (uint8_t)v; break;
    case 2: sl_put16(p, (uint16_t)v); break;
    case 4: sl_put32(p, (uint32_t)v); break;
    default: sl_put64(p, v); break;
    }
}

#endif
