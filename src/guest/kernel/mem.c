/* Scratch pages, page-table access through the scratch linear map, the
 * page-fault handler (copy-on-write, user stack growth) and the checks on
 * user pointers.
 *
 * Everything here may run inside the exception handler, so it writes only
 * scratch (bookkeeping page, tables, fresh pages): after a restore our image
 * pages are copy-on-write again and a write to them here would fault
 * recursively. */
#include "kernel.h"

static inline volatile uint64_t *bk_st(const k_state *st, unsigned off)
{
    return (volatile uint64_t *)(uintptr_t)(st->bk_gva + off);
}

static void *scratch_ptr_st(const k_state *st, uint64_t gpa)
{
    /* boot checked scratch_size is a non-zero multiple of the page size */
    if ((gpa & (SL_PAGE_SIZE - 1)) || gpa < st->scratch_gpa || gpa - st->scratch_gpa > st->scratch_size - SL_PAGE_SIZE)
        return NULL;
    return (void *)(uintptr_t)(gpa - st->scratch_gpa + st->scratch_gva);
}

void *k_scratch_ptr(uint64_t gpa) { return scratch_ptr_st(&k_st, gpa); }

static void zero_page(void *p)
{
    void *d = p;
#if defined(__x86_64__)
    size_t n = SL_PAGE_SIZE / 8;
    __asm__ volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(0) : "memory");
#else
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

/* A zeroed scratch page: from the free list (zeroed here, it held data) or
 * from the bump allocator over [cursor, limit). Pages above the cursor are
 * zero already: the host zeroes every scratch page the guest dirtied when it
 * restores, so the common path writes nothing. */
bool k_scratch_take_st(const k_state *st, uint64_t *gpa)
{
    volatile uint64_t *head = bk_st(st, SL_BK_FREE_LIST);
    uint64_t h = *head;
    if (h) {
        uint64_t *p = scratch_ptr_st(st, h);
        if (p) {
            *head = p[0];
            *bk_st(st, SL_BK_FREE_COUNT) -= 1;
            zero_page(p);
            *gpa = h;
            return true;
        }
        *head = 0; /* a corrupt list is dropped, never followed */
        *bk_st(st, SL_BK_FREE_COUNT) = 0;
    }
    volatile uint64_t *cur = bk_st(st, SL_BK_ALLOC_CURSOR);
    uint64_t c = *cur, limit = *bk_st(st, SL_BK_ALLOC_LIMIT);
    if ((c & (SL_PAGE_SIZE - 1)) || c >= limit || limit - c < SL_PAGE_SIZE || !scratch_ptr_st(st, c))
        return false;
    *cur = c + SL_PAGE_SIZE;
    *bk_st(st, SL_BK_DIRTY_HINT) += 1;
    *gpa = c;
    return true;
}

bool k_page_take(uint64_t *gpa) { return k_scratch_take_st(&k_st, gpa); }

void k_page_give(uint64_t gpa)
{
    uint64_t *p = k_scratch_ptr(gpa);
    if (!p)
        return; /* a snapshot page: nothing to give back */
    p[0] = k_bk(SL_BK_FREE_LIST);
    *k_bk_slot(SL_BK_FREE_LIST) = gpa;
    k_count(SL_BK_FREE_COUNT);
}

uint64_t k_pages_free(void)
{
    uint64_t c = k_bk(SL_BK_ALLOC_CURSOR), limit = k_bk(SL_BK_ALLOC_LIMIT);
    return (c < limit ? (limit - c) / SL_PAGE_SIZE : 0) + k_bk(SL_BK_FREE_COUNT);
}

static void *pt_page(void *ctx, uint64_t gpa) { return scratch_ptr_st((const k_state *)ctx, gpa); }
static bool pt_alloc(void *ctx, uint64_t *gpa) { return k_scratch_take_st((const k_state *)ctx, gpa); }

static void pt_mem_st(const k_state *st, sl_pt_mem *m)
{
    m->ctx = (void *)(uintptr_t)st;
    m->page = pt_page;
    m->alloc = pt_alloc;
}

void k_pt_mem(sl_pt_mem *m) { pt_mem_st(&k_st, m); }

