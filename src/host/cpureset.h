/* The x86 register policy of sl_vcpu_reset, written once for every backend
 * over the neutral sl_cpu_state (cpustate.h): what a fresh vCPU holds, and
 * what a reset changes in any state it loads, fresh or saved. A backend only
 * translates the result into its own structures (backend.h). */
#ifndef SL_CPURESET_H
#define SL_CPURESET_H

#include <stdint.h>

#include "cpustate.h"

/* The MSR numbers of sl_cpu_state.msr, in its order. */
extern const uint32_t sl_cpu_state_msrs[SL_CPU_NMSR];

/* What the guest is shown and allowed, whatever the backend (a backend
 * applies these when it creates the vCPU). */

/* CPUID: clears, in the registers (eax, ebx, ecx, edx) of one leaf, the
 * features the guest must not see: VMX and SVM, so it never believes it can
 * run a hypervisor of its own. */
void sl_cpuid_filter(uint32_t leaf, uint32_t regs[4]);

/* MSRs: every guest RDMSR/WRMSR is denied (#GP) except in these ranges, the
 * MSRs a kernel owns for system calls and segment bases: STAR, LSTAR, CSTAR,
 * SFMASK, then FS_BASE, GS_BASE, KERNEL_GS_BASE, which the guest kernel
 * writes at boot and for arch_prctl. */
typedef struct sl_msr_range {
    uint32_t base;
    uint32_t count;
} sl_msr_range;
#define SL_GUEST_MSR_RANGES 2u
extern const sl_msr_range sl_guest_msrs[SL_GUEST_MSR_RANGES];

/* The TR type a reset loads on this host's CPU: SL_TSS_BUSY or
 * SL_TSS_AVAILABLE (x86.h). */
uint8_t sl_cpu_tr_type(void);

/* A fresh vCPU for arch: flat long mode for amd64, flat paged 32-bit
 * protected mode without PAE for i686; CS/DS/ES/FS/GS/SS flat ring 0, an
 * empty IDT and GDT, a TSS of type tr_type in TR; x87, SSE, XCR0, debug
 * registers and MSRs at their power-on values. CR3 is left 0. */
void sl_cpu_state_fresh(sl_cpu_state *s, unsigned arch, uint8_t tr_type);

/* What every reset changes in the state it loads: CR3 = cr3, CR8 within the
 * TPR's 4 bits, and a TSS in TR of the type this CPU wants. */
void sl_cpu_state_prepare(sl_cpu_state *s, uint64_t cr3, uint8_t tr_type);

#endif
