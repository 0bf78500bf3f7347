/* Bootstrap: the first C code after the ELF entry point.
 *
 * The host starts us in flat long mode (amd64) / flat paged protected mode
 * (i686) with no GDT, IDT or TSS of ours and rsp on the exception stack. Every
 * page of our image that we could write is copy-on-write (read-only) and no
 * exception handler exists yet, so any write to guest memory would triple
 * fault. Order therefore matters (docs/guest-runtime.md, "Bootstrap"):
 *  1. read the bookkeeping page and PEB into a state on this stack;
 *  2. copy the two rt_cpu pages ourselves (the CoW routine, called directly);
 *  3. fill rt_cpu: state, GDT, TSS, IDT; load them and reload the segments;
 *  4. return the call-stack top; the entry stub switches stacks and calls
 *     rt_init, after which faults are handled normally. */
#include "rt.h"

rt_cpu_pages rt_cpu;

_Static_assert(sizeof(rt_cpu_pages) == 2 * 4096, "rt_cpu must span exactly two pages");
_Static_assert(SL_T_BYTES == 9 && SL_ABI_EMALFORMED == 6, "sandlet_guest.h mirrors abi.h");

#define SEL_CODE 0x08u
#define SEL_DATA 0x10u
#define SEL_TSS 0x18u
#define DEFAULT_STACK (256u * 1024u)

