/* Incremental takes (snapinc.c) against full compaction, on simulated
 * guests (tests/common/sim.h). A guest of a few hundred pages in two
 * address spaces (read-only, writable and copy-on-write pages, aliases,
 * sub-tables shared between the spaces and within one) is compacted into a
 * parent P, restored, changed the ways a guest can change it, and taken
 * both ways. Whenever the incremental take answers, its snapshot must be
 * compaction's, byte for byte and field for field; it may decline anything
 * else, but what a guest kernel's copy-on-write does (pages copied into
 * scratch and their leaves pointed there, both aliases of a page moved to
 * one copy, nothing at all) must be taken incrementally. Seeds are fixed:
 * every run makes the same guests and the same changes. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "le.h"
#include "pageset.h"
#include "pt.h"
#include "pt_owners.h"
#include "snapinc.h"
#include "snapshot.h"
/* White-box: the kept bitmap and the stats are compared field by field. */
#include "snapshot_impl.h"
#include "t.h"
#include "../common/sim.h"

/* ---------------- deterministic choices ---------------- */

static uint64_t rng;

static void rng_seed(uint64_t s) { rng = s * 0x9E3779B97F4A7C15ull | 1; }

static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }

/* ---------------- the source guest and its parent snapshot P ---------------- */

#define REGION(r) (0x10000000ull + (uint64_t)(r) * 0x400000) /* one leaf table each, on both architectures */
#define SHARED_REGION 5 /* root 0's leaf table there is root 1's too, at the same VA */
#define MOVED_REGION 4  /* ... and root 1's at REGION(9) */
#define TWICE_REGION 3  /* ... and root 0's own again at REGION(10) */
#define CROSS_VA 0x80000000ull /* root 1 links a table one level too high here */
#define KVA 0xFFFF800000000000ull /* amd64: root 1 shares root 0's whole top-level entry here */
#define N_ALIASES 24
#define SREGS_LEN 64

typedef struct family {
    guest src;
    sl_snapshot *P;
} family;

static sl_perm perm_of(unsigned kind, bool w, bool x, bool u)
{
    sl_perm p = {.kind = (uint8_t)kind, .readable = true, .writable = w, .executable = x, .user = u};
    return p;
}

/* Mostly writable, some read-only code, some already copy-on-write. */
static sl_perm random_perm(void)
{
    unsigned k = (unsigned)below(10);
    return perm_of(k == 0 ? SL_MAP_COW : SL_MAP_BASIC, k >= 4, k >= 1 && k < 4, below(2));
}

static void must(int rc, const char *what)
{
    if (rc) {
        printf("  %s failed (%d)\n", what, rc);
        abort();
    }
}

/* The leaf table of root `root` at va (created). */
static uint64_t leaf_table(guest *g, unsigned root, uint64_t va)
{
    sl_pt_mem m = g_mem(g);
    uint64_t t;
    must(sl_pt_table_at(g->l.arch, &m, g->roots[root], va, sl_pt_levels(g->l.arch) - 1, true, &t), "table_at");
    return t;
}

static void share_tables(guest *g)
{
    sl_pt_mem m = g_mem(g);
    unsigned arch = g->l.arch, above_leaf = sl_pt_levels(arch) - 2;
    must(sl_pt_link(arch, &m, g->roots[1], REGION(SHARED_REGION), above_leaf, leaf_table(g, 0, REGION(SHARED_REGION))),
         "link");
    must(sl_pt_link(arch, &m, g->roots[1], REGION(9), above_leaf, leaf_table(g, 0, REGION(MOVED_REGION))), "link");
    must(sl_pt_link(arch, &m, g->roots[0], REGION(10), above_leaf, leaf_table(g, 0, REGION(TWICE_REGION))), "link");
    /* A table linked a level higher than it sits (root 0's leaf table, on
     * i686 its root): the MMU reads its entries there as tables of the next
     * level; compaction copies the link, not what the MMU would see. */
    uint64_t cross = arch == SL_ARCH_I686 ? g->roots[0] : leaf_table(g, 0, REGION(0));
    must(sl_pt_link(arch, &m, g->roots[1], CROSS_VA, arch == SL_ARCH_I686 ? 0 : 1, cross), "link");
    if (arch == SL_ARCH_AMD64) {
        uint64_t pdpt;
        leaf_table(g, 0, KVA);
        must(sl_pt_table_at(arch, &m, g->roots[0], KVA, 1, false, &pdpt), "table_at");
        must(sl_pt_link(arch, &m, g->roots[1], KVA, 0, pdpt), "link");
    }
}

/* A guest with a few hundred random pages, one in ten unmapped, the rest
 * mapped in root 0 (six regions, right below the scratch window, the
 * kernel half on amd64) or root 1 (three private regions), with gaps,
 * N_ALIASES of them mapped a second time anywhere, and the scratch window
 * in both spaces. A leaf table's first and last entries are used. */
static void build_source(guest *g, unsigned arch, uint64_t scratch)
{
    uint64_t pages = 300 + below(100), mapped[400], n_mapped = 0, slot[2][8] = {{0}};
    if (!guest_setup(g, arch, pages, scratch, 2))
        abort();
    for (uint64_t i = 0; i < g->snap_size / 8; i++)
        sl_put64(g->snap + 8 * i, rnd());
    share_tables(g);
    sl_pt_mem m = g_mem(g);
    unsigned n_regions = arch == SL_ARCH_AMD64 ? 8 : 7;
    uint64_t per_table = SL_PAGE_SIZE / (arch == SL_ARCH_I686 ? 4 : 8);
    for (uint64_t i = 0; i < pages + N_ALIASES; i++) {
        if (i < pages && below(10) == 0)
            continue;
        uint64_t gpa = i < pages ? SL_BASE_ADDRESS + i * SL_PAGE_SIZE : mapped[below(n_mapped)];
        unsigned root = below(6) == 0, r = (unsigned)below(root ? 3 : n_regions);
        uint64_t at = r % 2 ? per_table - 1 - slot[root][r] : slot[root][r]; /* odd regions fill from the top */
        uint64_t va = r < 6 ? REGION(r) + at * SL_PAGE_SIZE
                             : r == 6 ? g->l.scratch_gva - (1 + slot[root][r]) * SL_PAGE_SIZE
                                      : KVA + at * SL_PAGE_SIZE;
        slot[root][r] += 1 + (below(4) == 0 ? below(3) : 0);
        must(sl_pt_map(arch, &m, g->roots[root], va, gpa, SL_PAGE_SIZE, random_perm()), "map");
        if (i < pages)
            mapped[n_mapped++] = gpa;
    }
    for (unsigned r = 0; r < 2; r++)
        must(sl_pt_map(arch, &m, g->roots[r], g->l.scratch_gva, g->l.scratch_gpa, g->l.scratch_size,
                       perm_of(SL_MAP_BASIC, true, false, false)),
             "map scratch");
}

