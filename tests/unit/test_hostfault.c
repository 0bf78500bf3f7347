/* Host-served user page faults (src/host/hostfault.c), on a simulated amd64
 * sandbox: a guest built with the shared page-table code, compacted into a
 * real snapshot and restored into an sl_mem, exactly as a sandbox's memory is
 * before its first call. The fault is described in the bookkeeping page as
 * the guest kernel's #PF entry writes it (SL_BK_PF_ADDR/ERR/ROOT); the test
 * then checks the answer (SL_BK_PF_SLOT/PTE) and every side effect, and that
 * a refusal changes nothing but the slot. Everything here runs without KVM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostfault.h"
#include "mem.h"
#include "pt.h"
#include "snapshot.h"
#include "t.h"
#include "../common/sim.h"

#define PF_P 0x1u
#define PF_W 0x2u
#define PF_U 0x4u
#define PF_I 0x10u

#define ADDR SL_PTE_ADDR_AMD64

#define VA_CODE 0x400000ull  /* user, read-only, executable */
#define VA_COW 0x600000ull   /* user, writable: copy-on-write after the snapshot */
#define VA_COW2 0x601000ull  /* a second one */
#define VA_HOLE 0x603000ull  /* unmapped, in the same leaf table */
#define VA_SUP 0x700000ull   /* supervisor, writable: a supervisor CoW page */
#define VA_LARGE 0x800000ull /* in the same page directory: becomes a 2 MiB page below */

#define SNAP_PAGES 8u
#define SCRATCH (1u << 20)

typedef struct fx {
    guest g;
    sl_snapshot *s;
    sl_mem *m;
    uint64_t stack_lo, stack_hi; /* [lo, hi): the demand-mapped user stack */
} fx;

static uint64_t fill_page(guest *g, uint64_t idx, uint32_t seed)
{
    uint8_t *p = g->snap + idx * SL_PAGE_SIZE;
    for (unsigned i = 0; i < SL_PAGE_SIZE; i++)
        p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
    return SL_BASE_ADDRESS + idx * SL_PAGE_SIZE;
}

static sl_perm perm(bool w, bool x, bool user)
{
    sl_perm p = {.kind = SL_MAP_BASIC, .readable = true, .writable = w, .executable = x, .user = user};
    return p;
}

static void gmap(guest *g, uint64_t gva, uint64_t gpa, sl_perm p)
{
    sl_pt_mem pm = g_mem(g);
    if (sl_pt_map(g->l.arch, &pm, g->roots[0], gva, gpa, SL_PAGE_SIZE, p)) {
        printf("  map of 0x%llx failed\n", (unsigned long long)gva);
        abort();
    }
}

/* The sandbox's memory right after a restore of a snapshot of this guest. */
static bool fx_init(fx *f)
{
    memset(f, 0, sizeof *f);
    if (!guest_setup(&f->g, SL_ARCH_AMD64, SNAP_PAGES, SCRATCH, 1))
        return false;
    guest *g = &f->g;
    gmap(g, VA_CODE, fill_page(g, 1, 1), perm(false, true, true));
    gmap(g, VA_COW, fill_page(g, 2, 2), perm(true, false, true));
    gmap(g, VA_COW2, fill_page(g, 3, 3), perm(true, false, true));
    gmap(g, VA_SUP, fill_page(g, 4, 4), perm(true, false, false));
    /* The top stack page is mapped (so its leaf table exists); the rest of
     * the stack is not, as after a guest touched only its top. */
    gmap(g, g->l.stack_top - SL_PAGE_SIZE, fill_page(g, 5, 5), perm(true, false, true));
    fill_page(g, 6, 6);
    sl_pt_mem pm = g_mem(g);
    if (sl_pt_map(g->l.arch, &pm, g->roots[0], g->l.scratch_gva, g->l.scratch_gpa, g->l.scratch_size,
                  perm(true, false, false)))
        return false;
    sl_guest_state st = {
        .layout = &g->l, .snap_mem = g->snap, .snap_size = g->snap_size, .scratch = g->scratch,
        .roots = g->roots, .n_roots = 1, .cur_root = 0, .stack_top = 0x1234000,
        .next_kind = SL_NEXT_CALL, .next_addr = 0x5000, .generation = 1, .family = 42,
    };
    sl_errbuf e;
    if (sl_snapshot_from_memory(&f->s, &st, &e)) {
        printf("  snapshot: %s\n", e.msg);
        return false;
    }
    if (sl_mem_create(&f->m, f->s, &e))
        return false;
    f->m->family = sl_snapshot_family(f->s);
    if (sl_mem_restore(f->m, f->s, &e))
        return false;
    f->stack_hi = f->m->layout.stack_top & SL_PAGE_MASK;
    f->stack_lo = f->stack_hi - ((f->m->layout.stack_size + SL_PAGE_SIZE - 1) & SL_PAGE_MASK);
    return true;
}

static void fx_free(fx *f)
{
    sl_mem_free(f->m);
    sl_snapshot_free(f->s);
    guest_free(&f->g);
}

/* Back to the state right after the restore (tables, bookkeeping, zeroes). */
static bool fx_reset(fx *f)
{
    sl_errbuf e;
    return sl_mem_restore(f->m, f->s, &e) == 0;
}

