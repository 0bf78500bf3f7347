/* libFuzzer target for the host-served page faults (src/host/hostfault.c).
 *
 * Once: a simulated amd64 sandbox (tests/common/sim.h), compacted into a real
 * snapshot and restored into an sl_mem: user CoW pages, read-only code, a
 * supervisor CoW page, the top page of the user stack, the scratch linear
 * map. Per input: back to that state, then the guest's hostile part comes
 * from the fuzzer — entries of the page tables (and of any scratch page), the
 * fault's address, error code and root, the allocator's cursor, limit and
 * free list — and sl_hostfault_serve runs once. Checks:
 *   - SL_BK_PF_SLOT, when not 0, is an 8-byte aligned GVA in the scratch
 *     linear map, and SL_BK_PF_PTE a present, user, writable, non-CoW entry
 *     naming a scratch page;
 *   - outside the bookkeeping page at most one scratch page changed, and
 *     only when the fault was served: the page the entry names; a refusal
 *     changes nothing but the slot, bookkeeping page included;
 *   - every scratch page the host changed is marked dirty (else a restore
 *     would not reset it);
 *   - the decision, slot, entry, page contents and allocator state equal
 *     those of an independent model of the protocol (mem.c's fault handler
 *     and k_scratch_take_st, as the header of hostfault.c describes them).
 * ASan/UBSan catch the rest.
 *
 * Input (little-endian): [0] error code; [1] address selector, [2..9] its
 * value; then five slot records (root, cursor, limit, free-list head, free
 * count), each a mode byte and a u64; then patch records of 12 bytes until
 * the end: [0] page (bit 7: any scratch page, else a table page), [1..2]
 * entry index, [3] value mode, [4..11] value. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostfault.h"
#include "mem.h"
#include "pt.h"
#include "snapshot.h"
#include "../tests/common/sim.h"

#include "fuzz.h"

#define PF_P 0x1u
#define PF_W 0x2u
#define PF_U 0x4u
#define PF_I 0x10u
#define ADDR SL_PTE_ADDR_AMD64

#define VA_CODE 0x400000ull
#define VA_COW 0x600000ull
#define VA_COW2 0x601000ull
#define VA_HOLE 0x603000ull
#define VA_SUP 0x700000ull
#define VA_LARGE 0x800000ull
#define SNAP_PAGES 8u
#define SCRATCH (256u << 10)

static guest g;
static sl_snapshot *snap;
static sl_mem *m;
static uint8_t *pristine, *before;
static uint64_t *pristine_dirty;
static uint64_t scratch_pages, table_pages, stack_lo, stack_hi;

static uint64_t fill_page(uint64_t idx, uint32_t seed)
{
    uint8_t *p = g.snap + idx * SL_PAGE_SIZE;
    for (unsigned i = 0; i < SL_PAGE_SIZE; i++)
        p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
    return SL_BASE_ADDRESS + idx * SL_PAGE_SIZE;
}

static void gmap(uint64_t gva, uint64_t gpa, uint64_t len, bool w, bool x, bool user)
{
    sl_perm p = {.kind = SL_MAP_BASIC, .readable = true, .writable = w, .executable = x, .user = user};
    sl_pt_mem pm = g_mem(&g);
    if (sl_pt_map(SL_ARCH_AMD64, &pm, g.roots[0], gva, gpa, len, p))
        abort();
}

static void setup(void)
{
    if (!guest_setup(&g, SL_ARCH_AMD64, SNAP_PAGES, SCRATCH, 1))
        abort();
    gmap(VA_CODE, fill_page(1, 1), SL_PAGE_SIZE, false, true, true);
    gmap(VA_COW, fill_page(2, 2), SL_PAGE_SIZE, true, false, true);
    gmap(VA_COW2, fill_page(3, 3), SL_PAGE_SIZE, true, false, true);
    gmap(VA_SUP, fill_page(4, 4), SL_PAGE_SIZE, true, false, false);
    gmap(g.l.stack_top - SL_PAGE_SIZE, fill_page(5, 5), SL_PAGE_SIZE, true, false, true);
    gmap(g.l.scratch_gva, g.l.scratch_gpa, g.l.scratch_size, true, false, false);
    fill_page(6, 6);
    sl_guest_state st = {
        .layout = &g.l, .snap_mem = g.snap, .snap_size = g.snap_size, .scratch = g.scratch,
        .roots = g.roots, .n_roots = 1, .cur_root = 0, .stack_top = 0x1234000,
        .next_kind = SL_NEXT_CALL, .next_addr = 0x5000, .generation = 1, .family = 42,
    };
    sl_errbuf e;
    if (sl_snapshot_from_memory(&snap, &st, &e) || sl_mem_create(&m, snap, &e))
        abort();
    m->family = sl_snapshot_family(snap);
    if (sl_mem_restore(m, snap, &e))
        abort();
    const sl_layout *l = &m->layout;
    scratch_pages = l->scratch_size / SL_PAGE_SIZE;
    table_pages = (sl_mem_bk_get(m, SL_BK_ALLOC_CURSOR) - l->pt_gpa) / SL_PAGE_SIZE;
    stack_hi = l->stack_top & SL_PAGE_MASK;
    stack_lo = stack_hi - ((l->stack_size + SL_PAGE_SIZE - 1) & SL_PAGE_MASK);
    pristine = malloc(l->scratch_size);
    before = malloc(l->scratch_size);
    pristine_dirty = malloc(m->dirty_set.n_words * 8);
    if (!pristine || !before || !pristine_dirty || !table_pages)
        abort();
    memcpy(pristine, m->scratch, l->scratch_size);
    memcpy(pristine_dirty, m->dirty_set.words, m->dirty_set.n_words * 8);
}

/* ---- input ---- */

