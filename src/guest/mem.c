/* Scratch allocator, page-table access through the scratch linear map, the
 * page-fault handler (copy-on-write, stack demand mapping) and address spaces.
 *
 * Everything here may run inside the exception handler, so it touches only
 * scratch (bookkeeping page, tables, fresh pages), the read-only PEB and
 * rt_cpu (written at init only): after a restore the image pages are
 * copy-on-write again and a write to them here would fault recursively. */
#include "rt.h"

static inline volatile uint64_t *bk_st(const rt_state *st, unsigned off)
{
    return (volatile uint64_t *)(uintptr_t)(st->bk_gva + off);
}

static void *scratch_ptr_st(const rt_state *st, uint64_t gpa)
{
    /* boot checked scratch_size is a non-zero multiple of the page size */
    if ((gpa & (SL_PAGE_SIZE - 1)) || gpa < st->scratch_gpa || gpa - st->scratch_gpa > st->scratch_size - SL_PAGE_SIZE)
        return NULL;
    return (void *)(uintptr_t)(gpa - st->scratch_gpa + st->scratch_gva);
}

void *rt_scratch_ptr(uint64_t gpa) { return scratch_ptr_st(&rt_st, gpa); }

static void zero_page(void *p)
{
#if defined(__x86_64__)
    void *d = p;
    size_t n = SL_PAGE_SIZE / 8;
    __asm__ volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(0) : "memory");
#else
    void *d = p;
    size_t n = SL_PAGE_SIZE / 4;
    __asm__ volatile("rep stosl" : "+D"(d), "+c"(n) : "a"(0) : "memory");
#endif
}

static void copy_page(void *dst, const void *src)
{
    void *d = dst;
    const void *s = src;
#if defined(__x86_64__)
    size_t n = SL_PAGE_SIZE / 8;
    __asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(n)::"memory");
#else
    size_t n = SL_PAGE_SIZE / 4;
    __asm__ volatile("rep movsl" : "+D"(d), "+S"(s), "+c"(n)::"memory");
#endif
}

/* Bump allocator over [cursor, limit - reserve). The host resets the cursor
 * on every restore; the reserve (i686 call stack + guard) is ours. */
bool rt_scratch_take_st(const rt_state *st, uint64_t *gpa)
{
    volatile uint64_t *cur = bk_st(st, SL_BK_ALLOC_CURSOR);
    uint64_t c = *cur, limit = *bk_st(st, SL_BK_ALLOC_LIMIT);
    if (limit < st->stack_reserve)
        return false;
    limit -= st->stack_reserve;
    if ((c & (SL_PAGE_SIZE - 1)) || c >= limit || limit - c < SL_PAGE_SIZE)
        return false;
    void *p = scratch_ptr_st(st, c);
    if (!p)
        return false;
    zero_page(p);
    *cur = c + SL_PAGE_SIZE;
    *bk_st(st, SL_BK_DIRTY_HINT) += 1;
    *gpa = c;
    return true;
}

bool rt_scratch_take(uint64_t *gpa) { return rt_scratch_take_st(&rt_st, gpa); }

static void *pt_page(void *ctx, uint64_t gpa) { return scratch_ptr_st((const rt_state *)ctx, gpa); }
static bool pt_alloc(void *ctx, uint64_t *gpa) { return rt_scratch_take_st((const rt_state *)ctx, gpa); }

static void pt_mem_st(const rt_state *st, sl_pt_mem *m)
{
    m->ctx = (void *)(uintptr_t)st;
    m->page = pt_page;
    m->alloc = pt_alloc;
}

void rt_pt_mem(sl_pt_mem *m) { pt_mem_st(&rt_st, m); }

/* Pointer to a page-table entry (any alignment inside its page) or NULL. */
static void *entry_ptr(const rt_state *st, uint64_t pte_gpa)
{
    uint8_t *page = scratch_ptr_st(st, pte_gpa & SL_PAGE_MASK);
    return page ? page + (pte_gpa & (SL_PAGE_SIZE - 1)) : NULL;
}

static uint64_t pte_read(uint64_t pte_gpa, const rt_state *st)
{
    void *p = entry_ptr(st, pte_gpa);
    if (!p)
        return 0;
#if defined(__x86_64__)
    return *(volatile uint64_t *)p;
#else
    return *(volatile uint32_t *)p;
#endif
}