/* ---- reading and writing guest memory, independently of hostfault.c ---- */

static uint64_t rd64(const sl_mem *m, uint64_t gpa)
{
    const uint8_t *p = sl_mem_read_ptr(m, gpa, 8);
    return p ? sl_get64(p) : ~0ull;
}

static void wr64(sl_mem *m, uint64_t gpa, uint64_t v)
{
    uint8_t *p = sl_mem_write_ptr(m, gpa, 8);
    if (!p)
        abort();
    sl_put64(p, v);
}

/* GPA of the entry at `level` (0 = PML4 .. 3 = leaf PTE) on the path to va,
 * walked by hand; 0 when a table on the way is missing or a large page. */
static uint64_t entry_gpa(const sl_mem *m, uint64_t root, uint64_t va, unsigned level)
{
    uint64_t table = root & ADDR;
    for (unsigned l = 0;; l++) {
        uint64_t slot = table + ((va >> (39 - 9 * l)) & 511) * 8;
        if (l == level)
            return slot;
        uint64_t e = rd64(m, slot);
        if (!(e & SL_PTE_P) || (e & SL_PTE_PS))
            return 0;
        table = e & ADDR;
    }
}

static uint64_t pte_gpa_of(const sl_mem *m, uint64_t va) { return entry_gpa(m, m->root, va, 3); }

static uint64_t gva_of_scratch(const sl_mem *m, uint64_t gpa)
{
    return m->layout.scratch_gva + (gpa - m->layout.scratch_gpa);
}

static bool page_dirty(const sl_mem *m, uint64_t gpa)
{
    uint64_t p = (gpa - m->layout.scratch_gpa) / SL_PAGE_SIZE;
    return sl_pageset_has(&m->dirty_set, p);
}

static bool page_is_zero(const uint8_t *p)
{
    for (unsigned i = 0; i < SL_PAGE_SIZE; i++)
        if (p[i])
            return false;
    return true;
}

static uint64_t bk(const sl_mem *m, unsigned slot) { return sl_mem_bk_get(m, slot); }

/* Describes a fault as entry_amd64.S does and lets the host serve it; the
 * slot is preset to garbage so that "not served" must be written. */
static uint64_t serve(sl_mem *m, uint64_t addr, uint64_t err, uint64_t root)
{
    sl_mem_bk_set(m, SL_BK_PF_ADDR, addr);
    sl_mem_bk_set(m, SL_BK_PF_ERR, err);
    sl_mem_bk_set(m, SL_BK_PF_ROOT, root);
    sl_mem_bk_set(m, SL_BK_PF_SLOT, 0xdeadbeefdeadbeefull);
    sl_hostfault_serve(m);
    return bk(m, SL_BK_PF_SLOT);
}

/* Scratch pages (outside the bookkeeping page) that differ from `before`. */
static unsigned changed_pages(const sl_mem *m, const uint8_t *before, uint64_t *first)
{
    const sl_layout *l = &m->layout;
    unsigned n = 0;
    for (uint64_t off = 0; off < l->scratch_size; off += SL_PAGE_SIZE) {
        if (l->scratch_gpa + off == l->bk_gpa)
            continue;
        if (memcmp(m->scratch + off, before + off, SL_PAGE_SIZE)) {
            if (!n && first)
                *first = l->scratch_gpa + off;
            n++;
        }
    }
    return n;
}

static uint8_t *copy_scratch(const sl_mem *m)
{
    uint8_t *c = malloc(m->layout.scratch_size);
    if (!c)
        abort();
    memcpy(c, m->scratch, m->layout.scratch_size);
    return c;
}

/* A fault that must be refused: the slot reads 0 and nothing else in scratch
 * changed — no page taken, no counter moved, no table written — and no page
 * other than the bookkeeping page (and those in [tol_lo, tol_hi), see
 * test_refuse_allocator) was newly marked dirty. Returns false (and says why)
 * otherwise. */
