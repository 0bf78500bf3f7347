/* libFuzzer target for incremental takes (src/host/snapinc.c).
 *
 * Once per architecture: a small simulated guest (tests/common/sim.h) in two
 * address spaces (read-only, writable and copy-on-write pages, a page mapped
 * twice, a leaf table both spaces share) compacted into a parent P. Per
 * input: the guest restored to P (P's blob as its snapshot memory, P's
 * tables in an otherwise empty scratch), then the fuzzer writes what it
 * likes into scratch: table entries (raw, or naming a page of P, of
 * scratch, a table, a fresh page), leaves copied-on-write the way the guest
 * kernel does it, whole pages copied, bytes. Every page written is marked
 * in the dirty set (the contract is a superset of the pages written; an
 * input may ask for every page to be marked). Then sl_snapinc_take runs,
 * and compaction of the same guest. Checks:
 *   - the take answers 0 or SL_INC_DECLINED, with a snapshot exactly when
 *     it answers 0;
 *   - when it answers 0, compaction succeeds and the snapshots are the
 *     same: identity (and the identity recomputed from the blob), every
 *     blob byte, sizes, roots, current root, CPU state, stats (but pages
 *     hashed) and kept bitmap;
 *   - an input may go on from that snapshot: restored to it, a leaf copied
 *     once more and taken again, checked the same way.
 * ASan/UBSan and the leak checker catch the rest.
 *
 * Input: [0] bit 0 architecture (i686), bit 1 every page dirty, bit 2 go
 * on from the snapshot; then records until the end, each an opcode byte
 * and its operands (see apply()). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "pageset.h"
#include "pt.h"
#include "pt_owners.h"
#include "snapinc.h"
#include "snapshot.h"
#include "snapshot_impl.h"
#include "../tests/common/sim.h"

#include "fuzz.h"

#define SNAP_PAGES 24u
#define SCRATCH (256u << 10)
#define VA_A 0x10000000ull /* root 0's own leaf table */
#define VA_B 0x10400000ull /* a leaf table root 1 shares */
#define VA_C 0x10800000ull /* root 1's own */
#define MAX_LEAVES 64
#define SREGS_LEN 32

typedef struct parent {
    guest src;
    sl_snapshot *P;
    uint64_t leaf[MAX_LEAVES]; /* GPAs of P's leaf entries (outside the window), in walk order */
    unsigned n_leaves;
} parent;

static parent parents[2];

static sl_perm perm(unsigned kind, bool w, bool x)
{
    sl_perm p = {.kind = (uint8_t)kind, .readable = true, .writable = w, .executable = x, .user = true};
    return p;
}

static void map(guest *g, unsigned root, uint64_t va, uint64_t gpa, uint64_t len, sl_perm p)
{
    sl_pt_mem m = g_mem(g);
    if (sl_pt_map(g->l.arch, &m, g->roots[root], va, gpa, len, p))
        abort();
}

static bool note_leaf(void *arg, const sl_walk_item *it)
{
    parent *p = arg;
    const sl_layout *l = &p->src.l;
    if (it->kind == SL_WALK_THIS_SPACE && it->map.gva - l->scratch_gva >= l->scratch_size &&
        p->n_leaves < MAX_LEAVES)
        p->leaf[p->n_leaves++] = it->entry_gpa;
    return true;
}

static void *scratch_page(void *ctx, uint64_t gpa)
{
    guest *g = ctx;
    if (gpa >= g->l.scratch_gpa && gpa - g->l.scratch_gpa < g->l.scratch_size)
        return g->scratch + (gpa - g->l.scratch_gpa);
    return NULL;
}

/* P's leaves, read from P's tables as restore puts them in scratch. */
static void find_leaves(parent *p)
{
    guest r;
    if (!guest_restore(&r, &p->src.l, p->P))
        abort();
    sl_pt_owners seen;
    sl_pt_owners_init(&seen, 0);
    sl_pt_seen s = sl_pt_owners_seen(&seen);
    sl_pt_mem m = {.ctx = &r, .page = scratch_page};
    if (sl_pt_walk_spaces(r.l.arch, &m, r.roots, r.n_roots, &s, note_leaf, p) || !p->n_leaves)
        abort();
    sl_pt_owners_free(&seen);
    guest_free(&r);
}

