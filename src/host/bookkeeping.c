/* Typed access to the bookkeeping page and the PEB (bookkeeping.h). The slot
 * offsets are the contract with the guest kernel (sl_layout.h); slots are
 * little-endian u64 on both architectures. */
#include "bookkeeping.h"

#include "le.h"

static void add(sl_mem *m, unsigned slot, uint64_t n) { sl_mem_bk_set(m, slot, sl_mem_bk_get(m, slot) + n); }

void sl_bk_write_restore(sl_mem *m, const sl_snapshot *s)
{
    const sl_layout *l = &m->layout;
    uint64_t bk_gva = sl_layout_scratch_gva_of(l, l->bk_gpa);
    const struct {
        unsigned slot;
        uint64_t value;
    } slots[] = {
        {SL_BK_MAGIC, SL_BK_MAGIC_VALUE},
        {SL_BK_SCRATCH_SIZE, l->scratch_size},
        {SL_BK_ALLOC_CURSOR, l->pt_gpa + sl_snapshot_page_table_size(s)},
        {SL_BK_ALLOC_LIMIT, l->exc_stack_gpa},
        {SL_BK_PT_GPA, l->pt_gpa},
        {SL_BK_PT_ROOT, m->root},
        {SL_BK_GENERATION, sl_snapshot_generation(s)},
        {SL_BK_EXC_STACK_TOP, bk_gva},
        {SL_BK_KSTACK, bk_gva & ~15ull},
        {SL_BK_INPUT_GVA, l->scratch_gva},
        {SL_BK_INPUT_SIZE, l->input_size},
        {SL_BK_OUTPUT_GVA, l->scratch_gva + l->input_size},
        {SL_BK_OUTPUT_SIZE, l->output_size},
        {SL_BK_SCRATCH_GVA, l->scratch_gva},
        {SL_BK_SCRATCH_GPA, l->scratch_gpa},
        {SL_BK_PEB_GVA, l->peb_gpa},
        {SL_BK_DIRTY_HINT, 0},
        {SL_BK_DISPATCH, sl_snapshot_next_kind(s) == SL_NEXT_CALL ? sl_snapshot_next_addr(s) : 0},
        {SL_BK_STACK_TOP, sl_snapshot_stack_top(s)},
        {SL_BK_NROOTS, sl_snapshot_n_roots(s)},
    };
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
        sl_mem_bk_set(m, slots[i].slot, slots[i].value);
    for (unsigned i = 0; i < sl_snapshot_n_roots(s); i++)
        sl_mem_bk_set(m, SL_BK_ROOTS + 8 * i, sl_snapshot_root(s, i));
}


void sl_bk_set_rng_seed(sl_mem *m, const uint8_t seed[32])
{
    for (unsigned i = 0; i < 4; i++)
        sl_mem_bk_set(m, SL_BK_RNG_SEED + 8 * i, sl_get64(seed + 8 * i));
}

void sl_bk_set_host_pages(sl_mem *m, bool on) { sl_mem_bk_set(m, SL_BK_HOST_PAGES, on ? 1 : 0); }

uint64_t sl_bk_exc_stack_top(const sl_mem *m) { return sl_mem_bk_get(m, SL_BK_EXC_STACK_TOP); }
uint64_t sl_bk_dispatch(const sl_mem *m) { return sl_mem_bk_get(m, SL_BK_DISPATCH); }
uint64_t sl_bk_stack_top(const sl_mem *m) { return sl_mem_bk_get(m, SL_BK_STACK_TOP); }

unsigned sl_bk_roots(const sl_mem *m, uint64_t roots[SL_BK_MAX_ROOTS], uint64_t *cur)
{
    uint64_t n = sl_mem_bk_get(m, SL_BK_NROOTS);
    *cur = sl_mem_bk_get(m, SL_BK_PT_ROOT);
    if (n == 0 || n > SL_BK_MAX_ROOTS)
        return 0;
    for (unsigned i = 0; i < n; i++)
        roots[i] = sl_mem_bk_get(m, SL_BK_ROOTS + 8 * i) & SL_PAGE_MASK;
    return (unsigned)n;
}

void sl_bk_set_generation(sl_mem *m, uint64_t generation) { sl_mem_bk_set(m, SL_BK_GENERATION, generation); }

void sl_bk_get_events(const sl_mem *m, sl_bk_events *ev)
{
    ev->faults = sl_mem_bk_get(m, SL_BK_EV_FAULTS);
    ev->cow = sl_mem_bk_get(m, SL_BK_EV_COW);
    ev->demand = sl_mem_bk_get(m, SL_BK_EV_DEMAND);
    ev->syscalls = sl_mem_bk_get(m, SL_BK_EV_SYSCALLS);
}

