/* Guest memory layout constants shared by host and guest (DESIGN.md §2).
 * Freestanding: only <stdint.h>. */
#ifndef SL_LAYOUT_H
#define SL_LAYOUT_H

#include <stdint.h>

#define SL_PAGE_SIZE 4096u
#define SL_PAGE_SHIFT 12
#define SL_PAGE_MASK (~(uint64_t)(SL_PAGE_SIZE - 1))

/* Guest architectures. The numeric values are part of the snapshot file format. */
#define SL_ARCH_AMD64 1u
#define SL_ARCH_I686 2u

/* First guest-physical byte of the snapshot region; 0..0x3FFF stays unmapped so
 * that NULL-ish pointers fault. */
#define SL_BASE_ADDRESS 0x4000ull

/* amd64: scratch sits at the top of a 36-bit physical space and at the top of
 * the virtual space, one page below the end (the last page stays unmapped). */
#define SL_AMD64_PHYS_TOP 0xFFFFFFFFFull     /* last byte of the 36-bit space */
#define SL_AMD64_VIRT_TOP 0xFFFFFFFFFFFFEFFFull
/* i686: 2-level paging can only address 32-bit physical memory, so scratch is
 * identity-mapped (GPA == GVA) and ends below the local APIC at 0xFEE00000. */
#define SL_I686_SCRATCH_END 0xFEE00000ull

static inline uint64_t sl_scratch_base_gpa(unsigned arch, uint64_t size)
{
    return arch == SL_ARCH_I686 ? SL_I686_SCRATCH_END - size : SL_AMD64_PHYS_TOP - size + 1;
}

static inline uint64_t sl_scratch_base_gva(unsigned arch, uint64_t size)
{
    return arch == SL_ARCH_I686 ? SL_I686_SCRATCH_END - size : SL_AMD64_VIRT_TOP - size + 1;
}

/* Bookkeeping slots: the top page of scratch, written by the host on every
 * restore and read (and partly updated) by the guest. Offsets from the start
 * of that page; every slot is a little-endian u64 even on i686. */
#define SL_BK_MAGIC 0x00          /* SL_BK_MAGIC_VALUE */
#define SL_BK_SCRATCH_SIZE 0x08   /* bytes of scratch */
#define SL_BK_ALLOC_CURSOR 0x10   /* GPA of the next free scratch page (guest bumps it) */
#define SL_BK_ALLOC_LIMIT 0x18    /* GPA one past the last allocatable page */
#define SL_BK_PT_GPA 0x20         /* GPA of the live page tables (first table page) */
#define SL_BK_PT_ROOT 0x28        /* GPA of the root table in use (CR3) */
#define SL_BK_GENERATION 0x30     /* snapshot generation */
#define SL_BK_EXC_STACK_TOP 0x38  /* GVA of the exception-stack top */
#define SL_BK_INPUT_GVA 0x40      /* GVA of the input buffer */
#define SL_BK_INPUT_SIZE 0x48
#define SL_BK_OUTPUT_GVA 0x50     /* GVA of the output buffer */
#define SL_BK_OUTPUT_SIZE 0x58
#define SL_BK_SCRATCH_GVA 0x60    /* GVA of the scratch base (linear map) */
#define SL_BK_SCRATCH_GPA 0x68    /* GPA of the scratch base */
#define SL_BK_PEB_GVA 0x70        /* GVA of the PEB */
#define SL_BK_DIRTY_HINT 0x78     /* guest-maintained count of pages it took from the allocator */
#define SL_BK_DISPATCH 0x80       /* guest-written at the end of init: GVA of its dispatch entry */
#define SL_BK_STACK_TOP 0x88      /* kernel-written at boot: top of the call stack (SL_PEB_CALLSTACK_TOP) */
#define SL_BK_NROOTS 0x90         /* number of page-table roots (address spaces) in SL_BK_ROOTS */
/* Guest-kernel slots. The host zeroes every slot it does not set on each
 * restore, so counters and lists here start afresh with the scratch. */
#define SL_BK_USER_RSP 0x98       /* amd64 system-call entry: the user rsp while it switches stacks */
#define SL_BK_KSTACK 0xA0         /* kernel stack top for system calls (written by the kernel at boot) */
#define SL_BK_FREE_LIST 0xA8      /* GPA of the first freed scratch page (each holds the next), 0 = none */
#define SL_BK_EXC_DEPTH 0xB0      /* nesting of exception handlers (a fault inside one is fatal) */
#define SL_BK_CLOCK_SEC 0xB8      /* SL_PORT_CLOCK answer: seconds */
#define SL_BK_CLOCK_NSEC 0xC0     /* SL_PORT_CLOCK answer: nanoseconds, or ~0 for an unknown clock */
#define SL_BK_RNG_COUNTER 0xC8    /* ChaCha20 block counter of the getrandom stream */
#define SL_BK_RNG_SEED 0xD0       /* 32 bytes: ChaCha20 key, fresh from the host on every restore */
#define SL_BK_EV_FAULTS 0xF0      /* events since the restore: page faults the kernel handled */
#define SL_BK_EV_COW 0xF8         /* events since the restore: copy-on-write copies */
#define SL_BK_EV_SYSCALLS 0x300   /* events since the restore: system calls served */
#define SL_BK_EV_DEMAND 0x308     /* events since the restore: zero pages mapped on demand or by mmap */
#define SL_BK_FREE_COUNT 0x310    /* pages on SL_BK_FREE_LIST */
/* Page copies and zeroing (docs/decisions.md, "PVM"): where the vCPU emulates
 * every kernel instruction (PVM), a 4 KiB copy in the guest costs ~0.5 ms and
 * an exit to the host far less, so the host does them. Written by the host on
 * every restore, so a snapshot taken on one backend runs on the other. */
