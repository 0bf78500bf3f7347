/* x86 architectural constants the vCPU layer needs (Intel SDM vol. 3): the
 * bits sandlet sets in control registers and EFER, the MSRs a snapshot
 * carries, the FXSAVE/XSAVE layout and the power-on values of the x87, SSE,
 * XCR0 and debug registers. Facts about the CPU, not about any hypervisor. */
#ifndef SL_X86_H
#define SL_X86_H

#define SL_CR0_PE (1ull << 0)
#define SL_CR0_MP (1ull << 1)
#define SL_CR0_ET (1ull << 4)
#define SL_CR0_NE (1ull << 5)
#define SL_CR0_WP (1ull << 16)
#define SL_CR0_PG (1ull << 31)
#define SL_CR4_PAE (1ull << 5)
#define SL_CR4_OSFXSR (1ull << 9)
#define SL_CR4_OSXMMEXCPT (1ull << 10)
#define SL_EFER_SCE (1ull << 0)
#define SL_EFER_LME (1ull << 8)
#define SL_EFER_LMA (1ull << 10)
#define SL_EFER_NXE (1ull << 11)

#define SL_MSR_STAR 0xC0000081u
#define SL_MSR_LSTAR 0xC0000082u
#define SL_MSR_CSTAR 0xC0000083u
#define SL_MSR_SFMASK 0xC0000084u
#define SL_MSR_FS_BASE 0xC0000100u
#define SL_MSR_KERNEL_GS_BASE 0xC0000102u

/* TSS descriptor types (32- and 64-bit alike). */
#define SL_TSS_AVAILABLE 0x9u
#define SL_TSS_BUSY 0xbu

/* Power-on values. */
#define SL_FCW_RESET 0x37fu
#define SL_MXCSR_RESET 0x1f80u
#define SL_XCR0_RESET 1u /* x87 only */
#define SL_DR6_RESET 0xffff0ff0u
#define SL_DR7_RESET 0x400u

/* The FXSAVE area (the first 512 bytes of an XSAVE image) and the XSAVE
 * header after it. */
#define SL_FXSAVE_FCW 0
#define SL_FXSAVE_MXCSR 24
#define SL_FXSAVE_ST 32
#define SL_FXSAVE_XMM 160
#define SL_XSAVE_HDR 512

#endif