static void pte_write(uint64_t pte_gpa, uint64_t v, const rt_state *st)
{
    void *p = entry_ptr(st, pte_gpa);
    if (!p)
        return;
#if defined(__x86_64__)
    *(volatile uint64_t *)p = v;
#else
    *(volatile uint32_t *)p = (uint32_t)v;
#endif
}

/* Copies the CoW page holding `va` into a fresh scratch page and maps it
 * read-write in place (the leaf may be shared by several spaces, which then
 * all see the copy: that is what sharing a table means). */
int rt_cow_page_st(const rt_state *st, uint64_t va)
{
    sl_pt_mem m;
    sl_mapping map;
    uint64_t pte_gpa, new_gpa;
    va &= SL_PAGE_MASK;
    pt_mem_st(st, &m);
    if (!sl_pt_lookup(RT_ARCH, &m, rt_root(), va, &map, &pte_gpa))
        return -1;
    if (map.perm.kind == SL_MAP_BASIC && map.perm.writable)
        return 0;
    if (map.perm.kind != SL_MAP_COW)
        return -1;
    uint64_t pte = pte_read(pte_gpa, st);
    if (!(pte & SL_PTE_P) || !(pte & SL_PTE_COW))
        return -1; /* the effective kind came from an upper level: not ours to fix */
    if (!rt_scratch_take_st(st, &new_gpa))
        return -2;
    copy_page(scratch_ptr_st(st, new_gpa), (const void *)(uintptr_t)va);
    pte = (pte & ~(RT_PTE_ADDR | SL_PTE_COW)) | new_gpa | SL_PTE_RW;
    pte_write(pte_gpa, pte, st);
    rt_invlpg((uintptr_t)va);
    return 1;
}

RT_NORETURN void rt_out_of_scratch(void)
{
    static const char msg[] = "out of scratch memory";
    rt_abort(SL_ABI_ENOMEM, msg, sizeof msg - 1);
}

/* A fault the TLB caused after another space (sharing the leaf table)
 * already fixed the entry: retry when the leaf now allows the access. */
static bool spurious(uint64_t va, uint32_t err)
{
    sl_pt_mem m;
    sl_mapping map;
    rt_pt_mem(&m);
    if (!sl_pt_lookup(RT_ARCH, &m, rt_root(), va, &map, NULL))
        return false;
    if ((err & PF_W) && !map.perm.writable)
        return false;
    if ((err & PF_I) && !map.perm.executable)
        return false;
    rt_invlpg((uintptr_t)va);
    return true;
}

static bool handle_pf(uint64_t addr, uint32_t err)
{
    uint64_t va = addr & SL_PAGE_MASK;
    if ((err & PF_P) && (err & PF_W) && !(err & PF_I)) {
        int rc = rt_cow_page_st(&rt_st, va);
        if (rc == -2)
            rt_out_of_scratch();
        if (rc == 1)
            return true;
        return rc == 0 && spurious(va, err);
    }
    if (!(err & PF_P) && va >= rt_st.stack_lo && va < rt_st.stack_hi) {
        sl_pt_mem m;
        sl_mapping map;
        rt_pt_mem(&m);
        if (sl_pt_lookup(RT_ARCH, &m, rt_root(), va, &map, NULL))
            return spurious(va, err);
        uint64_t gpa;
        if (!rt_scratch_take(&gpa))
            rt_out_of_scratch();
        sl_perm perm = {.kind = SL_MAP_BASIC, .readable = true, .writable = true, .executable = false,
                        .user = false};
        int rc = sl_pt_map(RT_ARCH, &m, rt_root(), va, gpa, SL_PAGE_SIZE, perm);
        if (rc == SL_PT_ENOMEM)
            rt_out_of_scratch();
        if (rc != SL_PT_OK)
            return false;
        rt_invlpg((uintptr_t)va);
        return true;
    }
    return false;
}

void rt_exception(rt_frame *f)
{
    volatile uintptr_t *depth = rt_exc_depth();
    uint64_t addr = f->vector == 14 ? (uint64_t)rt_read_cr2() : 0;
    if (++*depth > 1) {
        /* The handler itself faulted: report with as little as possible. */
        if (*depth == 2)
            rt_report_fault(f->vector, f->error, addr, f->ip);
        rt_halt();
    }
    if (f->vector == 14 && handle_pf(addr, (uint32_t)f->error)) {
        --*depth;
        return;
    }
    rt_report_fault(f->vector, f->error, addr, f->ip);
    rt_halt();
}