static bool family_make(family *f, unsigned arch, uint64_t seed)
{
    static const uint8_t grandparent[SL_HASH_LEN] = {0xA5, 1, 2, 3};
    uint8_t sregs[SREGS_LEN];
    rng_seed(seed);
    build_source(&f->src, arch, seed & 1 ? 4u << 20 : 1u << 20);
    for (unsigned i = 0; i < SREGS_LEN; i++)
        sregs[i] = (uint8_t)rnd();
    guest *g = &f->src;
    sl_guest_state st = {.layout = &g->l, .snap_mem = g->snap, .snap_size = g->snap_size, .scratch = g->scratch,
                         .roots = g->roots, .n_roots = g->n_roots, .cur_root = 1, .stack_top = 0x7000,
                         .next_kind = SL_NEXT_CALL, .next_addr = 0x5000, .generation = 3, .family = 7,
                         .parent = grandparent, .sregs = sregs, .sregs_len = SREGS_LEN};
    sl_errbuf e;
    if (sl_snapshot_from_memory(&f->P, &st, &e)) {
        printf("  compaction of the source guest: %s\n", e.msg);
        return false;
    }
    return true;
}

static void family_free(family *f)
{
    sl_snapshot_free(f->P);
    guest_free(&f->src);
}

/* ---------------- a guest restored to a snapshot ---------------- */

/* A leaf of the restored guest (outside the scratch window): where its
 * entry is, what it maps, how many leaves map that page, and whether this
 * run already moved it. */
typedef struct leafref {
    uint64_t entry, gpa;
    unsigned aliases;
    bool moved;
} leafref;

typedef struct run {
    guest g;
    const sl_layout *l;
    sl_snapshot *on;
    sl_pageset marked; /* pages written on purpose, even with the bytes they had */
    leafref *lv;
    size_t n_lv, cap_lv;
    unsigned esz;
    uint64_t io_used; /* I/O and call-stack pages taken by OP_COW_IO */
    uint64_t generation;
    uint8_t sregs[SREGS_LEN];
    char log[256]; /* the changes made, for a failure's report */
} run;

static void *scratch_page(void *ctx, uint64_t gpa)
{
    guest *g = ctx;
    if (gpa >= g->l.scratch_gpa && gpa - g->l.scratch_gpa < g->l.scratch_size)
        return g->scratch + (gpa - g->l.scratch_gpa);
    return NULL;
}

/* Tables live in scratch only: nothing here can write into a blob. */
static sl_pt_mem run_mem(run *r)
{
    sl_pt_mem m = {.ctx = &r->g, .page = scratch_page, .alloc = g_alloc};
    return m;
}

static bool in_window(const sl_layout *l, uint64_t va) { return va - l->scratch_gva < l->scratch_size; }

static bool collect_leaf(void *arg, const sl_walk_item *it)
{
    run *r = arg;
    if (it->kind != SL_WALK_THIS_SPACE || in_window(r->l, it->map.gva))
        return true;
    if (r->n_lv == r->cap_lv) {
        r->cap_lv = r->cap_lv ? 2 * r->cap_lv : 512;
        if (!(r->lv = realloc(r->lv, r->cap_lv * sizeof *r->lv)))
            abort();
    }
    r->lv[r->n_lv++] = (leafref){.entry = it->entry_gpa, .gpa = it->map.gpa};
    return true;
}

static void collect_leaves(run *r)
{
    sl_pt_owners seen;
    sl_pt_owners_init(&seen, 0);
    sl_pt_seen s = sl_pt_owners_seen(&seen);
    sl_pt_mem m = run_mem(r);
    must(sl_pt_walk_spaces(r->l->arch, &m, r->g.roots, r->g.n_roots, &s, collect_leaf, r), "walk");
    sl_pt_owners_free(&seen);
    for (size_t i = 0; i < r->n_lv; i++)
        for (size_t j = 0; j < r->n_lv; j++)
            r->lv[i].aliases += r->lv[j].gpa == r->lv[i].gpa;
}

static void run_restore(run *r, const sl_layout *l, sl_snapshot *s, uint64_t generation)
{
    memset(r, 0, sizeof *r);
    if (!guest_restore(&r->g, l, s) || !sl_pageset_init(&r->marked, l->scratch_size / SL_PAGE_SIZE))
        abort();
    r->l = l;
    r->on = s;
    r->esz = l->arch == SL_ARCH_I686 ? 4 : 8;
    r->generation = generation;
    for (unsigned i = 0; i < SREGS_LEN; i++)
        r->sregs[i] = (uint8_t)rnd();
    collect_leaves(r);
}

static void run_free(run *r)
{
    guest_free(&r->g);
    free(r->lv);
    sl_pageset_free(&r->marked);
}

static sl_guest_state run_state(const run *r)
{
    const sl_snapshot *s = r->on;
    sl_guest_state st = {.layout = r->l, .snap_mem = sl_snapshot_visible(s), .snap_size = sl_snapshot_memory_size(s),
                         .scratch = r->g.scratch, .roots = r->g.roots, .n_roots = r->g.n_roots,
                         .cur_root = sl_snapshot_cur_root(s), .stack_top = 0x7000 + r->generation,
                         .next_kind = SL_NEXT_CALL, .next_addr = 0x5000 + r->generation,
                         .generation = r->generation, .family = 7, .parent = sl_snapshot_hash(s),
                         .sregs = r->sregs, .sregs_len = SREGS_LEN};
    return st;
}