static bool refused_tol(sl_mem *m, const char *what, uint64_t addr, uint64_t err, uint64_t root, uint64_t tol_lo,
                        uint64_t tol_hi)
{
    const sl_layout *l = &m->layout;
    sl_mem_bk_set(m, SL_BK_PF_ADDR, addr);
    sl_mem_bk_set(m, SL_BK_PF_ERR, err);
    sl_mem_bk_set(m, SL_BK_PF_ROOT, root);
    sl_mem_bk_set(m, SL_BK_PF_SLOT, 0xdeadbeefdeadbeefull);
    uint8_t *before = copy_scratch(m);
    uint64_t *dirty = malloc(m->dirty_set.n_words * 8);
    if (!dirty)
        abort();
    memcpy(dirty, m->dirty_set.words, m->dirty_set.n_words * 8);
    sl_hostfault_serve(m);
    bool ok = true;
    uint64_t slot = bk(m, SL_BK_PF_SLOT), page = 0;
    if (slot != 0) {
        printf("  %s: served (slot 0x%llx, pte 0x%llx), expected a refusal\n", what, (unsigned long long)slot,
               (unsigned long long)bk(m, SL_BK_PF_PTE));
        ok = false;
    }
    if (changed_pages(m, before, &page)) {
        printf("  %s: scratch page 0x%llx changed\n", what, (unsigned long long)page);
        ok = false;
    }
    /* The bookkeeping page: only the slot may differ. */
    uint64_t bo = l->bk_gpa - l->scratch_gpa;
    for (unsigned off = 0; off < SL_PAGE_SIZE; off += 8) {
        if (off == SL_BK_PF_SLOT)
            continue;
        if (memcmp(m->scratch + bo + off, before + bo + off, 8)) {
            printf("  %s: bookkeeping slot 0x%x changed\n", what, off);
            ok = false;
        }
    }
    for (uint64_t w = 0; w < m->dirty_set.n_words; w++) {
        uint64_t added = m->dirty_set.words[w] & ~dirty[w];
        uint64_t bkbit = (l->bk_gpa - l->scratch_gpa) / SL_PAGE_SIZE;
        if (w == bkbit / 64)
            added &= ~(1ull << (bkbit % 64));
        for (uint64_t g = tol_lo & SL_PAGE_MASK; g < tol_hi; g += SL_PAGE_SIZE) {
            uint64_t p = (g - l->scratch_gpa) / SL_PAGE_SIZE;
            if (g >= l->scratch_gpa && g - l->scratch_gpa < l->scratch_size && p / 64 == w)
                added &= ~(1ull << (p % 64));
        }
        if (added) {
            printf("  %s: pages newly marked dirty (word %llu: 0x%llx)\n", what, (unsigned long long)w,
                   (unsigned long long)added);
            ok = false;
        }
    }
    free(before);
    free(dirty);
    return ok;
}

static bool refused(sl_mem *m, const char *what, uint64_t addr, uint64_t err, uint64_t root)
{
    return refused_tol(m, what, addr, err, root, 0, 0);
}

#define REFUSED(m, what, addr, err, root) CHECK(refused((m), (what), (addr), (err), (root)))

/* ---------------- tests ---------------- */

/* A user write to a CoW page, page from the bump allocator. */
static void test_cow_from_cursor(void)
{
    fx f;
    REQUIRE(fx_init(&f));
    sl_mem *m = f.m;
    const sl_layout *l = &m->layout;
    uint64_t pte_gpa = pte_gpa_of(m, VA_COW);
    REQUIRE(pte_gpa != 0);
    uint64_t old = rd64(m, pte_gpa);
    /* The precondition, as the snapshot made it: a present, user, read-only
     * CoW leaf on a snapshot page. */
    REQUIRE((old & SL_PTE_P) && (old & SL_PTE_US) && !(old & SL_PTE_RW) && (old & SL_PTE_COW));
    uint64_t old_gpa = old & ADDR;
    const uint8_t *old_page = sl_mem_read_ptr(m, old_gpa, SL_PAGE_SIZE);
    REQUIRE(old_page != NULL);
    CHECK(memcmp(old_page, f.g.snap + 2 * SL_PAGE_SIZE, SL_PAGE_SIZE) == 0);

    uint64_t cur = bk(m, SL_BK_ALLOC_CURSOR), hint = bk(m, SL_BK_DIRTY_HINT);
    uint64_t cow = bk(m, SL_BK_EV_COW), faults = bk(m, SL_BK_EV_FAULTS), demand = bk(m, SL_BK_EV_DEMAND);
    REQUIRE(cur >= l->pt_gpa && cur < bk(m, SL_BK_ALLOC_LIMIT));
    REQUIRE(!page_dirty(m, cur));
    uint64_t dirty_before = sl_mem_dirty_pages(m);
    uint8_t *before = copy_scratch(m);

    uint64_t slot = serve(m, VA_COW + 0x123, PF_P | PF_W | PF_U, m->root);
    CHECK_EQ(slot, gva_of_scratch(m, pte_gpa));
    CHECK_EQ(slot & 7, 0);
    uint64_t pte = bk(m, SL_BK_PF_PTE);
    CHECK_EQ(pte & ADDR, cur);
    CHECK(pte & SL_PTE_RW);
    CHECK(!(pte & SL_PTE_COW));
    /* Every other bit (P, US, NX, ...) is the old entry's. */
    CHECK_EQ(pte & ~(ADDR | SL_PTE_RW | SL_PTE_COW), old & ~(ADDR | SL_PTE_RW | SL_PTE_COW));
    CHECK(pte & SL_PTE_NX);
    const uint8_t *fresh = sl_mem_read_ptr(m, cur, SL_PAGE_SIZE);
    CHECK(memcmp(fresh, old_page, SL_PAGE_SIZE) == 0);
    /* The allocator and the counters. */
    CHECK_EQ(bk(m, SL_BK_ALLOC_CURSOR), cur + SL_PAGE_SIZE);
    CHECK_EQ(bk(m, SL_BK_DIRTY_HINT), hint + 1);
    CHECK_EQ(bk(m, SL_BK_EV_COW), cow + 1);
    CHECK_EQ(bk(m, SL_BK_EV_FAULTS), faults + 1);
    CHECK_EQ(bk(m, SL_BK_EV_DEMAND), demand);
    /* The new page is dirty (a restore zeroes it), and only it was added. */
    CHECK(page_dirty(m, cur));
    CHECK_EQ(sl_mem_dirty_pages(m), dirty_before + 1);
    /* The host writes no table: the kernel writes the entry itself. */
    CHECK_EQ(rd64(m, pte_gpa), old);
    uint64_t changed = 0;
    CHECK_EQ(changed_pages(m, before, &changed), 1);
    CHECK_EQ(changed, cur);
    free(before);

    /* The kernel writes the entry; the page is now plainly writable, so a
     * second write fault there (a stale TLB entry) is the kernel's. */
    wr64(m, slot - l->scratch_gva + l->scratch_gpa, pte);
    REFUSED(m, "write to the copied page", VA_COW + 8, PF_P | PF_W | PF_U, m->root);

    /* A second CoW page takes the next page. */
    uint64_t pte2_gpa = pte_gpa_of(m, VA_COW2);
    slot = serve(m, VA_COW2, PF_P | PF_W | PF_U, m->root);
    CHECK_EQ(slot, gva_of_scratch(m, pte2_gpa));
    CHECK_EQ(bk(m, SL_BK_PF_PTE) & ADDR, cur + SL_PAGE_SIZE);
    CHECK(memcmp(sl_mem_read_ptr(m, cur + SL_PAGE_SIZE, SL_PAGE_SIZE), f.g.snap + 3 * SL_PAGE_SIZE,
                 SL_PAGE_SIZE) == 0);
    CHECK_EQ(bk(m, SL_BK_ALLOC_CURSOR), cur + 2 * SL_PAGE_SIZE);
    CHECK_EQ(bk(m, SL_BK_EV_COW), cow + 2);
    CHECK_EQ(bk(m, SL_BK_EV_FAULTS), faults + 2);

    /* A restore undoes all of it. */
    REQUIRE(fx_reset(&f));
    CHECK_EQ(bk(m, SL_BK_ALLOC_CURSOR), cur);
    CHECK(page_is_zero(sl_mem_read_ptr(m, cur, SL_PAGE_SIZE)));
    CHECK(page_is_zero(sl_mem_read_ptr(m, cur + SL_PAGE_SIZE, SL_PAGE_SIZE)));
    fx_free(&f);
}