/* i686 keeps its call stack in scratch (see docs/guest-runtime.md); the page
 * below it is unmapped so that an overflow faults instead of overwriting
 * page tables. The host maps the whole scratch window again on a restore, so
 * this runs at init and at every call entry (one lookup when already done). */
void rt_i686_guard(void)
{
    if (!rt_st.guard_gva)
        return;
    sl_pt_mem m;
    rt_pt_mem(&m);
    uint64_t n = rt_bk(SL_BK_NROOTS);
    if (n == 0 || n > SL_BK_MAX_ROOTS)
        n = 0;
    for (uint64_t i = 0; i <= n; i++) {
        uint64_t root = i < n ? rt_bk(SL_BK_ROOTS + 8 * (unsigned)i) : rt_root();
        uint64_t pte_gpa;
        if (!sl_pt_lookup(RT_ARCH, &m, root, rt_st.guard_gva, NULL, &pte_gpa))
            continue;
        pte_write(pte_gpa, 0, &rt_st);
    }
    rt_invlpg((uintptr_t)rt_st.guard_gva);
}

/* ---- address spaces ---- */

unsigned sl_space_count(void)
{
    uint64_t n = rt_bk(SL_BK_NROOTS);
    return n > SL_BK_MAX_ROOTS ? 0 : (unsigned)n;
}

static uint64_t space_root(unsigned i) { return rt_bk(SL_BK_ROOTS + 8 * i); }

unsigned sl_space_current(void)
{
    uint64_t cur = rt_root();
    unsigned n = sl_space_count();
    for (unsigned i = 0; i < n; i++)
        if ((space_root(i) & RT_PTE_ADDR) == cur)
            return i;
    return 0;
}

static unsigned root_entries(void) { return RT_ARCH == SL_ARCH_I686 ? 1024u : 512u; }

static uint64_t root_entry(uint64_t root, unsigned idx)
{
    void *p = rt_scratch_ptr(root);
    if (!p)
        return 0;
#if defined(__x86_64__)
    return ((volatile uint64_t *)p)[idx];
#else
    return ((volatile uint32_t *)p)[idx];
#endif
}

int sl_space_create(void)
{
    unsigned n = sl_space_count();
    if (n >= SL_BK_MAX_ROOTS)
        return -1;
    uint64_t cur = rt_root(), gpa;
    void *src = rt_scratch_ptr(cur);
    if (!src || !rt_scratch_take(&gpa))
        return -1;
    copy_page(rt_scratch_ptr(gpa), src);
    *rt_bk_slot(SL_BK_ROOTS + 8 * n) = gpa;
    *rt_bk_slot(SL_BK_NROOTS) = n + 1;
    return (int)n;
}

int sl_space_switch(unsigned index)
{
    if (index >= sl_space_count())
        return -1;
    uint64_t root = space_root(index);
    if ((root & ~RT_PTE_ADDR) || !rt_scratch_ptr(root))
        return -1;
    *rt_bk_slot(SL_BK_PT_ROOT) = root;
    rt_write_cr3((uintptr_t)root);
    return 0;
}

static unsigned root_index(uint64_t gva)
{
#if defined(__x86_64__)
    return (unsigned)((gva >> 39) & 511);
#else
    return (unsigned)((gva >> 22) & 1023);
#endif
}

int sl_space_map_private(unsigned index, uint64_t gva)
{
    unsigned n = sl_space_count();
    if (index >= n || (gva & (SL_PAGE_SIZE - 1)))
        return -1;
    uint64_t root = space_root(index);
    unsigned slot = root_index(gva);
    if (slot >= root_entries())
        return -1;
    uint64_t e = root_entry(root, slot);
    if (e & SL_PTE_P) {
        for (unsigned i = 0; i < n; i++)
            if (i != index && root_entry(space_root(i), slot) == e)
                return -1;
    }
    sl_pt_mem m;
    rt_pt_mem(&m);
    if (sl_pt_lookup(RT_ARCH, &m, root, gva, NULL, NULL))
        return -1;
    uint64_t gpa;
    if (!rt_scratch_take(&gpa))
        return -1;
    sl_perm perm = {.kind = SL_MAP_BASIC, .readable = true, .writable = true, .executable = false,
                    .user = false};
    if (sl_pt_map(RT_ARCH, &m, root, gva, gpa, SL_PAGE_SIZE, perm) != SL_PT_OK)
        return -1;
    if (root == rt_root())
        rt_invlpg((uintptr_t)gva);
    return 0;
}
