/* Differential checking of incremental takes (snapinc.c) against
 * compaction (compact.c) on simulated guests (tests/common/sim.h): random
 * guests, compacted into a parent P, restored to P, changed as a guest
 * kernel would (and in ways it should not), then taken both ways. An
 * incremental take may decline; when it does not, it must be the full
 * take's snapshot in every byte and field. Shared by test_snapinc.c. */
#ifndef SL_TEST_SNAPINC_FUZZ_H
#define SL_TEST_SNAPINC_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pageset.h"
#include "pt.h"
#include "snapinc.h"
#include "snapshot_impl.h"
#include "rng.h"
#include "sim.h"

static const uint8_t fz_sregs[64] = {1, 2, 3};
static const uint8_t fz_grandparent[SL_HASH_LEN] = {9};

/* A guest restored to P. */
typedef struct fz_onp {
    guest r;
    sl_snapshot *P;
    sl_pageset dirty;
    sl_guest_state st;
    uint64_t xs[256]; /* new scratch pages the changes used */
    unsigned n_xs;
} fz_onp;

static sl_perm fz_perm(void)
{
    sl_perm p = {.kind = rnd(4) ? SL_MAP_BASIC : SL_MAP_COW, .readable = true, .writable = rnd(2),
                 .executable = rnd(2), .user = rnd(2)};
    if (p.kind == SL_MAP_COW)
        p.writable = false;
    return p;
}

static uint64_t fz_leaf_span(unsigned arch)
{
    return sl_pt_entry_span(arch, sl_pt_levels(arch) - 2);
}

/* A VA for a run of n pages: near one of a few bases (so that tables are
 * shared and dense), or just below the scratch window (its edge table). */
static uint64_t fz_va(const guest *g, uint64_t n)
{
    uint64_t span = fz_leaf_span(g->l.arch), pg = SL_PAGE_SIZE;
    switch (rnd(4)) {
    case 0:
        if (g->l.scratch_gva > (n + 64) * pg)
            return g->l.scratch_gva - (n + rnd(64)) * pg;
        /* fall through */
    default:
        return 0x10000000ull + rnd(3) * span + rnd(span / pg) * pg;
    }
}

/* Maps the guest's snapshot pages in every space, randomly: runs of pages
 * at random VAs, aliases, every permission; the scratch window mostly;
 * sometimes a leaf table shared with root 0 (a link). */
static bool fz_build(guest *g, unsigned arch, unsigned n_roots, uint64_t scratch, uint64_t pages)
{
    if (!guest_setup(g, arch, pages, scratch, n_roots))
        return false;
    for (uint64_t i = 0; i < g->snap_size / 8; i++) {
        uint64_t v = rnd(0) * 0x9E3779B97F4A7C15ull + i;
        memcpy(g->snap + 8 * i, &v, 8);
    }
    sl_pt_mem m = g_mem(g);
    unsigned leaf_depth = sl_pt_levels(arch) - 1;
    for (unsigned r = 0; r < n_roots; r++) {
        for (unsigned k = 1 + rnd(5); k; k--) {
            uint64_t n = 1 + rnd(24), va = fz_va(g, n);
            sl_perm p = fz_perm();
            bool run = rnd(2);
            uint64_t start = rnd(pages);
            for (uint64_t i = 0; i < n; i++) {
                uint64_t pg = run ? (start + i) % pages : rnd(pages);
                if (sl_pt_map(arch, &m, g->roots[r], va + i * SL_PAGE_SIZE, SL_BASE_ADDRESS + pg * SL_PAGE_SIZE,
                              SL_PAGE_SIZE, rnd(8) ? p : fz_perm()))
                    return false;
            }
        }
        if (rnd(4)) {
            sl_perm rw = {.kind = SL_MAP_BASIC, .readable = true, .writable = true};
            if (sl_pt_map(arch, &m, g->roots[r], g->l.scratch_gva, g->l.scratch_gpa, g->l.scratch_size, rw))
                return false;
        }
        if (r && !rnd(3)) {
            uint64_t t, va = 0x10000000ull + rnd(3) * fz_leaf_span(arch);
            uint64_t at = 0x40000000ull + rnd(4) * fz_leaf_span(arch);
            if (!sl_pt_table_at(arch, &m, g->roots[0], va, leaf_depth, false, &t))
                sl_pt_link(arch, &m, g->roots[r], rnd(2) ? va : at, leaf_depth - 1, t);
        }
    }
    return true;
}

static sl_guest_state fz_state(guest *g, const uint8_t *parent, unsigned cur)
{
    sl_guest_state st = {.layout = &g->l, .snap_mem = g->snap, .snap_size = g->snap_size, .scratch = g->scratch,
                         .roots = g->roots, .n_roots = g->n_roots, .cur_root = cur, .next_kind = SL_NEXT_CALL,
                         .family = 1, .parent = parent, .sregs = fz_sregs, .sregs_len = sizeof fz_sregs,
                         .generation = 2, .stack_top = 0x7000, .next_addr = 0x9000};
    return st;
}

