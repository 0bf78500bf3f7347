/* Compaction: a new snapshot from a running guest's memory (DESIGN.md §3
 * "from a running sandbox"). The guest's page tables are the only map of
 * what it uses, and they are hostile input: compaction walks every address
 * space, copies each page a space maps once, and rebuilds tables that map
 * exactly those pages, so the new blob holds no free pages, no stale tables
 * and nothing the guest cannot reach.
 *
 * sl_snapshot_from_memory runs five phases over one `compaction` context;
 * each phase says below why it is where it is. */
#include <stdlib.h>
#include <string.h>

#include "pagecopy.h"
#include "pt_owners.h"
#include "snapbuild.h"
#include "u64map.h"

/* Large pages are split into 4 KiB leaves; this caps the work a hostile table
 * full of 1 GiB entries can cause. */
#define SL_MAX_LEAVES (1ull << 24)
#define SL_MAX_EXTRA 16u

/* Owner recorded for leaf tables that map nothing but scratch. */
#define SCRATCH_OWNER SL_BK_MAX_ROOTS

typedef struct leaf {
    uint64_t gva, gpa, size, entry_gpa;
    sl_perm perm;
    uint32_t root;
} leaf;

/* One compaction. Table pages are allocated in phase order, and where each
 * lands is part of the blob's bytes, hence of the snapshot's identity: the
 * phases must run in this order for a guest to get the same id twice. */
typedef struct compaction {
    const sl_guest_state *st; /* the guest: read, never written */
    const sl_layout *l;
    unsigned arch;
    sl_errbuf *e;
    sl_snapshot *s; /* being built */
    /* Phase 1's output. `tables` maps every source table reached to the
     * space that reached it first; it also tells phase 3 which pages are
     * tables (rebuilt, never copied). Leaves and links are kept in walk
     * order so that phases 3 and 4 allocate deterministically. */
    sl_pt_owners tables;
    leaf *leaves;
    size_t n_leaves, cap_leaves;
    sl_walk_item *links;
    size_t n_links, cap_links;
    bool oom;
    /* Phase 2's output: the rebuilt root of each space. */
    uint64_t new_roots[SL_BK_MAX_ROOTS];
    /* Phase 3: source GPA -> new GPA of each page copied (0 until 3b
     * places it), so aliases (two VAs, or two spaces, mapping one page)
     * share one copy; n_pages distinct pages in all. from_parent has a bit
     * per page of the parent's visible memory (parent_pages of them): set
     * when the guest still maps it. next_free: 3b's cursor over the slots. */
    sl_u64map copied;
    uint64_t n_pages;
    uint64_t *from_parent;
    uint64_t parent_pages;
    uint64_t next_free;
    sl_pagebuf vis; /* the new visible pages, from SL_BASE_ADDRESS */
    sl_ptbuild pt;  /* the new tables, from layout.pt_gpa */
    /* 3b's copies into vis, done in batches: none of its pages is
     * populated, and a fault per page was most of a take (pagecopy.h). */
    sl_pagecopy copies;
} compaction;

/* ---- reading the source guest ---- */

static const uint8_t *in_range(uint64_t gpa, uint64_t base, uint64_t size, const uint8_t *host)
{
    if (!host || gpa < base || gpa - base >= size || size - (gpa - base) < SL_PAGE_SIZE)
        return NULL;
    return host + (gpa - base);
}

/* The host copy of the guest page at `gpa`, or NULL when no memory backs it. */
static const uint8_t *src_page(const sl_guest_state *st, uint64_t gpa)
{
    const uint8_t *p;
    if (gpa & (SL_PAGE_SIZE - 1))
        return NULL;
    if ((p = in_range(gpa, SL_BASE_ADDRESS, st->snap_size, st->snap_mem)) ||
        (p = in_range(gpa, st->layout->scratch_gpa, st->layout->scratch_size, st->scratch)))
        return p;
    for (unsigned i = 0; i < st->n_extra; i++)
        if ((p = in_range(gpa, st->extra[i].gpa, st->extra[i].size, st->extra[i].host)))
            return p;
    return NULL;
}

