/* The architectural CPU state a snapshot carries, in a form that belongs to
 * no hypervisor (docs/snapshot-format.md §4): segment registers, descriptor
 * tables, control registers, EFER, XCR0, debug registers, the system-call
 * MSRs, and the XSAVE state — x87, MXCSR and XMM in the FXSAVE layout, every
 * other XSAVE component by its architectural number (Intel SDM vol. 1,
 * ch. 13). The vCPU backend converts to and from its own structures
 * (src/host/kvm/regs.c for KVM); another backend restores the same bytes.
 *
 * Encoded form: a 16-byte header (magic "SLSR", u16 version, u8 0, u8 arch,
 * u32 payload length, u32 0) and the payload described in
 * docs/snapshot-format.md; little-endian throughout. Decoding treats the
 * bytes as hostile: every length, number and offset is checked. */
#ifndef SL_CPUSTATE_H
#define SL_CPUSTATE_H

#include <stdint.h>
#include <stddef.h>

#include "err.h"

#define SL_CPU_STATE_VERSION 3u
#define SL_CPU_STATE_MAX 16384u  /* bytes of an encoded state, at most */
#define SL_CPU_XCOMP_FIRST 2u    /* XSAVE components 0 (x87) and 1 (SSE) live in `legacy` */
#define SL_CPU_XCOMP_LIMIT 19u   /* components 2..18: AVX .. AMX tile data */
#define SL_CPU_XCOMP_BYTES 12288u

enum { SL_SEG_CS, SL_SEG_DS, SL_SEG_ES, SL_SEG_FS, SL_SEG_GS, SL_SEG_SS, SL_SEG_TR, SL_SEG_LDT, SL_SEG_COUNT };

/* A segment register with its hidden part. */
#define SL_SEGF_PRESENT 0x001u
#define SL_SEGF_DPL_SHIFT 1u /* 2 bits */
#define SL_SEGF_DB 0x008u
#define SL_SEGF_S 0x010u
#define SL_SEGF_L 0x020u
#define SL_SEGF_G 0x040u
#define SL_SEGF_AVL 0x080u
#define SL_SEGF_UNUSABLE 0x100u
typedef struct sl_cpu_seg {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint16_t flags; /* SL_SEGF_* */
    uint8_t type;   /* the descriptor's 4-bit type */
} sl_cpu_seg;

/* The MSRs carried, in this order: KERNEL_GS_BASE, STAR, LSTAR, CSTAR,
 * SFMASK (FS and GS bases are the segments' bases). */
#define SL_CPU_NMSR 5u

typedef struct sl_cpu_state {
    unsigned arch; /* SL_ARCH_* */
    sl_cpu_seg seg[SL_SEG_COUNT];
    uint64_t gdt_base, idt_base;
    uint16_t gdt_limit, idt_limit;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, xcr0;
    uint64_t dr[4], dr6, dr7;
    uint64_t msr[SL_CPU_NMSR];
    uint64_t xstate_bv;  /* XSAVE header: which components hold other than their initial state */
    uint8_t legacy[512]; /* FXSAVE layout: FCW, FSW, FTW, FOP, FIP, FDP, MXCSR, ST0-7, XMM0-15 */
    /* components SL_CPU_XCOMP_FIRST.. present in xstate_bv, ascending, packed */
    uint32_t xcomp_size[SL_CPU_XCOMP_LIMIT];
    uint32_t xcomp_off[SL_CPU_XCOMP_LIMIT]; /* into xcomp */
    uint8_t xcomp[SL_CPU_XCOMP_BYTES];
    uint32_t xcomp_used;
} sl_cpu_state;

/* Encodes s into buf[0..cap); *len gets the size. SL_ERANGE when it does not fit. */
int sl_cpu_state_encode(const sl_cpu_state *s, uint8_t *buf, size_t cap, size_t *len, sl_errbuf *e);

/* Decodes buf[0..len) for arch into *s. SL_EFORMAT for anything malformed,
 * SL_EVERSION for another version (naming both), SL_EFAMILY for another
 * architecture. */
int sl_cpu_state_decode(const uint8_t *buf, size_t len, unsigned arch, sl_cpu_state *s, sl_errbuf *e);

/* Adds component i (SL_CPU_XCOMP_FIRST <= i < SL_CPU_XCOMP_LIMIT, ascending
 * order) with `size` bytes; false when it does not fit or is out of order. */
int sl_cpu_state_add_xcomp(sl_cpu_state *s, unsigned i, const uint8_t *bytes, uint32_t size);

#endif