/* A guest-physical address: the default, raw, a scratch page or a snapshot
 * page (optionally with an offset), or the default moved by whole pages. */
static uint64_t gpa_value(uint8_t mode, uint64_t v, uint64_t dflt)
{
    const sl_layout *l = &m->layout;
    uint64_t off = (mode & 4) ? (v >> 32) & 0xFFF : 0;
    switch (mode & 3) {
    case 0:
        return (mode & 8) ? dflt + (uint64_t)(int64_t)(int8_t)v * SL_PAGE_SIZE : dflt;
    case 1:
        return v;
    case 2:
        return l->scratch_gpa + (v % (scratch_pages + 2)) * SL_PAGE_SIZE + off;
    default:
        return SL_BASE_ADDRESS + (v % (SNAP_PAGES + 2)) * SL_PAGE_SIZE + off;
    }
}

static uint64_t fault_addr(uint8_t sel, uint64_t v)
{
    uint64_t off = v & 0xFFF;
    switch (sel & 15) {
    case 0: return VA_COW + off;
    case 1: return VA_COW2 + off;
    case 2: return VA_CODE + off;
    case 3: return VA_SUP + off;
    case 4: return VA_HOLE + off;
    case 5: return VA_LARGE + (v & 0x1FFFFF);
    case 6: return stack_hi - SL_PAGE_SIZE * (1 + (v >> 12) % 6) + off; /* around the stack */
    case 7: return stack_hi + off;
    case 8: return m->layout.scratch_gva + (v % SCRATCH);
    case 9: return VA_COW + (v & 0xFFFFF);
    default: return v;
    }
}

/* ---- the model ---- */

typedef struct expect {
    bool served;
    uint64_t slot, pte, fresh, src;
    bool from_list;
} expect;

static uint64_t rd_before(uint64_t gpa) /* gpa: 8-byte aligned, in scratch */
{
    return sl_get64(before + (gpa - m->layout.scratch_gpa));
}

static bool in_scratch_page(uint64_t gpa)
{
    const sl_layout *l = &m->layout;
    return !(gpa & (SL_PAGE_SIZE - 1)) && gpa >= l->scratch_gpa && gpa - l->scratch_gpa <= l->scratch_size - SL_PAGE_SIZE;
}

static bool readable_page(uint64_t gpa)
{
    if (gpa & (SL_PAGE_SIZE - 1))
        return false;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < sl_snapshot_memory_size(snap))
        return sl_snapshot_memory_size(snap) - (gpa - SL_BASE_ADDRESS) >= SL_PAGE_SIZE;
    return in_scratch_page(gpa);
}

static uint64_t bk_before(unsigned slot) { return rd_before(m->layout.bk_gpa + slot); }

static bool model_take(expect *x)
{
    const sl_layout *l = &m->layout;
    uint64_t h = bk_before(SL_BK_FREE_LIST);
    if (h) {
        if (!in_scratch_page(h))
            return false;
        x->fresh = h;
        x->from_list = true;
        return true;
    }
    uint64_t c = bk_before(SL_BK_ALLOC_CURSOR);
    if ((c & (SL_PAGE_SIZE - 1)) || c >= bk_before(SL_BK_ALLOC_LIMIT) || !in_scratch_page(c))
        return false;
    (void)l;
    x->fresh = c;
    return true;
}