/* The CoW source may be a scratch page (a page copied earlier and made CoW
 * again by a fork-like sharing): it is read from scratch. The low 12 bits of
 * the root are CR3 flags and are ignored, as the CPU does. */
static void test_cow_scratch_source(void)
{
    fx f;
    REQUIRE(fx_init(&f));
    sl_mem *m = f.m;
    uint64_t pte_gpa = pte_gpa_of(m, VA_COW);
    uint64_t cur = bk(m, SL_BK_ALLOC_CURSOR);
    uint64_t src = cur + 5 * SL_PAGE_SIZE; /* an allocated page, as if taken earlier */
    sl_mem_bk_set(m, SL_BK_ALLOC_CURSOR, src + SL_PAGE_SIZE);
    uint8_t *p = sl_mem_write_ptr(m, src, SL_PAGE_SIZE);
    for (unsigned i = 0; i < SL_PAGE_SIZE; i++)
        p[i] = (uint8_t)(i * 13 + 1);
    uint64_t old = rd64(m, pte_gpa);
    wr64(m, pte_gpa, (old & ~ADDR) | src);
    uint64_t slot = serve(m, VA_COW, PF_P | PF_W | PF_U, m->root | 0x18); /* PWT | PCD */
    CHECK_EQ(slot, gva_of_scratch(m, pte_gpa));
    uint64_t fresh = bk(m, SL_BK_PF_PTE) & ADDR;
    CHECK_EQ(fresh, src + SL_PAGE_SIZE);
    CHECK(memcmp(sl_mem_read_ptr(m, fresh, SL_PAGE_SIZE), p, SL_PAGE_SIZE) == 0);
    fx_free(&f);
}

