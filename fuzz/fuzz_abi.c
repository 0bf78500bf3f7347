/* libFuzzer target for the wire format: arbitrary bytes as a frame, as a
 * message stack (peek/pop until it fails) and as a signature registry. Every
 * message that decodes must re-encode to exactly the bytes it came from, and
 * decode(encode(m)) must equal m. The input is copied to a buffer of its exact
 * size so ASan sees any read past the end. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "../tests/common/wire_eq.h"

/* m was decoded from `src` (a frame of `size` bytes). */
static void check_reencode(const sl_msg *m, const uint8_t *src, size_t size)
{
    size_t cap = size, len = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (sl_abi_encode(m, buf, cap, &len) != 0 || len != size || memcmp(buf, src, size) != 0)
        abort();
    if (size > 0) {
        size_t l2;
        if (sl_abi_encode(m, buf, size - 1, &l2) != SL_ABI_E_SPACE)
            abort();
    }
    /* The E_SPACE attempt may have left partial bytes: encode again. */
    if (sl_abi_encode(m, buf, cap, &len) != 0)
        abort();
    sl_msg d;
    if (sl_abi_decode(buf, len, &d) != 0 || !msg_eq(m, &d))
        abort();
    free(buf);
}

static size_t frame_size(const uint8_t *p)
{
    return (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
}

static void fuzz_frame(const uint8_t *data, size_t size)
{
    sl_msg m;
    if (sl_abi_decode(data, size, &m) == 0)
        check_reencode(&m, data, frame_size(data));
}

static void fuzz_stack(uint8_t *buf, size_t size)
{
    sl_msg m;
    for (int guard = 0; guard < 4096; guard++) {
        int rc = sl_abi_peek(buf, size, &m);
        if (rc == 0) {
            /* The frame lies in buf: re-encode to a separate buffer and compare. */
            size_t len;
            uint8_t *re = malloc(size ? size : 1);
            if (sl_abi_encode(&m, re, size, &len) != 0)
                abort();
            sl_msg d;
            if (sl_abi_decode(re, len, &d) != 0 || !msg_eq(&m, &d))
                abort();
            free(re);
        }
        int rp = sl_abi_pop(buf, size);
        if (rp != rc)
            abort(); /* pop validates exactly what peek does */
        if (rp)
            break;
    }
    /* Push onto whatever is left: must succeed or fail cleanly. */
    sl_msg p;
    memset(&p, 0, sizeof p);
    p.kind = SL_MSG_PRINT;
    p.text = (const uint8_t *)"x";
    p.text_len = 1;
    if (sl_abi_push(buf, size, &p) == 0) {
        if (sl_abi_peek(buf, size, &m) != 0 || !msg_eq(&p, &m))
            abort();
        if (sl_abi_pop(buf, size) != 0)
            abort();
    }
    sl_abi_reset(buf, size);
    if (size >= 8 && sl_abi_peek(buf, size, &m) != SL_ABI_E_EMPTY)
        abort();
}

static void fuzz_sigs(const uint8_t *data, size_t size)
{
    uint32_t count;
    size_t pos;
    if (sl_abi_sig_open(data, size, &count, &pos) != 0)
        return;
    /* Re-encode entry by entry; the result must equal the input. */
    uint8_t *re = malloc(size);
    size_t len;
    if (sl_abi_sig_init(re, size, &len) != 0)
        abort();
    for (uint32_t i = 0; i < count; i++) {
        sl_abi_sig s;
        if (sl_abi_sig_next(data, size, &pos, &s) != 0 || sl_abi_sig_add(re, size, &len, &s) != 0)
            abort();
    }
    sl_abi_sig s;
    if (sl_abi_sig_next(data, size, &pos, &s) != SL_ABI_E_EMPTY || len != size ||
        memcmp(re, data, size) != 0)
        abort();
    free(re);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (size)
        memcpy(buf, data, size);
    fuzz_frame(buf, size);
    fuzz_sigs(buf, size);
    fuzz_stack(buf, size); /* last: it writes into buf */
    free(buf);
    return 0;
}