/* Scratch page p as restore left it: the snapshot's tables, zero elsewhere. */
static const uint8_t *as_restored(const run *r, uint64_t p)
{
    static const uint8_t zero[SL_PAGE_SIZE];
    uint64_t t = p - (r->l->pt_gpa - r->l->scratch_gpa) / SL_PAGE_SIZE;
    return t < sl_snapshot_page_table_size(r->on) / SL_PAGE_SIZE ? sl_snapshot_tables(r->on) + t * SL_PAGE_SIZE
                                                                  : zero;
}

/* The hypervisor's dirty log: every page whose bytes changed, and every
 * page written on purpose. */
static void dirty_set(const run *r, sl_pageset *d)
{
    uint64_t n = r->l->scratch_size / SL_PAGE_SIZE;
    if (!sl_pageset_init(d, n))
        abort();
    for (uint64_t p = 0; p < n; p++)
        if (sl_pageset_has(&r->marked, p) ||
            memcmp(r->g.scratch + p * SL_PAGE_SIZE, as_restored(r, p), SL_PAGE_SIZE) != 0)
            sl_pageset_add_range(d, p, 1);
}

static void mark(run *r, uint64_t gpa) { sl_pageset_add_range(&r->marked, (gpa - r->l->scratch_gpa) / SL_PAGE_SIZE, 1); }

static uint64_t get_entry(run *r, uint64_t gpa) { return sl_get_le(scratch_page(&r->g, gpa), r->esz); }

static void set_entry(run *r, uint64_t gpa, uint64_t v)
{
    sl_put_le(scratch_page(&r->g, gpa), v, r->esz);
    mark(r, gpa);
}

static const uint8_t *page_at(run *r, uint64_t gpa)
{
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < r->g.snap_size)
        return r->g.snap + (gpa - SL_BASE_ADDRESS);
    return scratch_page(&r->g, gpa);
}

/* A fresh scratch page holding a copy of the page at `from` with one byte
 * changed (random bytes when from is 0); 0 when scratch is full. */
static uint64_t fresh_copy(run *r, uint64_t from)
{
    uint64_t x;
    if (!g_alloc(&r->g, &x))
        return 0;
    uint8_t *d = scratch_page(&r->g, x);
    const uint8_t *s = from ? page_at(r, from) : NULL;
    for (unsigned i = 0; i < SL_PAGE_SIZE; i += 8)
        sl_put64(d + i, s ? sl_get64(s + i) : rnd());
    d[below(SL_PAGE_SIZE)] ^= (uint8_t)(1 + below(255));
    mark(r, x);
    return x;
}

/* ---------------- what a guest does ---------------- */

enum {
    /* what a guest kernel's copy-on-write does: taken incrementally */
    OP_COW,         /* a page mapped once copied, its leaf pointed at the copy */
    OP_COW_ALIASES, /* a page mapped at several places copied once, every leaf pointed at the copy */
    OP_WRITE,       /* data written into a page already copied, or into the I/O buffers */
    OP_AD,          /* accessed and dirty bits cleared in a leaf */
    OP_WINDOW,      /* a leaf of the scratch window changed (compaction maps the window afresh) */
    OP_COW_IO,      /* a page copied into the I/O buffers or the call stack, its leaf pointed there */
    OP_REVERT,      /* a leaf or a whole table changed and changed back */
    N_BENIGN,
    /* anything else: either way, as long as an answer is compaction's */
    OP_COW_ONE_ALIAS = N_BENIGN, /* one alias of a page copied, the other left */
    OP_MERGE,       /* two pages' leaves pointed at one copy */
    OP_UNMAP,
    OP_MAP,         /* a new page mapped at a random address of a region (or one remapped) */
    OP_PERM,        /* a leaf's permissions changed in place */
    OP_OTHER_PAGE,  /* a leaf pointed at another page of the parent */
    OP_AT_TABLE,    /* a leaf pointed at a page-table page */
    OP_GARBAGE,     /* random entries (or a whole page) written into a table */
    OP_NEW_TABLE,   /* a page mapped in a new region: new tables linked in */
    N_OPS
};

enum { ANY_LEAF, ALONE, ALONE_UNMOVED }; /* alone: the only leaf that maps its page */

static leafref *pick_leaf(run *r, unsigned which)
{
    for (unsigned tries = 0; r->n_lv && tries < 256; tries++) {
        leafref *lf = &r->lv[below(r->n_lv)];
        if (which == ANY_LEAF || (lf->aliases == 1 && (which == ALONE || !lf->moved)))
            return lf;
    }
    return NULL;
}

/* Points lf at x, as writable as the guest's copy-on-write makes it, or
 * now and then read-only or still copy-on-write, or with the user or
 * execute permission changed too; accessed and dirty as the CPU leaves
 * them, or not. */
static void point(run *r, leafref *lf, uint64_t x)
{
    unsigned arch = r->l->arch, k = (unsigned)below(10);
    sl_perm p = sl_pt_decode_leaf(arch, get_entry(r, lf->entry));
    if (p.kind == SL_MAP_UNMAPPED)
        p = random_perm();
    p.kind = k == 0 ? SL_MAP_COW : SL_MAP_BASIC;
    p.writable = k >= 2;
    p.user ^= below(8) == 0;
    p.executable ^= below(8) == 0;
    set_entry(r, lf->entry, sl_pt_encode_leaf(arch, x, p) | (below(2) ? SL_PTE_A | SL_PTE_D : 0));
    lf->moved = true;
}

/* What lf maps now (its parent page when it no longer maps anything). */
static uint64_t now_at(run *r, const leafref *lf)
{
    uint64_t v = get_entry(r, lf->entry);
    return v & SL_PTE_P ? sl_pt_entry_addr(r->l->arch, v) : lf->gpa;
}

/* Now and then a page copied before is copied again (the first copy left
 * behind, unmapped). */
static bool op_cow(run *r)
{
    leafref *lf = pick_leaf(r, below(4) ? ALONE_UNMOVED : ALONE);
    uint64_t x = lf ? fresh_copy(r, now_at(r, lf)) : 0;
    if (x)
        point(r, lf, x);
    return x;
}

/* Each I/O or call-stack page once: two leaves on one would merge pages. */
static bool op_cow_io(run *r)
{
    leafref *lf = pick_leaf(r, ALONE_UNMOVED);
    uint64_t x = r->l->scratch_gpa + r->io_used * SL_PAGE_SIZE;
    if (!lf || x >= r->l->pt_gpa)
        return false;
    r->io_used++;
    memcpy(scratch_page(&r->g, x), page_at(r, lf->gpa), SL_PAGE_SIZE);
    mark(r, x);
    point(r, lf, x);
    return true;
}