/* The walker only reads; the cast drops const for the shared callback type. */
static void *src_page_cb(void *ctx, uint64_t gpa)
{
    return (void *)src_page(ctx, gpa);
}

static sl_pt_mem src_mem(const sl_guest_state *st)
{
    return (sl_pt_mem){.ctx = (void *)st, .page = src_page_cb, .alloc = NULL};
}

/* The guest-physical ranges backed by memory, as {base, size}, in a fixed
 * order (snapshot, scratch, extra regions); ranges never wrap. */
static unsigned backed_ranges(const sl_guest_state *st, uint64_t out[][2])
{
    unsigned n = 0;
    out[n][0] = SL_BASE_ADDRESS, out[n++][1] = st->snap_size;
    out[n][0] = st->layout->scratch_gpa, out[n++][1] = st->layout->scratch_size;
    for (unsigned i = 0; i < st->n_extra && i < SL_MAX_EXTRA; i++)
        if (st->extra[i].host && st->extra[i].gpa + st->extra[i].size >= st->extra[i].gpa)
            out[n][0] = st->extra[i].gpa, out[n++][1] = st->extra[i].size;
    return n;
}

/* ---- setting up ---- */

static int check_guest_state(const sl_guest_state *st, sl_errbuf *e)
{
    if (!st->layout || !st->roots || !st->n_roots || st->n_roots > SL_BK_MAX_ROOTS ||
        st->cur_root >= st->n_roots)
        return sl_err(e, SL_EINVAL, "snapshot needs 1..%u page-table roots and a valid current root",
                      SL_BK_MAX_ROOTS);
    if (st->sregs_len > SL_SREGS_MAX)
        return sl_err(e, SL_EINVAL, "special registers too large");
    if (st->n_extra > SL_MAX_EXTRA)
        return sl_err(e, SL_EINVAL, "more than %u extra memory regions", SL_MAX_EXTRA);
    if (st->snap_size % SL_PAGE_SIZE || !st->scratch)
        return sl_err(e, SL_EINVAL, "snapshot memory must be whole pages and scratch present");
    return 0;
}

/* Every source page can be copied at most once, and tables cannot exceed
 * the pages that back them: the source size bounds both reservations and
 * the number of tables a hostile walk may record. */
static int compaction_init(compaction *c, const sl_guest_state *st, sl_errbuf *e)
{
    memset(c, 0, sizeof *c);
    c->st = st;
    c->l = st->layout;
    c->arch = c->l->arch;
    c->e = e;
    uint64_t src_bytes = st->snap_size + c->l->scratch_size;
    for (unsigned i = 0; i < st->n_extra; i++)
        src_bytes += st->extra[i].size;
    sl_pt_owners_init(&c->tables, src_bytes / SL_PAGE_SIZE + 1);
    sl_u64map_init(&c->copied);
    if (!(c->s = calloc(1, sizeof *c->s)))
        return sl_err(e, SL_ENOMEM, "out of memory");
    int rc = sl_ptbuild_init(&c->pt, c->l, e);
    return rc ? rc : sl_pagebuf_init(&c->vis, src_bytes + c->pt.buf.cap, e);
}

static void compaction_free(compaction *c)
{
    sl_pagebuf_free(&c->vis);
    sl_pagebuf_free(&c->pt.buf);
    sl_pt_owners_free(&c->tables);
    sl_u64map_free(&c->copied);
    free(c->from_parent);
    free(c->leaves);
    free(c->links);
}

/* ---- phase 1: walk every space ---- */

/* The scratch window is mapped afresh in every snapshot, so its leaf tables
 * need not be walked page by page: recording them as seen beforehand makes
 * the walk report each as one shared sub-table, which linking then ignores
 * (its owner is no address space). Only tables whose whole span lies inside
 * the window qualify, so no other mapping can hide behind them. */