RT_NORETURN void rt_halt(void)
{
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* Before rt_cpu is writable nothing can be reported in a message. */
static RT_NORETURN void boot_fail(uint32_t code)
{
    rt_out(SL_PORT_ABORT, code);
    rt_halt();
}

static uint64_t peb(const rt_state *st, unsigned off)
{
    (void)st;
    return *(volatile const uint64_t *)(uintptr_t)(SL_BASE_ADDRESS + off);
}

static uint64_t page_round(uint64_t x) { return (x + SL_PAGE_SIZE - 1) & SL_PAGE_MASK; }

static void set_cr0_wp(void)
{
    uintptr_t cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    if (!(cr0 & (1u << 16)))
        __asm__ volatile("mov %0, %%cr0" ::"r"(cr0 | (1u << 16)) : "memory");
}

/* Call stack. amd64: the PEB's range, mapped on demand by the fault handler
 * (#PF runs on the IST stack, so a fault on the stack itself is fine).
 * i686: exceptions push onto the current stack, so a stack page that is not
 * present or copy-on-write (which every stack page becomes after a snapshot)
 * would turn the first push into a triple fault. The i686 call stack is
 * therefore carved out of scratch, which is always writable and never part
 * of a snapshot: the top of the allocator area, with an unmapped guard page
 * below it. */
static void setup_stack(rt_state *st)
{
    uint64_t size = page_round(peb(st, SL_PEB_STACK_SIZE));
    if (size == 0 || size > (1ull << 30))
        size = DEFAULT_STACK;
#if defined(__x86_64__)
    uint64_t top = peb(st, SL_PEB_STACK_TOP) & SL_PAGE_MASK;
    if (top < size + SL_PAGE_SIZE)
        boot_fail(SL_ABI_EMALFORMED);
    st->stack_hi = top;
    st->stack_lo = top - size;
#else
    uint64_t cur = *(volatile uint64_t *)(uintptr_t)(st->bk_gva + SL_BK_ALLOC_CURSOR);
    uint64_t limit = *(volatile uint64_t *)(uintptr_t)(st->bk_gva + SL_BK_ALLOC_LIMIT);
    if (limit < cur || (limit & (SL_PAGE_SIZE - 1)))
        boot_fail(SL_ABI_EMALFORMED);
    uint64_t room = (limit - cur) & SL_PAGE_MASK;
    if (size + SL_PAGE_SIZE > room / 2) /* leave at least half of the free scratch */
        size = (room / 2 > 2 * SL_PAGE_SIZE) ? (room / 2 - SL_PAGE_SIZE) & SL_PAGE_MASK : 0;
    if (size < SL_PAGE_SIZE)
        boot_fail(SL_ABI_ENOMEM);
    uint64_t hi = limit - st->scratch_gpa + st->scratch_gva;
    st->stack_hi = hi;
    st->stack_lo = hi - size;
    st->guard_gva = st->stack_lo - SL_PAGE_SIZE;
    st->stack_reserve = size + SL_PAGE_SIZE;
#endif
}

static void build_gdt(void)
{
    rt_cpu.gdt[0] = 0;
    /* Accessed bits preset: after a restore these pages are read-only again
     * and the CPU must never need to write a descriptor. */
#if defined(__x86_64__)
    rt_cpu.gdt[1] = 0x00AF9B000000FFFFull; /* 64-bit code */
    rt_cpu.gdt[2] = 0x00CF93000000FFFFull; /* data */
    uint64_t base = (uint64_t)(uintptr_t)rt_cpu.tss, limit = 103;
    rt_cpu.gdt[3] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) |
                    (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
    rt_cpu.gdt[4] = base >> 32;
    /* TSS: only IST1 matters (all exceptions use it); no I/O bitmap. */
    for (unsigned i = 0; i < 32; i++)
        rt_cpu.tss[i] = 0;
    uint64_t top = rt_bk(SL_BK_EXC_STACK_TOP);
    uint64_t ist1 = (top - 16) & ~15ull; /* the word above is the handler's depth counter */
    rt_cpu.tss[9] = (uint32_t)ist1;       /* offset 36 */
    rt_cpu.tss[10] = (uint32_t)(ist1 >> 32);
    rt_cpu.tss[25] = 104u << 16;          /* offset 102: iomap base */
#else
    rt_cpu.gdt[1] = 0x00CF9B000000FFFFull; /* 32-bit code */
    rt_cpu.gdt[2] = 0x00CF93000000FFFFull; /* data */
#endif
}

static void build_idt(void)
{
    for (unsigned v = 0; v < 32; v++) {
        uint64_t off = (uint64_t)(uintptr_t)(rt_isr_stubs + v * RT_ISR_STUB_SIZE);
#if defined(__x86_64__)
        uint64_t *g = (uint64_t *)(void *)(rt_cpu.idt + 16 * v);
        g[0] = (off & 0xFFFF) | ((uint64_t)SEL_CODE << 16) | (1ull << 32) /* IST1 */ | (0x8Eull << 40) |
               (((off >> 16) & 0xFFFF) << 48);
        g[1] = off >> 32;
#else
        uint32_t *g = (uint32_t *)(void *)(rt_cpu.idt + 8 * v);
        g[0] = (uint32_t)(off & 0xFFFF) | (SEL_CODE << 16);
        g[1] = (uint32_t)(off & 0xFFFF0000u) | 0x8E00u;
#endif
    }
}

struct __attribute__((packed)) rt_dtr {
    uint16_t limit;
    uintptr_t base;
};

uintptr_t rt_boot(uintptr_t bk)
{
    rt_state st = {0};
    st.bk_gva = bk;
    volatile uint64_t *b = (volatile uint64_t *)bk;
    if (b[SL_BK_MAGIC / 8] != SL_BK_MAGIC_VALUE)
        boot_fail(SL_ABI_EMALFORMED);
    st.scratch_gva = b[SL_BK_SCRATCH_GVA / 8];
    st.scratch_gpa = b[SL_BK_SCRATCH_GPA / 8];
    st.scratch_size = b[SL_BK_SCRATCH_SIZE / 8];
    if (st.scratch_size < 16 * SL_PAGE_SIZE || (st.scratch_size & (SL_PAGE_SIZE - 1)))
        boot_fail(SL_ABI_EMALFORMED);
    if (peb(&st, SL_PEB_MAGIC) != SL_PEB_MAGIC_VALUE)
        boot_fail(SL_ABI_EMALFORMED);
    set_cr0_wp();

    uint64_t root = rt_root();
    if (b[SL_BK_NROOTS / 8] == 0) {
        b[SL_BK_ROOTS / 8] = root;
        b[SL_BK_NROOTS / 8] = 1;
    }
    if (b[SL_BK_PT_ROOT / 8] == 0)
        b[SL_BK_PT_ROOT / 8] = root;

    setup_stack(&st); /* before the copies: the i686 reserve limits the allocator */
    for (unsigned i = 0; i < 2; i++)
        if (rt_cow_page_st(&st, (uint64_t)(uintptr_t)&rt_cpu + i * SL_PAGE_SIZE) < 0)
            boot_fail(SL_ABI_ENOMEM);

    rt_st = st; /* rt_cpu is writable from here on */
    rt_st.input_gva = b[SL_BK_INPUT_GVA / 8];
    rt_st.input_size = b[SL_BK_INPUT_SIZE / 8];
    rt_st.output_gva = b[SL_BK_OUTPUT_GVA / 8];
    rt_st.output_size = b[SL_BK_OUTPUT_SIZE / 8];
    rt_st.heap_lo = peb(&st, SL_PEB_HEAP_PTR);
    rt_st.heap_hi = rt_st.heap_lo + peb(&st, SL_PEB_HEAP_SIZE);
    if (rt_st.heap_hi < rt_st.heap_lo)
        rt_st.heap_hi = rt_st.heap_lo;

    build_gdt();
    build_idt();
    struct rt_dtr gdtr = {.limit = sizeof rt_cpu.gdt - 1, .base = (uintptr_t)rt_cpu.gdt};
    struct rt_dtr idtr = {.limit = (uint16_t)(RT_ARCH == SL_ARCH_AMD64 ? 16 * 32 - 1 : 8 * 32 - 1),
                          .base = (uintptr_t)rt_cpu.idt};
    rt_load_segments(&gdtr, &idtr, RT_ARCH == SL_ARCH_AMD64 ? SEL_TSS : 0);
    *rt_exc_depth() = 0;
    rt_i686_guard();
    return (uintptr_t)rt_st.stack_hi;
}

void rt_init(void)
{
    rt_heap_init(rt_st.heap_lo, rt_st.heap_hi);
    rt_st.ready = true;
    sandlet_main();
    rt_st.ready = false;
    rt_registry_seal();
    size_t cap;
    uint8_t *out = rt_output(&cap);
    if (out)
        sl_abi_reset(out, cap);
    *rt_bk_slot(SL_BK_DISPATCH) = (uint64_t)(uintptr_t)&rt_dispatch_entry;
    *rt_bk_slot(SL_BK_STACK_TOP) = rt_st.stack_hi;
}

uint64_t sl_generation(void) { return rt_bk(SL_BK_GENERATION); }