#define SL_BK_HOST_PAGES 0x318    /* 1: use SL_PORT_PAGE; 0: copy and zero in the guest */
#define SL_BK_PAGE_DST 0x320      /* SL_PORT_PAGE: GPA of the scratch page to write */
#define SL_BK_PAGE_SRC 0x328      /* SL_PORT_PAGE copy: GPA of the page to read */
/* SL_PORT_PF (with SL_BK_HOST_PAGES = 1, amd64): a user page fault the
 * kernel's entry hands to the host (src/host/hostfault.c). */
#define SL_BK_PF_ADDR 0x330       /* kernel-written: CR2 */
#define SL_BK_PF_ERR 0x338        /* kernel-written: the error code */
#define SL_BK_PF_ROOT 0x340       /* kernel-written: CR3 */
#define SL_BK_PF_SLOT 0x348       /* host-written: GVA of the entry to write, 0 = not served */
#define SL_BK_PF_PTE 0x350        /* host-written: the value to write there */
#define SL_BK_ROOTS 0x100         /* u64 GPAs of every root the guest uses; [0] is the first space */
#define SL_BK_MAX_ROOTS 64u
#define SL_BK_MAGIC_VALUE 0x4b4f4f42544c53ull /* "SLTBOOK" */

/* Scratch, from its base: input buffer, output buffer, an unmapped guard page,
 * the function model's call stack (the layout's stack size), page tables,
 * free pages (bump allocator, growing up), the exception stack, then the
 * bookkeeping page. */
#define SL_EXC_STACK_SIZE (4u * SL_PAGE_SIZE)

/* PEB (process environment block): the first page of the snapshot region, at
 * GPA == GVA == SL_BASE_ADDRESS, written by the host, read-only to the guest.
 * Little-endian u64 fields at these offsets. */
#define SL_PEB_MAGIC 0x00          /* SL_PEB_MAGIC_VALUE */
#define SL_PEB_VERSION 0x08        /* 2 */
#define SL_PEB_INPUT_SIZE 0x10     /* {size, ptr} pairs: ptr is a GVA */
#define SL_PEB_INPUT_PTR 0x18
#define SL_PEB_OUTPUT_SIZE 0x20
#define SL_PEB_OUTPUT_PTR 0x28
#define SL_PEB_INIT_DATA_SIZE 0x30
#define SL_PEB_INIT_DATA_PTR 0x38
#define SL_PEB_HEAP_SIZE 0x40
#define SL_PEB_HEAP_PTR 0x48
#define SL_PEB_STACK_SIZE 0x50     /* demand-mapped stack [top - size, top) */
#define SL_PEB_STACK_TOP 0x58
#define SL_PEB_SCRATCH_SIZE 0x60
#define SL_PEB_SCRATCH_GVA 0x68
#define SL_PEB_BOOKKEEPING_GVA 0x70
/* The user program (CPL3) next to the guest kernel: */
#define SL_PEB_USER_ENTRY 0x78     /* GVA of the program's entry point */
#define SL_PEB_USER_PHDR 0x80      /* GVA of its program headers (AT_PHDR), 0 if not loaded */
#define SL_PEB_USER_PHNUM 0x88     /* AT_PHNUM */
#define SL_PEB_USER_PHENT 0x90     /* AT_PHENT */
#define SL_PEB_MMAP_LO 0x98        /* [lo, hi): virtual range the kernel serves mmap from */
#define SL_PEB_MMAP_HI 0xA0
#define SL_PEB_KERNEL_GVA 0xA8     /* [gva, gva + size): the guest kernel image (supervisor-only) */
#define SL_PEB_KERNEL_SIZE 0xB0
#define SL_PEB_CALLSTACK_TOP 0xB8  /* GVA of the top of the function model's call stack (in scratch) */
#define SL_PEB_MAGIC_VALUE 0x3242455054454c53ull /* "SLETPEB2" as little-endian bytes */

/* Guest stack top (the stack itself is mapped on demand by the guest). */
#define SL_AMD64_STACK_TOP 0x00007FFFFFFF0000ull
#define SL_I686_STACK_GAP 0x10000ull /* i686: stack top = scratch base - gap */

/* Entry contract.
 * Initialise(entry): the guest kernel's ELF entry at CPL0 with
 *   rdi/edi = GVA of the bookkeeping page, rsi/esi = SL_ENTRY_INIT,
 *   rsp = the exception-stack top (scratch, always mapped), rflags = 0x2,
 *   CR3 = the root. The kernel boots and enters the user program at CPL3.
 * Call(dispatch): the user program's dispatch entry, at CPL3 (the segment
 *   state the vCPU was left in by the `out SL_PORT_DONE` that ended init or
 *   the previous call, or the snapshot's), with rdi/edi = the bookkeeping
 *   page's GVA (which user code cannot read), rsi/esi = SL_ENTRY_CALL,
 *   rsp = SL_BK_STACK_TOP, rflags = 0x2.
 * User code ends init and every call with `out SL_PORT_DONE` at CPL3. */
#define SL_ENTRY_INIT 0u
#define SL_ENTRY_CALL 1u

#endif
