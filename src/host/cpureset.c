/* The x86 register policy of a reset (cpureset.h), one function per register
 * group, as kvmtool's kvm_cpu__reset_vcpu composes setup_sregs, setup_fpu
 * and setup_msrs. */
#include <cpuid.h>
#include <stdbool.h>
#include <string.h>

#include "cpureset.h"
#include "le.h"
#include "sandlet.h"
#include "x86.h"

/* XCR0 and KERNEL_GS_BASE ride along because a guest changes them without
 * any MSR write (xsetbv, swapgs); STAR, LSTAR, CSTAR and SFMASK because the
 * guest kernel sets them once at boot and every later `syscall` needs them. */
const uint32_t sl_cpu_state_msrs[SL_CPU_NMSR] = {SL_MSR_KERNEL_GS_BASE, SL_MSR_STAR, SL_MSR_LSTAR,
                                                 SL_MSR_CSTAR, SL_MSR_SFMASK};

void sl_cpuid_filter(uint32_t leaf, uint32_t regs[4])
{
    if (leaf == 1)
        regs[2] &= ~(1u << 5); /* ECX.VMX */
    else if (leaf == 0x80000001u)
        regs[2] &= ~(1u << 2); /* ECX.SVM */
}

const sl_msr_range sl_guest_msrs[SL_GUEST_MSR_RANGES] = {{SL_MSR_STAR, 4}, {SL_MSR_FS_BASE, 3}};

/* Intel's VM entry requires a busy TSS in TR. AMD hardware ignores the busy
 * bit of the loaded TR, but KVM's SVM code reports TR as busy whatever it
 * is, and QEMU's emulated SVM (the KVM lab) keeps TR "available" in its CPU
 * state: handed a busy TR it aborts on the first privilege change in 32-bit
 * mode and fails every I/O-bitmap check. So on AMD the reset loads TR as
 * available, as `ltr` leaves it there. */
uint8_t sl_cpu_tr_type(void)
{
    unsigned a, b, c, d;
    bool amd = __get_cpuid(0, &a, &b, &c, &d) &&
               ((b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163) || /* "AuthenticAMD" */
                (b == 0x6f677948 && d == 0x6e65476e && c == 0x656e6975));  /* "HygonGenuine" */
    return amd ? SL_TSS_AVAILABLE : SL_TSS_BUSY;
}

static sl_cpu_seg flat_seg(uint16_t sel, uint8_t type, bool code64, bool big)
{
    return (sl_cpu_seg){
        .base = 0,
        .limit = 0xffffffffu,
        .selector = sel,
        .type = type,
        .flags = (uint16_t)(SL_SEGF_PRESENT | SL_SEGF_S | SL_SEGF_G | (big ? SL_SEGF_DB : 0) |
                            (code64 ? SL_SEGF_L : 0)),
    };
}

/* Segments, descriptor tables, control registers and EFER. */
static void fresh_sregs(sl_cpu_state *s, uint8_t tr_type)
{
    bool amd64 = s->arch == SL_ARCH_AMD64;
    s->cr0 = SL_CR0_PE | SL_CR0_MP | SL_CR0_ET | SL_CR0_NE | SL_CR0_WP | SL_CR0_PG;
    s->cr4 = SL_CR4_OSFXSR | SL_CR4_OSXMMEXCPT | (amd64 ? SL_CR4_PAE : 0);
    s->efer = amd64 ? (SL_EFER_LME | SL_EFER_LMA | SL_EFER_NXE | SL_EFER_SCE) : 0;
    /* selectors 0x08 code, 0x10 data, 0x18 TSS: what a guest GDT would use */
    s->seg[SL_SEG_CS] = flat_seg(0x08, 0xb, amd64, !amd64); /* execute/read, accessed */
    s->seg[SL_SEG_DS] = flat_seg(0x10, 0x3, false, true);   /* read/write, accessed */
    s->seg[SL_SEG_ES] = s->seg[SL_SEG_FS] = s->seg[SL_SEG_GS] = s->seg[SL_SEG_SS] = s->seg[SL_SEG_DS];
    /* VM entry insists on a usable TR holding a TSS (type 11 serves both the
     * 32-bit and, in long mode, the 64-bit TSS). */
    s->seg[SL_SEG_TR] = (sl_cpu_seg){.selector = 0x18, .limit = 0x67, .type = tr_type,
                                     .flags = SL_SEGF_PRESENT};
    s->seg[SL_SEG_LDT] = (sl_cpu_seg){.type = 0x2, .flags = SL_SEGF_UNUSABLE};
    /* GDT and IDT empty: any exception triple-faults until the guest loads an IDT. */
}

/* x87 and SSE at their power-on values (FSW and the abridged FTW empty),
 * every other XSAVE component in its initial state. */
static void fresh_fpu(sl_cpu_state *s)
{
    sl_put16(s->legacy + SL_FXSAVE_FCW, SL_FCW_RESET);
    sl_put32(s->legacy + SL_FXSAVE_MXCSR, SL_MXCSR_RESET);
    s->xstate_bv = 3;
    s->xcr0 = SL_XCR0_RESET;
}

static void fresh_debugregs(sl_cpu_state *s)
{
    s->dr6 = SL_DR6_RESET;
    s->dr7 = SL_DR7_RESET;
}

void sl_cpu_state_fresh(sl_cpu_state *s, unsigned arch, uint8_t tr_type)
{
    memset(s, 0, sizeof *s); /* MSRs, DR0-3, CR2, CR8 and the tables start at 0 */
    s->arch = arch;
    fresh_sregs(s, tr_type);
    fresh_fpu(s);
    fresh_debugregs(s);
}

void sl_cpu_state_prepare(sl_cpu_state *s, uint64_t cr3, uint8_t tr_type)
{
    s->cr3 = cr3;
    s->cr8 &= 0xf; /* the TPR has 4 bits; KVM_RUN rejects a larger CR8 */
    uint8_t *tr = &s->seg[SL_SEG_TR].type;
    if (*tr == SL_TSS_AVAILABLE || *tr == SL_TSS_BUSY)
        *tr = tr_type;
}
