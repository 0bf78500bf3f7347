/* The wire primitives abi.c (messages, stacks) and abi_sig.c (the
 * signature registry) share: little-endian fields of 1 to 8 bytes, and a writer
 * and a reader that check every length against what remains. Private to
 * src/common; freestanding like them. */
#ifndef SL_ABI_WIRE_H
#define SL_ABI_WIRE_H

#include "abi.h"
#include "le.h"

/* ---- conversions ----------------------------------------------------- */

/* Two's-complement reinterpretation without implementation-defined casts. */
static inline int32_t u32_to_i32(uint32_t x)
{
    return x <= 0x7fffffffu ? (int32_t)x : -(int32_t)(~x) - 1;
}

static inline int64_t u64_to_i64(uint64_t x)
{
    return x <= 0x7fffffffffffffffull ? (int64_t)x : -(int64_t)(~x) - 1;
}

static inline uint64_t align8(uint64_t x)
{
    return (x + (SL_ABI_ALIGN - 1)) & ~(uint64_t)(SL_ABI_ALIGN - 1);
}

/* ---- writer: the first error sticks, later puts are no-ops ------------ */

struct wr {
    uint8_t *p;
    size_t cap;
    size_t pos;
    int err;
};

static inline void put_le(struct wr *w, uint64_t v, unsigned n)
{
    if (w->err)
        return;
    if (n > w->cap - w->pos) {
        w->err = SL_ABI_E_SPACE;
        return;
    }
    sl_put_le(w->p + w->pos, v, n);
    w->pos += n;
}

static inline void put_bytes(struct wr *w, const uint8_t *src, size_t n)
{
    if (w->err)
        return;
    if (n && !src) {
        w->err = SL_ABI_E_MALFORMED;
        return;
    }
    if (n > w->cap - w->pos) {
        w->err = SL_ABI_E_SPACE;
        return;
    }
    if (n)
        __builtin_memcpy(w->p + w->pos, src, n);
    w->pos += n;
}

/* A length of `width` bytes, then that many bytes. */
static inline void put_counted(struct wr *w, unsigned width, const uint8_t *p, uint32_t len)
{
    put_le(w, len, width);
    put_bytes(w, p, len);
}

/* Texts have a u32 length; function names (in calls and signatures) a u8. */
static inline void put_text(struct wr *w, const uint8_t *text, uint32_t len) { put_counted(w, 4, text, len); }
static inline void put_name(struct wr *w, const uint8_t *name, uint32_t len) { put_counted(w, 1, name, len); }

/* ---- reader ----------------------------------------------------------- */

struct rd {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

static inline int get_le(struct rd *r, unsigned n, uint64_t *out)
{
    if (n > r->len - r->pos)
        return SL_ABI_E_TRUNCATED;
    *out = sl_get_le(r->p + r->pos, n);
    r->pos += n;
    return 0;
}

static inline int get_span(struct rd *r, uint64_t n, const uint8_t **out)
{
    if (n > (uint64_t)(r->len - r->pos))
        return SL_ABI_E_TRUNCATED;
    *out = r->p + r->pos;
    r->pos += (size_t)n;
    return 0;
}

static inline int get_counted(struct rd *r, unsigned width, const uint8_t **ptr, uint32_t *len)
{
    uint64_t n;
    int rc = get_le(r, width, &n);
    if (rc)
        return rc;
    *len = (uint32_t)n;
    return get_span(r, n, ptr);
}

static inline int get_text(struct rd *r, const uint8_t **ptr, uint32_t *len) { return get_counted(r, 4, ptr, len); }
/* A u8 length, so at most SL_ABI_MAX_NAME. */
static inline int get_name(struct rd *r, const uint8_t **ptr, uint32_t *len) { return get_counted(r, 1, ptr, len); }

#endif