/* Pages come from the free list first: zeroed, then copied into. */
static void test_cow_from_free_list(void)
{
    fx f;
    REQUIRE(fx_init(&f));
    sl_mem *m = f.m;
    uint64_t cur = bk(m, SL_BK_ALLOC_CURSOR);
    /* Four pages were taken; two of them were given back: a -> b -> end. */
    uint64_t a = cur + SL_PAGE_SIZE, b = cur + 2 * SL_PAGE_SIZE;
    sl_mem_bk_set(m, SL_BK_ALLOC_CURSOR, cur + 4 * SL_PAGE_SIZE);
    uint64_t pages[2] = {a, b};
    for (unsigned k = 0; k < 2; k++) {
        uint8_t *p = sl_mem_write_ptr(m, pages[k], SL_PAGE_SIZE);
        memset(p, 0xA5 + k, SL_PAGE_SIZE);
        sl_put64(p, k == 0 ? b : 0);
    }
    sl_mem_bk_set(m, SL_BK_FREE_LIST, a);
    sl_mem_bk_set(m, SL_BK_FREE_COUNT, 2);
    /* Restore-like state of the dirty record: only the bookkeeping page. */
    memset(m->dirty_set.words, 0, m->dirty_set.n_words * 8);
    uint64_t hint = bk(m, SL_BK_DIRTY_HINT), cow = bk(m, SL_BK_EV_COW), faults = bk(m, SL_BK_EV_FAULTS);

    uint64_t slot = serve(m, VA_COW, PF_P | PF_W | PF_U, m->root);
    CHECK_EQ(slot, gva_of_scratch(m, pte_gpa_of(m, VA_COW)));
    CHECK_EQ(bk(m, SL_BK_PF_PTE) & ADDR, a);
    CHECK(bk(m, SL_BK_PF_PTE) & SL_PTE_RW);
    CHECK(!(bk(m, SL_BK_PF_PTE) & SL_PTE_COW));
    CHECK(memcmp(sl_mem_read_ptr(m, a, SL_PAGE_SIZE), f.g.snap + 2 * SL_PAGE_SIZE, SL_PAGE_SIZE) == 0);
    CHECK_EQ(bk(m, SL_BK_FREE_LIST), b);
    CHECK_EQ(bk(m, SL_BK_FREE_COUNT), 1);
    CHECK_EQ(bk(m, SL_BK_ALLOC_CURSOR), cur + 4 * SL_PAGE_SIZE); /* untouched */
    CHECK_EQ(bk(m, SL_BK_DIRTY_HINT), hint);                     /* as k_scratch_take_st */
    CHECK_EQ(bk(m, SL_BK_EV_COW), cow + 1);
    CHECK_EQ(bk(m, SL_BK_EV_FAULTS), faults + 1);
    CHECK(page_dirty(m, a));

    /* The second page, on a not-present stack fault: it comes back zeroed
     * (it was full of 0xA6), and the list is then empty. */
    uint64_t va = f.stack_hi - 2 * SL_PAGE_SIZE;
    slot = serve(m, va + 0x40, PF_W | PF_U, m->root);
    CHECK_EQ(slot, gva_of_scratch(m, pte_gpa_of(m, va)));
    CHECK_EQ(bk(m, SL_BK_PF_PTE) & ADDR, b);
    CHECK(page_is_zero(sl_mem_read_ptr(m, b, SL_PAGE_SIZE)));
    CHECK(page_dirty(m, b));
    CHECK_EQ(bk(m, SL_BK_FREE_LIST), 0);
    CHECK_EQ(bk(m, SL_BK_FREE_COUNT), 0);
    CHECK_EQ(bk(m, SL_BK_ALLOC_CURSOR), cur + 4 * SL_PAGE_SIZE);

    /* The list is empty: the next page comes from the cursor again. */
    slot = serve(m, VA_COW2, PF_P | PF_W | PF_U, m->root);
    CHECK(slot != 0);
    CHECK_EQ(bk(m, SL_BK_PF_PTE) & ADDR, cur + 4 * SL_PAGE_SIZE);
    CHECK_EQ(bk(m, SL_BK_ALLOC_CURSOR), cur + 5 * SL_PAGE_SIZE);
    fx_free(&f);
}

/* A first touch of the user stack: a zero page, user, writable, NX. */
static void test_stack_fault(void)
{
    fx f;
    REQUIRE(fx_init(&f));
    sl_mem *m = f.m;
    uint64_t cur = bk(m, SL_BK_ALLOC_CURSOR), hint = bk(m, SL_BK_DIRTY_HINT);
    uint64_t cow = bk(m, SL_BK_EV_COW), faults = bk(m, SL_BK_EV_FAULTS), demand = bk(m, SL_BK_EV_DEMAND);
    uint64_t va = f.stack_hi - 2 * SL_PAGE_SIZE;
    uint64_t pte_gpa = pte_gpa_of(m, va);
    REQUIRE(pte_gpa != 0);
    REQUIRE(rd64(m, pte_gpa) == 0);
    /* A cursor page is zero by the allocator's contract (a restore zeroes
     * what the guest dirtied): the host writes nothing into it. */
    uint8_t *before = copy_scratch(m);
    uint64_t slot = serve(m, va + 0xff8, PF_W | PF_U, m->root);
    CHECK_EQ(slot, gva_of_scratch(m, pte_gpa));
    uint64_t pte = bk(m, SL_BK_PF_PTE);
    CHECK_EQ(pte, cur | SL_PTE_P | SL_PTE_RW | SL_PTE_US | SL_PTE_NX);
    CHECK(page_is_zero(sl_mem_read_ptr(m, cur, SL_PAGE_SIZE)));
    CHECK(page_dirty(m, cur));
    CHECK_EQ(bk(m, SL_BK_ALLOC_CURSOR), cur + SL_PAGE_SIZE);
    CHECK_EQ(bk(m, SL_BK_DIRTY_HINT), hint + 1);
    CHECK_EQ(bk(m, SL_BK_EV_DEMAND), demand + 1);
    CHECK_EQ(bk(m, SL_BK_EV_FAULTS), faults + 1);
    CHECK_EQ(bk(m, SL_BK_EV_COW), cow);
    CHECK_EQ(rd64(m, pte_gpa), 0); /* the kernel writes it */
    CHECK_EQ(changed_pages(m, before, NULL), 0); /* the page was zero and stays zero */
    free(before);

    /* A read fault is served the same way; so is the lowest stack page. */
    slot = serve(m, f.stack_lo, PF_U, m->root);
    CHECK_EQ(slot, gva_of_scratch(m, pte_gpa_of(m, f.stack_lo)));
    CHECK_EQ(bk(m, SL_BK_PF_PTE), (cur + SL_PAGE_SIZE) | SL_PTE_P | SL_PTE_RW | SL_PTE_US | SL_PTE_NX);

    /* Just outside the stack, below and above: refused. */
    REFUSED(m, "below the stack", f.stack_lo - 1, PF_W | PF_U, m->root);
    REFUSED(m, "at the stack top", f.stack_hi, PF_W | PF_U, m->root);
    /* The entry is present after all (another space fixed it): refused. */
    wr64(m, pte_gpa, pte);
    REFUSED(m, "stack entry present", va, PF_W | PF_U, m->root);
    /* A present-page fault in the stack that is no CoW write: refused. */
    REFUSED(m, "stack protection fault", va, PF_P | PF_U, m->root);
    fx_free(&f);
}