/* Every leaf of an aliased page (all == false: only one of them). */
static bool op_cow_aliases(run *r, bool all)
{
    size_t start = below(r->n_lv + 1);
    for (size_t k = 0; k < r->n_lv; k++) {
        leafref *lf = &r->lv[(start + k) % r->n_lv];
        uint64_t gpa = lf->gpa, x;
        if (lf->aliases < 2 || lf->moved || !(x = fresh_copy(r, gpa)))
            continue;
        for (size_t j = 0; j < r->n_lv; j++)
            if (r->lv[j].gpa == gpa && (all || &r->lv[j] == lf))
                point(r, &r->lv[j], x);
        return true;
    }
    return false;
}

/* A page outside the parent's tables that the guest may write as data. */
static bool op_write(run *r)
{
    leafref *lf = pick_leaf(r, ANY_LEAF);
    uint64_t gpa = r->l->scratch_gpa + below(r->l->input_size / SL_PAGE_SIZE) * SL_PAGE_SIZE;
    if (lf && lf->moved) {
        uint64_t x = sl_pt_entry_addr(r->l->arch, get_entry(r, lf->entry));
        if (x >= r->l->pt_gpa + sl_snapshot_page_table_size(r->on) && scratch_page(&r->g, x))
            gpa = x;
    }
    uint8_t *p = scratch_page(&r->g, gpa);
    p[below(SL_PAGE_SIZE)] ^= (uint8_t)(1 + below(255));
    mark(r, gpa);
    return true;
}

static bool op_ad(run *r)
{
    leafref *lf = pick_leaf(r, ANY_LEAF);
    uint64_t v = lf ? get_entry(r, lf->entry) : 0;
    if (v & SL_PTE_P)
        set_entry(r, lf->entry, v & ~(below(2) ? SL_PTE_A : SL_PTE_A | SL_PTE_D));
    return v & SL_PTE_P;
}

static uint64_t random_parent_page(run *r) { return SL_BASE_ADDRESS + below(r->g.snap_size / SL_PAGE_SIZE) * SL_PAGE_SIZE; }

static uint64_t random_scratch_page(run *r) { return r->l->scratch_gpa + below(r->l->scratch_size / SL_PAGE_SIZE) * SL_PAGE_SIZE; }

static uint64_t random_table_page(run *r)
{
    return r->l->pt_gpa + below(sl_snapshot_page_table_size(r->on) / SL_PAGE_SIZE) * SL_PAGE_SIZE;
}

static bool op_window(run *r)
{
    sl_pt_mem m = run_mem(r);
    uint64_t va = r->l->scratch_gva + below(r->l->scratch_size / SL_PAGE_SIZE) * SL_PAGE_SIZE, entry;
    if (!sl_pt_lookup(r->l->arch, &m, r->g.roots[below(r->g.n_roots)], va, NULL, &entry))
        return false;
    unsigned k = (unsigned)below(3);
    uint64_t to = k == 0 ? random_parent_page(r) : k == 1 ? random_scratch_page(r) : 0;
    set_entry(r, entry, to ? sl_pt_encode_leaf(r->l->arch, to, random_perm()) : 0);
    return true;
}

static bool garbage_into(run *r, uint64_t t);

/* Written, and written back: dirty, and the same bytes. */
static bool op_revert(run *r)
{
    uint8_t was[SL_PAGE_SIZE];
    uint64_t t = random_table_page(r);
    memcpy(was, scratch_page(&r->g, t), SL_PAGE_SIZE);
    garbage_into(r, t);
    memcpy(scratch_page(&r->g, t), was, SL_PAGE_SIZE);
    return true;
}

static bool op_merge(run *r)
{
    leafref *a = pick_leaf(r, ALONE_UNMOVED), *b = pick_leaf(r, ALONE_UNMOVED);
    uint64_t x = a && b && a->gpa != b->gpa ? fresh_copy(r, a->gpa) : 0;
    if (x) {
        point(r, a, x);
        point(r, b, x);
    }
    return x;
}

/* A leaf rewritten to map `to` with random permissions (0: unmapped;
 * ~0: what it maps now). */
static bool repoint(run *r, uint64_t to)
{
    leafref *lf = pick_leaf(r, ANY_LEAF);
    if (!lf)
        return false;
    if (to == ~0ull)
        to = sl_pt_entry_addr(r->l->arch, get_entry(r, lf->entry));
    set_entry(r, lf->entry, to ? sl_pt_encode_leaf(r->l->arch, to, random_perm()) : 0);
    return true;
}

static bool op_map(run *r, uint64_t region)
{
    unsigned arch = r->l->arch;
    uint64_t per_table = SL_PAGE_SIZE / r->esz, x = fresh_copy(r, 0);
    uint64_t va = REGION(region) + below(per_table) * SL_PAGE_SIZE;
    sl_pt_mem m = run_mem(r);
    return x && sl_pt_map(arch, &m, r->g.roots[below(r->g.n_roots)], va, x, SL_PAGE_SIZE, random_perm()) == 0;
}

/* A value a hostile guest might put in a table: present or not, pointing
 * at a parent page, a scratch page or a table, large or not. */
static uint64_t garbage_entry(run *r)
{
    uint64_t v;
    switch (below(5)) {
    case 0: v = rnd(); break;
    case 1: v = random_parent_page(r) | (rnd() & 0xFFF); break;
    case 2: v = random_scratch_page(r) | (rnd() & 0xFFF); break;
    case 3: v = random_table_page(r) | SL_PTE_P | SL_PTE_RW | SL_PTE_US; break;
    default: v = random_parent_page(r) | SL_PTE_P | SL_PTE_PS | (rnd() & 0x1E); break;
    }
    return r->esz == 4 ? v & 0xFFFFFFFFu : v;
}

