/* User page faults that the host serves for the guest kernel where kernel
 * instructions are emulated (PVM: SL_BK_HOST_PAGES = 1).
 *
 * On PVM every instruction of the guest kernel costs ~0.7 us, so the C fault
 * handler (mem.c: ~250 instructions for a copy-on-write fault) costs ~200 us,
 * while the same work here costs a few. The kernel's #PF entry
 * (entry_amd64.S) writes the fault's address, error code and CR3 to the
 * bookkeeping page and exits to SL_PORT_PF; this file decides the two cases
 * that make almost every fault — a write to a copy-on-write user page and a
 * first touch of the user stack — exactly as mem.c would, takes a page from
 * the kernel's own allocator (the free list and bump cursor in the
 * bookkeeping page, the protocol of k_scratch_take_st), copies or zeroes it,
 * and hands back the page-table entry to write. The kernel writes it itself:
 * under shadow paging the hypervisor only notices table writes the guest
 * makes. Anything else (kernel-mode faults, large pages, missing tables, a
 * fault that is an error) goes back to the kernel's C handler, unchanged.
 *
 * Everything read from guest memory is hostile: a value that does not check
 * out sends the fault back to the kernel, which then decides as always. */
#include <string.h>

#include "bookkeeping.h"
#include "hostfault.h"
#include "pt.h"
#include "sl_layout.h"

#define PF_P 0x1u
#define PF_W 0x2u
#define PF_U 0x4u
#define PF_I 0x10u

static void *table_page(void *ctx, uint64_t gpa)
{
    sl_mem *m = ctx;
    const sl_layout *l = &m->layout;
    if ((gpa & (SL_PAGE_SIZE - 1)) || gpa < l->scratch_gpa || gpa - l->scratch_gpa >= l->scratch_size)
        return NULL;
    return m->scratch + (gpa - l->scratch_gpa);
}

/* k_scratch_take_st on the host: a page from the free list (zeroed here) or
 * the bump cursor (zero already). False when none, or the state is corrupt. */
static bool take_page(sl_mem *m, uint64_t *gpa)
{
    const sl_layout *l = &m->layout;
    uint64_t h = sl_bk_free_list(m);
    if (h) {
        uint8_t *p = (h & (SL_PAGE_SIZE - 1)) ? NULL : sl_mem_write_ptr(m, h, SL_PAGE_SIZE);
        if (!p)
            return false; /* the kernel drops a corrupt list: its call */
        sl_bk_free_list_pop(m, sl_get64(p));
        memset(p, 0, SL_PAGE_SIZE);
        *gpa = h;
        return true;
    }
    uint64_t c = sl_bk_alloc_cursor(m);
    if ((c & (SL_PAGE_SIZE - 1)) || c >= sl_bk_alloc_limit(m) || c < l->scratch_gpa ||
        c - l->scratch_gpa > l->scratch_size - SL_PAGE_SIZE)
        return false;
    sl_bk_alloc_bump(m);
    sl_mem_mark_dirty(m, c, SL_PAGE_SIZE);
    *gpa = c;
    return true;
}

/* A write to a copy-on-write user page: the new entry, or 0. */
static uint64_t cow(sl_mem *m, const sl_mapping *map, uint64_t pte)
{
    uint64_t addr = sl_pt_entry_addr(m->layout.arch, pte), fresh;
    if (map->size != SL_PAGE_SIZE || map->perm.kind != SL_MAP_COW || !map->perm.user ||
        !(pte & SL_PTE_P) || (pte & SL_PTE_RW) || !(pte & SL_PTE_COW))
        return 0;
    const uint8_t *src = sl_mem_read_ptr(m, addr, SL_PAGE_SIZE);
    if (!src || !take_page(m, &fresh))
        return 0;
    /* memmove: a corrupt allocator may hand out the source page itself */
    memmove(m->scratch + (fresh - m->layout.scratch_gpa), src, SL_PAGE_SIZE);
    sl_bk_count_event(m, SL_BK_EVENT_COW);
    return (pte & ~(sl_pt_entry_addr(m->layout.arch, ~0ull) | SL_PTE_COW)) | fresh | SL_PTE_RW;
}

/* A first touch of the user stack: the new entry (a zero page), or 0. */
static uint64_t stack_page(sl_mem *m, uint64_t va)
{
    const sl_layout *l = &m->layout;
    uint64_t size = (l->stack_size + SL_PAGE_SIZE - 1) & SL_PAGE_MASK, top = l->stack_top & SL_PAGE_MASK, fresh;
    if (top < size || va < top - size || va >= top || !take_page(m, &fresh))
        return 0;
    sl_bk_count_event(m, SL_BK_EVENT_DEMAND);
    sl_perm perm = {.kind = SL_MAP_BASIC, .readable = true, .writable = true, .executable = false,
                    .user = true};
    return sl_pt_encode_leaf(l->arch, fresh, perm);
}

void sl_hostfault_serve(sl_mem *m)
{
    const sl_layout *l = &m->layout;
    sl_bk_fault f;
    sl_bk_get_fault(m, &f);
    uint64_t va = f.addr & SL_PAGE_MASK, pte_gpa = 0, entry = 0;
    sl_pt_mem mem = {.ctx = m, .page = table_page, .alloc = NULL};
    sl_mapping map;

    sl_bk_fault_unserved(m); /* unless served below */
    if (!(f.err & PF_U) || (f.err & PF_I))
        return;
    if ((f.err & PF_P) && (f.err & PF_W)) {
        if (!sl_pt_lookup(l->arch, &mem, f.root, va, &map, &pte_gpa))
            return;
        const uint8_t *e = table_page(m, pte_gpa & SL_PAGE_MASK);
        if (!e || (pte_gpa & 7))
            return;
        entry = cow(m, &map, sl_get64(e + (pte_gpa & (SL_PAGE_SIZE - 1))));
    } else if (!(f.err & PF_P)) {
        uint64_t table;
        if (sl_pt_table_at(l->arch, &mem, f.root, va, sl_pt_levels(l->arch) - 1, false, &table) != SL_PT_OK)
            return;
        pte_gpa = table + ((va >> 12) & 511) * 8;
        const uint8_t *e = table_page(m, table);
        if (!e || (sl_get64(e + (pte_gpa - table)) & SL_PTE_P))
            return; /* present after all: another space fixed it; the kernel retries */
        entry = stack_page(m, va);
    }
    if (!entry)
        return;
    sl_bk_count_event(m, SL_BK_EVENT_FAULT);
    sl_bk_fault_served(m, sl_layout_scratch_gva_of(l, pte_gpa), entry);
}
