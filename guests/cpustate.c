/* The CPU-state guest, built for x86-64 (cpustate) and i686 (cpustate32) from
 * this file: sandlet_main sets architectural state a guest may set and
 * expects to keep (tests/vcpu/test_e2e_cpustate.c checks that snapshots carry
 * it and restores put it back):
 *   MXCSR      0xFFC0: flush-to-zero, denormals-are-zero, round toward zero,
 *              every exception masked
 *   x87 FCW    0x0F7F: round toward zero, 64-bit precision, every exception
 *              masked
 *   XMM        0x0123456789ABCDEF in the low 64 bits of xmm15 (x86-64) or
 *              xmm7 (i686): the compiler never uses those (x86-64: the guest
 *              library, musl and this file never name xmm15; i686: they are
 *              built without SSE) and only the asm below touches them
 *   YMM        x86-64 with AVX: 0xFEDCBA9876543210 in bits 128..191 of ymm15
 *   GS base    x86-64: 0x12345000 (arch_prctl; musl uses FS, not GS)
 * Functions:
 *   Mul(f64, f64) -> f64   a * b with SSE2 mulsd (so MXCSR governs it)
 *   Mxcsr() -> u32         Fcw() -> u32
 *   Xmm() -> u64           the low 64 bits of xmm15 / xmm7
 *   YmmHigh() -> u64       bits 128..191 of ymm15; CPUSTATE_NO_AVX without
 *                          AVX (CPUID, XCR0) and on i686
 *   GsBase() -> u64        x86-64: arch_prctl(ARCH_GET_GS); i686: 0
 *   SetMxcsr(u32), SetFcw(u32), SetXmm(u64), SetYmmHigh(u64), SetGsBase(u64)
 *                          change the state for the rest of the sandbox's life
 *                          (SetYmmHigh and SetGsBase fail where unsupported) */
#include <sandlet_guest.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
/* Linux's asm/prctl.h, which musl does not ship. */
#define ARCH_SET_GS 0x1001
#define ARCH_GET_GS 0x1004
#endif

/* The values sandlet_main sets; tests/vcpu/test_e2e_cpustate.c repeats them. */
#define INIT_MXCSR 0xFFC0u
#define INIT_FCW 0x0F7Fu
#define INIT_XMM 0x0123456789ABCDEFull
#define INIT_YMM_HIGH 0xFEDCBA9876543210ull
#define INIT_GS_BASE 0x12345000ull
/* What YmmHigh returns where there is no AVX. */
#define CPUSTATE_NO_AVX 0x4E4F2D4156582121ull /* "NO-AVX!!" */

static inline uint32_t get_mxcsr(void)
{
    uint32_t m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    return m;
}

static inline void set_mxcsr(uint32_t m) { __asm__ volatile("ldmxcsr %0" : : "m"(m)); }

static inline uint32_t get_fcw(void)
{
    uint16_t w;
    __asm__ volatile("fnstcw %0" : "=m"(w));
    return w;
}

static inline void set_fcw(uint32_t v)
{
    uint16_t w = (uint16_t)v;
    __asm__ volatile("fldcw %0" : : "m"(w));
}

/* The marked XMM register: movq to/from memory, so no other register is
 * involved (on i686 the compiler has no SSE registers to allocate anyway). */
static inline uint64_t get_xmm(void)
{
    uint64_t x;
#if defined(__x86_64__)
    __asm__ volatile("movq %%xmm15, %0" : "=m"(x));
#else
    __asm__ volatile("movq %%xmm7, %0" : "=m"(x));
#endif
    return x;
}

/* movq to an XMM register zeroes bits 64..127 and, being a legacy SSE
 * instruction, keeps bits 128..255 of the YMM register. */
static inline void set_xmm(uint64_t x)
{
#if defined(__x86_64__)
    __asm__ volatile("movq %0, %%xmm15" : : "m"(x));
#else
    __asm__ volatile("movq %0, %%xmm7" : : "m"(x));
#endif
}

/* AVX usable in user mode: CPUID.1:ECX.AVX and OSXSAVE, and XCR0 enables the
 * SSE and AVX components. */
static int have_avx(void)
{
#if defined(__x86_64__)
    uint32_t a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    if (!(c & (1u << 27)) || !(c & (1u << 28)))
        return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6u) == 6u;
#else
    return 0;
#endif
}

/* Bits 128..191 of ymm15 (only with AVX). The upper lane goes to memory
 * directly: no other vector register is used. */
static uint64_t get_ymm_high(void)
{
#if defined(__x86_64__)
    uint64_t lane[2];
    __asm__ volatile("vextractf128 $1, %%ymm15, %0" : "=m"(lane));
    return lane[0];
#else
    return CPUSTATE_NO_AVX;
#endif
}

/* Sets bits 128..191 of ymm15 to v and bits 192..255 to 0, keeping the low
 * 128 bits (vinsertf128 from memory, ymm15 as both source and destination). */
static void set_ymm_high(uint64_t v)
{
#if defined(__x86_64__)
    uint64_t lane[2] = {v, 0};
    __asm__ volatile("vinsertf128 $1, %0, %%ymm15, %%ymm15" : : "m"(lane));
#else
    (void)v;
#endif
}