static void setup(parent *p, unsigned arch)
{
    guest *g = &p->src;
    uint8_t sregs[SREGS_LEN] = {1, 2, 3};
    static const uint8_t grandparent[SL_HASH_LEN] = {0x5A};
    if (!guest_setup(g, arch, SNAP_PAGES, SCRATCH, 2))
        abort();
    for (unsigned i = 0; i < SNAP_PAGES * SL_PAGE_SIZE; i++)
        g->snap[i] = (uint8_t)(i * 7u + (i >> 12) * 31u);
    uint64_t base = SL_BASE_ADDRESS;
    map(g, 0, VA_A, base, 4 * SL_PAGE_SIZE, perm(SL_MAP_BASIC, false, true));
    map(g, 0, VA_A + 4 * SL_PAGE_SIZE, base + 4 * SL_PAGE_SIZE, 8 * SL_PAGE_SIZE, perm(SL_MAP_BASIC, true, false));
    map(g, 0, VA_A + 12 * SL_PAGE_SIZE, base + 12 * SL_PAGE_SIZE, 2 * SL_PAGE_SIZE, perm(SL_MAP_COW, false, false));
    map(g, 0, VA_B, base + 14 * SL_PAGE_SIZE, 4 * SL_PAGE_SIZE, perm(SL_MAP_BASIC, true, false));
    map(g, 0, VA_B + 8 * SL_PAGE_SIZE, base + 5 * SL_PAGE_SIZE, SL_PAGE_SIZE, perm(SL_MAP_BASIC, true, false));
    uint64_t shared;
    sl_pt_mem m = g_mem(g);
    unsigned above_leaf = sl_pt_levels(arch) - 2;
    if (sl_pt_table_at(arch, &m, g->roots[0], VA_B, above_leaf + 1, false, &shared) ||
        sl_pt_link(arch, &m, g->roots[1], VA_B, above_leaf, shared))
        abort();
    map(g, 1, VA_C, base + 18 * SL_PAGE_SIZE, 3 * SL_PAGE_SIZE, perm(SL_MAP_BASIC, true, false));
    map(g, 1, VA_C + 3 * SL_PAGE_SIZE, base + 6 * SL_PAGE_SIZE, SL_PAGE_SIZE, perm(SL_MAP_BASIC, false, false));
    for (unsigned r = 0; r < 2; r++)
        map(g, r, g->l.scratch_gva, g->l.scratch_gpa, g->l.scratch_size, perm(SL_MAP_BASIC, true, false));
    sl_guest_state st = {.layout = &g->l, .snap_mem = g->snap, .snap_size = g->snap_size, .scratch = g->scratch,
                         .roots = g->roots, .n_roots = 2, .cur_root = 0, .next_kind = SL_NEXT_CALL,
                         .family = 9, .parent = grandparent, .sregs = sregs, .sregs_len = SREGS_LEN};
    sl_errbuf e;
    if (sl_snapshot_from_memory(&p->P, &st, &e))
        abort();
    find_leaves(p);
}

/* ---- a guest restored to a snapshot, and what the fuzzer does to it ---- */

typedef struct run {
    const parent *pa;
    sl_snapshot *on;
    guest g;
    sl_pageset dirty;
    unsigned esz;
} run;

static void restore(run *r, const parent *pa, sl_snapshot *on)
{
    r->pa = pa;
    r->on = on;
    r->esz = pa->src.l.arch == SL_ARCH_I686 ? 4 : 8;
    if (!guest_restore(&r->g, &pa->src.l, on) || !sl_pageset_init(&r->dirty, SCRATCH / SL_PAGE_SIZE))
        abort();
}

static void run_free(run *r)
{
    guest_free(&r->g);
    sl_pageset_free(&r->dirty);
}

static uint8_t *wpage(run *r, uint64_t gpa)
{
    uint8_t *p = scratch_page(&r->g, gpa & SL_PAGE_MASK);
    if (p)
        sl_pageset_add_range(&r->dirty, (gpa - r->g.l.scratch_gpa) / SL_PAGE_SIZE, 1);
    return p;
}

static const uint8_t *rpage(run *r, uint64_t gpa)
{
    gpa &= SL_PAGE_MASK;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < r->g.snap_size)
        return r->g.snap + (gpa - SL_BASE_ADDRESS);
    return scratch_page(&r->g, gpa);
}

static uint64_t tables(const run *r) { return sl_snapshot_page_table_size(r->on) / SL_PAGE_SIZE; }

/* A page selected by v: of P (mode 0), of scratch (1), a table (2), the
 * next fresh page (3, allocated). 0 when none. */
static uint64_t page_sel(run *r, unsigned mode, uint64_t v)
{
    const sl_layout *l = &r->g.l;
    uint64_t x;
    switch (mode & 3) {
    case 0: return SL_BASE_ADDRESS + v % (r->g.snap_size / SL_PAGE_SIZE) * SL_PAGE_SIZE;
    case 1: return l->scratch_gpa + v % (l->scratch_size / SL_PAGE_SIZE) * SL_PAGE_SIZE;
    case 2: return l->pt_gpa + v % tables(r) * SL_PAGE_SIZE;
    default: return g_alloc(&r->g, &x) ? (wpage(r, x), x) : 0;
    }
}