static expect model(void)
{
    const sl_layout *l = &m->layout;
    expect x = {0};
    uint64_t addr = bk_before(SL_BK_PF_ADDR), err = bk_before(SL_BK_PF_ERR), root = bk_before(SL_BK_PF_ROOT);
    uint64_t va = addr & SL_PAGE_MASK;
    if (!(err & PF_U) || (err & PF_I))
        return x;
    if ((va >> 47) != 0 && (va >> 47) != 0x1FFFF)
        return x; /* not canonical */
    uint64_t table = root & ADDR, user = SL_PTE_US;
    for (unsigned level = 0; level < 3; level++) {
        if (!in_scratch_page(table))
            return x;
        uint64_t e = rd_before(table + ((va >> (39 - 9 * level)) & 511) * 8);
        if (!(e & SL_PTE_P) || (e & SL_PTE_PS))
            return x;
        user &= e;
        table = e & ADDR;
    }
    if (!in_scratch_page(table))
        return x;
    uint64_t pte_gpa = table + ((va >> 12) & 511) * 8, pte = rd_before(pte_gpa);
    if ((err & PF_P) && (err & PF_W)) {
        if (!(pte & SL_PTE_P) || (pte & SL_PTE_RW) || !(pte & SL_PTE_COW) || !(pte & user & SL_PTE_US))
            return x;
        if (!readable_page(pte & ADDR) || !model_take(&x))
            return x;
        x.src = pte & ADDR;
        x.pte = (pte & ~(ADDR | SL_PTE_COW)) | x.fresh | SL_PTE_RW;
    } else if (!(err & PF_P)) {
        if ((pte & SL_PTE_P) || va < stack_lo || va >= stack_hi || !model_take(&x))
            return x;
        x.pte = x.fresh | SL_PTE_P | SL_PTE_RW | SL_PTE_US | SL_PTE_NX;
    } else {
        return x;
    }
    x.served = true;
    x.slot = l->scratch_gva + (pte_gpa - l->scratch_gpa);
    return x;
}

/* ---- one input ---- */