#if defined(__x86_64__)
static long get_gs_base(uint64_t *out)
{
    return syscall(SYS_arch_prctl, ARCH_GET_GS, out);
}

static long set_gs_base(uint64_t v) { return syscall(SYS_arch_prctl, ARCH_SET_GS, v); }
#endif

/* ---------------------------------------------------------------- functions */

/* The reads come first in each function, before any other code of it. */
static int fn_xmm(const sl_gvalue *a, sl_gvalue *ret)
{
    uint64_t x = get_xmm();
    (void)a;
    ret->v.u64 = x;
    return SL_ABI_OK;
}

static int fn_mxcsr(const sl_gvalue *a, sl_gvalue *ret)
{
    uint32_t m = get_mxcsr();
    (void)a;
    ret->v.u32 = m;
    return SL_ABI_OK;
}

static int fn_fcw(const sl_gvalue *a, sl_gvalue *ret)
{
    uint32_t w = get_fcw();
    (void)a;
    ret->v.u32 = w;
    return SL_ABI_OK;
}

static int fn_ymm_high(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    ret->v.u64 = have_avx() ? get_ymm_high() : CPUSTATE_NO_AVX;
    return SL_ABI_OK;
}

static int fn_gs_base(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
#if defined(__x86_64__)
    uint64_t g = 0;
    if (get_gs_base(&g) != 0)
        return sl_fail(ret, SL_ABI_EABORT, "GsBase: arch_prctl(ARCH_GET_GS) failed");
    ret->v.u64 = g;
#else
    ret->v.u64 = 0;
#endif
    return SL_ABI_OK;
}

/* a * b with SSE2 mulsd, whatever the compiler would use (i686 guests are
 * built without SSE, so C arithmetic there would be x87). The operands go
 * through memory and xmm0, which the asm names as clobbered. */
static int fn_mul(const sl_gvalue *a, sl_gvalue *ret)
{
    double x = a[0].v.f64, y = a[1].v.f64, r;
    __asm__ volatile("movsd %1, %%xmm0\n\t"
                     "mulsd %2, %%xmm0\n\t"
                     "movsd %%xmm0, %0"
                     : "=m"(r)
                     : "m"(x), "m"(y)
#if defined(__x86_64__)
                     : "xmm0"
#endif
    );
    ret->v.f64 = r;
    return SL_ABI_OK;
}

static int fn_set_mxcsr(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)ret;
    set_mxcsr(a[0].v.u32);
    return SL_ABI_OK;
}

static int fn_set_fcw(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)ret;
    set_fcw(a[0].v.u32);
    return SL_ABI_OK;
}

static int fn_set_xmm(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)ret;
    set_xmm(a[0].v.u64);
    return SL_ABI_OK;
}

static int fn_set_ymm_high(const sl_gvalue *a, sl_gvalue *ret)
{
    if (!have_avx())
        return sl_fail(ret, SL_ABI_EABORT, "SetYmmHigh: no AVX");
    set_ymm_high(a[0].v.u64);
    return SL_ABI_OK;
}

static int fn_set_gs_base(const sl_gvalue *a, sl_gvalue *ret)
{
#if defined(__x86_64__)
    if (set_gs_base(a[0].v.u64) != 0)
        return sl_fail(ret, SL_ABI_EABORT, "SetGsBase: arch_prctl(ARCH_SET_GS) failed");
    return SL_ABI_OK;
#else
    (void)a;
    return sl_fail(ret, SL_ABI_EABORT, "SetGsBase: x86-64 only");
#endif
}

void sandlet_main(void)
{
    static const uint8_t ff[] = {SL_T_F64, SL_T_F64}, u32[] = {SL_T_U32}, u64[] = {SL_T_U64};
    if (sl_register("Mul", SL_T_F64, 2, ff, fn_mul) || sl_register("Mxcsr", SL_T_U32, 0, NULL, fn_mxcsr) ||
        sl_register("Fcw", SL_T_U32, 0, NULL, fn_fcw) || sl_register("Xmm", SL_T_U64, 0, NULL, fn_xmm) ||
        sl_register("YmmHigh", SL_T_U64, 0, NULL, fn_ymm_high) ||
        sl_register("GsBase", SL_T_U64, 0, NULL, fn_gs_base) ||
        sl_register("SetMxcsr", SL_T_VOID, 1, u32, fn_set_mxcsr) ||
        sl_register("SetFcw", SL_T_VOID, 1, u32, fn_set_fcw) ||
        sl_register("SetXmm", SL_T_VOID, 1, u64, fn_set_xmm) ||
        sl_register("SetYmmHigh", SL_T_VOID, 1, u64, fn_set_ymm_high) ||
        sl_register("SetGsBase", SL_T_VOID, 1, u64, fn_set_gs_base))
        sl_abort(1, "cpustate: registration failed");

    /* The state, last: nothing after it runs before init ends. */
    set_mxcsr(INIT_MXCSR);
    set_fcw(INIT_FCW);
    set_xmm(INIT_XMM);
    if (have_avx())
        set_ymm_high(INIT_YMM_HIGH);
#if defined(__x86_64__)
    if (set_gs_base(INIT_GS_BASE) != 0)
        sl_abort(1, "cpustate: arch_prctl(ARCH_SET_GS) failed");
#endif
}
