/* XSAVE standard-format images to and from sl_cpu_state (xsave.h). */
#include <cpuid.h>
#include <stdbool.h>
#include <string.h>

#include "le.h"
#include "x86.h"
#include "xsave.h"

/* Where this CPU's XSAVE standard format keeps component i (CPUID leaf 0xD);
 * false when it has none. */
static bool xcomp_place(unsigned i, uint32_t *off, uint32_t *size)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(0xD, i, &a, &b, &c, &d) || a == 0 || b == 0)
        return false;
    *size = a;
    *off = b;
    return true;
}

void sl_xsave_to_state(const uint8_t *img, size_t size, sl_cpu_state *st)
{
    uint64_t bv = sl_get64(img + SL_XSAVE_HDR);
    memcpy(st->legacy, img, sizeof st->legacy);
    if (!(bv & 1)) { /* x87 in its initial state */
        memset(st->legacy, 0, SL_FXSAVE_MXCSR);
        memset(st->legacy + SL_FXSAVE_ST, 0, SL_FXSAVE_XMM - SL_FXSAVE_ST);
        sl_put16(st->legacy + SL_FXSAVE_FCW, SL_FCW_RESET);
    }
    if (!(bv & 2)) /* XMM registers zero; MXCSR is kept whatever XSTATE_BV says */
        memset(st->legacy + SL_FXSAVE_XMM, 0, 256);
    st->xstate_bv = 3;
    for (unsigned i = SL_CPU_XCOMP_FIRST; i < SL_CPU_XCOMP_LIMIT; i++) {
        uint32_t off, csize;
        if ((bv >> i & 1) && xcomp_place(i, &off, &csize) && off <= size && csize <= size - off)
            sl_cpu_state_add_xcomp(st, i, img + off, csize);
    }
}

int sl_xsave_from_state(const sl_cpu_state *st, uint8_t *img, size_t size, sl_errbuf *e)
{
    memset(img, 0, size);
    memcpy(img, st->legacy, sizeof st->legacy);
    uint64_t bv = 3;
    for (unsigned i = SL_CPU_XCOMP_FIRST; i < SL_CPU_XCOMP_LIMIT; i++) {
        if (!st->xcomp_size[i])
            continue;
        uint32_t off, csize;
        if (!xcomp_place(i, &off, &csize) || csize != st->xcomp_size[i] || off > size || csize > size - off) {
            /* A component outside the saved XCR0 was never the guest's to set
             * (a hypervisor's default, e.g. PKRU under QEMU's CPU model): a CPU
             * without it loses nothing the guest could have used. */
            if (!(st->xcr0 >> i & 1))
                continue;
            return sl_err(e, SL_EUNSUPPORTED,
                          "the snapshot holds XSAVE component %u (%u bytes), which this CPU does not have in "
                          "that size",
                          i, st->xcomp_size[i]);
        }
        memcpy(img + off, st->xcomp + st->xcomp_off[i], csize);
        bv |= 1ull << i;
    }
    sl_put64(img + SL_XSAVE_HDR, bv);
    return 0;
}