/* Faults that are not the two cases, on untouched tables. */
static void test_refuse_kinds(void)
{
    fx f;
    REQUIRE(fx_init(&f));
    sl_mem *m = f.m;
    uint64_t r = m->root, st = f.stack_hi - 2 * SL_PAGE_SIZE;
    REFUSED(m, "kernel-mode CoW write", VA_COW, PF_P | PF_W, r);
    REFUSED(m, "kernel-mode stack touch", st, PF_W, r);
    REFUSED(m, "user fetch from a CoW page", VA_COW, PF_P | PF_U | PF_I, r);
    REFUSED(m, "user fetch + write bits", VA_COW, PF_P | PF_W | PF_U | PF_I, r);
    REFUSED(m, "user fetch in the stack", st, PF_U | PF_I, r);
    REFUSED(m, "read of a present CoW page", VA_COW, PF_P | PF_U, r);
    REFUSED(m, "write to read-only code", VA_CODE, PF_P | PF_W | PF_U, r);
    REFUSED(m, "write to a supervisor CoW page", VA_SUP, PF_P | PF_W | PF_U, r);
    REFUSED(m, "not present outside the stack", VA_HOLE, PF_W | PF_U, r);
    REFUSED(m, "not present, read, outside the stack", VA_HOLE, PF_U, r);
    REFUSED(m, "CoW write to an unmapped page", VA_HOLE, PF_P | PF_W | PF_U, r);
    REFUSED(m, "non-canonical address", 0x0000800000000000ull, PF_P | PF_W | PF_U, r);
    REFUSED(m, "kernel-half address", 0xFFFF800000000000ull, PF_W | PF_U, r);
    REFUSED(m, "scratch window write (supervisor, not CoW)", m->layout.scratch_gva, PF_P | PF_W | PF_U, r);
    /* Reserved bits (RSVD, PK, SGX...) do not turn a refusal into service. */
    REFUSED(m, "write to read-only code, RSVD", VA_CODE, PF_P | PF_W | PF_U | 0x8, r);
    fx_free(&f);
}

/* SL_BK_PF_ROOT that does not name a scratch table. */
static void test_refuse_roots(void)
{
    fx f;
    REQUIRE(fx_init(&f));
    sl_mem *m = f.m;
    const sl_layout *l = &m->layout;
    uint64_t roots[] = {
        0,
        SL_BASE_ADDRESS,                       /* a snapshot page: tables live in scratch only */
        SL_BASE_ADDRESS + 2 * SL_PAGE_SIZE,
        l->scratch_gpa - SL_PAGE_SIZE,         /* just below scratch */
        l->scratch_gpa + l->scratch_size,      /* just past it (beyond the 36-bit space) */
        0x000FFFFFFFFFF000ull,                 /* the highest address an entry can name */
        ~0ull,
    };
    for (unsigned i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "root 0x%llx (CoW)", (unsigned long long)roots[i]);
        REFUSED(m, what, VA_COW, PF_P | PF_W | PF_U, roots[i]);
        snprintf(what, sizeof what, "root 0x%llx (stack)", (unsigned long long)roots[i]);
        REFUSED(m, what, f.stack_hi - 2 * SL_PAGE_SIZE, PF_W | PF_U, roots[i]);
    }
    /* A scratch page that is no page table (all zero): nothing mapped. */
    uint64_t cur = bk(m, SL_BK_ALLOC_CURSOR);
    REFUSED(m, "root on an empty page", VA_COW, PF_P | PF_W | PF_U, cur);
    REFUSED(m, "root on an empty page (stack)", f.stack_hi - 2 * SL_PAGE_SIZE, PF_W | PF_U, cur);
    /* The root's flag bits are ignored like CR3's (pt.h), never used as an
     * offset: an unaligned root names the same table. */
    uint64_t slot = serve(m, VA_COW, PF_P | PF_W | PF_U, m->root + 0x7f8);
    CHECK_EQ(slot, gva_of_scratch(m, pte_gpa_of(m, VA_COW)));
    CHECK_EQ(slot & 7, 0);
    fx_free(&f);
}

/* Entries on the way, or the leaf, pointing outside guest memory, or large
 * pages on the way. Each case starts from fresh tables. */
