/* Guest runtime internals (not for guest authors). docs/guest-runtime.md
 * describes the design: bootstrap order, fault handling, stacks. */
#ifndef SL_GUEST_RT_H
#define SL_GUEST_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "pt.h"
#include "sl_layout.h"
#include "sandlet_guest.h"

#if defined(__x86_64__)
#define RT_ARCH SL_ARCH_AMD64
#define RT_PTE_ADDR SL_PTE_ADDR_AMD64
#elif defined(__i386__)
#define RT_ARCH SL_ARCH_I686
#define RT_PTE_ADDR SL_PTE_ADDR_I686
#else
#error "sandlet guests are x86-64 or i686"
#endif

#define RT_NORETURN __attribute__((noreturn))
#define RT_ALIGNED_PAGE __attribute__((aligned(4096)))

/* Page-fault error code bits. */
#define PF_P 0x1u
#define PF_W 0x2u
#define PF_I 0x10u

/* State written only while initialising (so that it is never touched by a
 * call, and in particular not by the page-fault path after a restore, when the
 * page holding it is copy-on-write again). Lives in the runtime's two
 * page-aligned CPU pages, which early boot copies itself. */
typedef struct rt_state {
    uint64_t bk_gva;          /* bookkeeping page (same for the whole family) */
    uint64_t scratch_gva, scratch_gpa, scratch_size;
    uint64_t stack_lo, stack_hi; /* call stack [lo, hi) */
    uint64_t stack_reserve;   /* i686: bytes at the top of the allocator area kept for the stack + guard */
    uint64_t guard_gva;       /* i686: unmapped page below the call stack (0 = none) */
    uint64_t heap_lo, heap_hi;
    uint64_t input_gva, input_size, output_gva, output_size;
    bool ready;               /* sandlet_main may run: registration allowed */
} rt_state;

/* The two page-aligned pages early boot copies before anything else writes
 * guest memory: IDT, GDT, TSS and the init-time state. */
typedef struct rt_cpu_pages {
    uint8_t idt[4096]; /* amd64: 256 x 16 bytes; i686: 256 x 8 */
    uint64_t gdt[8];
    uint32_t tss[32];  /* amd64 TSS (104 bytes); unused on i686 */
    rt_state st;
} RT_ALIGNED_PAGE rt_cpu_pages;

extern rt_cpu_pages rt_cpu;
#define rt_st (rt_cpu.st)

/* Bookkeeping slot access (volatile: the host writes them between runs). */
static inline volatile uint64_t *rt_bk_slot(unsigned off)
{
    return (volatile uint64_t *)(uintptr_t)(rt_st.bk_gva + off);
}
static inline uint64_t rt_bk(unsigned off) { return *rt_bk_slot(off); }

/* The depth counter of the exception handler: the first word under the
 * exception-stack top (scratch, so always writable; reset at every entry). */
static inline volatile uintptr_t *rt_exc_depth(void)
{
    return (volatile uintptr_t *)(uintptr_t)(rt_bk(SL_BK_EXC_STACK_TOP) - 8);
}

/* ---- CPU helpers ---- */
static inline void rt_out(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port) : "memory");
}
static inline uintptr_t rt_read_cr2(void)
{
    uintptr_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}
static inline uintptr_t rt_read_cr3(void)
{
    uintptr_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v)::"memory");
    return v;
}
static inline void rt_write_cr3(uintptr_t v) { __asm__ volatile("mov %0, %%cr3" ::"r"(v) : "memory"); }
static inline void rt_invlpg(uintptr_t va) { __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); }
static inline uint64_t rt_root(void) { return (uint64_t)rt_read_cr3() & RT_PTE_ADDR; }

RT_NORETURN void rt_halt(void);

/* ---- mem.c: scratch allocator, page tables, fault handling ---- */
void rt_pt_mem(sl_pt_mem *m);
/* The *_st variants take the state explicitly: early boot runs them with a
 * state on its stack before rt_cpu (copy-on-write memory) can be written. */
bool rt_scratch_take_st(const rt_state *st, uint64_t *gpa);
int rt_cow_page_st(const rt_state *st, uint64_t va); /* 1 copied, 0 already writable, <0 error */
bool rt_scratch_take(uint64_t *gpa);          /* zeroed page; false when exhausted */
void *rt_scratch_ptr(uint64_t gpa);          /* linear-map pointer or NULL */
RT_NORETURN void rt_out_of_scratch(void);
void rt_i686_guard(void);                     /* (re)unmaps the i686 stack guard */

/* Exception frame built by the entry stubs. */
#if defined(__x86_64__)
typedef struct rt_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
    uint64_t vector, error;
    uint64_t ip, cs, flags, sp, ss;
} rt_frame;
#else
typedef struct rt_frame {
    uint32_t edi, esi, ebp, esp_, ebx, edx, ecx, eax;
    uint32_t vector, error;
    uint32_t ip, cs, flags;
} rt_frame;
#endif
void rt_exception(rt_frame *f);

/* ---- boot.c ---- */
uintptr_t rt_boot(uintptr_t bk);              /* early boot on the exception stack; returns the stack top */
void rt_init(void);                           /* heap, sandlet_main, end of init */

/* ---- host.c: messages to the host ---- */
void rt_report_fault(uint64_t vector, uint64_t error, uint64_t addr, uint64_t ip);
RT_NORETURN void rt_abort(int32_t code, const char *msg, uint32_t len);
int rt_push_output(const sl_msg *m); /* resets the output stack first */
uint8_t *rt_input(size_t *cap);
uint8_t *rt_output(size_t *cap);
void rt_to_wire(const sl_gvalue *g, sl_wire_value *w);
bool rt_from_wire(const sl_wire_value *w, sl_gvalue *g);

/* ---- dispatch.c ---- */
void rt_dispatch(uintptr_t bk);
void rt_registry_seal(void);

/* ---- malloc.c ---- */
void rt_heap_init(uint64_t lo, uint64_t hi);

/* entry_*.S */
extern char rt_isr_stubs[];
#define RT_ISR_STUB_SIZE 16
void rt_dispatch_entry(void);
void rt_load_segments(void *gdtr, void *idtr, unsigned tss_sel);

#endif