void sl_bk_count_event(sl_mem *m, sl_bk_event ev) { add(m, (unsigned)ev, 1); }

uint64_t sl_bk_free_list(const sl_mem *m) { return sl_mem_bk_get(m, SL_BK_FREE_LIST); }

void sl_bk_free_list_pop(sl_mem *m, uint64_t next)
{
    sl_mem_bk_set(m, SL_BK_FREE_LIST, next);
    add(m, SL_BK_FREE_COUNT, (uint64_t)-1);
}

uint64_t sl_bk_alloc_cursor(const sl_mem *m) { return sl_mem_bk_get(m, SL_BK_ALLOC_CURSOR); }
uint64_t sl_bk_alloc_limit(const sl_mem *m) { return sl_mem_bk_get(m, SL_BK_ALLOC_LIMIT); }

void sl_bk_alloc_bump(sl_mem *m)
{
    add(m, SL_BK_ALLOC_CURSOR, SL_PAGE_SIZE);
    add(m, SL_BK_DIRTY_HINT, 1);
}

void sl_bk_set_clock(sl_mem *m, uint64_t sec, uint64_t nsec)
{
    sl_mem_bk_set(m, SL_BK_CLOCK_SEC, sec);
    sl_mem_bk_set(m, SL_BK_CLOCK_NSEC, nsec);
}

void sl_bk_page_op(const sl_mem *m, uint64_t *dst, uint64_t *src)
{
    *dst = sl_mem_bk_get(m, SL_BK_PAGE_DST);
    *src = sl_mem_bk_get(m, SL_BK_PAGE_SRC);
}

void sl_bk_get_fault(const sl_mem *m, sl_bk_fault *f)
{
    f->addr = sl_mem_bk_get(m, SL_BK_PF_ADDR);
    f->err = sl_mem_bk_get(m, SL_BK_PF_ERR);
    f->root = sl_mem_bk_get(m, SL_BK_PF_ROOT);
}

void sl_bk_fault_unserved(sl_mem *m) { sl_mem_bk_set(m, SL_BK_PF_SLOT, 0); }

void sl_bk_fault_served(sl_mem *m, uint64_t slot, uint64_t pte)
{
    sl_mem_bk_set(m, SL_BK_PF_PTE, pte);
    sl_mem_bk_set(m, SL_BK_PF_SLOT, slot);
}

void sl_peb_write(uint8_t *peb, const sl_layout *l, const sl_peb_user *u)
{
    sl_put64(peb + SL_PEB_MAGIC, SL_PEB_MAGIC_VALUE);
    sl_put64(peb + SL_PEB_VERSION, 2);
    sl_put64(peb + SL_PEB_INPUT_SIZE, l->input_size);
    sl_put64(peb + SL_PEB_INPUT_PTR, l->scratch_gva);
    sl_put64(peb + SL_PEB_OUTPUT_SIZE, l->output_size);
    sl_put64(peb + SL_PEB_OUTPUT_PTR, l->scratch_gva + l->input_size);
    sl_put64(peb + SL_PEB_INIT_DATA_SIZE, l->init_data_size);
    sl_put64(peb + SL_PEB_INIT_DATA_PTR, l->init_data_size ? l->init_data_gva : 0);
    sl_put64(peb + SL_PEB_HEAP_SIZE, l->heap_size);
    sl_put64(peb + SL_PEB_HEAP_PTR, l->heap_gva);
    sl_put64(peb + SL_PEB_STACK_SIZE, l->stack_size);
    sl_put64(peb + SL_PEB_STACK_TOP, l->stack_top);
    sl_put64(peb + SL_PEB_SCRATCH_SIZE, l->scratch_size);
    sl_put64(peb + SL_PEB_SCRATCH_GVA, l->scratch_gva);
    sl_put64(peb + SL_PEB_BOOKKEEPING_GVA, sl_layout_scratch_gva_of(l, l->bk_gpa));
    sl_put64(peb + SL_PEB_USER_ENTRY, u->entry);
    sl_put64(peb + SL_PEB_USER_PHDR, u->phdr);
    sl_put64(peb + SL_PEB_USER_PHNUM, u->phnum);
    sl_put64(peb + SL_PEB_USER_PHENT, u->phent);
    sl_put64(peb + SL_PEB_MMAP_LO, l->mmap_lo);
    sl_put64(peb + SL_PEB_MMAP_HI, l->mmap_hi);
    sl_put64(peb + SL_PEB_KERNEL_GVA, l->kernel_gpa);
    sl_put64(peb + SL_PEB_KERNEL_SIZE, l->kernel_size);
    sl_put64(peb + SL_PEB_CALLSTACK_TOP, sl_layout_scratch_gva_of(l, l->callstack_gpa + l->stack_size));
}
