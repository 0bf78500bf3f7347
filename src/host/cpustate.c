/* Encoding and decoding of the architectural CPU state (cpustate.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cpustate.h"
#include "layout.h"
#include "sandlet.h"
#include "vcpu.h"

#define CS_MAGIC 0x52534c53u /* "SLSR" */
#define CS_HDR 16u
#define SEG_REC 24u
#define OFF_TABLES (SL_SEG_COUNT * SEG_REC) /* 0x0C0 */
#define OFF_CR (OFF_TABLES + 32u)           /* 0x0E0 */
#define OFF_DR (OFF_CR + 56u)               /* 0x118 */
#define OFF_MSR (OFF_DR + 48u)              /* 0x148 */
#define OFF_XBV (OFF_MSR + 8u * SL_CPU_NMSR) /* 0x170 */
#define OFF_NX (OFF_XBV + 8u)               /* 0x178 */
#define OFF_LEGACY (OFF_NX + 8u)            /* 0x180 */
#define FIXED (OFF_LEGACY + 512u)           /* 0x380: component records follow */

_Static_assert(FIXED == 0x380, "docs/snapshot-format.md §4 fixes these offsets");

static uint64_t pad8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

int sl_cpu_state_add_xcomp(sl_cpu_state *s, unsigned i, const uint8_t *bytes, uint32_t size)
{
    if (i < SL_CPU_XCOMP_FIRST || i >= SL_CPU_XCOMP_LIMIT || size == 0 || s->xcomp_size[i] ||
        size > SL_CPU_XCOMP_BYTES - s->xcomp_used)
        return 0;
    for (unsigned j = i + 1; j < SL_CPU_XCOMP_LIMIT; j++)
        if (s->xcomp_size[j])
            return 0; /* ascending only */
    s->xcomp_off[i] = s->xcomp_used;
    s->xcomp_size[i] = size;
    memcpy(s->xcomp + s->xcomp_used, bytes, size);
    s->xcomp_used += size;
    s->xstate_bv |= 1ull << i;
    return 1;
}

