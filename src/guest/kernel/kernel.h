/* The guest kernel: sandlet's CPL0 runtime inside every sandbox (not for
 * guest authors). It owns the page tables, GDT/IDT/TSS, the fault handlers
 * and the bookkeeping page, and serves the Linux system calls that the user
 * program's C library (musl) makes. docs/guest-runtime.md describes it.
 *
 * Built freestanding with -mgeneral-regs-only: it never touches x87/SSE
 * state, so the user's floating-point registers survive every system call
 * and fault without being saved. */
#ifndef SL_KERNEL_GUEST_H
#define SL_KERNEL_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "pt.h"
#include "sl_layout.h"

#if defined(__x86_64__)
#define K_ARCH SL_ARCH_AMD64
#define K_PTE_ADDR SL_PTE_ADDR_AMD64
#elif defined(__i386__)
#define K_ARCH SL_ARCH_I686
#define K_PTE_ADDR SL_PTE_ADDR_I686
#else
#error "sandlet guests are x86-64 or i686"
#endif

#define K_NORETURN __attribute__((noreturn))

/* Page-fault error code bits. */
#define PF_P 0x1u
#define PF_W 0x2u
#define PF_U 0x4u
#define PF_I 0x10u

/* Segment selectors (docs/guest-runtime.md, "Privilege split"). On amd64 the
 * order is fixed by syscall/sysret: STAR[47:32] = kernel CS (SS = +8),
 * STAR[63:48] + 8 = user SS, + 16 = user CS. */
#define SEL_KCODE 0x08u
#define SEL_KDATA 0x10u
#if defined(__x86_64__)
#define SEL_UDATA 0x1Bu
#define SEL_UCODE 0x23u
#define SEL_TSS 0x28u
#else
#define SEL_UCODE 0x1Bu
#define SEL_UDATA 0x23u
#define SEL_TSS 0x28u
#define GDT_TLS_FIRST 6u /* set_thread_area entries 6..8, as on Linux */
#define GDT_TLS_COUNT 3u
#endif

/* State written only while booting, so that it is never written by a call
 * (after a restore its page is copy-on-write again, and the fault handler
 * must be able to read it without faulting). */
typedef struct k_state {
    uint64_t bk_gva;
    uint64_t scratch_gva, scratch_gpa, scratch_size;
    uint64_t ustack_lo, ustack_hi; /* user stack [lo, hi), zero pages mapped on demand */
    uint64_t mmap_lo, mmap_hi;     /* mmap range */
    uint64_t heap_lo, heap_hi;     /* brk range (the PEB heap) */
    uint64_t input_gva, input_size, output_gva, output_size;
    uint64_t kernel_lo, kernel_hi; /* our image */
} k_state;

/* The CPU tables and the boot-time state: three pages that boot copies
 * itself (copy-on-write by hand) before anything can fault. The TSS carries
 * the I/O permission bitmap that lets user code reach the sandlet ports. */
typedef struct k_cpu {
    uint8_t idt[4096];  /* amd64: 256 x 16 bytes; i686: 256 x 8 */
    uint8_t tss[4096];  /* TSS (amd64 104 bytes, i686 104 bytes) + I/O bitmap */
    uint64_t gdt[16];
    k_state st;
} __attribute__((aligned(4096))) k_cpu;

extern k_cpu k_cpu_pages;
#define k_st (k_cpu_pages.st)

/* Mutable kernel state (.data/.bss, so it is part of every snapshot and
 * comes back with a restore): the program break and the mmap cursor. */
typedef struct k_vm {
    uint64_t brk;
    uint64_t mmap_next; /* mmap hands out [.., mmap_next) downwards */
} k_vm;
extern k_vm k_vmstate;

/* ---- bookkeeping slots (volatile: the host writes them between runs) ---- */
static inline volatile uint64_t *k_bk_slot(unsigned off)
{
    return (volatile uint64_t *)(uintptr_t)(k_st.bk_gva + off);
}
static inline uint64_t k_bk(unsigned off) { return *k_bk_slot(off); }
static inline void k_count(unsigned off) { *k_bk_slot(off) += 1; }

/* ---- CPU helpers ---- */
static inline void k_out(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port) : "memory"); }
static inline uintptr_t k_read_cr2(void)
{
    uintptr_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}
static inline uintptr_t k_read_cr3(void)
{
    uintptr_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v)::"memory");
    return v;
}
static inline void k_write_cr3(uintptr_t v) { __asm__ volatile("mov %0, %%cr3" ::"r"(v) : "memory"); }
static inline void k_invlpg(uintptr_t va) { __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); }
static inline uint64_t k_root(void) { return (uint64_t)k_read_cr3() & K_PTE_ADDR; }
static inline void k_wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}
K_NORETURN void k_halt(void);

/* Freestanding helpers (no C library in the kernel). */
void *k_memset(void *d, int c, size_t n);
void *k_memcpy(void *d, const void *s, size_t n);
size_t k_strlen(const char *s);

