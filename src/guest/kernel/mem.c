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

/* Whether the host copies and zeroes pages for us (SL_BK_HOST_PAGES: on PVM,
 * where each kernel instruction is emulated and a 4 KiB `rep movsq` costs
 * ~0.5 ms while an exit to the host costs ~10 us). */
static bool host_pages(const k_state *st) { return *bk_st(st, SL_BK_HOST_PAGES) == 1; }

static void host_page_op(const k_state *st, uint32_t op, uint64_t dst, uint64_t src)
{
    *bk_st(st, SL_BK_PAGE_DST) = dst;
    *bk_st(st, SL_BK_PAGE_SRC) = src;
    k_out(SL_PORT_PAGE, op);
}

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
    volatile uint64_t *bk = (volatile uint64_t *)(uintptr_t)st->bk_gva;
    const uint64_t lo = st->scratch_gpa, last = st->scratch_size - SL_PAGE_SIZE;
    uint64_t h = bk[SL_BK_FREE_LIST / 8];
    if (h) {
        /* a corrupt list is dropped, never followed */
        if ((h & (SL_PAGE_SIZE - 1)) || h - lo > last) {
            bk[SL_BK_FREE_LIST / 8] = 0;
            bk[SL_BK_FREE_COUNT / 8] = 0;
        } else {
            uint64_t *p = (uint64_t *)(uintptr_t)(h - lo + st->scratch_gva);
            bk[SL_BK_FREE_LIST / 8] = p[0];
            bk[SL_BK_FREE_COUNT / 8] -= 1;
            if (host_pages(st))
                host_page_op(st, SL_PAGE_OP_ZERO, h, 0);
            else
                zero_page(p);
            *gpa = h;
            return true;
        }
    }
    uint64_t c = bk[SL_BK_ALLOC_CURSOR / 8];
    if ((c & (SL_PAGE_SIZE - 1)) || c >= bk[SL_BK_ALLOC_LIMIT / 8] || c - lo > last)
        return false;
    bk[SL_BK_ALLOC_CURSOR / 8] = c + SL_PAGE_SIZE;
    bk[SL_BK_DIRTY_HINT / 8] += 1;
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

/* ---- the current space's 4 KiB leaves, walked directly ----
 * pt.c decodes every level through callbacks and handles every shape of
 * table; at CPL0 on PVM each instruction is emulated (~1 us), so the hot
 * paths (faults, mmap, pointer checks) walk here in a few instructions per
 * level and leave large pages and tables outside scratch to pt.c. */
#if defined(__x86_64__)
typedef uint64_t k_pte;
#define K_LEVELS 4u
#define K_INDEX_BITS 9u
#else
typedef uint32_t k_pte;
#define K_LEVELS 2u
#define K_INDEX_BITS 10u
#endif
#define K_ENTRIES (1u << K_INDEX_BITS)

enum { WALK_OK, WALK_ABSENT, WALK_ODD, WALK_NOMEM };

typedef struct k_walk {
    volatile k_pte *slot; /* the leaf entry, through the scratch linear map */
    uint64_t slot_gpa;
    uint64_t upper;       /* RW and US AND-ed over the levels above the leaf, NX OR-ed */
    uint64_t span;        /* WALK_ABSENT: bytes of VA the missing entry covers */
} k_walk;

/* WALK_OK with the leaf entry's slot (present or not); WALK_ABSENT when a
 * table on the way is missing and !create (create: made from scratch pages,
 * which come zeroed); WALK_ODD for a large page or a table outside scratch
 * (pt.c decides); WALK_NOMEM when scratch ran out. */