static void test_refuse_bad_entries(void)
{
    fx f;
    REQUIRE(fx_init(&f));
    sl_mem *m = f.m;
    const sl_layout *l = &m->layout;
    const uint64_t cow_va = VA_COW, st_va = f.stack_hi - 2 * SL_PAGE_SIZE;
    const uint64_t outside[] = {
        0,                                            /* below the snapshot (GPA 0 is not backed) */
        SL_BASE_ADDRESS + (SNAP_PAGES + 64) * SL_PAGE_SIZE, /* past the snapshot */
        l->scratch_gpa - SL_PAGE_SIZE,                /* just below scratch */
        l->scratch_gpa + l->scratch_size,             /* just past scratch */
        0x000FFFFFFFFFF000ull,
    };
    /* The leaf of a CoW page points outside memory. */
    for (unsigned i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        REQUIRE(fx_reset(&f));
        uint64_t pte_gpa = pte_gpa_of(m, cow_va), old = rd64(m, pte_gpa);
        wr64(m, pte_gpa, (old & ~ADDR) | outside[i]);
        char what[80];
        snprintf(what, sizeof what, "CoW leaf -> 0x%llx", (unsigned long long)outside[i]);
        REFUSED(m, what, cow_va, PF_P | PF_W | PF_U, m->root);
    }
    /* An entry above the leaf points outside scratch (or outside memory). */
    const uint64_t tables[] = {
        SL_BASE_ADDRESS + 2 * SL_PAGE_SIZE, /* a real snapshot page, but no scratch table */
        0, l->scratch_gpa - SL_PAGE_SIZE, l->scratch_gpa + l->scratch_size, 0x000FFFFFFFFFF000ull,
    };
    for (unsigned level = 0; level < 3; level++) {
        for (unsigned i = 0; i < sizeof tables / sizeof tables[0]; i++) {
            for (unsigned which = 0; which < 2; which++) {
                uint64_t va = which ? st_va : cow_va;
                REQUIRE(fx_reset(&f));
                uint64_t e_gpa = entry_gpa(m, m->root, va, level), old = rd64(m, e_gpa);
                REQUIRE(e_gpa != 0 && (old & SL_PTE_P));
                wr64(m, e_gpa, (old & ~ADDR) | tables[i]);
                char what[96];
                snprintf(what, sizeof what, "%s: level %u entry -> 0x%llx", which ? "stack" : "CoW", level,
                         (unsigned long long)tables[i]);
                REFUSED(m, what, va, which ? PF_W | PF_U : PF_P | PF_W | PF_U, m->root);
            }
        }
    }
    /* Large pages on the way: PS set at the PD (2 MiB), PDPT (1 GiB) and
     * PML4 (reserved) level, with CoW-looking bits, pointing at a real page. */
    for (unsigned level = 0; level < 3; level++) {
        for (unsigned which = 0; which < 2; which++) {
            uint64_t va = which ? st_va : cow_va;
            REQUIRE(fx_reset(&f));
            uint64_t e_gpa = entry_gpa(m, m->root, va, level);
            REQUIRE(e_gpa != 0);
            wr64(m, e_gpa, SL_BASE_ADDRESS | SL_PTE_P | SL_PTE_US | SL_PTE_PS | SL_PTE_COW);
            char what[80];
            snprintf(what, sizeof what, "%s: PS at level %u", which ? "stack" : "CoW", level);
            REFUSED(m, what, va, which ? PF_W | PF_U : PF_P | PF_W | PF_U, m->root);
        }
    }
    /* A 2 MiB page next to the others (VA_LARGE's PD entry) written as CoW. */
    REQUIRE(fx_reset(&f));
    uint64_t pd = entry_gpa(m, m->root, VA_LARGE, 2);
    REQUIRE(pd != 0 && rd64(m, pd) == 0);
    wr64(m, pd, SL_BASE_ADDRESS | SL_PTE_P | SL_PTE_US | SL_PTE_PS | SL_PTE_COW | SL_PTE_NX);
    REFUSED(m, "write to a 2 MiB CoW page", VA_LARGE + 0x3000, PF_P | PF_W | PF_U, m->root);
    REFUSED(m, "not present under a 2 MiB page", VA_LARGE + 0x3000, PF_W | PF_U, m->root);
    /* The stack's leaf table is missing: the kernel makes it, not the host. */
    REQUIRE(fx_reset(&f));
    pd = entry_gpa(m, m->root, st_va, 2);
    REQUIRE(pd != 0);
    wr64(m, pd, 0);
    REFUSED(m, "stack without a leaf table", st_va, PF_W | PF_U, m->root);
    /* A CoW leaf with RW set as well is no CoW leaf (its write fault is the
     * kernel's: the upper levels must forbid the write). */
    REQUIRE(fx_reset(&f));
    uint64_t pte_gpa = pte_gpa_of(m, cow_va);
    wr64(m, pte_gpa, rd64(m, pte_gpa) | SL_PTE_RW);
    REFUSED(m, "RW|COW leaf", cow_va, PF_P | PF_W | PF_U, m->root);
    /* A user CoW leaf under a supervisor-only upper entry is not user. */
    REQUIRE(fx_reset(&f));
    uint64_t pde = entry_gpa(m, m->root, cow_va, 2);
    wr64(m, pde, rd64(m, pde) & ~SL_PTE_US);
    REFUSED(m, "CoW leaf under a supervisor PDE", cow_va, PF_P | PF_W | PF_U, m->root);
    /* A not-present "CoW" leaf. */
    REQUIRE(fx_reset(&f));
    pte_gpa = pte_gpa_of(m, cow_va);
    wr64(m, pte_gpa, rd64(m, pte_gpa) & ~SL_PTE_P);
    REFUSED(m, "not-present CoW leaf, P fault", cow_va, PF_P | PF_W | PF_U, m->root);
    fx_free(&f);
}