/* Random entries of table t, or all of them, garbage (garbage_entry). */
static bool garbage_into(run *r, uint64_t t)
{
    unsigned n = below(4) == 0 ? SL_PAGE_SIZE / r->esz : 1 + (unsigned)below(4);
    bool whole = n == SL_PAGE_SIZE / r->esz;
    for (unsigned i = 0; i < n; i++)
        set_entry(r, t + (whole ? i : below(SL_PAGE_SIZE / r->esz)) * r->esz, garbage_entry(r));
    return true;
}

static bool apply(run *r, unsigned op)
{
    switch (op) {
    case OP_COW: return op_cow(r);
    case OP_COW_ALIASES: return op_cow_aliases(r, true);
    case OP_WRITE: return op_write(r);
    case OP_AD: return op_ad(r);
    case OP_WINDOW: return op_window(r);
    case OP_COW_IO: return op_cow_io(r);
    case OP_REVERT: return op_revert(r);
    case OP_COW_ONE_ALIAS: return op_cow_aliases(r, false);
    case OP_MERGE: return op_merge(r);
    case OP_UNMAP: return repoint(r, 0);
    case OP_MAP: return op_map(r, below(6));
    case OP_PERM: return repoint(r, ~0ull);
    case OP_OTHER_PAGE: return repoint(r, random_parent_page(r));
    case OP_AT_TABLE: return repoint(r, random_table_page(r));
    case OP_GARBAGE: return garbage_into(r, random_table_page(r));
    default: return op_map(r, 12 + below(4));
    }
}

/* n changes drawn from ops[0..n_ops), logged. */
static void change(run *r, const unsigned *ops, unsigned n_ops, unsigned n)
{
    size_t len = strlen(r->log);
    for (unsigned i = 0; i < n; i++) {
        unsigned op = ops[below(n_ops)];
        bool done = apply(r, op);
        if (len + 8 < sizeof r->log)
            len += (size_t)snprintf(r->log + len, sizeof r->log - len, " %u%s", op, done ? "" : "-");
    }
}

/* ---------------- the oracle ---------------- */

static char context[64]; /* architecture and seed, for a failure's report */

static void check_same_bytes(const sl_snapshot *a, const sl_snapshot *b)
{
    CHECK(memcmp(a->hash, b->hash, SL_HASH_LEN) == 0);
    CHECK_EQ(a->mem_size, b->mem_size);
    CHECK_EQ(a->visible_size, b->visible_size);
    CHECK_EQ(a->pt_size, b->pt_size);
    if (a->mem_size != b->mem_size)
        return;
    for (uint64_t pg = 0; pg < a->mem_size / SL_PAGE_SIZE; pg++)
        if (memcmp(a->mem + pg * SL_PAGE_SIZE, b->mem + pg * SL_PAGE_SIZE, SL_PAGE_SIZE) != 0) {
            printf("  blob page %llu differs (%llu visible pages)\n", (unsigned long long)pg,
                   (unsigned long long)(a->visible_size / SL_PAGE_SIZE));
            t_failed_now = 1;
            break;
        }
}

/* a, an incremental take, is b, compaction's snapshot of the same guest,
 * in everything but how many pages it hashed. */
static void check_same(const sl_snapshot *a, const sl_snapshot *b)
{
    check_same_bytes(a, b);
    CHECK_EQ(a->arch, b->arch);
    CHECK(memcmp(&a->layout, &b->layout, sizeof a->layout) == 0);
    CHECK_EQ(a->n_roots, b->n_roots);
    CHECK(memcmp(a->roots, b->roots, sizeof a->roots) == 0);
    CHECK_EQ(a->cur_root, b->cur_root);
    CHECK_EQ(a->n_regions, b->n_regions);
    CHECK(a->has_parent && b->has_parent && memcmp(a->parent, b->parent, SL_HASH_LEN) == 0);
    CHECK(a->sregs_len == b->sregs_len && memcmp(a->sregs, b->sregs, a->sregs_len) == 0);
    CHECK_EQ(a->next_kind, b->next_kind);
    CHECK_EQ(a->next_addr, b->next_addr);
    CHECK_EQ(a->stack_top, b->stack_top);
    CHECK_EQ(a->generation, b->generation);
    CHECK_EQ(a->family, b->family);
    CHECK_EQ(a->stats.pages_ro, b->stats.pages_ro);
    CHECK_EQ(a->stats.pages_cow, b->stats.pages_cow);
    CHECK_EQ(a->stats.pages_pt, b->stats.pages_pt);
    CHECK_EQ(a->stats.leaves, b->stats.leaves);
    CHECK_EQ(a->stats.pages_kept, b->stats.pages_kept);
    CHECK_EQ(a->kept_pages, b->kept_pages);
    if (a->kept_pages == b->kept_pages && a->kept_pages)
        CHECK(a->kept && b->kept && memcmp(a->kept, b->kept, (a->kept_pages + 63) / 64 * 8) == 0);
    /* The identity is the blob's: recomputed from scratch, not from the tree it was updated in. */
    uint8_t id[SL_HASH_LEN];
    sl_snapshot_compute_hash(a, id);
    CHECK(memcmp(id, a->hash, SL_HASH_LEN) == 0);
    CHECK(a->stats.pages_hashed <= a->mem_size / SL_PAGE_SIZE);
}

typedef struct tally {
    unsigned inc, declined;
} tally;

/* Takes r incrementally, with the dirty log and with every page dirty
 * (over-reporting must change nothing), and by compaction, and checks each
 * answer against compaction's. Returns the incremental snapshot (NULL when
 * declined); *full gets compaction's (NULL when it failed). */
static sl_snapshot *take_both(run *r, sl_snapshot **full, tally *t)
{
    int failed_before = t_failed_now;
    t_failed_now = 0;
    sl_guest_state st = run_state(r);
    sl_pageset dirty, all;
    dirty_set(r, &dirty);
    if (!sl_pageset_init(&all, dirty.n_pages))
        abort();
    sl_pageset_add_range(&all, 0, all.n_pages);
    sl_snapshot *inc = NULL, *over = NULL;
    sl_errbuf e, fe;
    int rc = sl_snapinc_take(&inc, &st, r->on, &dirty, &e);
    int orc = sl_snapinc_take(&over, &st, r->on, &all, &e);
    int frc = sl_snapshot_from_memory(full, &st, &fe);
    CHECK(rc == 0 || rc == SL_INC_DECLINED);
    CHECK_EQ(orc, rc);
    CHECK(rc ? !inc : inc != NULL);
    if (frc)
        *full = NULL; /* hostile tables: a root made a sub-table of another, say */
    if (!rc)
        CHECK(frc == 0); /* an incremental take where compaction fails */
    if (!rc && !frc)
        check_same(inc, *full);
    if (!orc && !frc)
        check_same(over, *full);
    sl_snapshot_free(over);
    sl_pageset_free(&dirty);
    sl_pageset_free(&all);
    if (t_failed_now)
        printf("  %s, %s; changes:%s\n", context, rc ? "declined" : "incremental", r->log);
    t_failed_now |= failed_before;
    t->inc += !rc;
    t->declined += rc != 0;
    return inc;
}

