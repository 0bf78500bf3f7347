/* libFuzzer target for the CPU-state encoding (src/host/cpustate.h,
 * docs/snapshot-format.md §4). The first input byte picks the architecture the
 * decoder expects (bit 0: 0 amd64, 1 i686); the rest, copied to a buffer of its
 * exact size so that ASan sees any read past the end, is decoded. A failed
 * decode must say why with one of the documented codes. A state that decodes
 * must satisfy the invariants the vCPU backend relies on, and the format is
 * canonical: encoding the decoded state gives back exactly the input bytes,
 * and decoding those gives the identical state. The vCPU blob check
 * (sl_sregs_blob_check) must accept whatever decodes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpustate.h"
#include "sandlet.h"
#include "vcpu.h"

static void check_invariants(const sl_cpu_state *s, unsigned arch)
{
    if (s->arch != arch || s->gdt_limit > 0xFFFF || s->idt_limit > 0xFFFF)
        abort();
    for (unsigned i = 0; i < SL_SEG_COUNT; i++)
        if (s->seg[i].flags > 0x1FF || s->seg[i].type > 15)
            abort();
    if (s->xstate_bv >> SL_CPU_XCOMP_LIMIT || s->xcomp_used > SL_CPU_XCOMP_BYTES)
        abort();
    /* Components: exactly the bits 2.. of XSTATE_BV, ascending and packed. */
    uint32_t at = 0;
    for (unsigned i = 0; i < SL_CPU_XCOMP_LIMIT; i++) {
        int bit = i >= SL_CPU_XCOMP_FIRST && (s->xstate_bv >> i & 1);
        if (bit != (s->xcomp_size[i] != 0))
            abort();
        if (!s->xcomp_size[i])
            continue;
        if (s->xcomp_off[i] != at || s->xcomp_size[i] > SL_CPU_XCOMP_BYTES - at)
            abort();
        at += s->xcomp_size[i];
    }
    if (at != s->xcomp_used)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sl_cpu_state s, s2;
    static uint8_t enc[SL_CPU_STATE_MAX];
    static sl_sregs_blob blob;
    if (size < 1 || size - 1 > 2 * SL_CPU_STATE_MAX)
        return 0;
    const unsigned arch = data[0] & 1 ? SL_ARCH_I686 : SL_ARCH_AMD64;
    const size_t len = size - 1;
    uint8_t *in = malloc(len ? len : 1);
    if (!in)
        return 0;
    memcpy(in, data + 1, len);

    sl_errbuf e;
    e.msg[0] = 0;
    int rc = sl_cpu_state_decode(in, len, arch, &s, &e);
    if (rc) {
        if ((rc != SL_EFORMAT && rc != SL_EVERSION && rc != SL_EFAMILY) || !e.msg[0])
            abort();
        free(in);
        return 0;
    }
    check_invariants(&s, arch);

    /* Canonical: re-encoding gives the input back, byte for byte. */
    size_t elen = 0;
    if (sl_cpu_state_encode(&s, enc, sizeof enc, &elen, &e) != 0 || elen != len || memcmp(enc, in, len) != 0)
        abort();
    /* ... and one byte less room is refused. */
    size_t small_len = 7;
    if (sl_cpu_state_encode(&s, enc, len - 1, &small_len, &e) != SL_ERANGE || small_len != 7)
        abort();
    /* decode(encode(s)) == s, to the byte (decode clears the whole struct first). */
    memset(&s2, 0xA5, sizeof s2);
    if (sl_cpu_state_decode(enc, elen, arch, &s2, &e) != 0 || memcmp(&s, &s2, sizeof s) != 0)
        abort();
    /* The other architecture refuses it. */
    if (sl_cpu_state_decode(in, len, arch == SL_ARCH_AMD64 ? SL_ARCH_I686 : SL_ARCH_AMD64, &s2, &e) !=
        SL_EFAMILY)
        abort();

    /* What the snapshot loader and the vCPU reset check: the blob form. */
    if (len > sizeof blob.bytes)
        abort(); /* the largest state fits SL_CPU_STATE_MAX */
    memset(&blob, 0, sizeof blob);
    memcpy(blob.bytes, in, len);
    if (sl_sregs_blob_len(&blob) != len || sl_sregs_blob_check(&blob, arch, &e) != 0)
        abort();
    free(in);
    return 0;
}