static bool skip_scratch_tables(compaction *c, uint64_t root)
{
    const sl_layout *l = c->l;
    unsigned leaf_depth = sl_pt_levels(c->arch) - 1;
    uint64_t span = sl_pt_entry_span(c->arch, leaf_depth - 1); /* what one leaf table maps */
    uint64_t va = (l->scratch_gva + span - 1) / span * span, end = l->scratch_gva + l->scratch_size;
    sl_pt_mem m = src_mem(c->st);
    for (; va >= l->scratch_gva && va + span <= end && va + span > va; va += span) {
        uint64_t t;
        if (sl_pt_table_at(c->arch, &m, root, va, leaf_depth, false, &t) == SL_PT_OK && t != root &&
            !sl_pt_owners_get(&c->tables, t) && !sl_pt_owners_add(&c->tables, t, SCRATCH_OWNER, va, leaf_depth))
            return false;
    }
    return true;
}

static bool grow(void **p, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 1024;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return false;
    *p = np;
    *cap = ncap;
    return true;
}

static bool on_walk_item(void *arg, const sl_walk_item *it)
{
    compaction *c = arg;
    if (it->kind == SL_WALK_THIS_SPACE) {
        if (c->n_leaves == c->cap_leaves && !grow((void **)&c->leaves, &c->cap_leaves, sizeof(leaf)))
            return c->oom = true, false;
        c->leaves[c->n_leaves++] = (leaf){.gva = it->map.gva, .gpa = it->map.gpa, .size = it->map.size,
                                          .perm = it->map.perm, .root = it->root, .entry_gpa = it->entry_gpa};
    } else {
        if (c->n_links == c->cap_links && !grow((void **)&c->links, &c->cap_links, sizeof(sl_walk_item)))
            return c->oom = true, false;
        c->links[c->n_links++] = *it;
    }
    return true;
}

/* All roots in one walk, in the order given: the walker records each table
 * the first time it is reached, so a sub-table that a later space shares is
 * reported once, as a link to its first owner (phase 4), instead of being
 * copied into every space that maps it. */
static int walk_spaces(compaction *c)
{
    const sl_guest_state *st = c->st;
    for (unsigned i = 0; i < st->n_roots; i++)
        if (!src_page(st, st->roots[i] & SL_PAGE_MASK))
            return sl_err(c->e, SL_EPAGETABLE, "page-table root %u at GPA 0x%llx is outside guest memory", i,
                          (unsigned long long)st->roots[i]);
    for (unsigned i = 0; i < st->n_roots; i++)
        if (!skip_scratch_tables(c, st->roots[i] & SL_PAGE_MASK))
            return sl_err(c->e, SL_ENOMEM, "out of memory walking page tables");
    sl_pt_mem m = src_mem(st);
    sl_pt_seen seen = sl_pt_owners_seen(&c->tables);
    int rc = sl_pt_walk_spaces(c->arch, &m, st->roots, st->n_roots, &seen, on_walk_item, c);
    if (c->oom)
        return sl_err(c->e, SL_ENOMEM, "out of memory walking page tables");
    if (rc)
        return sl_err(c->e, SL_EPAGETABLE, "page-table walk failed (%d): too many tables", rc);
    if (st->trace && st->trace->tables)
        st->trace->tables(st->trace->arg, &c->tables);
    return 0;
}

/* ---- phase 2: one new root per space ---- */

/* Roots are allocated before any leaf, so they are the first pages of the
 * table area whatever the spaces map. A root repeated in the list shares
 * the first one's table; a root that is a sub-table of another space makes
 * no sense. */
static int make_roots(compaction *c)
{
    const sl_guest_state *st = c->st;
    for (unsigned i = 0; i < st->n_roots; i++) {
        const sl_pt_owner *o = sl_pt_owners_get(&c->tables, st->roots[i] & SL_PAGE_MASK);
        unsigned owner = o ? o->root : i, depth = o ? o->depth : 0;
        if (owner != i && depth == 0 && (st->roots[owner] & SL_PAGE_MASK) == (st->roots[i] & SL_PAGE_MASK)) {
            c->new_roots[i] = c->new_roots[owner];
            continue;
        }
        if (owner != i)
            return sl_err(c->e, SL_EPAGETABLE, "page-table root %u (GPA 0x%llx) is a sub-table of space %u", i,
                          (unsigned long long)st->roots[i], owner);
        if (!sl_ptbuild_alloc(&c->pt, &c->new_roots[i]))
            return sl_err(c->e, SL_ERANGE, "scratch too small for the page tables");
    }
    return 0;
}