/* o: a guest restored to P (layout l), not yet changed. */
static bool fz_restore(fz_onp *o, const sl_layout *l, sl_snapshot *P)
{
    memset(o, 0, sizeof *o);
    o->r.l = *l;
    o->r.snap = (uint8_t *)sl_snapshot_visible(P);
    o->r.snap_size = sl_snapshot_memory_size(P);
    o->r.scratch = calloc(1, l->scratch_size);
    o->r.n_roots = sl_snapshot_n_roots(P);
    if (!o->r.scratch || o->r.n_roots > SIM_MAX_ROOTS || !sl_pageset_init(&o->dirty, l->scratch_size / SL_PAGE_SIZE))
        return false;
    /* stale bytes in scratch, as a real restore leaves pages nobody dirtied */
    for (uint64_t i = 0; i < l->scratch_size; i += 64)
        o->r.scratch[i] = (uint8_t)rnd(256);
    uint64_t pt = sl_snapshot_page_table_size(P);
    memcpy(o->r.scratch + (l->pt_gpa - l->scratch_gpa), sl_snapshot_tables(P), pt);
    o->r.next_table = l->pt_gpa + pt;
    for (unsigned i = 0; i < o->r.n_roots; i++)
        o->r.roots[i] = sl_snapshot_root(P, i);
    o->P = P;
    o->st = fz_state(&o->r, sl_snapshot_hash(P), sl_snapshot_cur_root(P));
    return true;
}

static void fz_onp_free(fz_onp *o)
{
    free(o->r.scratch);
    sl_pageset_free(&o->dirty);
}

/* ---- changing a restored guest ---- */

static unsigned fz_esz(const fz_onp *o)
{
    return o->r.l.arch == SL_ARCH_I686 ? 4 : 8;
}

static uint8_t *fz_table(fz_onp *o, uint64_t t)
{
    return o->r.scratch + (o->r.l.pt_gpa - o->r.l.scratch_gpa) + t * SL_PAGE_SIZE;
}

static uint64_t fz_get(fz_onp *o, uint64_t t, unsigned i)
{
    uint64_t v = 0;
    memcpy(&v, fz_table(o, t) + i * fz_esz(o), fz_esz(o));
    return v;
}

static void fz_put(fz_onp *o, uint64_t t, unsigned i, uint64_t v)
{
    memcpy(fz_table(o, t) + i * fz_esz(o), &v, fz_esz(o));
    sl_pageset_add_range(&o->dirty, (o->r.l.pt_gpa - o->r.l.scratch_gpa) / SL_PAGE_SIZE + t, 1);
}

/* A fresh scratch page past P's tables, as the guest kernel allocates
 * one (dirty), holding a copy of src with a byte flipped, or random. */
static uint64_t fz_new_page(fz_onp *o, const uint8_t *src)
{
    uint64_t x;
    if (o->n_xs == sizeof o->xs / sizeof o->xs[0] || !g_alloc(&o->r, &x))
        return 0;
    uint8_t *p = g_page(&o->r, x);
    if (src)
        memcpy(p, src, SL_PAGE_SIZE);
    else
        for (unsigned i = 0; i < SL_PAGE_SIZE; i += 8)
            p[i] = (uint8_t)rnd(256);
    p[rnd(SL_PAGE_SIZE)] ^= 1;
    sl_pageset_add_range(&o->dirty, (x - o->r.l.scratch_gpa) / SL_PAGE_SIZE, 1);
    o->xs[o->n_xs++] = x;
    return x;
}

/* Whether table page t of P is a leaf table: some present entry of it is
 * one the walk reported as a 4 KiB leaf (kept by the caller in leafy). */
enum { FZ_COW, FZ_UNMAP, FZ_NEW, FZ_ALIAS, FZ_AD, FZ_JUNK, FZ_REMAP_P, FZ_TO_TABLE, FZ_TO_IO, FZ_PERM,
       FZ_NONLEAF, FZ_STRUCT, FZ_CUR, FZ_RELEASE, FZ_N };

/* Every leaf of P's page o re-pointed: all at one copy, each at its own,
 * or some unmapped (what a kernel does to a page that all its mappings
 * copy on write or drop). */
