/* Boot: from the host's Initialise entry (CPL0, flat, paging on, no tables
 * of ours) to the user program's entry point at CPL3.
 *
 * Every page of our image that we could write is copy-on-write (read-only)
 * and no exception handler exists yet, so any write to guest memory would
 * triple fault. Order therefore matters (docs/guest-runtime.md, "Boot"):
 *  1. read the bookkeeping page and PEB into a state on this stack;
 *  2. copy the three k_cpu pages ourselves (the CoW routine, called directly);
 *  3. fill k_cpu: state, GDT, TSS (with the I/O bitmap), IDT; load them;
 *     on amd64 point the `syscall` MSRs at our entry;
 *  4. build the program's initial stack (argv, environment, auxiliary
 *     vector) — faults are handled from here on — and iret to CPL3. */
#include "kernel.h"
#include "le.h"

k_cpu k_cpu_pages;
k_vm k_vmstate;

_Static_assert(sizeof(k_cpu) == 3 * 4096, "k_cpu must span exactly three pages");
_Static_assert(SL_BK_USER_RSP == 0x98 && SL_BK_KSTACK == 0xA0, "entry_amd64.S mirrors sl_layout.h");
_Static_assert(SL_BK_HOST_PAGES == 0x318 && SL_BK_PF_ADDR == 0x330 && SL_BK_PF_ERR == 0x338 &&
                   SL_BK_PF_ROOT == 0x340 && SL_BK_PF_SLOT == 0x348 && SL_BK_PF_PTE == 0x350 &&
                   SL_PORT_PF == 0x510B,
               "entry_amd64.S mirrors sl_layout.h and abi.h");
_Static_assert(offsetof(k_cpu, st) + offsetof(k_state, bk_gva) == 0x2080, "entry_amd64.S: K_BK_GVA");
_Static_assert(SEL_KDATA == 0x10 && SEL_UCODE == (K_ARCH == SL_ARCH_AMD64 ? 0x23 : 0x1B), "entry stubs mirror kernel.h");

#define MSR_STAR 0xC0000081u
#define MSR_LSTAR 0xC0000082u
#define MSR_SFMASK 0xC0000084u
#define MSR_KERNEL_GS_BASE 0xC0000102u
/* TF, DF, IF, IOPL, NT, AC cleared on `syscall`, as Linux does. */
#define SFMASK_VALUE 0x47700u