static inline __attribute__((always_inline)) int walk(const k_state *st, uint64_t va, bool create, k_walk *w)
{
    /* Locals, so that the bounds of scratch stay in registers across the
     * levels; a table outside scratch (unsigned wrap included) is odd. */
    const uint64_t lo = st->scratch_gpa, last = st->scratch_size - SL_PAGE_SIZE, base = st->scratch_gva;
    uint64_t table = k_root(), upper = SL_PTE_RW | SL_PTE_US, nx = 0;
#pragma GCC unroll 4
    for (unsigned level = 0; level + 1 < K_LEVELS; level++) {
        if (table - lo > last)
            return WALK_ODD;
        volatile k_pte *t = (volatile k_pte *)(uintptr_t)(table - lo + base);
        unsigned shift = 12 + K_INDEX_BITS * (K_LEVELS - 1 - level);
        volatile k_pte *e = t + ((va >> shift) & (K_ENTRIES - 1));
        uint64_t pte = *e;
        if (!(pte & SL_PTE_P)) {
            uint64_t fresh;
            if (!create) {
                w->span = 1ull << shift;
                return WALK_ABSENT;
            }
            if (!k_scratch_take_st(st, &fresh))
                return WALK_NOMEM;
            pte = fresh | SL_PTE_P | SL_PTE_RW | SL_PTE_US;
            *e = (k_pte)pte;
        } else if (pte & SL_PTE_PS) {
            return WALK_ODD;
        }
        upper &= pte;
#if defined(__x86_64__)
        nx |= pte & SL_PTE_NX;
#endif
        table = pte & K_PTE_ADDR;
    }
    if (table - lo > last)
        return WALK_ODD;
    unsigned idx = (unsigned)(va >> 12) & (K_ENTRIES - 1);
    w->slot = (volatile k_pte *)(uintptr_t)(table - lo + base) + idx;
    w->slot_gpa = table + idx * sizeof(k_pte);
    w->upper = upper | nx;
    return WALK_OK;
}

/* Effective permissions of a present leaf under w (as pt.c computes them). */
static sl_perm walk_perm(const k_walk *w, uint64_t pte)
{
    sl_perm p = sl_pt_decode_leaf(K_ARCH, pte);
    p.writable = p.writable && (w->upper & SL_PTE_RW);
    p.user = p.user && (w->upper & SL_PTE_US);
#if defined(__x86_64__)
    p.executable = p.executable && !(w->upper & SL_PTE_NX);
#endif
    return p;
}

/* The 4 KiB leaf that maps va in the current space (map and pte_gpa may be
 * NULL); false when none does. */
static bool leaf_st(const k_state *st, uint64_t va, sl_mapping *map, uint64_t *pte_gpa)
{
    k_walk w;
    int r = walk(st, va, false, &w);
    if (r == WALK_ODD) {
        sl_pt_mem m;
        pt_mem_st(st, &m);
        return sl_pt_lookup(K_ARCH, &m, k_root(), va & SL_PAGE_MASK, map, pte_gpa);
    }
    if (r != WALK_OK)
        return false;
    uint64_t pte = *w.slot;
    if (!(pte & SL_PTE_P))
        return false;
    if (map) {
        map->gva = va & SL_PAGE_MASK;
        map->gpa = pte & K_PTE_ADDR;
        map->size = SL_PAGE_SIZE;
        map->perm = walk_perm(&w, pte);
    }
    if (pte_gpa)
        *pte_gpa = w.slot_gpa;
    return true;
}

/* Copies the CoW page holding `va` into a fresh scratch page and maps it
 * read-write in place (the leaf may be shared by several spaces, which then
 * all see the copy: that is what sharing a table means). */
/* need_user: a user write, which may copy only a user page. */
static int cow(const k_state *st, uint64_t va, bool need_user)
{
    k_walk w;
    uint64_t new_gpa;
    va &= SL_PAGE_MASK;
    if (walk(st, va, false, &w) != WALK_OK)
        return -1; /* nothing there, or a large page: never copy-on-write here */
    uint64_t pte = *w.slot;
    if (!(pte & SL_PTE_P) || (need_user && !(pte & w.upper & SL_PTE_US)))
        return -1;
    if (pte & SL_PTE_RW)
        return (w.upper & SL_PTE_RW) ? 0 : -1;
    if (!(pte & SL_PTE_COW))
        return -1;
    if (!k_scratch_take_st(st, &new_gpa))
        return -2;
    if (host_pages(st))
        host_page_op(st, SL_PAGE_OP_COPY, new_gpa, pte & K_PTE_ADDR);
    else
        copy_page(scratch_ptr_st(st, new_gpa), (const void *)(uintptr_t)va);
    *w.slot = (k_pte)((pte & ~(K_PTE_ADDR | SL_PTE_COW)) | new_gpa | SL_PTE_RW);
    k_invlpg((uintptr_t)va);
    *bk_st(st, SL_BK_EV_COW) += 1;
    return 1;
}

int k_cow_page_st(const k_state *st, uint64_t va) { return cow(st, va, false); }

K_NORETURN void k_out_of_memory(void) { k_abort(SL_ABI_ENOMEM, "out of scratch memory"); }

/* The 4 KiB leaf that maps va in the current space (map and pte_gpa may be
 * NULL); false when none does. */
static bool leaf(uint64_t va, sl_mapping *map, uint64_t *pte_gpa) { return leaf_st(&k_st, va, map, pte_gpa); }