/* ---- phase 3: copy and map every private leaf, stably ---- */

/* Stable compaction (issue 11): a page the guest did not change since the
 * snapshot it runs on is still that snapshot's page, at GPA SL_BASE_ADDRESS
 * + o (the slot maps the parent's blob read-only, so the guest can change a
 * page only by copying it elsewhere). Such a page keeps offset o in the new
 * blob; every other page (copied into scratch, or in an extra region) fills
 * the slots left free, in walk order. The blob stays dense: it holds exactly
 * the N distinct pages the spaces map, so a parent page whose offset is N
 * or more cannot stay and moves into a free slot like a new page. Phase 3a
 * counts the pages and marks the parent's pages that stay; phase 3b copies
 * and maps. Where each page goes depends only on the guest's memory and
 * tables (which of the parent's pages back which addresses), so the same
 * guest on the same parent gets the same identity, and a snapshot of a
 * sandbox that changed nothing since its parent is byte for byte the
 * parent's blob. The same image reached from another parent may be laid
 * out, and so identified, differently. */

/* A 4 KiB piece of leaf lf that the new blob holds, at gva, read from the
 * source page gpa (host copy src). */
typedef int (*piece_fn)(compaction *c, const leaf *lf, uint64_t gva, uint64_t gpa, const uint8_t *src);

static bool in_window(uint64_t va, uint64_t base, uint64_t size)
{
    return va >= base && va - base < size;
}

/* Calls fn for every piece the new blob holds, in walk order; both passes
 * go through here, so they see the same pieces in the same order. A large
 * page is split into its 4 KiB pieces, visiting only the pieces backed by
 * guest memory: the rest would read as not present anyway, and a hostile
 * table full of 1 GiB entries must not cost a walk over every piece.
 * Skipped: the scratch window (mapped afresh), page tables seen as data (a
 * self-map: tables are rebuilt, not copied), unbacked pages (they could only
 * fault, so they read as not present). */
static int for_each_piece(compaction *c, piece_fn fn)
{
    uint64_t ranges[2 + SL_MAX_EXTRA][2], n4k = 0;
    unsigned n_ranges = backed_ranges(c->st, ranges);
    for (size_t i = 0; i < c->n_leaves; i++) {
        const leaf *lf = &c->leaves[i];
        uint64_t size = lf->size ? lf->size : SL_PAGE_SIZE;
        for (unsigned r = 0; r < n_ranges; r++) {
            uint64_t lo = lf->gpa > ranges[r][0] ? lf->gpa : ranges[r][0];
            uint64_t end = lf->gpa + size, rend = ranges[r][0] + ranges[r][1];
            uint64_t hi = end < rend ? end : rend;
            for (uint64_t p = lo; p < hi; p += SL_PAGE_SIZE) {
                if (++n4k > SL_MAX_LEAVES)
                    return sl_err(c->e, SL_ERANGE, "guest maps more than %llu pages",
                                  (unsigned long long)SL_MAX_LEAVES);
                uint64_t gva = lf->gva + (p - lf->gpa);
                const uint8_t *src;
                if (in_window(gva, c->l->scratch_gva, c->l->scratch_size) || sl_pt_owners_get(&c->tables, p) ||
                    !(src = src_page(c->st, p)))
                    continue;
                int rc = fn(c, lf, gva, p, src);
                if (rc)
                    return rc;
            }
        }
    }
    return 0;
}

/* Whether the source page at gpa is the parent's (the snapshot the guest
 * runs on), and at which page offset of its blob. */
static bool parent_page(const compaction *c, uint64_t gpa, uint64_t *off)
{
    if (!c->st->snap_mem || gpa < SL_BASE_ADDRESS || gpa - SL_BASE_ADDRESS >= c->st->snap_size)
        return false;
    *off = (gpa - SL_BASE_ADDRESS) / SL_PAGE_SIZE;
    return true;
}