static bool fz_release(fz_onp *o, const bool *leafy, uint64_t n_pt)
{
    unsigned arch = o->r.l.arch, entries = SL_PAGE_SIZE / fz_esz(o), how = (unsigned)rnd(3);
    uint64_t pg = rnd(o->r.snap_size / SL_PAGE_SIZE), addr = SL_BASE_ADDRESS + pg * SL_PAGE_SIZE, x = 0;
    bool any = false;
    for (uint64_t t = 0; t < n_pt; t++)
        for (unsigned i = 0; leafy[t] && i < entries; i++) {
            uint64_t e = fz_get(o, t, i);
            if (!(e & SL_PTE_P) || sl_pt_entry_addr(arch, e) != addr)
                continue;
            any = true;
            if (how == 2 && rnd(2)) {
                fz_put(o, t, i, 0);
                continue;
            }
            if (!x || how == 1)
                x = fz_new_page(o, o->r.snap + pg * SL_PAGE_SIZE);
            if (!x)
                return false;
            fz_put(o, t, i, sl_pt_encode_leaf(arch, x, fz_perm()));
        }
    return any;
}

/* One random change of kind op to the guest; leafy[t]: table t holds
 * 4 KiB leaves. Returns false when nothing applied. */
static bool fz_change(fz_onp *o, const bool *leafy, uint64_t n_pt, unsigned op)
{
    unsigned arch = o->r.l.arch, entries = SL_PAGE_SIZE / fz_esz(o);
    uint64_t t = rnd(n_pt);
    unsigned i = (unsigned)rnd(entries);
    for (unsigned tries = 0; tries < 64 && (op == FZ_NONLEAF ? leafy[t] : !leafy[t]); tries++)
        t = rnd(n_pt);
    bool want = op == FZ_COW || op == FZ_AD || op == FZ_PERM || op == FZ_NONLEAF || (op == FZ_UNMAP && rnd(4));
    for (unsigned k = 0; k < entries && want && !(fz_get(o, t, i) & SL_PTE_P); k++)
        i = (i + 1) % entries;
    uint64_t e = fz_get(o, t, i);
    bool present = e & SL_PTE_P;
    const uint8_t *old = NULL;
    uint64_t a = sl_pt_entry_addr(arch, e);
    if (present && a >= SL_BASE_ADDRESS && a - SL_BASE_ADDRESS < o->r.snap_size)
        old = o->r.snap + (a - SL_BASE_ADDRESS);
    switch (op) {
    case FZ_COW:
    case FZ_NEW: {
        if ((op == FZ_COW) != present)
            return false;
        uint64_t x = fz_new_page(o, old);
        if (!x)
            return false;
        fz_put(o, t, i, sl_pt_encode_leaf(arch, x, fz_perm()) | (rnd(2) ? SL_PTE_A | SL_PTE_D : 0));
        return true;
    }
    case FZ_UNMAP:
        fz_put(o, t, i, rnd(3) ? 0 : (e & ~SL_PTE_P));
        return present;
    case FZ_ALIAS:
        if (!o->n_xs)
            return false;
        fz_put(o, t, i, sl_pt_encode_leaf(arch, o->xs[rnd(o->n_xs)], fz_perm()));
        return true;
    case FZ_AD:
        if (!present)
            return false;
        fz_put(o, t, i, e ^ (rnd(2) ? SL_PTE_A : SL_PTE_D));
        return true;
    case FZ_JUNK:
        if (present)
            return false;
        fz_put(o, t, i, (rnd(0) & ~SL_PTE_P) & (fz_esz(o) == 4 ? 0xFFFFFFFFull : ~0ull));
        return true;
    case FZ_REMAP_P:
        fz_put(o, t, i, sl_pt_encode_leaf(arch, SL_BASE_ADDRESS + rnd(o->r.snap_size / SL_PAGE_SIZE) * SL_PAGE_SIZE,
                                          fz_perm()));
        return true;
    case FZ_TO_TABLE:
        fz_put(o, t, i, sl_pt_encode_leaf(arch, o->r.l.pt_gpa + rnd(n_pt) * SL_PAGE_SIZE, fz_perm()));
        return true;
    case FZ_TO_IO:
        fz_put(o, t, i, sl_pt_encode_leaf(arch, o->r.l.scratch_gpa + rnd(4) * SL_PAGE_SIZE, fz_perm()));
        return true;
    case FZ_PERM:
        if (!present)
            return false;
        fz_put(o, t, i, sl_pt_encode_leaf(arch, a, fz_perm()) | SL_PTE_A | SL_PTE_D);
        return true;
    case FZ_NONLEAF:
        if (!present)
            return false;
        fz_put(o, t, i, e ^ (rnd(2) ? SL_PTE_A : SL_PTE_RW));
        return true;
    case FZ_STRUCT: {
        sl_pt_mem m = g_mem(&o->r);
        uint64_t va = 0x20000000ull + rnd(64) * fz_leaf_span(arch);
        uint64_t x = fz_new_page(o, NULL);
        if (!x || sl_pt_map(arch, &m, o->r.roots[rnd(o->r.n_roots)], va, x, SL_PAGE_SIZE, fz_perm()))
            return false;
        /* every table page past P's is new, and dirty */
        sl_pageset_add_range(&o->dirty, 0, o->r.l.scratch_size / SL_PAGE_SIZE);
        return true;
    }
    case FZ_RELEASE:
        return fz_release(o, leafy, n_pt);
    case FZ_CUR:
        o->st.cur_root = (unsigned)rnd(o->r.n_roots);
        return true;
    }
    return false;
}