K_NORETURN void k_halt(void)
{
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* Before k_cpu is writable nothing can be reported in a message. */
static K_NORETURN void boot_fail(uint32_t code)
{
    k_out(SL_PORT_ABORT, code);
    k_halt();
}

static uint64_t peb(unsigned off) { return *(volatile const uint64_t *)(uintptr_t)(SL_BASE_ADDRESS + off); }

static uint64_t page_round(uint64_t x) { return (x + SL_PAGE_SIZE - 1) & SL_PAGE_MASK; }

static void set_cr0_wp(void)
{
    uintptr_t cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    if (!(cr0 & (1u << 16)))
        __asm__ volatile("mov %0, %%cr0" ::"r"(cr0 | (1u << 16)) : "memory");
}

static uint64_t seg_desc(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
    return (limit & 0xFFFFull) | ((uint64_t)(base & 0xFFFFFF) << 16) | ((uint64_t)access << 40) |
           ((uint64_t)((limit >> 16) & 0xF) << 48) | ((uint64_t)(flags & 0xF) << 52) |
           ((uint64_t)(base >> 24) << 56);
}

/* TSS layout: amd64 RSP0 at 4, IST1 at 36, I/O map base at 102;
 * i686 ESP0 at 4, SS0 at 8, I/O map base at 102. The I/O bitmap denies
 * every port but the ones user code talks to the host with. A 32-bit `out`
 * to port p needs the bits of p..p+3 clear, so the last user port opens
 * three more behind it. */
#define IOMAP_OFF 104u
#define IOMAP_LAST_OPEN (SL_PORT_USER_LAST + 3u)
#define IOMAP_BYTES ((IOMAP_LAST_OPEN / 8u) + 2u)
_Static_assert(IOMAP_OFF + IOMAP_BYTES <= 4096, "the I/O bitmap must fit the TSS page");

static void build_tss(void)
{
    uint8_t *t = k_cpu_pages.tss;
    k_memset(t, 0, sizeof k_cpu_pages.tss);
    uint64_t top = k_st.bk_gva & ~15ull; /* the kernel stack ends where the bookkeeping page starts */
#if defined(__x86_64__)
    sl_put32(t + 4, (uint32_t)top);
    sl_put32(t + 8, (uint32_t)(top >> 32));
    uint64_t ist1 = (k_st.bk_gva - SL_EXC_STACK_SIZE + SL_PAGE_SIZE) & ~15ull; /* #DF: the bottom page */
    sl_put32(t + 36, (uint32_t)ist1);
    sl_put32(t + 40, (uint32_t)(ist1 >> 32));
#else
    sl_put32(t + 4, (uint32_t)top);
    sl_put32(t + 8, SEL_KDATA);
#endif
    t[102] = (uint8_t)IOMAP_OFF;
    t[103] = (uint8_t)(IOMAP_OFF >> 8);
    uint8_t *map = t + IOMAP_OFF;
    k_memset(map, 0xFF, IOMAP_BYTES);
    for (unsigned port = SL_PORT_DONE; port <= IOMAP_LAST_OPEN; port++)
        map[port / 8] &= (uint8_t)~(1u << (port % 8));
    *k_bk_slot(SL_BK_KSTACK) = top;
}

static void build_gdt(void)
{
    uint64_t *g = k_cpu_pages.gdt;
    k_memset(g, 0, sizeof k_cpu_pages.gdt);
    uint64_t tss = (uint64_t)(uintptr_t)k_cpu_pages.tss;
    uint32_t tss_limit = IOMAP_OFF + IOMAP_BYTES - 1;
    /* Accessed bits preset: after a restore these pages are read-only again
     * and the CPU must never need to write a descriptor. */
#if defined(__x86_64__)
    g[1] = seg_desc(0, 0xFFFFF, 0x9B, 0xA); /* kernel code, 64-bit */
    g[2] = seg_desc(0, 0xFFFFF, 0x93, 0xC); /* kernel data */
    g[3] = seg_desc(0, 0xFFFFF, 0xF3, 0xC); /* user data (DPL3) */
    g[4] = seg_desc(0, 0xFFFFF, 0xFB, 0xA); /* user code, 64-bit (DPL3) */
    g[5] = seg_desc((uint32_t)tss, tss_limit, 0x89, 0x0);
    g[6] = tss >> 32;
#else
    g[1] = seg_desc(0, 0xFFFFF, 0x9B, 0xC); /* kernel code */
    g[2] = seg_desc(0, 0xFFFFF, 0x93, 0xC); /* kernel data */
    g[3] = seg_desc(0, 0xFFFFF, 0xFB, 0xC); /* user code (DPL3) */
    g[4] = seg_desc(0, 0xFFFFF, 0xF3, 0xC); /* user data (DPL3) */
    g[5] = seg_desc((uint32_t)tss, tss_limit, 0x89, 0x0);
#endif
}

static void set_gate(unsigned v, uintptr_t handler, unsigned dpl, unsigned ist)
{
    uint64_t off = (uint64_t)handler;
#if defined(__x86_64__)
    uint64_t *g = (uint64_t *)(void *)(k_cpu_pages.idt + 16 * v);
    g[0] = (off & 0xFFFF) | ((uint64_t)SEL_KCODE << 16) | ((uint64_t)ist << 32) |
           ((uint64_t)(0x8E | dpl << 5) << 40) | (((off >> 16) & 0xFFFF) << 48);
    g[1] = off >> 32;
#else
    (void)ist;
    uint32_t *g = (uint32_t *)(void *)(k_cpu_pages.idt + 8 * v);
    g[0] = (uint32_t)(off & 0xFFFF) | (SEL_KCODE << 16);
    g[1] = (uint32_t)(off & 0xFFFF0000u) | ((0x8Eu | dpl << 5) << 8);
#endif
}

static void build_idt(void)
{
    k_memset(k_cpu_pages.idt, 0, sizeof k_cpu_pages.idt);
    for (unsigned v = 0; v < 32; v++)
        set_gate(v, (uintptr_t)(k_isr_stubs + v * K_ISR_STUB_SIZE), 0, v == 8 ? 1 : 0);
#if defined(__i386__)
    set_gate(0x80, (uintptr_t)k_int80, 3, 0);
#endif
}

struct __attribute__((packed)) k_dtr {
    uint16_t limit;
    uintptr_t base;
};

static void load_cpu_tables(void)
{
    build_tss();
    build_gdt();
    build_idt();
    struct k_dtr gdtr = {.limit = sizeof k_cpu_pages.gdt - 1, .base = (uintptr_t)k_cpu_pages.gdt};
    struct k_dtr idtr = {.limit = (uint16_t)(K_ARCH == SL_ARCH_AMD64 ? 16 * 256 - 1 : 8 * 256 - 1),
                         .base = (uintptr_t)k_cpu_pages.idt};
    k_load_segments(&gdtr, &idtr, SEL_TSS);
#if defined(__x86_64__)
    k_wrmsr(MSR_STAR, ((uint64_t)(SEL_KDATA) << 48) | ((uint64_t)SEL_KCODE << 32));
    k_wrmsr(MSR_LSTAR, (uint64_t)(uintptr_t)k_syscall64);
    k_wrmsr(MSR_SFMASK, SFMASK_VALUE);
    k_wrmsr(MSR_KERNEL_GS_BASE, k_st.bk_gva);
#endif
}

/* ---- the program's initial stack (System V ABI: argc, argv, envp, auxv) ---- */

#define AT_NULL 0
#define AT_PHDR 3
#define AT_PHENT 4
#define AT_PHNUM 5
#define AT_PAGESZ 6
#define AT_ENTRY 9
#define AT_UID 11
#define AT_EUID 12
#define AT_GID 13
#define AT_EGID 14
#define AT_HWCAP 16
#define AT_CLKTCK 17
#define AT_SECURE 23
#define AT_RANDOM 25
#define AT_EXECFN 31

#define MAX_ARGS 4096u

static const char default_arg0[] = "guest";

typedef uintptr_t word;

/* Pushes n bytes onto the user stack being built (faults map it in). */
static uint64_t push_bytes(uint64_t sp, const void *p, size_t n)
{
    sp -= n;
    k_memcpy((void *)(uintptr_t)sp, p, n);
    return sp;
}

/* The EXEC message the host may leave on the input stack: argc in code and
 * the NUL-terminated argv then environment strings in text. */
static bool exec_message(sl_msg *m)
{
    uint8_t *in = (uint8_t *)(uintptr_t)k_st.input_gva;
    if (k_st.input_size < SL_ABI_STACK_HDR || sl_abi_peek(in, k_st.input_size, m) != 0 || m->kind != SL_MSG_EXEC)
        return false;
    return true;
}

static K_NORETURN void start_user(void)
{
    sl_msg m;
    const uint8_t *text = (const uint8_t *)default_arg0;
    uint64_t text_len = sizeof default_arg0, argc = 1;
    if (exec_message(&m)) {
        text = m.text;
        text_len = m.text_len;
        argc = (uint64_t)m.code;
        if (text_len && text[text_len - 1] != 0)
            k_abort(SL_ABI_EMALFORMED, "exec message: strings not NUL-terminated");
    }
    uint64_t nstr = 0;
    for (uint64_t i = 0; i < text_len; i++)
        nstr += text[i] == 0;
    if (argc > nstr || nstr > MAX_ARGS || text_len + nstr * 2 * sizeof(word) + SL_PAGE_SIZE > (k_st.ustack_hi - k_st.ustack_lo) / 2)
        k_abort(SL_ABI_EMALFORMED, "exec message: bad argument count or too large");

    uint64_t sp = k_st.ustack_hi;
    uint8_t rnd[16];
    k_random(rnd, sizeof rnd);
    uint64_t strings = push_bytes(sp, text, text_len);
    uint64_t at_random = push_bytes(strings & ~15ull, rnd, sizeof rnd);
    sp = at_random & ~15ull;

    /* Words, from the top: auxv, NULL, envp, NULL, argv, argc. */
    uint64_t phdr = peb(SL_PEB_USER_PHDR);
    const word aux[] = {
        AT_PHDR, (word)phdr, AT_PHENT, (word)peb(SL_PEB_USER_PHENT), AT_PHNUM, (word)peb(SL_PEB_USER_PHNUM),
        AT_PAGESZ, SL_PAGE_SIZE, AT_ENTRY, (word)peb(SL_PEB_USER_ENTRY), AT_UID, 0, AT_EUID, 0, AT_GID, 0,
        AT_EGID, 0, AT_SECURE, 0, AT_HWCAP, 0, AT_CLKTCK, 100, AT_RANDOM, (word)at_random,
        AT_EXECFN, (word)strings, AT_NULL, 0,
    };
    uint64_t nwords = 1 + nstr + 2 + sizeof aux / sizeof aux[0];
    sp = (sp - nwords * sizeof(word)) & ~15ull;
    word *w = (word *)(uintptr_t)sp;
    *w++ = (word)argc;
    uint64_t at = strings;
    for (uint64_t i = 0; i < nstr; i++) {
        if (i == argc)
            *w++ = 0;
        *w++ = (word)at;
        at += k_strlen((const char *)(uintptr_t)at) + 1;
    }
    if (argc == nstr)
        *w++ = 0;
    *w++ = 0;
    k_memcpy(w, aux, sizeof aux);
    /* Function-model calls run on their own stack in scratch (never part of
     * a snapshot: no copy-on-write fault per call). */
    *k_bk_slot(SL_BK_STACK_TOP) = peb(SL_PEB_CALLSTACK_TOP);
    k_enter_user((uintptr_t)peb(SL_PEB_USER_ENTRY), (uintptr_t)sp);
}

void k_boot(uintptr_t bk)
{
    k_state st;
    k_memset(&st, 0, sizeof st);
    st.bk_gva = bk;
    volatile uint64_t *b = (volatile uint64_t *)bk;
    if (b[SL_BK_MAGIC / 8] != SL_BK_MAGIC_VALUE || peb(SL_PEB_MAGIC) != SL_PEB_MAGIC_VALUE)
        boot_fail(SL_ABI_EMALFORMED);
    st.scratch_gva = b[SL_BK_SCRATCH_GVA / 8];
    st.scratch_gpa = b[SL_BK_SCRATCH_GPA / 8];
    st.scratch_size = b[SL_BK_SCRATCH_SIZE / 8];
    if (st.scratch_size < 16 * SL_PAGE_SIZE || (st.scratch_size & (SL_PAGE_SIZE - 1)))
        boot_fail(SL_ABI_EMALFORMED);
    set_cr0_wp();

    uint64_t root = k_root();
    if (b[SL_BK_NROOTS / 8] == 0) {
        b[SL_BK_ROOTS / 8] = root;
        b[SL_BK_NROOTS / 8] = 1;
    }
    if (b[SL_BK_PT_ROOT / 8] == 0)
        b[SL_BK_PT_ROOT / 8] = root;

    for (unsigned i = 0; i < 3; i++)
        if (k_cow_page_st(&st, (uint64_t)(uintptr_t)&k_cpu_pages + i * SL_PAGE_SIZE) < 0)
            boot_fail(SL_ABI_ENOMEM);

    k_st = st; /* k_cpu is writable from here on */
    k_st.input_gva = b[SL_BK_INPUT_GVA / 8];
    k_st.input_size = b[SL_BK_INPUT_SIZE / 8];
    k_st.output_gva = b[SL_BK_OUTPUT_GVA / 8];
    k_st.output_size = b[SL_BK_OUTPUT_SIZE / 8];
    k_st.heap_lo = peb(SL_PEB_HEAP_PTR);
    k_st.heap_hi = k_st.heap_lo + peb(SL_PEB_HEAP_SIZE);
    if (k_st.heap_hi < k_st.heap_lo)
        k_st.heap_hi = k_st.heap_lo;
    uint64_t ssize = page_round(peb(SL_PEB_STACK_SIZE)), stop = peb(SL_PEB_STACK_TOP) & SL_PAGE_MASK;
    if (ssize < 4 * SL_PAGE_SIZE || stop < ssize + SL_PAGE_SIZE)
        boot_fail(SL_ABI_EMALFORMED);
    k_st.ustack_hi = stop;
    k_st.ustack_lo = stop - ssize;
    k_st.mmap_lo = peb(SL_PEB_MMAP_LO) & SL_PAGE_MASK;
    k_st.mmap_hi = peb(SL_PEB_MMAP_HI) & SL_PAGE_MASK;
    if (k_st.mmap_hi < k_st.mmap_lo)
        k_st.mmap_hi = k_st.mmap_lo;
    k_st.kernel_lo = peb(SL_PEB_KERNEL_GVA);
    k_st.kernel_hi = k_st.kernel_lo + peb(SL_PEB_KERNEL_SIZE);

    load_cpu_tables();
    *k_bk_slot(SL_BK_EXC_DEPTH) = 0;
    k_vmstate.brk = k_st.heap_lo;
    k_vmstate.mmap_next = k_st.mmap_hi;
    start_user();
}