/* Slot s of the new blob is taken by the parent page that keeps it. */
static bool slot_kept(const compaction *c, uint64_t s)
{
    return s < c->n_pages && s < c->parent_pages && (c->from_parent[s / 64] >> (s % 64) & 1);
}

/* 3a: each distinct source page once (the `copied` map, with no slot yet),
 * and which of the parent's pages are mapped. */
static int count_piece(compaction *c, const leaf *lf, uint64_t gva, uint64_t gpa, const uint8_t *src)
{
    (void)lf, (void)gva, (void)src;
    if (sl_u64map_get(&c->copied, gpa))
        return 0;
    if (!sl_u64map_put(&c->copied, gpa, 0))
        return sl_err(c->e, SL_ENOMEM, "out of memory");
    c->n_pages++;
    uint64_t o;
    if (parent_page(c, gpa, &o))
        c->from_parent[o / 64] |= 1ull << (o % 64);
    return 0;
}

/* The slot (page offset in the new blob) of a page placed for the first
 * time: its own offset for a parent page that stays, else the next free one. */
static int take_slot(compaction *c, uint64_t gpa, uint64_t *slot)
{
    uint64_t o;
    if (parent_page(c, gpa, &o) && slot_kept(c, o)) {
        if (c->st->parent)
            c->s->stats.pages_kept++;
        *slot = o;
        return 0;
    }
    while (slot_kept(c, c->next_free))
        c->next_free++;
    if (c->next_free >= c->n_pages)
        return sl_err(c->e, SL_ERANGE, "internal: more pages placed than counted");
    *slot = c->next_free++;
    return 0;
}

/* 3b: copies (once per source page) and maps one piece in the rebuilt
 * tables. Writable pages become copy-on-write, since the blob is shared and
 * read-only; CoW stays CoW; read-only stays. */
static int place_piece(compaction *c, const leaf *lf, uint64_t gva, uint64_t gpa, const uint8_t *src)
{
    sl_perm perm = sl_snapbuild_leaf_perm(lf->perm);
    uint64_t *new_gpa = sl_u64map_get(&c->copied, gpa), slot = 0;
    if (!new_gpa)
        return sl_err(c->e, SL_ERANGE, "internal: a page placed that was not counted");
    bool first = !*new_gpa, cow = perm.kind == SL_MAP_COW;
    if (first) {
        int rc = take_slot(c, gpa, &slot);
        if (rc)
            return rc;
        sl_pagecopy_add(&c->copies, c->vis.p + slot * SL_PAGE_SIZE, src, SL_PAGE_SIZE);
        *new_gpa = SL_BASE_ADDRESS + slot * SL_PAGE_SIZE;
        if (cow)
            c->s->stats.pages_cow++;
        else
            c->s->stats.pages_ro++;
    }
    const sl_compact_trace *tr = c->st->trace;
    if (tr && tr->piece)
        tr->piece(tr->arg, lf->entry_gpa, lf->size, gva, (*new_gpa - SL_BASE_ADDRESS) / SL_PAGE_SIZE, first, cow);
    sl_pt_mem m = sl_ptbuild_mem(&c->pt);
    int rc = sl_pt_map(c->arch, &m, c->new_roots[lf->root], gva, *new_gpa, SL_PAGE_SIZE, perm);
    if (rc)
        return sl_snapbuild_pt_error(rc, c->e, "a page", gva);
    c->s->stats.leaves++;
    return 0;
}

/* The two passes, with the blob sized in between: N pages, each slot
 * written once by 3b (the buffer is fresh zeroed memory). */
static int copy_leaves(compaction *c)
{
    c->parent_pages = c->st->snap_mem ? c->st->snap_size / SL_PAGE_SIZE : 0;
    if (c->parent_pages && !(c->from_parent = calloc((c->parent_pages + 63) / 64, sizeof(uint64_t))))
        return sl_err(c->e, SL_ENOMEM, "out of memory");
    int rc = for_each_piece(c, count_piece);
    if (rc)
        return rc;
    if (c->n_pages > (c->vis.cap - c->pt.buf.cap) / SL_PAGE_SIZE)
        return sl_err(c->e, SL_ERANGE, "snapshot larger than its reservation");
    c->vis.len = c->n_pages * SL_PAGE_SIZE;
    sl_pagecopy_init(&c->copies);
    rc = for_each_piece(c, place_piece);
    sl_pagecopy_flush(&c->copies);
    return rc;
}