static bool page_dirty(uint64_t gpa)
{
    uint64_t p = (gpa - m->layout.scratch_gpa) / SL_PAGE_SIZE;
    return sl_pageset_has(&m->dirty_set, p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!m)
        setup();
    const sl_layout *l = &m->layout;
    memcpy(m->scratch, pristine, l->scratch_size);
    memcpy(m->dirty_set.words, pristine_dirty, m->dirty_set.n_words * 8);
    fuzz_in s = {data, size};

    uint8_t err = fuzz_u8(&s), sel = fuzz_u8(&s);
    uint64_t addr = fault_addr(sel, fuzz_le(&s, 8));
    uint64_t dflt[5] = {m->root, sl_mem_bk_get(m, SL_BK_ALLOC_CURSOR), sl_mem_bk_get(m, SL_BK_ALLOC_LIMIT), 0, 0};
    uint64_t val[5];
    for (unsigned i = 0; i < 5; i++) {
        uint8_t mode = fuzz_u8(&s);
        val[i] = gpa_value(mode, fuzz_le(&s, 8), dflt[i]);
    }
    /* Table (or any scratch page) entries, written as the guest would:
     * straight into scratch, not marked dirty by the host. */
    while (s.n >= 12) {
        uint8_t pg = fuzz_u8(&s);
        unsigned idx = (fuzz_u8(&s) | (unsigned)fuzz_u8(&s) << 8) % 512;
        uint8_t mode = fuzz_u8(&s);
        uint64_t v = fuzz_le(&s, 8);
        uint64_t page = (pg & 0x80) ? l->scratch_gpa + (pg & 0x7F) % scratch_pages * SL_PAGE_SIZE
                                    : l->pt_gpa + pg % table_pages * SL_PAGE_SIZE;
        uint8_t *e = m->scratch + (page - l->scratch_gpa) + idx * 8;
        uint64_t flags = (v & 0xFFF) | (v & SL_PTE_NX), a;
        switch (mode & 3) {
        case 0: sl_put64(e, v); continue;
        case 1: a = l->scratch_gpa + ((v >> 12) % scratch_pages) * SL_PAGE_SIZE; break;
        case 2: a = SL_BASE_ADDRESS + ((v >> 12) % (SNAP_PAGES + 1)) * SL_PAGE_SIZE; break;
        default: a = sl_get64(e) & ADDR; break; /* new flags on the old address */
        }
        sl_put64(e, a | flags);
    }
    sl_mem_bk_set(m, SL_BK_PF_ADDR, addr);
    sl_mem_bk_set(m, SL_BK_PF_ERR, err);
    sl_mem_bk_set(m, SL_BK_PF_ROOT, val[0]);
    sl_mem_bk_set(m, SL_BK_ALLOC_CURSOR, val[1]);
    sl_mem_bk_set(m, SL_BK_ALLOC_LIMIT, val[2]);
    sl_mem_bk_set(m, SL_BK_FREE_LIST, val[3]);
    sl_mem_bk_set(m, SL_BK_FREE_COUNT, val[4]);
    sl_mem_bk_set(m, SL_BK_PF_SLOT, 0x5a5a5a5a5a5a5a5aull);
    memcpy(before, m->scratch, l->scratch_size);
    expect x = model();

    sl_hostfault_serve(m);

    uint64_t slot = sl_mem_bk_get(m, SL_BK_PF_SLOT), pte = sl_mem_bk_get(m, SL_BK_PF_PTE);
    const uint64_t bko = l->bk_gpa - l->scratch_gpa;
    unsigned changed = 0;
    uint64_t changed_gpa = 0;
    for (uint64_t off = 0; off < l->scratch_size; off += SL_PAGE_SIZE) {
        if (!memcmp(m->scratch + off, before + off, SL_PAGE_SIZE))
            continue;
        FUZZ_ASSERT(page_dirty(l->scratch_gpa + off)); /* a restore must reset it */
        if (off != bko) {
            changed++;
            changed_gpa = l->scratch_gpa + off;
        }
    }
    FUZZ_ASSERT(changed <= 1);
    if (slot) {
        FUZZ_ASSERT(slot >= l->scratch_gva && slot - l->scratch_gva < l->scratch_size);
        FUZZ_ASSERT((slot & 7) == 0);
        FUZZ_ASSERT((pte & SL_PTE_P) && (pte & SL_PTE_RW) && (pte & SL_PTE_US) && !(pte & SL_PTE_COW));
        FUZZ_ASSERT(in_scratch_page(pte & ADDR));
        FUZZ_ASSERT(!changed || changed_gpa == (pte & ADDR));
    } else {
        FUZZ_ASSERT(!changed);
        /* The bookkeeping page: only the slot moved. */
        FUZZ_ASSERT(!memcmp(m->scratch + bko, before + bko, SL_BK_PF_SLOT));
        FUZZ_ASSERT(!memcmp(m->scratch + bko + SL_BK_PF_SLOT + 8, before + bko + SL_BK_PF_SLOT + 8,
                            SL_PAGE_SIZE - SL_BK_PF_SLOT - 8));
    }

    /* The model's decision, exactly. */
    FUZZ_ASSERT(x.served == (slot != 0));
    if (!x.served)
        return 0;
    FUZZ_ASSERT(slot == x.slot);
    FUZZ_ASSERT(pte == x.pte);
    if (x.fresh == l->bk_gpa)
        return 0; /* the guest handed out its own bookkeeping page: nothing more to compare */
    const uint8_t *fresh = m->scratch + (x.fresh - l->scratch_gpa);
    if (x.src) { /* copy-on-write */
        uint8_t want[SL_PAGE_SIZE];
        if (x.src == x.fresh && x.from_list)
            memset(want, 0, SL_PAGE_SIZE); /* zeroed when taken, then copied onto itself */
        else if (x.src >= l->scratch_gpa)
            memcpy(want, x.src == l->bk_gpa ? m->scratch + bko : before + (x.src - l->scratch_gpa), SL_PAGE_SIZE);
        else
            memcpy(want, sl_snapshot_visible(snap) + (x.src - SL_BASE_ADDRESS), SL_PAGE_SIZE);
        if (x.src != l->bk_gpa) /* the bk page changes during the fault (allocator, counters) */
            FUZZ_ASSERT(!memcmp(fresh, want, SL_PAGE_SIZE));
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_EV_COW) == bk_before(SL_BK_EV_COW) + 1);
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_EV_DEMAND) == bk_before(SL_BK_EV_DEMAND));
    } else { /* stack: zero from the list; a cursor page is as the guest left it (zero by contract) */
        if (x.from_list) {
            for (unsigned i = 0; i < SL_PAGE_SIZE; i++)
                FUZZ_ASSERT(fresh[i] == 0);
        } else {
            FUZZ_ASSERT(!memcmp(fresh, before + (x.fresh - l->scratch_gpa), SL_PAGE_SIZE));
        }
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_EV_DEMAND) == bk_before(SL_BK_EV_DEMAND) + 1);
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_EV_COW) == bk_before(SL_BK_EV_COW));
    }
    FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_EV_FAULTS) == bk_before(SL_BK_EV_FAULTS) + 1);
    FUZZ_ASSERT(page_dirty(x.fresh));
    if (x.from_list) {
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_FREE_LIST) == rd_before(x.fresh));
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_FREE_COUNT) == bk_before(SL_BK_FREE_COUNT) - 1);
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_ALLOC_CURSOR) == bk_before(SL_BK_ALLOC_CURSOR));
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_DIRTY_HINT) == bk_before(SL_BK_DIRTY_HINT));
    } else {
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_FREE_LIST) == 0);
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_ALLOC_CURSOR) == x.fresh + SL_PAGE_SIZE);
        FUZZ_ASSERT(sl_mem_bk_get(m, SL_BK_DIRTY_HINT) == bk_before(SL_BK_DIRTY_HINT) + 1);
    }
    return 0;
}