/* ---------------- the tests ---------------- */

enum { SC_NONE, SC_COW, SC_ALIASES, SC_KERNEL, SC_ANY, SC_HOSTILE, N_SC };
static const char *const sc_name[N_SC] = {"no change", "copy-on-write", "aliases copied together",
                                          "kernel-like mix", "any mix", "hostile"};

static void scenario(run *r, unsigned sc)
{
    static const unsigned cow[] = {OP_COW}, aliases[] = {OP_COW_ALIASES, OP_COW},
                          kernel[] = {OP_COW, OP_COW_ALIASES, OP_WRITE, OP_AD, OP_WINDOW, OP_COW_IO, OP_REVERT};
    unsigned any[N_OPS], hostile[N_OPS - N_BENIGN];
    for (unsigned i = 0; i < N_OPS; i++)
        any[i] = i;
    for (unsigned i = N_BENIGN; i < N_OPS; i++)
        hostile[i - N_BENIGN] = i;
    switch (sc) {
    case SC_NONE: break;
    case SC_COW: change(r, cow, 1, 1 + (unsigned)below(8)); break;
    case SC_ALIASES:
        change(r, aliases, 1, 1 + (unsigned)below(3));
        change(r, aliases, 2, (unsigned)below(4));
        break;
    case SC_KERNEL: change(r, kernel, N_BENIGN, 1 + (unsigned)below(12)); break;
    case SC_ANY: change(r, any, N_OPS, 1 + (unsigned)below(8)); break;
    default: change(r, hostile, N_OPS - N_BENIGN, 1 + (unsigned)below(3)); break;
    }
}

static const char *arch_name(unsigned arch) { return arch == SL_ARCH_I686 ? "i686" : "amd64"; }

/* The commonest take: the guest wrote data only, no leaf changed. It is P
 * again and hashes nothing; the take has no change at all to sort, place
 * or copy (empty lists), which it must handle as such. */
static void check_unchanged(unsigned arch)
{
    static const unsigned data_only[] = {OP_WRITE};
    family f;
    tally t = {0};
    REQUIRE(family_make(&f, arch, 81));
    run r;
    run_restore(&r, &f.src.l, f.P, 4);
    snprintf(context, sizeof context, "%s, data written only", arch_name(arch));
    change(&r, data_only, 1, 3);
    sl_snapshot *full, *inc = take_both(&r, &full, &t);
    CHECK(inc != NULL);
    if (inc) {
        CHECK(memcmp(inc->hash, f.P->hash, SL_HASH_LEN) == 0);
        CHECK_EQ(inc->stats.pages_hashed, 0);
    }
    sl_snapshot_free(inc);
    sl_snapshot_free(full);
    run_free(&r);
    family_free(&f);
}

static void test_unchanged(void)
{
    check_unchanged(SL_ARCH_AMD64);
    check_unchanged(SL_ARCH_I686);
}

#define SEEDS 6
#define REPS 12

/* Every kind of change, from a parent, SEEDS guests x REPS each. */
static void check_scenarios(unsigned arch)
{
    tally t[N_SC] = {{0}};
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        family f;
        REQUIRE(family_make(&f, arch, seed));
        for (unsigned sc = 0; sc < N_SC; sc++)
            for (unsigned rep = 0; rep < REPS; rep++) {
                run r;
                run_restore(&r, &f.src.l, f.P, 4);
                snprintf(context, sizeof context, "%s seed %llu, %s", arch_name(arch), (unsigned long long)seed,
                         sc_name[sc]);
                scenario(&r, sc);
                sl_snapshot *full, *inc = take_both(&r, &full, &t[sc]);
                if (sc == SC_NONE && inc) { /* P itself, built from nothing */
                    CHECK(memcmp(inc->hash, f.P->hash, SL_HASH_LEN) == 0);
                    CHECK_EQ(inc->stats.pages_hashed, 0);
                }
                sl_snapshot_free(inc);
                sl_snapshot_free(full);
                run_free(&r);
            }
        family_free(&f);
    }
    for (unsigned sc = 0; sc < N_SC; sc++)
        printf("  %s %s: %u incremental, %u declined\n", arch_name(arch), sc_name[sc], t[sc].inc, t[sc].declined);
    for (unsigned sc = 0; sc < SC_ANY; sc++)
        CHECK_EQ(t[sc].declined, 0);
    CHECK(t[SC_ANY].inc > 0 && t[SC_ANY].declined > 0);
    CHECK(t[SC_HOSTILE].declined > 0);
}

static void test_scenarios_amd64(void) { check_scenarios(SL_ARCH_AMD64); }
static void test_scenarios_i686(void) { check_scenarios(SL_ARCH_I686); }

#define GENERATIONS 8

/* Each generation restored to the last one's snapshot (the incremental one
 * when there is one) and changed again: a kernel-like mix, and every
 * fourth generation anything. */