/* Which of P's table pages hold 4 KiB leaves (seen from the leaves' entry
 * GPAs, walking every space with nothing shared skipped). */
typedef struct fz_walk {
    fz_onp *o;
    bool *leafy;
    uint64_t n_pt;
    uint64_t seen[4096];
    unsigned n_seen;
} fz_walk;

static bool fz_lookup(void *ctx, uint64_t t, unsigned *ow, uint64_t *va, unsigned *d)
{
    fz_walk *w = ctx;
    for (unsigned i = 0; i < w->n_seen; i++)
        if (w->seen[i] == t) {
            *ow = 0, *va = 0, *d = 0;
            return true;
        }
    return false;
}

static bool fz_record(void *ctx, uint64_t t, unsigned ow, uint64_t va, unsigned d)
{
    fz_walk *w = ctx;
    (void)ow, (void)va, (void)d;
    if (w->n_seen == sizeof w->seen / sizeof w->seen[0])
        return false;
    w->seen[w->n_seen++] = t;
    return true;
}

static bool fz_leaf(void *arg, const sl_walk_item *it)
{
    fz_walk *w = arg;
    const sl_layout *l = &w->o->r.l;
    if (it->kind == SL_WALK_THIS_SPACE && it->map.size == SL_PAGE_SIZE && it->entry_gpa >= l->pt_gpa) {
        uint64_t t = (it->entry_gpa - l->pt_gpa) / SL_PAGE_SIZE;
        if (t < w->n_pt)
            w->leafy[t] = true;
    }
    return true;
}

static bool fz_find_leaf_tables(fz_onp *o, bool *leafy, uint64_t n_pt)
{
    static fz_walk w;
    memset(&w, 0, sizeof w);
    w.o = o, w.leafy = leafy, w.n_pt = n_pt;
    sl_pt_seen seen = {.ctx = &w, .lookup = fz_lookup, .record = fz_record};
    sl_pt_mem m = g_mem(&o->r);
    return sl_pt_walk_spaces(o->r.l.arch, &m, o->r.roots, o->r.n_roots, &seen, fz_leaf, &w) == SL_PT_OK;
}

/* ---- comparing ---- */

/* Every field compaction sets, and the blob: "" when s is f's snapshot,
 * else what differs. */
static const char *fz_diff(const sl_snapshot *s, const sl_snapshot *f)
{
    uint8_t h[SL_HASH_LEN];
    sl_snapshot_compute_hash(s, h);
    if (memcmp(h, s->hash, SL_HASH_LEN))
        return "stored identity is not the blob's";
    if (memcmp(s->hash, f->hash, SL_HASH_LEN))
        return "identity";
    if (s->mem_size != f->mem_size || s->visible_size != f->visible_size || s->pt_size != f->pt_size)
        return "sizes";
    if (memcmp(s->mem, f->mem, s->mem_size))
        return "blob bytes";
    if (s->n_roots != f->n_roots || memcmp(s->roots, f->roots, sizeof s->roots) || s->cur_root != f->cur_root)
        return "roots";
    const sl_snapshot_stats *a = &s->stats, *b = &f->stats;
    if (a->pages_ro != b->pages_ro || a->pages_cow != b->pages_cow)
        return "stats ro/cow";
    if (a->pages_pt != b->pages_pt || a->leaves != b->leaves || a->pages_kept != b->pages_kept)
        return "stats pt/leaves/kept";
    if (s->kept_pages != f->kept_pages || (!s->kept) != (!f->kept))
        return "kept_pages";
    for (uint64_t i = 0; s->kept && i < s->kept_pages; i++)
        if ((s->kept[i / 64] >> (i % 64) & 1) != (f->kept[i / 64] >> (i % 64) & 1))
            return "kept bits";
    if (s->has_parent != f->has_parent || memcmp(s->parent, f->parent, SL_HASH_LEN))
        return "parent";
    if (s->sregs_len != f->sregs_len || memcmp(s->sregs, f->sregs, s->sregs_len) || s->next_kind != f->next_kind ||
        s->next_addr != f->next_addr || s->stack_top != f->stack_top || s->generation != f->generation ||
        s->family != f->family || s->arch != f->arch || s->n_regions != f->n_regions)
        return "frame";
    if (memcmp(&s->layout, &f->layout, sizeof s->layout))
        return "layout";
    return "";
}

#endif