static void *entry_ptr(const k_state *st, uint64_t pte_gpa)
{
    uint8_t *page = scratch_ptr_st(st, pte_gpa & SL_PAGE_MASK);
    return page ? page + (pte_gpa & (SL_PAGE_SIZE - 1)) : NULL;
}

static uint64_t pte_read(uint64_t pte_gpa, const k_state *st)
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

static void pte_write(uint64_t pte_gpa, uint64_t v, const k_state *st)
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
int k_cow_page_st(const k_state *st, uint64_t va)
{
    sl_pt_mem m;
    sl_mapping map;
    uint64_t pte_gpa, new_gpa;
    va &= SL_PAGE_MASK;
    pt_mem_st(st, &m);
    if (!sl_pt_lookup(K_ARCH, &m, k_root(), va, &map, &pte_gpa))
        return -1;
    if (map.perm.kind == SL_MAP_BASIC && map.perm.writable)
        return 0;
    if (map.perm.kind != SL_MAP_COW)
        return -1;
    uint64_t pte = pte_read(pte_gpa, st);
    if (!(pte & SL_PTE_P) || !(pte & SL_PTE_COW))
        return -1; /* the effective kind came from an upper level: not ours to fix */
    if (!k_scratch_take_st(st, &new_gpa))
        return -2;
    copy_page(scratch_ptr_st(st, new_gpa), (const void *)(uintptr_t)va);
    pte = (pte & ~(K_PTE_ADDR | SL_PTE_COW)) | new_gpa | SL_PTE_RW;
    pte_write(pte_gpa, pte, st);
    k_invlpg((uintptr_t)va);
    *bk_st(st, SL_BK_EV_COW) += 1;
    return 1;
}

K_NORETURN void k_out_of_memory(void) { k_abort(SL_ABI_ENOMEM, "out of scratch memory"); }

/* The 4 KiB leaf that maps va in the current space (map and pte_gpa may be
 * NULL); false when none does. */
static bool leaf(uint64_t va, sl_mapping *map, uint64_t *pte_gpa)
{
    sl_pt_mem m;
    k_pt_mem(&m);
    return sl_pt_lookup(K_ARCH, &m, k_root(), va, map, pte_gpa);
}

/* Maps va to the scratch or snapshot page gpa in the current space. */
static int map_leaf(uint64_t va, uint64_t gpa, sl_perm perm)
{
    sl_pt_mem m;
    k_pt_mem(&m);
    int rc = sl_pt_map(K_ARCH, &m, k_root(), va, gpa, SL_PAGE_SIZE, perm);
    k_invlpg((uintptr_t)va);
    return rc;
}

int k_map_zero(uint64_t va, bool writable, bool executable)
{
    uint64_t gpa;
    if (leaf(va, NULL, NULL))
        return -2; /* never replace a page in use (it would be lost) */
    if (!k_page_take(&gpa))
        return -1;
    sl_perm perm = {.kind = SL_MAP_BASIC, .readable = true, .writable = writable, .executable = executable,
                    .user = true};
    int rc = map_leaf(va, gpa, perm);
    if (rc != SL_PT_OK) {
        k_page_give(gpa);
        return rc == SL_PT_ENOMEM ? -1 : -2;
    }
    k_count(SL_BK_EV_DEMAND);
    return 0;
}

void k_unmap(uint64_t va)
{
    sl_mapping map;
    uint64_t pte_gpa;
    if (!leaf(va, &map, &pte_gpa))
        return;
    pte_write(pte_gpa, 0, &k_st);
    k_invlpg((uintptr_t)va);
    k_page_give(map.gpa & SL_PAGE_MASK);
}

/* A fault the TLB caused after another space (sharing the leaf table)
 * already fixed the entry: retry when the leaf now allows the access. */
static bool spurious(uint64_t va, uint32_t err)
{
    sl_mapping map;
    if (!leaf(va, &map, NULL))
        return false;
    if ((err & PF_W) && !map.perm.writable)
        return false;
    if ((err & PF_I) && !map.perm.executable)
        return false;
    if ((err & PF_U) && !map.perm.user)
        return false;
    k_invlpg((uintptr_t)va);
    return true;
}

static bool in_user_stack(uint64_t va) { return va >= k_st.ustack_lo && va < k_st.ustack_hi; }

/* Handles a page fault, from user code or from the kernel touching user
 * memory for a system call. True when the access can be retried. */