static void check_chains(unsigned arch)
{
    tally first = {0}, deep = {0}; /* deep: takes on a parent that was itself taken incrementally */
    for (uint64_t seed = 31; seed < 35; seed++) {
        family f;
        REQUIRE(family_make(&f, arch, seed));
        sl_snapshot *cur = sl_snapshot_ref(f.P);
        bool cur_inc = false;
        for (unsigned gen = 0; gen < GENERATIONS; gen++) {
            run r;
            run_restore(&r, &f.src.l, cur, 4 + gen);
            unsigned sc = gen % 4 == 3 ? SC_ANY : SC_KERNEL;
            snprintf(context, sizeof context, "%s seed %llu, generation %u, %s", arch_name(arch),
                     (unsigned long long)seed, gen, sc_name[sc]);
            scenario(&r, sc);
            sl_snapshot *full, *inc = take_both(&r, &full, cur_inc ? &deep : &first);
            if (sc == SC_KERNEL)
                CHECK(inc != NULL);
            run_free(&r);
            if (!inc && !full)
                continue; /* the change broke the guest: this generation again */
            sl_snapshot_free(cur);
            cur = inc ? inc : full;
            cur_inc = inc != NULL;
            if (inc)
                sl_snapshot_free(full);
        }
        sl_snapshot_free(cur);
        family_free(&f);
    }
    printf("  %s chains: on a compacted parent %u incremental, %u declined; on an incremental one %u, %u\n",
           arch_name(arch), first.inc, first.declined, deep.inc, deep.declined);
    CHECK(deep.inc >= 4 * (GENERATIONS / 2));
}

static void test_chains_amd64(void) { check_chains(SL_ARCH_AMD64); }
static void test_chains_i686(void) { check_chains(SL_ARCH_I686); }

/* Two sandboxes on one parent, taken apart and again; then the parent's
 * last reference dropped while its children live and are parents in turn. */
static void check_twice(unsigned arch)
{
    family f;
    tally t = {0};
    REQUIRE(family_make(&f, arch, 41));
    snprintf(context, sizeof context, "%s, two takes on one parent", arch_name(arch));
    run a, b;
    run_restore(&a, &f.src.l, f.P, 4);
    run_restore(&b, &f.src.l, f.P, 4);
    scenario(&a, SC_COW);
    scenario(&b, SC_KERNEL);
    sl_snapshot *fa, *fb, *fa2, *sa = take_both(&a, &fa, &t), *sb = take_both(&b, &fb, &t);
    sl_snapshot *sa2 = take_both(&a, &fa2, &t);
    CHECK(sa && sb && sa2);
    if (sa && sb && sa2) {
        CHECK(memcmp(sa->hash, sa2->hash, SL_HASH_LEN) == 0);
        CHECK(memcmp(sa->hash, sb->hash, SL_HASH_LEN) != 0);
    }
    sl_snapshot_free(fa);
    sl_snapshot_free(fb);
    sl_snapshot_free(fa2);
    sl_snapshot_free(sa2);
    run_free(&a);
    run_free(&b);
    sl_snapshot_free(f.P);
    f.P = NULL;
    sl_snapshot *kids[2] = {sa, sb};
    for (unsigned i = 0; i < 2 && sa && sb; i++) {
        run c;
        run_restore(&c, &f.src.l, kids[i], 5);
        scenario(&c, SC_COW);
        sl_snapshot *fc, *sc = take_both(&c, &fc, &t);
        CHECK(sc != NULL);
        sl_snapshot_free(sc);
        sl_snapshot_free(fc);
        run_free(&c);
    }
    sl_snapshot_free(sa);
    sl_snapshot_free(sb);
    family_free(&f);
}

static void test_twice_amd64(void) { check_twice(SL_ARCH_AMD64); }
static void test_twice_i686(void) { check_twice(SL_ARCH_I686); }

#define THREADS 4

typedef struct racer {
    run r;
    sl_pageset dirty;
    sl_snapshot *inc;
    int rc;
} racer;

static void *race(void *arg)
{
    racer *x = arg;
    sl_guest_state st = run_state(&x->r);
    sl_errbuf e;
    x->rc = sl_snapinc_take(&x->inc, &st, x->r.on, &x->dirty, &e);
    return NULL;
}

/* Sandboxes on one parent taken at once, the first take on it among them:
 * one of them learns the parent, all of them get compaction's answer. */
static void check_threads(unsigned arch)
{
    family f;
    racer x[THREADS];
    pthread_t th[THREADS];
    REQUIRE(family_make(&f, arch, 91));
    snprintf(context, sizeof context, "%s, takes at once", arch_name(arch));
    for (unsigned i = 0; i < THREADS; i++) {
        run_restore(&x[i].r, &f.src.l, f.P, 4);
        scenario(&x[i].r, SC_KERNEL);
        dirty_set(&x[i].r, &x[i].dirty);
    }
    for (unsigned i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, race, &x[i]) == 0);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (unsigned i = 0; i < THREADS; i++) {
        sl_guest_state st = run_state(&x[i].r);
        sl_snapshot *full;
        sl_errbuf e;
        CHECK_EQ(x[i].rc, 0);
        REQUIRE(sl_snapshot_from_memory(&full, &st, &e) == 0);
        if (!x[i].rc)
            check_same(x[i].inc, full);
        sl_snapshot_free(full);
        sl_snapshot_free(x[i].inc);
        sl_pageset_free(&x[i].dirty);
        run_free(&x[i].r);
    }
    family_free(&f);
}

static void test_threads(void)
{
    check_threads(SL_ARCH_AMD64);
    check_threads(SL_ARCH_I686);
}

static int take_with(run *r, const sl_guest_state *st)
{
    sl_pageset d;
    dirty_set(r, &d);
    sl_snapshot *s = NULL;
    sl_errbuf e;
    int rc = sl_snapinc_take(&s, st, r->on, &d, &e);
    CHECK(rc ? s == NULL : s != NULL);
    sl_snapshot_free(s);
    sl_pageset_free(&d);
    return rc;
}

/* A guest that does not run on P as P left it (another parent, spaces,
 * layout or memory) is declined, whatever it changed. Running in another
 * of P's spaces is not: only the snapshot's cur_root differs. */