static void put_entry(run *r, uint64_t entry, uint64_t v)
{
    uint8_t *p = wpage(r, entry);
    if (p)
        sl_put_le(p + (entry & (SL_PAGE_SIZE - 1) & ~(uint64_t)(r->esz - 1)), v, r->esz);
}

static uint64_t get_entry(run *r, uint64_t entry)
{
    const uint8_t *p = rpage(r, entry);
    return p ? sl_get_le(p + (entry & (SL_PAGE_SIZE - 1) & ~(uint64_t)(r->esz - 1)), r->esz) : 0;
}

/* The guest kernel's copy-on-write of the leaf at `entry`: the page it maps
 * copied into a fresh page (one byte changed), the leaf pointed there with
 * the permissions in `pm` (bit 0 writable, bit 1 CoW, bit 2 user, bit 3 NX). */
static uint64_t cow(run *r, uint64_t entry, uint8_t pm, uint8_t poke, uint64_t x)
{
    unsigned arch = r->g.l.arch;
    uint64_t v = get_entry(r, entry);
    const uint8_t *src = rpage(r, sl_pt_entry_addr(arch, v));
    uint8_t *dst;
    if (!x && !g_alloc(&r->g, &x))
        return 0;
    if (!(dst = wpage(r, x)))
        return 0;
    if (src && src != dst)
        memcpy(dst, src, SL_PAGE_SIZE);
    dst[poke * 16u] ^= poke | 1;
    sl_perm p = {.kind = pm & 2 ? SL_MAP_COW : SL_MAP_BASIC, .readable = true, .writable = pm & 1,
                 .user = pm & 4, .executable = !(pm & 8)};
    put_entry(r, entry, sl_pt_encode_leaf(arch, x, p));
    return x;
}

/* One record; false at the end of the input. */
static bool apply(run *r, fuzz_in *s)
{
    if (!s->n)
        return false;
    uint8_t op = fuzz_u8(s), a = fuzz_u8(s);
    const parent *pa = r->pa;
    switch (op % 7) {
    case 0: { /* entry (a: page selector mode, then index) := value (mode in the top bits of op) */
        uint64_t page = page_sel(r, a & 1 ? 1 : 2, fuzz_le(s, 2)), idx = fuzz_le(s, 2), v = fuzz_le(s, 8);
        unsigned vm = op >> 3;
        if (vm & 4)
            v = page_sel(r, vm, v) | (v & (SL_PAGE_SIZE - 1));
        put_entry(r, page + idx % (SL_PAGE_SIZE / r->esz) * r->esz, r->esz == 4 ? v & 0xFFFFFFFFu : v);
        break;
    }
    case 1: { /* copy-on-write of leaf a (then: permissions, byte poked) */
        uint8_t pm = fuzz_u8(s), poke = fuzz_u8(s);
        cow(r, pa->leaf[a % pa->n_leaves], pm, poke, 0);
        break;
    }
    case 2: { /* every leaf that maps what leaf a maps, onto one copy */
        uint64_t target = sl_pt_entry_addr(r->g.l.arch, get_entry(r, pa->leaf[a % pa->n_leaves])), x = 0;
        uint8_t pm = fuzz_u8(s);
        for (unsigned i = 0; i < pa->n_leaves; i++)
            if (sl_pt_entry_addr(r->g.l.arch, get_entry(r, pa->leaf[i])) == target)
                x = cow(r, pa->leaf[i], pm, 1, x);
        break;
    }
    case 3: { /* a whole page copied into scratch */
        const uint8_t *src = rpage(r, page_sel(r, a, fuzz_le(s, 2)));
        uint8_t *dst = wpage(r, page_sel(r, 1, fuzz_le(s, 2)));
        if (src && dst && src != dst)
            memcpy(dst, src, SL_PAGE_SIZE);
        break;
    }
    case 4: { /* a byte of scratch */
        uint8_t *p = wpage(r, page_sel(r, 1, fuzz_le(s, 2)));
        uint16_t off = (uint16_t)fuzz_le(s, 2);
        if (p)
            p[off % SL_PAGE_SIZE] = a;
        break;
    }
    case 5: /* leaf a back as P had it */
        put_entry(r, pa->leaf[a % pa->n_leaves],
                  sl_get_le(sl_snapshot_tables(r->on) + (pa->leaf[a % pa->n_leaves] - r->g.l.pt_gpa), r->esz));
        break;
    default: /* leaf a's accessed and dirty bits cleared */
        put_entry(r, pa->leaf[a % pa->n_leaves], get_entry(r, pa->leaf[a % pa->n_leaves]) & ~(SL_PTE_A | SL_PTE_D));
        break;
    }
    return true;
}