static bool handle_pf(uint64_t addr, uint32_t err)
{
    uint64_t va = addr & SL_PAGE_MASK;
    k_count(SL_BK_EV_FAULTS);
    if ((err & PF_P) && (err & PF_W) && !(err & PF_I)) {
        sl_mapping map;
        /* A user write may copy only a user page. */
        if ((err & PF_U) && (!leaf(va, &map, NULL) || !map.perm.user))
            return false;
        int rc = k_cow_page_st(&k_st, va);
        if (rc == -2)
            k_out_of_memory();
        if (rc == 1)
            return true;
        return rc == 0 && spurious(va, err);
    }
    if (!(err & PF_P) && in_user_stack(va)) {
        if (leaf(va, NULL, NULL))
            return spurious(va, err);
        int rc = k_map_zero(va, true, false);
        if (rc == -1)
            k_out_of_memory();
        return rc == 0;
    }
    return false;
}

void k_exception(k_frame *f)
{
    volatile uint64_t *depth = k_bk_slot(SL_BK_EXC_DEPTH);
    uint64_t addr = f->vector == 14 ? (uint64_t)k_read_cr2() : 0;
    bool from_user = (f->cs & 3) == 3;
    if (from_user)
        *depth = 0; /* a previous call may have died inside a handler */
    if (++*depth > 1) {
        /* The handler itself faulted: report with as little as possible. */
        if (*depth == 2)
            k_report_fault(f->vector, f->error, addr, f->ip);
        k_halt();
    }
    if (f->vector == 14 && handle_pf(addr, (uint32_t)f->error)) {
        --*depth;
        return;
    }
    k_report_fault(f->vector, f->error, addr, f->ip);
    k_halt();
}

/* User memory the program may touch: every page either mapped for the user
 * (writable or copy-on-write when `write`) or in the user stack's demand
 * range. */
bool k_user_ok(uint64_t p, uint64_t len, bool write)
{
    if (len == 0)
        return true;
    /* The U bit of every page decides (the user part of scratch sits in the
     * upper half on amd64); unmapped and non-canonical addresses fail the
     * lookup. */
    uint64_t end = p + len;
    if (end < p)
        return false;
#if defined(__i386__)
    if (end > 0x100000000ull)
        return false;
#endif
    for (uint64_t va = p & SL_PAGE_MASK; va < end; va += SL_PAGE_SIZE) {
        sl_mapping map;
        if (!leaf(va, &map, NULL)) {
            if (in_user_stack(va))
                continue;
            return false;
        }
        if (!map.perm.user || (write && !map.perm.writable && map.perm.kind != SL_MAP_COW))
            return false;
    }
    return true;
}

/* Moves the leaf at `from` to `to` (mremap): same page, same permissions. */
bool k_move_page(uint64_t from, uint64_t to)
{
    sl_mapping map;
    uint64_t pte_gpa;
    if (!leaf(from, &map, &pte_gpa))
        return true; /* nothing there: nothing to move */
    if (map_leaf(to, map.gpa & SL_PAGE_MASK, map.perm) != SL_PT_OK)
        return false;
    pte_write(pte_gpa, 0, &k_st);
    k_invlpg((uintptr_t)from);
    return true;
}

/* Changes the permissions of a present leaf; false when none is mapped. */
bool k_protect_page(uint64_t va, bool user, bool writable, bool executable)
{
    sl_mapping map;
    if (!leaf(va, &map, NULL))
        return false;
    sl_perm p = map.perm;
    p.user = user;
    p.executable = executable;
    /* A page that is not ours (in the snapshot) may only become
     * copy-on-write, never writable: the snapshot is read-only memory. */
    bool ours = k_scratch_ptr(map.gpa & SL_PAGE_MASK) != NULL;
    p.kind = writable && !ours ? SL_MAP_COW : SL_MAP_BASIC;
    p.writable = writable && ours;
    map_leaf(va, map.gpa & SL_PAGE_MASK, p);
    return true;
}

bool k_page_perm(uint64_t va, sl_perm *perm)
{
    sl_mapping map;
    if (!leaf(va, &map, NULL))
        return false;
    *perm = map.perm;
    return true;
}

bool k_is_mapped(uint64_t va) { return leaf(va, NULL, NULL); }