static void check_frames(unsigned arch)
{
    family f;
    REQUIRE(family_make(&f, arch, 51));
    run r;
    run_restore(&r, &f.src.l, f.P, 4);
    scenario(&r, SC_COW);
    const sl_guest_state st = run_state(&r);
    CHECK_EQ(take_with(&r, &st), 0);
    uint8_t other[SL_HASH_LEN] = {0}, *copy = malloc(st.snap_size);
    REQUIRE(copy);
    memcpy(copy, st.snap_mem, st.snap_size);
    sl_extra_region extra = {.gpa = SL_BASE_ADDRESS + st.snap_size + 16 * SL_PAGE_SIZE, .host = copy,
                             .size = SL_PAGE_SIZE};
    sl_layout moved = *st.layout;
    moved.stack_top += SL_PAGE_SIZE;
    uint64_t swapped[2] = {r.g.roots[1], r.g.roots[0]};
    sl_guest_state v[8];
    for (unsigned i = 0; i < 8; i++)
        v[i] = st;
    v[0].parent = other;
    v[1].parent = NULL;
    v[2].cur_root = 0; /* taken: checked below */
    v[3].snap_mem = copy; /* the same bytes elsewhere: not P's blob */
    v[4].extra = &extra, v[4].n_extra = 1;
    v[5].layout = &moved;
    v[6].roots = swapped;
    v[7].n_roots = 1, v[7].cur_root = 0;
    for (unsigned i = 0; i < 8; i++)
        if (i != 2 && take_with(&r, &v[i]) != SL_INC_DECLINED)
            printf("  frame variant %u taken\n", i), t_failed_now = 1;
    sl_snapshot *a = NULL, *b = NULL;
    sl_pageset d;
    sl_errbuf e;
    dirty_set(&r, &d);
    CHECK_EQ(sl_snapinc_take(&a, &v[2], r.on, &d, &e), 0);
    REQUIRE(sl_snapshot_from_memory(&b, &v[2], &e) == 0);
    if (a) {
        check_same(a, b);
        CHECK_EQ(a->cur_root, 0);
    }
    sl_snapshot_free(a);
    sl_snapshot_free(b);
    sl_pageset_free(&d);
    free(copy);
    run_free(&r);
    family_free(&f);
}

/* A parent without CPU state (as one made from a binary) is no parent. */
static void check_no_sregs(unsigned arch)
{
    family f;
    REQUIRE(family_make(&f, arch, 61));
    guest *g = &f.src;
    sl_guest_state st = {.layout = &g->l, .snap_mem = g->snap, .snap_size = g->snap_size, .scratch = g->scratch,
                         .roots = g->roots, .n_roots = g->n_roots, .cur_root = 1, .next_kind = SL_NEXT_CALL,
                         .parent = f.P->hash};
    sl_snapshot *bare;
    sl_errbuf e;
    REQUIRE(sl_snapshot_from_memory(&bare, &st, &e) == 0);
    run r;
    run_restore(&r, &g->l, bare, 4);
    scenario(&r, SC_COW);
    sl_guest_state rs = run_state(&r);
    CHECK_EQ(take_with(&r, &rs), SL_INC_DECLINED);
    run_free(&r);
    sl_snapshot_free(bare);
    family_free(&f);
}

/* P with its blob as a hostile file might have it, and the identity of
 * those bytes: entry `entry` (a GPA in P's tables) is `value`. Compaction
 * of the guest restored to it does not give it back. */
static sl_snapshot *forged(const sl_snapshot *P, uint64_t entry, uint64_t value)
{
    sl_snapshot *f = malloc(sizeof *f);
    uint8_t *mem = mmap(NULL, P->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!f || mem == MAP_FAILED)
        abort();
    memcpy(f, P, sizeof *f);
    memcpy(mem, P->mem, P->mem_size);
    sl_put_le(mem + P->visible_size + (entry - P->layout.pt_gpa), value, P->arch == SL_ARCH_I686 ? 4 : 8);
    mprotect(mem, P->mem_size, PROT_READ);
    f->mem = f->map_base = mem;
    f->map_len = P->mem_size;
    atomic_store(&f->refs, 1);
    atomic_store(&f->inc, NULL);
    f->tree = NULL;
    f->kept = NULL;
    f->kept_pages = 0;
    sl_snapshot_compute_hash(f, f->hash);
    return f;
}

/* Parents whose compaction does not reproduce them are never parents:
 * a leaf with a bit compaction clears (software bit 10), one without the
 * accessed and dirty bits compaction presets, a non-present entry that is
 * not zero. Compaction itself takes such a guest. */
static void check_forged(unsigned arch)
{
    family f;
    REQUIRE(family_make(&f, arch, 71));
    run r;
    run_restore(&r, &f.src.l, f.P, 4);
    leafref *lf = pick_leaf(&r, ALONE_UNMOVED);
    REQUIRE(lf);
    uint64_t leaf = get_entry(&r, lf->entry), empty = 0;
    for (size_t i = 0; i < r.n_lv && !empty; i++) /* an empty entry in a leaf table */
        for (uint64_t e = r.lv[i].entry + r.esz; e % SL_PAGE_SIZE && !empty; e += r.esz)
            empty = get_entry(&r, e) ? 0 : e;
    REQUIRE(empty);
    const uint64_t where[3] = {lf->entry, lf->entry, empty}, what[3] = {leaf | 1u << 10, leaf & ~SL_PTE_A, SL_PTE_RW};
    run_free(&r);
    for (unsigned i = 0; i < 3; i++) {
        sl_snapshot *bad = forged(f.P, where[i], what[i]);
        for (unsigned sc = SC_NONE; sc <= SC_COW; sc++) {
            run_restore(&r, &f.src.l, bad, 4);
            scenario(&r, sc);
            sl_guest_state st = run_state(&r);
            sl_snapshot *full;
            sl_errbuf e;
            CHECK_EQ(take_with(&r, &st), SL_INC_DECLINED);
            CHECK(sl_snapshot_from_memory(&full, &st, &e) == 0);
            if (sc == SC_NONE && full)
                CHECK(memcmp(full->hash, bad->hash, SL_HASH_LEN) != 0);
            sl_snapshot_free(full);
            run_free(&r);
        }
        sl_snapshot_free(bad);
    }
    family_free(&f);
}

static void test_frames(void)
{
    check_frames(SL_ARCH_AMD64);
    check_frames(SL_ARCH_I686);
    check_no_sregs(SL_ARCH_AMD64);
    check_no_sregs(SL_ARCH_I686);
}

static void test_forged_parents(void)
{
    check_forged(SL_ARCH_AMD64);
    check_forged(SL_ARCH_I686);
}

int main(void)
{
    RUN(test_unchanged);
    RUN(test_scenarios_amd64);
    RUN(test_scenarios_i686);
    RUN(test_chains_amd64);
    RUN(test_chains_i686);
    RUN(test_twice_amd64);
    RUN(test_twice_i686);
    RUN(test_threads);
    RUN(test_frames);
    RUN(test_forged_parents);
    T_EXIT();
}