int sl_cpu_state_encode(const sl_cpu_state *s, uint8_t *buf, size_t cap, size_t *len, sl_errbuf *e)
{
    uint64_t total = CS_HDR + FIXED, n = 0;
    for (unsigned i = SL_CPU_XCOMP_FIRST; i < SL_CPU_XCOMP_LIMIT; i++)
        if (s->xcomp_size[i]) {
            total += 8 + pad8(s->xcomp_size[i]);
            n++;
        }
    if (total > cap || total > SL_CPU_STATE_MAX)
        return sl_err(e, SL_ERANGE, "CPU state of %" PRIu64 " bytes does not fit %zu", total, cap);
    memset(buf, 0, (size_t)total);
    sl_put32(buf, CS_MAGIC);
    buf[4] = (uint8_t)SL_CPU_STATE_VERSION;
    buf[5] = (uint8_t)(SL_CPU_STATE_VERSION >> 8);
    buf[7] = (uint8_t)s->arch;
    sl_put32(buf + 8, (uint32_t)(total - CS_HDR));
    uint8_t *p = buf + CS_HDR;
    for (unsigned i = 0; i < SL_SEG_COUNT; i++) {
        uint8_t *r = p + i * SEG_REC;
        sl_put64(r, s->seg[i].base);
        sl_put32(r + 8, s->seg[i].limit);
        r[12] = (uint8_t)s->seg[i].selector;
        r[13] = (uint8_t)(s->seg[i].selector >> 8);
        r[14] = (uint8_t)s->seg[i].flags;
        r[15] = (uint8_t)(s->seg[i].flags >> 8);
        r[16] = s->seg[i].type;
    }
    sl_put64(p + OFF_TABLES, s->gdt_base);
    sl_put64(p + OFF_TABLES + 8, s->gdt_limit);
    sl_put64(p + OFF_TABLES + 16, s->idt_base);
    sl_put64(p + OFF_TABLES + 24, s->idt_limit);
    const uint64_t cr[7] = {s->cr0, s->cr2, s->cr3, s->cr4, s->cr8, s->efer, s->xcr0};
    for (unsigned i = 0; i < 7; i++)
        sl_put64(p + OFF_CR + 8 * i, cr[i]);
    const uint64_t dr[6] = {s->dr[0], s->dr[1], s->dr[2], s->dr[3], s->dr6, s->dr7};
    for (unsigned i = 0; i < 6; i++)
        sl_put64(p + OFF_DR + 8 * i, dr[i]);
    for (unsigned i = 0; i < SL_CPU_NMSR; i++)
        sl_put64(p + OFF_MSR + 8 * i, s->msr[i]);
    sl_put64(p + OFF_XBV, s->xstate_bv);
    sl_put64(p + OFF_NX, n);
    memcpy(p + OFF_LEGACY, s->legacy, sizeof s->legacy);
    uint8_t *q = p + FIXED;
    for (unsigned i = SL_CPU_XCOMP_FIRST; i < SL_CPU_XCOMP_LIMIT; i++) {
        if (!s->xcomp_size[i])
            continue;
        sl_put32(q, i);
        sl_put32(q + 4, s->xcomp_size[i]);
        memcpy(q + 8, s->xcomp + s->xcomp_off[i], s->xcomp_size[i]);
        q += 8 + pad8(s->xcomp_size[i]);
    }
    *len = (size_t)total;
    return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static int decode_header(const uint8_t *buf, size_t len, unsigned arch, sl_errbuf *e)
{
    if (len < CS_HDR || sl_get32(buf) != CS_MAGIC)
        return sl_err(e, SL_EFORMAT, "CPU state: bad magic");
    unsigned version = sl_get16(buf + 4);
    if (version != SL_CPU_STATE_VERSION)
        return sl_err(e, SL_EVERSION, "CPU state: version %u, this sandlet reads version %u", version,
                      SL_CPU_STATE_VERSION);
    if (buf[6] != 0 || sl_get32(buf + 12) != 0)
        return sl_err(e, SL_EFORMAT, "CPU state: reserved header bytes are not zero");
    if (buf[7] != arch)
        return sl_err(e, SL_EFAMILY, "CPU state: made for arch %u, not %u", buf[7], arch);
    uint64_t plen = sl_get32(buf + 8);
    if (plen != len - CS_HDR || plen < FIXED)
        return sl_err(e, SL_EFORMAT, "CPU state: payload of %" PRIu64 " bytes in %zu", plen, len);
    return 0;
}

/* Segments, descriptor tables, control, debug and model-specific registers. */
static int decode_registers(const uint8_t *p, sl_cpu_state *s, sl_errbuf *e)
{
    for (unsigned i = 0; i < SL_SEG_COUNT; i++) {
        const uint8_t *r = p + i * SEG_REC;
        s->seg[i].base = sl_get64(r);
        s->seg[i].limit = sl_get32(r + 8);
        s->seg[i].selector = sl_get16(r + 12);
        s->seg[i].flags = sl_get16(r + 14);
        s->seg[i].type = r[16];
        if (s->seg[i].flags > 0x1FF || s->seg[i].type > 15 || !all_zero(r + 17, SEG_REC - 17))
            return sl_err(e, SL_EFORMAT, "CPU state: segment %u is malformed", i);
    }
    s->gdt_base = sl_get64(p + OFF_TABLES);
    uint64_t gl = sl_get64(p + OFF_TABLES + 8);
    s->idt_base = sl_get64(p + OFF_TABLES + 16);
    uint64_t il = sl_get64(p + OFF_TABLES + 24);
    if (gl > 0xFFFF || il > 0xFFFF)
        return sl_err(e, SL_EFORMAT, "CPU state: descriptor-table limit above 0xFFFF");
    s->gdt_limit = (uint16_t)gl;
    s->idt_limit = (uint16_t)il;
    uint64_t *cr[7] = {&s->cr0, &s->cr2, &s->cr3, &s->cr4, &s->cr8, &s->efer, &s->xcr0};
    for (unsigned i = 0; i < 7; i++)
        *cr[i] = sl_get64(p + OFF_CR + 8 * i);
    uint64_t *dr[6] = {&s->dr[0], &s->dr[1], &s->dr[2], &s->dr[3], &s->dr6, &s->dr7};
    for (unsigned i = 0; i < 6; i++)
        *dr[i] = sl_get64(p + OFF_DR + 8 * i);
    for (unsigned i = 0; i < SL_CPU_NMSR; i++)
        s->msr[i] = sl_get64(p + OFF_MSR + 8 * i);
    return 0;
}

/* Addresses the hypervisor loads into the CPU as they are: a base or MSR
 * the CPU would refuse must never reach it (PVM writes segment bases to the
 * host's MSRs on every entry). amd64: canonical (bits 63..47 equal); i686:
 * 32 bits. EFER: only the bits sandlet's guests use. */
static int check_loadable(const sl_cpu_state *s, unsigned arch, sl_errbuf *e)
{
    uint64_t addrs[SL_SEG_COUNT + 5];
    for (unsigned i = 0; i < SL_SEG_COUNT; i++)
        addrs[i] = s->seg[i].base;
    addrs[SL_SEG_COUNT] = s->gdt_base;
    addrs[SL_SEG_COUNT + 1] = s->idt_base;
    addrs[SL_SEG_COUNT + 2] = s->msr[0]; /* KERNEL_GS_BASE */
    addrs[SL_SEG_COUNT + 3] = s->msr[2]; /* LSTAR */
    addrs[SL_SEG_COUNT + 4] = s->msr[3]; /* CSTAR */
    for (unsigned i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        uint64_t a = addrs[i], top = a >> 47;
        if (arch == SL_ARCH_I686 ? a > 0xFFFFFFFFull : (top != 0 && top != 0x1FFFF))
            return sl_err(e, SL_EFORMAT, "CPU state: address 0x%" PRIx64 " (field %u) is not %s", a, i,
                          arch == SL_ARCH_I686 ? "a 32-bit address" : "canonical");
    }
    const uint64_t efer_ok = (1ull << 0) | (1ull << 8) | (1ull << 10) | (1ull << 11); /* SCE LME LMA NXE */
    if (s->efer & ~efer_ok)
        return sl_err(e, SL_EFORMAT, "CPU state: EFER 0x%" PRIx64 " sets bits sandlet never uses", s->efer);
    return 0;
}

/* The legacy area and the component records: ascending, one per bit 2.. of
 * XSTATE_BV. */
static int decode_xstate(const uint8_t *p, uint64_t plen, sl_cpu_state *s, sl_errbuf *e)
{
    uint64_t bv = sl_get64(p + OFF_XBV), n = sl_get64(p + OFF_NX);
    if ((bv & 3) != 3)
        return sl_err(e, SL_EFORMAT, "CPU state: XSTATE_BV 0x%" PRIx64 " lacks x87 or SSE (always present)", bv);
    memcpy(s->legacy, p + OFF_LEGACY, sizeof s->legacy);
    if (sl_get32(s->legacy + 24) >> 16) /* MXCSR: bits 16-31 are reserved on every CPU */
        return sl_err(e, SL_EFORMAT, "CPU state: MXCSR 0x%08x sets reserved bits", sl_get32(s->legacy + 24));
    uint64_t pos = FIXED, want = bv >> SL_CPU_XCOMP_FIRST << SL_CPU_XCOMP_FIRST;
    unsigned last = SL_CPU_XCOMP_FIRST - 1;
    for (uint64_t k = 0; k < n; k++) {
        if (plen - pos < 8)
            return sl_err(e, SL_EFORMAT, "CPU state: component record %" PRIu64 " truncated", k);
        uint32_t num = sl_get32(p + pos), size = sl_get32(p + pos + 4);
        if (num <= last || num >= SL_CPU_XCOMP_LIMIT || !(want >> num & 1))
            return sl_err(e, SL_EFORMAT, "CPU state: component %u out of order or not in XSTATE_BV", num);
        if (size == 0 || size > SL_CPU_XCOMP_BYTES - s->xcomp_used || pad8(size) > plen - pos - 8)
            return sl_err(e, SL_EFORMAT, "CPU state: component %u of %u bytes does not fit", num, size);
        if (!all_zero(p + pos + 8 + size, (size_t)(pad8(size) - size)))
            return sl_err(e, SL_EFORMAT, "CPU state: padding after component %u is not zero", num);
        if (!sl_cpu_state_add_xcomp(s, num, p + pos + 8, size))
            return sl_err(e, SL_EFORMAT, "CPU state: component %u rejected", num);
        last = num;
        pos += 8 + pad8(size);
    }
    if (pos != plen || (s->xstate_bv | (bv & 3)) != bv)
        return sl_err(e, SL_EFORMAT, "CPU state: components do not match XSTATE_BV 0x%" PRIx64, bv);
    s->xstate_bv = bv;
    return 0;
}

int sl_cpu_state_decode(const uint8_t *buf, size_t len, unsigned arch, sl_cpu_state *s, sl_errbuf *e)
{
    int rc = decode_header(buf, len, arch, e);
    if (rc)
        return rc;
    memset(s, 0, sizeof *s);
    s->arch = arch;
    const uint8_t *p = buf + CS_HDR;
    if ((rc = decode_registers(p, s, e)))
        return rc;
    uint64_t bv = sl_get64(p + OFF_XBV);
    if (bv >> SL_CPU_XCOMP_LIMIT)
        return sl_err(e, SL_EFORMAT, "CPU state: XSAVE component bits 0x%" PRIx64 " beyond %u", bv,
                      SL_CPU_XCOMP_LIMIT - 1);
    if ((rc = check_loadable(s, arch, e)))
        return rc;
    return decode_xstate(p, sl_get32(buf + 8), s, e);
}

/* ---- the blob of vcpu.h: an encoded state in a fixed-size buffer ---- */

size_t sl_sregs_blob_len(const sl_sregs_blob *b)
{
    uint64_t plen = sl_get32(b->bytes + 8);
    return plen > SL_SREGS_BLOB_SIZE - 16 ? SL_SREGS_BLOB_SIZE : (size_t)plen + 16;
}

int sl_sregs_blob_check(const sl_sregs_blob *b, unsigned arch, sl_errbuf *e)
{
    if (!b)
        return sl_err(e, SL_EINVAL, "sregs blob: NULL");
    sl_cpu_state *st = malloc(sizeof *st);
    if (!st)
        return sl_err(e, SL_ENOMEM, "out of memory for the CPU state");
    int rc = sl_cpu_state_decode(b->bytes, sl_sregs_blob_len(b), arch, st, e);
    free(st);
    return rc;
}