/* Maps va to the scratch or snapshot page gpa in the current space. */
static int map_leaf(uint64_t va, uint64_t gpa, sl_perm perm)
{
    k_walk w;
    int rc = SL_PT_OK, r = walk(&k_st, va, true, &w);
    if (r == WALK_OK) {
        *w.slot = (k_pte)sl_pt_encode_leaf(K_ARCH, gpa, perm);
    } else if (r == WALK_NOMEM) {
        return SL_PT_ENOMEM;
    } else {
        sl_pt_mem m;
        k_pt_mem(&m);
        rc = sl_pt_map(K_ARCH, &m, k_root(), va, gpa, SL_PAGE_SIZE, perm);
    }
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

int k_map_zero_range(uint64_t va, uint64_t n, bool writable, bool executable)
{
    sl_perm perm = {.kind = SL_MAP_BASIC, .readable = true, .writable = writable, .executable = executable,
                    .user = true};
    uint64_t bits = sl_pt_encode_leaf(K_ARCH, 0, perm);
    while (n) {
        k_walk w;
        int r = walk(&k_st, va, true, &w);
        if (r == WALK_NOMEM)
            return -1;
        if (r != WALK_OK) { /* a large page on the way: one page at a time */
            int rc = k_map_zero(va, writable, executable);
            if (rc)
                return rc;
            va += SL_PAGE_SIZE;
            n--;
            continue;
        }
        /* The rest of this leaf table in one go: no invlpg, since nothing
         * was mapped there and x86 caches no translation of an absent page. */
        volatile k_pte *slot = w.slot;
        for (unsigned idx = (unsigned)(va >> 12) & (K_ENTRIES - 1); idx < K_ENTRIES && n; idx++, n--) {
            uint64_t gpa;
            if (*slot & SL_PTE_P)
                return -2;
            if (!k_page_take(&gpa))
                return -1;
            *slot++ = (k_pte)(bits | gpa);
            *k_bk_slot(SL_BK_EV_DEMAND) += 1;
            va += SL_PAGE_SIZE;
        }
    }
    return 0;
}

void k_unmap_range(uint64_t va, uint64_t n)
{
    while (n) {
        k_walk w;
        int r = walk(&k_st, va, false, &w);
        if (r == WALK_ABSENT) { /* a whole missing table: nothing mapped there */
            uint64_t next = (va & ~(w.span - 1)) + w.span, skip = (next - va) / SL_PAGE_SIZE;
            if (skip >= n || next < va)
                return;
            n -= skip;
            va = next;
            continue;
        }
        if (r != WALK_OK) {
            k_unmap(va);
            va += SL_PAGE_SIZE;
            n--;
            continue;
        }
        volatile k_pte *slot = w.slot;
        for (unsigned idx = (unsigned)(va >> 12) & (K_ENTRIES - 1); idx < K_ENTRIES && n; idx++, n--) {
            uint64_t pte = *slot;
            if (pte & SL_PTE_P) {
                *slot = 0;
                k_invlpg((uintptr_t)va);
                k_page_give(pte & K_PTE_ADDR);
            }
            slot++;
            va += SL_PAGE_SIZE;
        }
    }
}

/* The highest mapped page in [lo, hi) (page-aligned), 0 when none: skips
 * whole missing tables. */
uint64_t k_highest_mapped(uint64_t lo, uint64_t hi)
{
    uint64_t va = hi;
    while (va > lo) {
        k_walk w;
        uint64_t page = va - SL_PAGE_SIZE;
        int r = walk(&k_st, page, false, &w);
        if (r == WALK_ABSENT) { /* nothing below this missing table's start */
            va = page & ~(w.span - 1);
            continue;
        }
        if (r != WALK_OK) { /* a large page or an odd table: one page at a time */
            if (k_is_mapped(page))
                return page;
            va = page;
            continue;
        }
        volatile k_pte *slot = w.slot;
        for (;;) {
            if (*slot & SL_PTE_P)
                return page;
            if (page <= lo || ((page >> 12) & (K_ENTRIES - 1)) == 0)
                break;
            page -= SL_PAGE_SIZE;
            slot--;
        }
        va = page;
    }
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
        int rc = cow(&k_st, va, err & PF_U);
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
    /* From user mode a previous call may have died inside a handler: the
     * count starts again. */
    uint64_t d = (f->cs & 3) == 3 ? 1 : *depth + 1;
    *depth = d;
    if (d > 1) {
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