/* ---- the oracle ---- */

static void same(const sl_snapshot *a, const sl_snapshot *b)
{
    uint8_t id[SL_HASH_LEN];
    sl_snapshot_compute_hash(a, id);
    FUZZ_ASSERT(memcmp(id, a->hash, SL_HASH_LEN) == 0);
    FUZZ_ASSERT(memcmp(a->hash, b->hash, SL_HASH_LEN) == 0);
    FUZZ_ASSERT(a->mem_size == b->mem_size && a->visible_size == b->visible_size && a->pt_size == b->pt_size);
    FUZZ_ASSERT(memcmp(a->mem, b->mem, a->mem_size) == 0);
    FUZZ_ASSERT(a->n_roots == b->n_roots && a->cur_root == b->cur_root);
    FUZZ_ASSERT(memcmp(a->roots, b->roots, sizeof a->roots) == 0);
    FUZZ_ASSERT(a->sregs_len == b->sregs_len && memcmp(a->sregs, b->sregs, a->sregs_len) == 0);
    FUZZ_ASSERT(a->has_parent && b->has_parent && memcmp(a->parent, b->parent, SL_HASH_LEN) == 0);
    FUZZ_ASSERT(a->stats.pages_ro == b->stats.pages_ro && a->stats.pages_cow == b->stats.pages_cow);
    FUZZ_ASSERT(a->stats.pages_pt == b->stats.pages_pt && a->stats.leaves == b->stats.leaves);
    FUZZ_ASSERT(a->stats.pages_kept == b->stats.pages_kept);
    FUZZ_ASSERT(a->kept_pages == b->kept_pages);
    FUZZ_ASSERT(!a->kept_pages || memcmp(a->kept, b->kept, (a->kept_pages + 63) / 64 * 8) == 0);
    FUZZ_ASSERT(memcmp(&a->layout, &b->layout, sizeof a->layout) == 0);
    FUZZ_ASSERT(a->next_kind == b->next_kind && a->family == b->family && a->generation == b->generation);
}

/* Takes r both ways; the incremental snapshot, or NULL when declined. */
static sl_snapshot *take(run *r, bool all_dirty)
{
    static const uint8_t sregs[SREGS_LEN] = {9, 8, 7};
    if (all_dirty)
        sl_pageset_add_range(&r->dirty, 0, r->dirty.n_pages);
    sl_guest_state st = {.layout = &r->pa->src.l, .snap_mem = sl_snapshot_visible(r->on),
                         .snap_size = sl_snapshot_memory_size(r->on), .scratch = r->g.scratch, .roots = r->g.roots,
                         .n_roots = r->g.n_roots, .cur_root = sl_snapshot_cur_root(r->on), .next_kind = SL_NEXT_CALL,
                         .generation = 2, .family = 9, .parent = sl_snapshot_hash(r->on), .sregs = sregs,
                         .sregs_len = SREGS_LEN};
    sl_snapshot *inc = NULL, *full = NULL;
    sl_errbuf e;
    int rc = sl_snapinc_take(&inc, &st, r->on, &r->dirty, &e);
    FUZZ_ASSERT(rc == 0 || rc == SL_INC_DECLINED);
    FUZZ_ASSERT(!rc == (inc != NULL));
    int frc = sl_snapshot_from_memory(&full, &st, &e);
    if (!rc) {
        FUZZ_ASSERT(frc == 0);
        same(inc, full);
    }
    if (!frc)
        sl_snapshot_free(full);
    return inc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!parents[0].P) {
        setup(&parents[0], SL_ARCH_AMD64);
        setup(&parents[1], SL_ARCH_I686);
    }
    fuzz_in s = {data, size};
    uint8_t hdr = fuzz_u8(&s);
    const parent *pa = &parents[hdr & 1];
    run r;
    restore(&r, pa, pa->P);
    for (unsigned n = 0; n < 256 && apply(&r, &s); n++)
        ;
    sl_snapshot *inc = take(&r, hdr & 2);
    run_free(&r);
    if (inc && (hdr & 4)) { /* and on from it: one more copy-on-write */
        restore(&r, pa, inc);
        cow(&r, pa->leaf[hdr % pa->n_leaves], 1, hdr, 0);
        sl_snapshot_free(take(&r, false));
        run_free(&r);
    }
    sl_snapshot_free(inc);
    return 0;
}