/* ---- phase 4: link shared sub-tables ---- */

/* After every leaf is placed, because only then does the owner's rebuilt
 * sub-table exist; when nothing was kept below it, none does, and the link
 * is dropped (so is one to a scratch table, whose owner is no space). */
static int link_shared(compaction *c)
{
    sl_pt_mem bm = sl_ptbuild_mem(&c->pt);
    for (size_t i = 0; i < c->n_links; i++) {
        const sl_walk_item *it = &c->links[i];
        uint64_t target;
        if (it->root >= c->st->n_roots || it->owner_root >= c->st->n_roots ||
            sl_pt_table_at(c->arch, &bm, c->new_roots[it->owner_root], it->their_va, it->their_depth, false,
                           &target))
            continue;
        int rc = sl_pt_link(c->arch, &bm, c->new_roots[it->root], it->our_va, it->depth, target);
        if (rc)
            return sl_snapbuild_pt_error(rc, c->e, "a shared table", it->our_va);
    }
    return 0;
}

/* ---- phase 5: scratch, and the snapshot ---- */

/* Scratch is mapped afresh in every space, whatever the guest mapped there
 * (phases 1 and 3 skipped it): the kernel relies on the layout's window.
 * Then the new snapshot takes the guest's CPU state and the family's
 * layout, with no regions: every page now lives in the blob. */
static int seal(compaction *c)
{
    const sl_guest_state *st = c->st;
    sl_snapshot *s = c->s;
    for (unsigned i = 0; i < st->n_roots; i++) {
        int rc = sl_snapbuild_map_scratch(c->arch, &c->pt, c->l, c->new_roots[i], c->e);
        if (rc)
            return rc;
    }
    s->arch = c->arch;
    s->layout = *c->l;
    s->layout.n_regions = 0;
    s->n_regions = 0;
    memcpy(s->roots, c->new_roots, st->n_roots * sizeof s->roots[0]);
    s->n_roots = st->n_roots;
    s->cur_root = st->cur_root;
    s->stack_top = st->stack_top;
    s->next_kind = st->next_kind;
    s->next_addr = st->next_addr;
    s->generation = st->generation;
    s->family = st->family;
    s->has_parent = st->parent != NULL;
    if (st->parent)
        memcpy(s->parent, st->parent, SL_HASH_LEN);
    s->sregs_len = st->sregs_len;
    if (st->sregs_len)
        memcpy(s->sregs, st->sregs, st->sregs_len);
    return sl_snapbuild_seal(s, &c->vis, &c->pt, c->e);
}

/* The new snapshot remembers which of its pages are its parent's, unread,
 * at the same offset (slot_kept): a child file takes those from the parent
 * file without reading or hashing them. */
static void keep_kept(compaction *c)
{
    uint64_t n = c->parent_pages < c->n_pages ? c->parent_pages : c->n_pages;
    if (!c->from_parent || !n)
        return;
    if (n % 64)
        c->from_parent[n / 64] &= (1ull << (n % 64)) - 1;
    c->s->kept = c->from_parent;
    c->s->kept_pages = n;
    c->from_parent = NULL;
}

int sl_snapshot_from_memory(sl_snapshot **out, const sl_guest_state *st, sl_errbuf *e)
{
    int rc = check_guest_state(st, e);
    if (rc)
        return rc;
    compaction c;
    if (!(rc = compaction_init(&c, st, e)) && !(rc = walk_spaces(&c)) && !(rc = make_roots(&c)) &&
        !(rc = copy_leaves(&c)) && !(rc = link_shared(&c)))
        rc = seal(&c);
    if (!rc && st->parent)
        keep_kept(&c);
    compaction_free(&c);
    if (rc) {
        free(c.s);
        return rc;
    }
    *out = c.s;
    return 0;
}