/* ---- mem.c: scratch pages, page tables, faults ---- */
void k_pt_mem(sl_pt_mem *m);
bool k_scratch_take_st(const k_state *st, uint64_t *gpa);
int k_cow_page_st(const k_state *st, uint64_t va); /* 1 copied, 0 already writable, <0 error */
bool k_page_take(uint64_t *gpa);                   /* zeroed scratch page; false when exhausted */
void k_page_give(uint64_t gpa);                    /* back to the free list (scratch pages only) */
uint64_t k_pages_free(void);                       /* pages the allocator can still hand out */
void *k_scratch_ptr(uint64_t gpa);                 /* linear-map pointer or NULL */
K_NORETURN void k_out_of_memory(void);
/* Maps a fresh zero page at va with the given permissions (user). 0, or
 * -1 out of memory / -2 mapping failed or va already mapped. */
int k_map_zero(uint64_t va, bool writable, bool executable);
/* k_map_zero for n pages from va, a leaf table at a time; stops at the first
 * failure (the pages mapped so far stay: the caller unmaps them). */
int k_map_zero_range(uint64_t va, uint64_t n, bool writable, bool executable);
/* k_unmap for n pages from va, a leaf table at a time. */
void k_unmap_range(uint64_t va, uint64_t n);
/* The highest mapped page in [lo, hi), page-aligned; 0 when none is. */
uint64_t k_highest_mapped(uint64_t lo, uint64_t hi);
/* Unmaps va, returning its page to the free list when it is scratch. */
void k_unmap(uint64_t va);
bool k_move_page(uint64_t from, uint64_t to);
bool k_protect_page(uint64_t va, bool user, bool writable, bool executable);
bool k_is_mapped(uint64_t va);
bool k_page_perm(uint64_t va, sl_perm *perm); /* false when nothing is mapped */
/* Checks that [p, p+len) is user memory the program may read (write: and
 * write), faulting nothing in: false for kernel or unmapped addresses. */
bool k_user_ok(uint64_t p, uint64_t len, bool write);

/* Exception frame built by the entry stubs (also the system-call frame). */
#if defined(__x86_64__)
typedef struct k_frame {
    uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax; /* what C code may clobber */
    uint64_t vector, error;
    uint64_t ip, cs, flags, sp, ss;
} k_frame;
#else
typedef struct k_frame {
    uint32_t es, ds;
    uint32_t edi, esi, ebp, esp_, ebx, edx, ecx, eax;
    uint32_t vector, error;
    uint32_t ip, cs, flags, sp, ss; /* sp, ss only when coming from CPL3 */
} k_frame;
#endif
void k_exception(k_frame *f);

/* ---- syscall.c ---- */
#if defined(__x86_64__)
/* The amd64 `syscall` frame: what k_syscall64 saved. */
typedef struct k_sysframe {
    uint64_t r9, r8, r10, rdx, rsi, rdi, rax;
    uint64_t flags, ip, sp;
} k_sysframe;
void k_syscall64_c(k_sysframe *f);
#endif
void k_syscall_int80(k_frame *f);
long k_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5);

/* ---- vm.c: brk, mmap and friends ---- */
long k_brk(uint64_t addr);
long k_mmap(uint64_t addr, uint64_t len, long prot, long flags, long fd, uint64_t off);
long k_munmap(uint64_t addr, uint64_t len);
long k_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, long flags, uint64_t new_addr);
long k_mprotect(uint64_t addr, uint64_t len, long prot);
long k_madvise(uint64_t addr, uint64_t len, long advice);

/* ---- host.c: messages to the host ---- */
void k_report_fault(uint64_t vector, uint64_t error, uint64_t addr, uint64_t ip);
K_NORETURN void k_abort(int32_t code, const char *msg);
K_NORETURN void k_exit(uint32_t status);
long k_write_fd(int fd, uint64_t buf, uint64_t len);
long k_read_stdin(uint64_t buf, uint64_t len);
int k_clock(uint32_t id, uint64_t *sec, uint64_t *nsec);

/* ---- spaces.c: address spaces (page-table roots) for the program ---- */
long k_space_create(void);
long k_space_switch(unsigned long index);
unsigned k_space_current(void);
unsigned k_space_count(void);
long k_space_map_private(unsigned long index, uint64_t gva);

/* ---- random.c ---- */
void k_random(void *buf, size_t len);

/* ---- boot.c ---- */
K_NORETURN void k_boot(uintptr_t bk); /* on the kernel stack; ends in user mode */
K_NORETURN void k_enter_user(uintptr_t ip, uintptr_t sp); /* entry_*.S */
extern char k_isr_stubs[];
#define K_ISR_STUB_SIZE 16
void k_load_segments(void *gdtr, void *idtr, unsigned tss_sel);
#if defined(__x86_64__)
void k_syscall64(void);
#else
void k_int80(void);
#endif

#endif
