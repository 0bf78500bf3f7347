/* getrandom and AT_RANDOM: the ChaCha20 block function (RFC 8439, section
 * 2.3) keyed with 32 bytes the host writes into the bookkeeping page on every
 * restore, counter in the bookkeeping page. Two sandboxes restored from one
 * snapshot therefore draw different streams, and a restored sandbox never
 * repeats the stream it drew before the restore. */
#include "kernel.h"

static inline uint32_t rotl(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

#define QR(a, b, c, d)                                                                                     \
    do {                                                                                                   \
        a += b;                                                                                            \
        d = rotl(d ^ a, 16);                                                                               \
        c += d;                                                                                            \
        b = rotl(b ^ c, 12);                                                                               \
        a += b;                                                                                            \
        d = rotl(d ^ a, 8);                                                                                \
        c += d;                                                                                            \
        b = rotl(b ^ c, 7);                                                                                \
    } while (0)

static void chacha_block(const uint32_t key[8], uint64_t counter, uint8_t out[64])
{
    uint32_t s[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, key[0], key[1], key[2], key[3],
                      key[4],     key[5],     key[6],     key[7],     (uint32_t)counter, (uint32_t)(counter >> 32),
                      0,          0};
    uint32_t x[16];
    for (int i = 0; i < 16; i++)
        x[i] = s[i];
    for (int i = 0; i < 10; i++) {
        QR(x[0], x[4], x[8], x[12]);
        QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]);
        QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]);
        QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]);
        QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++) {
        uint32_t v = x[i] + s[i];
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(v >> (8 * j));
    }
}

void k_random(void *buf, size_t len)
{
    uint32_t key[8];
    for (unsigned i = 0; i < 4; i++) {
        uint64_t w = k_bk(SL_BK_RNG_SEED + 8 * i);
        key[2 * i] = (uint32_t)w;
        key[2 * i + 1] = (uint32_t)(w >> 32);
    }
    uint8_t *p = buf, block[64];
    while (len) {
        uint64_t ctr = k_bk(SL_BK_RNG_COUNTER);
        *k_bk_slot(SL_BK_RNG_COUNTER) = ctr + 1;
        chacha_block(key, ctr, block);
        size_t n = len < sizeof block ? len : sizeof block;
        k_memcpy(p, block, n);
        p += n;
        len -= n;
    }
    k_memset(block, 0, sizeof block);
    k_memset(key, 0, sizeof key);
}