/* The allocator's state is corrupt or exhausted: the fault goes back to the
 * kernel (which reports out-of-memory or drops a corrupt list). */
static void test_refuse_allocator(void)
{
    fx f;
    REQUIRE(fx_init(&f));
    sl_mem *m = f.m;
    const sl_layout *l = &m->layout;
    const uint64_t st_va = f.stack_hi - 2 * SL_PAGE_SIZE;
    const uint64_t limit = bk(m, SL_BK_ALLOC_LIMIT);
    struct {
        const char *what;
        uint64_t cursor, limit;
    } cur[] = {
        {"cursor at the limit", limit, limit},
        {"cursor above the limit", limit + SL_PAGE_SIZE, limit},
        {"limit zero", l->pt_gpa + 32 * SL_PAGE_SIZE, 0},
        {"cursor unaligned", l->pt_gpa + 32 * SL_PAGE_SIZE + 8, limit},
        {"cursor unaligned by 1", l->pt_gpa + 32 * SL_PAGE_SIZE + 1, limit},
        {"cursor below scratch (snapshot page)", SL_BASE_ADDRESS + SL_PAGE_SIZE, limit},
        {"cursor zero", 0, limit},
        {"cursor just below scratch", l->scratch_gpa - SL_PAGE_SIZE, ~0ull},
        {"cursor at scratch end", l->scratch_gpa + l->scratch_size, ~0ull},
        {"cursor far past scratch", 0x000FFFFFFFFFF000ull, ~0ull},
        {"cursor wrapped", ~0ull & SL_PAGE_MASK, ~0ull},
    };
    for (unsigned i = 0; i < sizeof cur / sizeof cur[0]; i++) {
        for (unsigned which = 0; which < 2; which++) {
            REQUIRE(fx_reset(&f));
            sl_mem_bk_set(m, SL_BK_ALLOC_CURSOR, cur[i].cursor);
            sl_mem_bk_set(m, SL_BK_ALLOC_LIMIT, cur[i].limit);
            char what[96];
            snprintf(what, sizeof what, "%s (%s)", cur[i].what, which ? "stack" : "CoW");
            if (which)
                REFUSED(m, what, st_va, PF_W | PF_U, m->root);
            else
                REFUSED(m, what, VA_COW, PF_P | PF_W | PF_U, m->root);
        }
    }
    /* A corrupt free-list head is refused even with the cursor fine, and
     * marks nothing dirty (an unaligned head is refused before the page
     * under it is touched). */
    REQUIRE(fx_reset(&f));
    const uint64_t cursor = bk(m, SL_BK_ALLOC_CURSOR);
    struct {
        const char *what;
        uint64_t head;
    } heads[] = {
        {"free list unaligned", cursor + 8},
        {"free list unaligned by 1", cursor + 1},
        {"free list unaligned, last bytes of scratch", l->scratch_gpa + l->scratch_size - 8},
        {"free list on a snapshot page", SL_BASE_ADDRESS + SL_PAGE_SIZE},
        {"free list below scratch", l->scratch_gpa - SL_PAGE_SIZE},
        {"free list at scratch end", l->scratch_gpa + l->scratch_size},
        {"free list far away", 0x000FFFFFFFFFF000ull},
        {"free list all ones", ~0ull},
    };
    for (unsigned i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        for (unsigned which = 0; which < 2; which++) {
            REQUIRE(fx_reset(&f));
            sl_mem_bk_set(m, SL_BK_FREE_LIST, heads[i].head);
            sl_mem_bk_set(m, SL_BK_FREE_COUNT, 1);
            char what[96];
            snprintf(what, sizeof what, "%s (%s)", heads[i].what, which ? "stack" : "CoW");
            REFUSED(m, what, which ? st_va : VA_COW, which ? PF_W | PF_U : PF_P | PF_W | PF_U, m->root);
        }
    }
    /* The last page before the limit is still handed out; then none. */
    REQUIRE(fx_reset(&f));
    sl_mem_bk_set(m, SL_BK_ALLOC_CURSOR, limit - SL_PAGE_SIZE);
    CHECK(serve(m, VA_COW, PF_P | PF_W | PF_U, m->root) != 0);
    CHECK_EQ(bk(m, SL_BK_PF_PTE) & ADDR, limit - SL_PAGE_SIZE);
    CHECK_EQ(bk(m, SL_BK_ALLOC_CURSOR), limit);
    REFUSED(m, "allocator exhausted after the last page", VA_COW2, PF_P | PF_W | PF_U, m->root);
    fx_free(&f);
}

int main(void)
{
    RUN(test_cow_from_cursor);
    RUN(test_cow_scratch_source);
    RUN(test_cow_from_free_list);
    RUN(test_stack_fault);
    RUN(test_refuse_kinds);
    RUN(test_refuse_roots);
    RUN(test_refuse_bad_entries);
    RUN(test_refuse_allocator);
    T_EXIT();
}
